//! The operator's configuration: one typed struct, loaded once at start from an optional YAML
//! file (`--config` / `OEM_CONFIG`) with environment overrides, validated with a clear message.
//! Every duration is here so tests can scale time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Toleration;
use oem_crds::policy::{SecurityPolicy, project_image};
use serde::Deserialize;

// Each part's configuration type, from its own leaf module (never the part itself, which
// reads the whole configuration through the context): nothing here leads back to this file.
use crate::alerting::config::AlertingConfig;
use crate::hosting::config::{CertificatesConfig, FrontDoor, LoadBalancerConfig, MailConfig};
use crate::leader::LeaderElectionConfig;
use crate::monitor::config::MonitorConfig;
use crate::monitor::probes::config::ProbeConfig;
use crate::usage::config::UsageConfig;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("configuration {field}: {message}")]
    Invalid { field: String, message: String },
}

/// Container images of the services whose image does not depend on a runtime version (the web
/// and database images are named per version by the security policy).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Images {
    pub ftp: String,
    pub mail: String,
}

impl Default for Images {
    fn default() -> Self {
        Self {
            ftp: project_image("ftp"),
            mail: project_image("mail"),
        }
    }
}

/// Where hosting pods run: the provider's nodes for tenants (a node selector and the taints
/// those nodes carry).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Placement {
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
}

/// How a course's cpu and memory are split between the service groups, in percent. Groups
/// that are not enabled give their share to the others in proportion.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ResourceSplit {
    pub web: u32,
    pub mail: u32,
    pub db: u32,
}

impl Default for ResourceSplit {
    fn default() -> Self {
        Self {
            web: 50,
            mail: 20,
            db: 30,
        }
    }
}

/// Where traffic into hosting namespaces may come from.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Namespace of the ingress controller.
    pub ingress_namespace: String,
    /// Namespace the monitor probes from (the operator's own).
    pub monitor_namespace: String,
    /// IngressClass of the per-domain Ingresses.
    pub ingress_class: String,
    /// Addresses of their own for each end user's mail and FTP services (`hosting/public.rs`).
    pub load_balancer: LoadBalancerConfig,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            ingress_namespace: "ingress-nginx".into(),
            monitor_namespace: "oem-hosting-system".into(),
            ingress_class: "nginx".into(),
            load_balancer: LoadBalancerConfig::default(),
        }
    }
}

