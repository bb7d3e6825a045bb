//! Protocol probes (SPEC §6): one module per protocol behind the `Probe` trait. Each probe
//! answers up or down with a precise reason and a duration, within a per-probe timeout, and
//! contacts only addresses in the allow-list. `Prober` runs one probe of one target.

mod allow;
pub mod config;
mod context;
mod error;
mod ftp;
mod http;
mod imap;
mod line;
mod mysql;
mod ping;
mod pop3;
mod postgresql;
mod smtp;
mod tls;

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

pub use allow::{AddressOwners, AllowList};
pub use config::ProbeConfig;
pub use context::{Findings, ProbeContext};
pub use error::ProbeError;
pub use http::{StatusLine, parse_status_line};
pub use imap::{ImapGreeting, parse_imap_greeting};
pub use line::{CodedLine, parse_coded_line};
pub use mysql::{MysqlGreeting, parse_mysql_greeting};
pub use ping::PingMethod;
pub use pop3::{Pop3Status, parse_pop3_status};
pub use postgresql::{BackendMessage, parse_backend_message};
pub use tls::{TlsClient, TlsSetupError};

/// What is monitored: host liveness (`Ping`) and the twelve services of SPEC §6; the
/// CRD's own type, so a name in a status, a metric label and a probe is one value.
pub use oem_crds::enduser::ServiceName;

/// Whose address a target is, so what may be contacted for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// An endpoint a reseller named: inside the allow-list, never an address of a hosting
    /// namespace other than `own` (the end user's; empty: none) nor of the control plane.
    Named { own: String },
    /// The operator's own in-cluster address (a hosting Service or pod): inside the allow-list.
    Cluster,
    /// A node's address, read from its Node object: pinged wherever it is (nodes lie outside
    /// the pod and Service ranges).
    Node,
}

/// One thing to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: ServiceName,
    /// Name or address to connect to (the in-cluster Service, or an endpoint the user named).
    pub host: String,
    /// Port to connect to; `None` is the service's well-known port. For ping, the port of the
    /// TCP connect fallback (none: no fallback).
    pub port: Option<u16>,
    /// The end user's first domain: HTTP `Host`, TLS server name and certificate name.
    /// `None` uses `host`.
    pub domain: Option<String>,
    /// Whose address it is; `Target::new` makes the strictest (named, of no end user).
    pub scope: Scope,
}

impl Target {
    pub fn new(service: ServiceName, host: impl Into<String>, port: Option<u16>) -> Self {
        Self {
            service,
            host: host.into(),
            port,
            domain: None,
            scope: Scope::Named { own: String::new() },
        }
    }

    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The name the server is asked for: the domain, else the host.
    pub fn server_name(&self) -> &str {
        self.domain.as_deref().unwrap_or(&self.host)
    }

    fn port_or_default(&self) -> Option<u16> {
        self.port.or(self.service.default_port())
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    pub service: ServiceName,
    pub up: bool,
    /// Why up ("220 greeting, 250 to EHLO") or down ("no answer within 500ms while reading the
    /// greeting").
    pub reason: String,
    /// Low-cardinality failure kind for metrics; `None` when up.
    pub failure: Option<&'static str>,
    pub duration: Duration,
    /// The address contacted, once one was chosen.
    pub address: Option<IpAddr>,
    /// The leaf certificate's notAfter, for TLS services (also when it made the probe fail).
    pub tls_cert_expiry: Option<SystemTime>,
    /// What the server says it is (greeting text, `Server` header, version string).
    pub server_version: Option<String>,
    /// How ping reached the host.
    pub ping_method: Option<PingMethod>,
}

impl ProbeOutcome {
    /// Seconds until the certificate expires (negative once expired), for
    /// `oem_tls_cert_expiry_seconds`.
    pub fn tls_cert_expiry_seconds(&self, now: SystemTime) -> Option<f64> {
        let expiry = self.tls_cert_expiry?;
        Some(match expiry.duration_since(now) {
            Ok(left) => left.as_secs_f64(),
            Err(past) => -past.duration().as_secs_f64(),
        })
    }
}

/// One protocol's exchange. `check` returns why the service is up, or why it is down; facts
/// learnt on the way (address, certificate expiry, version) go into the context's findings.
pub trait Probe {
    fn check(
        &self,
        cx: &mut ProbeContext<'_>,
    ) -> impl Future<Output = Result<String, ProbeError>> + Send;
}

/// Runs probes with one configuration: timeout, allow-list, TLS roots, and the in-cluster
/// addresses named endpoints may not reach.
#[derive(Debug, Clone)]
pub struct Prober {
    config: ProbeConfig,
    allow: AllowList,
    tls: TlsClient,
    owners: Arc<RwLock<Arc<AddressOwners>>>,
}

impl Prober {
    /// Loads the TLS roots (the configured CA file, or the system's).
    pub fn new(config: ProbeConfig) -> Result<Self, TlsSetupError> {
        let tls = TlsClient::new(config.ca_file.as_deref())?;
        let allow = AllowList::new(config.networks());
        Ok(Self {
            config,
            allow,
            tls,
            owners: Arc::default(),
        })
    }

    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    /// Replaces the owners of in-cluster addresses (the monitor's refresh).
    pub fn set_owners(&self, owners: AddressOwners) {
        let mut slot = self.owners.write().unwrap_or_else(|p| p.into_inner());
        *slot = Arc::new(owners);
    }