/// A ServiceAccount by namespace and name.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccountRef {
    /// `namespace/name`; empty is none.
    fn parse(text: &str) -> Result<Option<Self>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        match text.split_once('/') {
            Some((namespace, name))
                if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
            {
                Ok(Some(Self {
                    namespace: namespace.into(),
                    name: name.into(),
                }))
            }
            _ => Err(format!("{text:?} is not namespace/name")),
        }
    }

    /// As an RBAC subject.
    pub fn subject(&self) -> k8s_openapi::api::rbac::v1::Subject {
        k8s_openapi::api::rbac::v1::Subject {
            kind: "ServiceAccount".into(),
            name: self.name.clone(),
            namespace: Some(self.namespace.clone()),
            api_group: None,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Config {
    /// Address of /healthz, /readyz and /metrics.
    pub http_addr: SocketAddr,
    pub images: Images,
    /// Node selector and tolerations of every hosting pod.
    pub placement: Placement,
    pub resource_split: ResourceSplit,
    pub network: NetworkConfig,
    /// StorageClass of the data volumes (`None`: the cluster default).
    pub storage_class: Option<String>,
    /// How often every object is reconciled even without a change (start dates, drift).
    #[serde(with = "humantime_serde")]
    pub resync_interval: Duration,
    /// Back-off after a transient error (API unavailable, conflict).
    #[serde(with = "humantime_serde")]
    pub transient_retry: Duration,
    /// Re-check after a spec error (a missing course may appear; watches catch most fixes).
    #[serde(with = "humantime_serde")]
    pub spec_retry: Duration,
    /// Runtime versions courses may use, their end of life and the images that run them (the
    /// same list the webhooks read).
    pub security_policy: SecurityPolicy,
    /// Reconciles running at once, per controller.
    pub concurrency: u16,
    /// A file whose content shifts "now" (tests only; see `clock.rs`).
    pub clock_file: Option<PathBuf>,
    /// Extra labels put on every hosting namespace.
    pub namespace_labels: BTreeMap<String, String>,
    /// How each probe runs: timeout, allow-list, CA file.
    pub probes: ProbeConfig,
    /// When probes run: interval, retry interval, concurrency.
    pub monitor: MonitorConfig,
    /// Prometheus's HTTP API (`http://host:9090`): the one the usage reporter reads (else the
    /// metrics API) and the alert controller reads alerts from (unless `alerting.source` says
    /// otherwise).
    pub prometheus_url: Option<String>,
    /// Usage reporting: interval and source.
    pub usage: UsageConfig,
    /// Alert source, incident flow timings, notification transport.
    pub alerting: AlertingConfig,
    /// The most orphaned hosting namespaces one orphan sweep deletes; the rest wait for the
    /// next sweep (see `controllers/orphans.rs`). 0 deletes none (they are only logged).
    pub orphan_sweep_cap: usize,
    /// The admission webhooks' ServiceAccount: the Reseller controller binds
    /// `oem-hosting-webhooks-secrets` to it in each reseller namespace (their only Secret
    /// access: the key names of password Secrets). `None`: no such binding (and any made
    /// before is removed); the webhooks then only warn about password Secrets.
    pub webhooks_service_account: Option<ServiceAccountRef>,
    /// The resellers' panel's ServiceAccount: the Reseller controller binds
    /// `oem-hosting-panel-impersonation` to it in each reseller namespace (acting as that
    /// reseller's `oem-hosting-reseller-panel`), and keeps each reseller's panel logins in its
    /// namespace, the Secret `oem-hosting-panel-<reseller>` (login ID → generated password).
    /// `None`: no panel logins and no impersonation (any binding made before is removed).
    pub panel_service_account: Option<ServiceAccountRef>,
    /// The Lease the replicas elect their leader on (`leader.rs`).
    pub leader_election: LeaderElectionConfig,
    /// Where the end users' domains point (their DNS records in `status.dns`).
    pub front_door: FrontDoor,
    /// End users' mail: DKIM selector, the provider's relay, the SPF record.
    pub mail: MailConfig,
    /// Who issues each end user's certificate (a cert-manager issuer), and the room its
    /// HTTP-01 solver pods need.
    pub certificates: CertificatesConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            images: Images::default(),
            placement: Placement::default(),
            resource_split: ResourceSplit::default(),
            network: NetworkConfig::default(),
            storage_class: None,
            resync_interval: Duration::from_secs(300),
            transient_retry: Duration::from_secs(5),
            spec_retry: Duration::from_secs(60),
            security_policy: SecurityPolicy::builtin(),
            concurrency: 16,
            clock_file: None,
            namespace_labels: BTreeMap::new(),
            probes: ProbeConfig::default(),
            monitor: MonitorConfig::default(),
            prometheus_url: None,
            usage: UsageConfig::default(),
            alerting: AlertingConfig::default(),
            orphan_sweep_cap: 10,
            webhooks_service_account: None,
            panel_service_account: None,
            leader_election: LeaderElectionConfig::default(),
            front_door: FrontDoor::default(),
            mail: MailConfig::default(),
            certificates: CertificatesConfig::default(),
        }
    }
}