    fn owners(&self) -> Arc<AddressOwners> {
        self.owners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Probes `target` once. Never panics and never takes (much) longer than the timeout.
    pub async fn probe(&self, target: &Target) -> ProbeOutcome {
        let owners = self.owners();
        let mut cx = ProbeContext::new(target, &self.allow, &owners, &self.tls, &self.config);
        let started = tokio::time::Instant::now();
        let safety_net = cx.deadline() + Duration::from_millis(100);
        let result = match tokio::time::timeout_at(safety_net, run(&mut cx, target)).await {
            Ok(result) => result,
            Err(_) => Err(ProbeError::Timeout {
                phase: "probing",
                after: self.config.timeout,
            }),
        };
        let duration = started.elapsed();
        let findings = cx.into_findings();
        let (up, reason, failure) = match result {
            Ok(reason) => (true, reason, None),
            Err(err) => (false, err.to_string(), Some(err.metric_label())),
        };
        ProbeOutcome {
            service: target.service,
            up,
            reason,
            failure,
            duration,
            address: findings.address,
            tls_cert_expiry: findings.tls_cert_expiry,
            server_version: findings.server_version,
            ping_method: findings.ping_method,
        }
    }
}

async fn run(cx: &mut ProbeContext<'_>, target: &Target) -> Result<String, ProbeError> {
    use ServiceName::*;
    match target.service {
        Ping => ping::PingProbe.check(cx).await,
        Http => http::HttpProbe { tls: false }.check(cx).await,
        Https => http::HttpProbe { tls: true }.check(cx).await,
        Ftp => ftp::FtpProbe { tls: false }.check(cx).await,
        Ftps => ftp::FtpProbe { tls: true }.check(cx).await,
        Smtp => smtp::SmtpProbe { tls: false }.check(cx).await,
        Smtps => smtp::SmtpProbe { tls: true }.check(cx).await,
        Pop3 => pop3::Pop3Probe { tls: false }.check(cx).await,
        Pop3s => pop3::Pop3Probe { tls: true }.check(cx).await,
        Imap => imap::ImapProbe { tls: false }.check(cx).await,
        Imaps => imap::ImapProbe { tls: true }.check(cx).await,
        Postgresql => postgresql::PostgresqlProbe.check(cx).await,
        Mysql => mysql::MysqlProbe.check(cx).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_round_trip_through_serde() {
        for service in ServiceName::ALL {
            let json = serde_json::to_string(&service).unwrap();
            assert_eq!(json, format!("\"{service}\""));
            let back: ServiceName = serde_json::from_str(&json).unwrap();
            assert_eq!(back, service);
        }
    }

    #[test]
    fn only_ping_has_no_default_port() {
        for service in ServiceName::ALL {
            assert_eq!(
                service.default_port().is_none(),
                service == ServiceName::Ping
            );
        }
    }

    fn loopback_prober() -> Prober {
        Prober::new(ProbeConfig {
            timeout: Duration::from_secs(2),
            pod_cidrs: vec![],
            service_cidrs: vec![],
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            ca_file: None,
            icmp: false,
        })
        .unwrap()
    }

    /// Whether `listener` gets a connection within a short while.
    async fn connected(listener: &tokio::net::TcpListener) -> bool {
        tokio::time::timeout(Duration::from_millis(300), listener.accept())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_named_endpoint_at_another_tenants_address_is_never_contacted() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let prober = loopback_prober();
        prober.set_owners(AddressOwners::new([(addr.ip(), "h-acme-bob-y")], []));
        let named = |own: &str| {
            Target::new(ServiceName::Ping, addr.ip().to_string(), Some(addr.port())).with_scope(
                Scope::Named {
                    own: own.to_owned(),
                },
            )
        };
        // Alice names Bob's address: refused with a fixed reason, and nothing is sent.
        let outcome = prober.probe(&named("h-acme-alice-x")).await;
        assert!(!outcome.up);
        assert_eq!(outcome.failure, Some("other_tenant"), "{}", outcome.reason);
        assert!(!connected(&listener).await);
        // The same address is Bob's own endpoint, and the operator's in-cluster target.
        let outcome = prober.probe(&named("h-acme-bob-y")).await;
        assert!(outcome.up, "{}", outcome.reason);
        assert!(connected(&listener).await);
        let cluster = named("").with_scope(Scope::Cluster);
        assert!(prober.probe(&cluster).await.up);
    }

    #[tokio::test]
    async fn a_named_endpoint_resolving_to_the_api_server_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let prober = loopback_prober();
        let api_server = "127.0.0.1".parse().unwrap();
        prober.set_owners(AddressOwners::new([], [api_server]));
        // By name: resolved, then the resolved address is checked and never connected to.
        let target =
            Target::new(ServiceName::Http, "localhost", Some(port)).with_scope(Scope::Named {
                own: "h-acme-alice-x".into(),
            });
        let outcome = prober.probe(&target).await;
        assert!(!outcome.up);
        assert!(
            matches!(outcome.failure, Some("control_plane" | "not_allowed")),
            "{outcome:?}"
        );
        assert!(!connected(&listener).await);
    }

    #[tokio::test]
    async fn nodes_are_pinged_outside_the_allow_list_named_endpoints_are_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The default ranges: pods and Services only, no loopback.
        let prober = Prober::new(ProbeConfig {
            icmp: false,
            ..ProbeConfig::default()
        })
        .unwrap();
        let target = Target::new(ServiceName::Ping, addr.ip().to_string(), Some(addr.port()));
        let outcome = prober.probe(&target).await;
        assert_eq!(outcome.failure, Some("not_allowed"), "{}", outcome.reason);
        assert!(!connected(&listener).await);
        let node = target.with_scope(Scope::Node);
        assert!(prober.probe(&node).await.up);
        assert!(connected(&listener).await);
    }

    #[test]
    fn expiry_seconds_are_negative_once_expired() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut outcome = ProbeOutcome {
            service: ServiceName::Https,
            up: false,
            reason: String::new(),
            failure: None,
            duration: Duration::ZERO,
            address: None,
            tls_cert_expiry: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(400)),
            server_version: None,
            ping_method: None,
        };
        assert_eq!(outcome.tls_cert_expiry_seconds(now), Some(-600.0));
        outcome.tls_cert_expiry = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_500));
        assert_eq!(outcome.tls_cert_expiry_seconds(now), Some(500.0));
    }
}