impl Config {
    /// Loads the file named by `--config PATH` or `OEM_CONFIG` (if any), then applies the
    /// `OEM_*` environment overrides, then validates.
    pub fn load(args: &[String]) -> Result<Self, ConfigError> {
        let path = args
            .windows(2)
            .find(|w| w[0] == "--config")
            .map(|w| PathBuf::from(&w[1]))
            .or_else(|| std::env::var_os("OEM_CONFIG").map(PathBuf::from));
        let mut config = match path {
            Some(path) => Self::from_file(&path)?,
            None => Self::default(),
        };
        config.apply_env(|key| std::env::var(key).ok())?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            field: field.into(),
            message,
        };
        if let Some(v) = var("OEM_HTTP_ADDR") {
            self.http_addr = v
                .parse()
                .map_err(|e| invalid("OEM_HTTP_ADDR", format!("{v:?} is not host:port ({e})")))?;
        }
        if let Some(v) = var("OEM_RESYNC_INTERVAL") {
            self.resync_interval = humantime::parse_duration(&v).map_err(|e| {
                invalid(
                    "OEM_RESYNC_INTERVAL",
                    format!("{v:?} is not a duration ({e})"),
                )
            })?;
        }
        if let Some(v) = var("OEM_SPEC_RETRY") {
            self.spec_retry = humantime::parse_duration(&v)
                .map_err(|e| invalid("OEM_SPEC_RETRY", format!("{v:?} is not a duration ({e})")))?;
        }
        if let Some(v) = var("OEM_CLOCK_FILE") {
            self.clock_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("OEM_MONITOR_NAMESPACE") {
            self.network.monitor_namespace = v;
        }
        let duration = |key: &str, v: String| {
            humantime::parse_duration(&v)
                .map_err(|e| invalid(key, format!("{v:?} is not a duration ({e})")))
        };
        if let Some(v) = var("OEM_MONITOR_ENABLED") {
            self.monitor.enabled = match v.as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(invalid(
                        "OEM_MONITOR_ENABLED",
                        format!("{v:?} is not true or false"),
                    ));
                }
            };
        }
        if let Some(v) = var("OEM_PROBE_INTERVAL") {
            self.monitor.interval = duration("OEM_PROBE_INTERVAL", v)?;
        }
        if let Some(v) = var("OEM_PROBE_RETRY_INTERVAL") {
            self.monitor.retry_interval = duration("OEM_PROBE_RETRY_INTERVAL", v)?;
        }
        if let Some(v) = var("OEM_PROBE_MAX_RETRY_INTERVAL") {
            self.monitor.max_retry_interval = Some(duration("OEM_PROBE_MAX_RETRY_INTERVAL", v)?);
        }
        if let Some(v) = var("OEM_PROBE_STARTUP_GRACE") {
            self.monitor.startup_grace = duration("OEM_PROBE_STARTUP_GRACE", v)?;
        }
        if let Some(v) = var("OEM_PROBE_TIMEOUT") {
            self.probes.timeout = duration("OEM_PROBE_TIMEOUT", v)?;
        }
        if let Some(v) = var("OEM_PROBE_CONCURRENCY") {
            self.monitor.concurrency = v.parse().map_err(|e| {
                invalid(
                    "OEM_PROBE_CONCURRENCY",
                    format!("{v:?} is not a count ({e})"),
                )
            })?;
        }
        let cidrs = |name: &str, v: String| -> Result<Vec<ipnet::IpNet>, ConfigError> {
            v.split(',')
                .map(str::trim)
                .filter(|net| !net.is_empty())
                .map(|net| {
                    net.parse()
                        .map_err(|e| invalid(name, format!("{net:?} is not a CIDR ({e})")))
                })
                .collect()
        };
        if let Some(v) = var("OEM_PROBE_POD_CIDRS") {
            self.probes.pod_cidrs = cidrs("OEM_PROBE_POD_CIDRS", v)?;
        }
        if let Some(v) = var("OEM_PROBE_SERVICE_CIDRS") {
            self.probes.service_cidrs = cidrs("OEM_PROBE_SERVICE_CIDRS", v)?;
        }
        if let Some(v) = var("OEM_PROBE_ALLOW") {
            self.probes.allow = cidrs("OEM_PROBE_ALLOW", v)?;
        }
        if let Some(v) = var("OEM_PROBE_CA_FILE") {
            self.probes.ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("OEM_PROMETHEUS_URL") {
            self.prometheus_url = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = var("OEM_USAGE_INTERVAL") {
            self.usage.interval = duration("OEM_USAGE_INTERVAL", v)?;
        }
        if let Some(v) = var("OEM_USAGE_REFRESH_INTERVAL") {
            self.usage.refresh_interval = duration("OEM_USAGE_REFRESH_INTERVAL", v)?;
        }
        if let Some(v) = var("OEM_WEBHOOKS_SERVICE_ACCOUNT") {
            self.webhooks_service_account = ServiceAccountRef::parse(&v)
                .map_err(|message| invalid("OEM_WEBHOOKS_SERVICE_ACCOUNT", message))?;
        }
        if let Some(v) = var("OEM_PANEL_SERVICE_ACCOUNT") {
            self.panel_service_account = ServiceAccountRef::parse(&v)
                .map_err(|message| invalid("OEM_PANEL_SERVICE_ACCOUNT", message))?;
        }
        self.alerting.apply_env(&var).map_err(|message| {
            let field = message.split(':').next().unwrap_or("alerting").to_owned();
            ConfigError::Invalid { field, message }
        })?;
        Ok(())
    }

    /// Refuses what cannot work, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: &str| {
            Err(ConfigError::Invalid {
                field: field.into(),
                message: message.into(),
            })
        };
        let split = &self.resource_split;
        if split.web + split.mail + split.db == 0 {
            return invalid("resourceSplit", "the shares must not all be 0");
        }
        if self.concurrency == 0 {
            return invalid("concurrency", "must be at least 1");
        }
        if self.resync_interval < Duration::from_secs(1) {
            return invalid("resyncInterval", "must be at least 1s");
        }
        if let Err(message) = self.probes.validate() {
            return invalid("probes", &message);
        }
        if let Err(message) = self.monitor.validate() {
            return invalid("monitor", &message);
        }
        if let Err(message) = self.usage.validate() {
            return invalid("usage", &message);
        }
        if let Some(url) = &self.prometheus_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid("prometheusUrl", "must start with http:// or https://");
        }
        for (field, account) in [
            ("webhooksServiceAccount", &self.webhooks_service_account),
            ("panelServiceAccount", &self.panel_service_account),
        ] {
            if let Some(account) = account
                && (account.namespace.trim().is_empty() || account.name.trim().is_empty())
            {
                return invalid(field, "needs both namespace and name (or leave it out)");
            }
        }
        if let Err(message) = self.alerting.validate(self.prometheus_url.as_deref()) {
            return invalid("alerting", &message);
        }
        if let Err(message) = self.leader_election.validate() {
            return invalid("leaderElection", &message);
        }
        if let Err(message) = self.mail.validate() {
            return invalid("mail", &message);
        }
        if let Err(message) = self.front_door.validate() {
            return invalid("frontDoor", &message);
        }
        if let Err(message) = self.certificates.validate() {
            return invalid("certificates", &message);
        }
        if let Some(class) = &self.network.load_balancer.class_name
            && class.trim().is_empty()
        {
            return invalid(
                "network.loadBalancer.className",
                "must name a load-balancer class, or be left out for the default",
            );
        }
        for (field, image) in [
            ("images.ftp".to_owned(), self.images.ftp.as_str()),
            ("images.mail".to_owned(), self.images.mail.as_str()),
        ]
        .into_iter()
        .chain(
            self.security_policy
                .images()
                .map(|(field, image)| (format!("securityPolicy.{field}"), image)),
        ) {
            if image.trim().is_empty() {
                return invalid(&field, "must name an image");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn an_unknown_key_in_any_section_stops_the_start_naming_it() {
        for (yaml, key) in [
            ("resyncIntervl: 30s\n", "resyncIntervl"),
            ("monitor:\n  intervl: 1m\n", "intervl"),
            ("probes:\n  timout: 5s\n", "timout"),
            ("alerting:\n  notifyAfer: 5m\n", "notifyAfer"),
            ("usage:\n  intervall: 1m\n", "intervall"),
            ("network:\n  ingresClass: traefik\n", "ingresClass"),
            ("mail:\n  dkimSelectr: a\n", "dkimSelectr"),
            ("frontDoor:\n  mailExchangr: mx\n", "mailExchangr"),
            ("resourceSplit:\n  wbe: 50\n", "wbe"),
            ("placement:\n  nodeSelectr: {}\n", "nodeSelectr"),
        ] {
            let error = serde_yaml::from_str::<Config>(yaml)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!("unknown field `{key}`")),
                "{yaml}: {error}"
            );
        }
        // alerting.notify is read as it is used: validation names its unknown keys too.
        let c: Config = serde_yaml::from_str("alerting:\n  notify:\n    smtpHots: mx\n").unwrap();
        let error = c.validate().unwrap_err().to_string();
        assert!(
            error.contains("alerting.notify") && error.contains("smtpHots"),
            "{error}"
        );
    }

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let c: Config =
            serde_yaml::from_str("resyncInterval: 30s\nimages:\n  ftp: ftp:1\n").unwrap();
        assert_eq!(c.resync_interval, Duration::from_secs(30));
        assert_eq!(c.images.ftp, "ftp:1");
        assert_eq!(c.images.mail, Images::default().mail);
        assert_eq!(c.security_policy, SecurityPolicy::builtin());
    }

    #[test]
    fn environment_overrides_the_file_and_names_bad_values() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "OEM_HTTP_ADDR").then(|| "127.0.0.1:9000".into()))
            .unwrap();
        assert_eq!(c.http_addr.port(), 9000);
        let err = c
            .apply_env(|k| (k == "OEM_RESYNC_INTERVAL").then(|| "soon".into()))
            .unwrap_err();
        assert!(err.to_string().contains("OEM_RESYNC_INTERVAL"), "{err}");
    }

    #[test]
    fn the_webhooks_service_account_comes_from_the_file_or_the_environment() {
        let mut c: Config =
            serde_yaml::from_str("webhooksServiceAccount: {namespace: oem, name: hooks}\n")
                .unwrap();
        c.validate().unwrap();
        let expected = ServiceAccountRef {
            namespace: "oem".into(),
            name: "hooks".into(),
        };
        assert_eq!(c.webhooks_service_account.as_ref(), Some(&expected));
        c.apply_env(|k| (k == "OEM_WEBHOOKS_SERVICE_ACCOUNT").then(|| "sys/wh".into()))
            .unwrap();
        let account = c.webhooks_service_account.clone().unwrap();
        assert_eq!(
            (account.namespace.as_str(), account.name.as_str()),
            ("sys", "wh")
        );
        let subject = account.subject();
        assert_eq!(subject.kind, "ServiceAccount");
        assert_eq!(subject.namespace.as_deref(), Some("sys"));
        // Empty: no binding.
        c.apply_env(|k| (k == "OEM_WEBHOOKS_SERVICE_ACCOUNT").then(String::new))
            .unwrap();
        assert_eq!(c.webhooks_service_account, None);
        let err = c
            .apply_env(|k| (k == "OEM_WEBHOOKS_SERVICE_ACCOUNT").then(|| "hooks".into()))
            .unwrap_err();
        assert!(
            err.to_string().contains("OEM_WEBHOOKS_SERVICE_ACCOUNT"),
            "{err}"
        );
        let c: Config =
            serde_yaml::from_str("webhooksServiceAccount: {namespace: oem, name: ''}\n").unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn probe_settings_come_from_the_environment() {
        let mut c = Config::default();
        let env = |k: &str| {
            let v = match k {
                "OEM_PROBE_INTERVAL" => "4s",
                "OEM_PROBE_RETRY_INTERVAL" => "1s",
                "OEM_PROBE_TIMEOUT" => "500ms",
                "OEM_PROBE_ALLOW" => "127.0.0.0/8, 10.0.0.0/8",
                "OEM_PROBE_POD_CIDRS" => "10.42.0.0/16",
                "OEM_PROBE_SERVICE_CIDRS" => "",
                "OEM_PROBE_CA_FILE" => "/tmp/ca.pem",
                "OEM_PROBE_STARTUP_GRACE" => "15s",
                "OEM_PROBE_MAX_RETRY_INTERVAL" => "3s",
                _ => return None,
            };
            Some(v.to_owned())
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.monitor.interval, Duration::from_secs(4));
        assert_eq!(c.monitor.retry_interval, Duration::from_secs(1));
        assert_eq!(c.probes.timeout, Duration::from_millis(500));
        assert_eq!(c.monitor.startup_grace, Duration::from_secs(15));
        assert_eq!(c.monitor.max_retry(), Duration::from_secs(3));
        assert_eq!(c.probes.allow.len(), 2);
        assert_eq!(c.probes.pod_cidrs, vec!["10.42.0.0/16".parse().unwrap()]);
        assert!(c.probes.service_cidrs.is_empty());
        assert_eq!(c.probes.ca_file, Some(PathBuf::from("/tmp/ca.pem")));
        c.validate().unwrap();
        let err = c
            .apply_env(|k| (k == "OEM_PROBE_ALLOW").then(|| "everywhere".into()))
            .unwrap_err();
        assert!(err.to_string().contains("OEM_PROBE_ALLOW"), "{err}");
    }

    #[test]
    fn usage_settings_come_from_the_file_and_the_environment() {
        let mut c: Config =
            serde_yaml::from_str("prometheusUrl: http://prom:9090\nusage:\n  interval: 2m\n")
                .unwrap();
        assert_eq!(c.usage.interval, Duration::from_secs(120));
        assert_eq!(c.prometheus_url.as_deref(), Some("http://prom:9090"));
        c.apply_env(|k| match k {
            "OEM_USAGE_INTERVAL" => Some("1h".into()),
            "OEM_PROMETHEUS_URL" => Some("http://127.0.0.1:9090".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.usage.interval, Duration::from_secs(3600));
        assert_eq!(c.prometheus_url.as_deref(), Some("http://127.0.0.1:9090"));
        c.validate().unwrap();
        c.prometheus_url = Some("prom:9090".into());
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("prometheusUrl"), "{err}");
        // One Prometheus for every part: the old per-part keys are refused by name.
        let old = serde_yaml::from_str::<Config>("usage:\n  prometheusUrl: http://prom:9090\n");
        assert!(old.unwrap_err().to_string().contains("prometheusUrl"));
        let old = serde_yaml::from_str::<Config>("alerting:\n  prometheusUrl: http://prom:9090\n");
        assert!(old.unwrap_err().to_string().contains("prometheusUrl"));
    }

    #[test]
    fn an_empty_image_is_refused_with_its_field() {
        let mut c = Config::default();
        c.images.mail = " ".into();
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("images.mail"), "{err}");
        let mut c = Config::default();
        c.security_policy.php[1].image = Some(String::new());
        let err = c.validate().unwrap_err();
        assert!(
            err.to_string().contains("securityPolicy.php[1].image"),
            "{err}"
        );
    }

    #[test]
    fn the_security_policy_and_placement_come_from_the_file() {
        let c: Config = serde_yaml::from_str(
            "securityPolicy:\n  php: [{version: '8.4', image: 'r/web:8.4'}]\n\
             placement:\n  nodeSelector: {oem.dev/hosting-node: 'true'}\n  \
             tolerations: [{key: hosting, operator: Exists, effect: NoSchedule}]\n",
        )
        .unwrap();
        assert_eq!(c.security_policy.php_image("8.4"), Some("r/web:8.4"));
        assert_eq!(c.security_policy.php_image("8.2"), None);
        assert_eq!(c.placement.node_selector["oem.dev/hosting-node"], "true");
        assert_eq!(c.placement.tolerations[0].key.as_deref(), Some("hosting"));
        let err = serde_yaml::from_str::<Config>("images:\n  web: x\n").unwrap_err();
        assert!(err.to_string().contains("web"), "{err}");
    }
}
