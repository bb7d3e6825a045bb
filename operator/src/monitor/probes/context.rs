//! What one probe run carries: the target, the deadline every step must meet, the allow-list
//! checked before each connection, and the findings (address, certificate expiry, version,
//! ping method) the outcome reports. Connection setup and bounded binary I/O live here so each
//! protocol module only speaks its protocol.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::allow::{AddressOwners, AllowList};
use super::config::ProbeConfig;
use super::error::ProbeError;
use super::ping::PingMethod;
use super::tls::TlsClient;
use super::{Scope, Target};

/// Facts learnt during a probe, reported whether it ends up or down.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    pub address: Option<IpAddr>,
    pub tls_cert_expiry: Option<SystemTime>,
    pub server_version: Option<String>,
    pub ping_method: Option<PingMethod>,
}

/// One probe run of one target.
pub struct ProbeContext<'a> {
    target: &'a Target,
    allow: &'a AllowList,
    owners: &'a AddressOwners,
    tls: &'a TlsClient,
    timeout: Duration,
    icmp: bool,
    started: Instant,
    deadline: Instant,
    findings: Findings,
}

impl<'a> ProbeContext<'a> {
    pub(crate) fn new(
        target: &'a Target,
        allow: &'a AllowList,
        owners: &'a AddressOwners,
        tls: &'a TlsClient,
        config: &ProbeConfig,
    ) -> Self {
        let started = Instant::now();
        Self {
            target,
            allow,
            owners,
            tls,
            timeout: config.timeout,
            icmp: config.icmp,
            started,
            deadline: started + config.timeout,
            findings: Findings::default(),
        }
    }

    pub fn target(&self) -> &'a Target {
        self.target
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The whole probe's time budget.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn icmp_enabled(&self) -> bool {
        self.icmp
    }

    /// `Ok` when the target may be contacted at `addr`: a node's address always; any other
    /// inside the allow-list; an endpoint a reseller named, also not at an address of another
    /// tenant's hosting namespace nor of the control plane.
    pub fn permit(&self, addr: IpAddr) -> Result<(), ProbeError> {
        match &self.target.scope {
            Scope::Node => Ok(()),
            Scope::Cluster => self.allow.check(addr),
            Scope::Named { own } => {
                self.allow.check(addr)?;
                self.owners.check(addr, own)
            }
        }
    }

    pub fn findings_mut(&mut self) -> &mut Findings {
        &mut self.findings
    }

    pub(crate) fn into_findings(self) -> Findings {
        self.findings
    }

    /// Runs one step of the exchange; past the deadline it fails naming the step.
    pub async fn step<T>(
        &self,
        phase: &'static str,
        fut: impl Future<Output = Result<T, ProbeError>>,
    ) -> Result<T, ProbeError> {
        self.step_before(self.deadline, phase, fut).await
    }

    /// Runs one step that must end before `deadline` (at the latest the probe's).
    pub async fn step_before<T>(
        &self,
        deadline: Instant,
        phase: &'static str,
        fut: impl Future<Output = Result<T, ProbeError>>,
    ) -> Result<T, ProbeError> {
        let deadline = deadline.min(self.deadline);
        match tokio::time::timeout_at(deadline, fut).await {
            Ok(result) => result,
            Err(_) => Err(ProbeError::Timeout {
                phase,
                after: deadline.saturating_duration_since(self.started),
            }),
        }
    }

    /// Resolves the target's host and keeps the permitted addresses, in resolver order; when
    /// none is, fails with the first one's refusal. Callers connect to these very addresses,
    /// never to the name again, so a second answer of the resolver cannot slip past the check.
    pub async fn resolve(&mut self, port: u16) -> Result<Vec<SocketAddr>, ProbeError> {
        let host = self.target.host.trim();
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ProbeError::InvalidTarget(format!(
                "host {:?} is not a name or address",
                self.target.host
            )));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let resolved: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                let lookup = async {
                    tokio::net::lookup_host((host, port))
                        .await
                        .map(|addrs| addrs.collect())
                        .map_err(|source| ProbeError::Resolve {
                            host: host.to_owned(),
                            source,
                        })
                };
                self.step("resolving the host name", lookup).await?
            }
        };
        let Some(first) = resolved.first().copied() else {
            return Err(ProbeError::NoAddress {
                host: host.to_owned(),
            });
        };
        let allowed: Vec<SocketAddr> = resolved
            .into_iter()
            .filter(|addr| self.permit(addr.ip()).is_ok())
            .collect();
        if allowed.is_empty() {
            self.findings.address = Some(first.ip());
            self.permit(first.ip())?;
            return Err(ProbeError::NotAllowed { addr: first.ip() });
        }
        Ok(allowed)
    }

    /// Opens a TCP connection to the target's port (its service's well-known one by default),
    /// trying each allowed address until one accepts.
    pub async fn connect(&mut self) -> Result<TcpStream, ProbeError> {
        let port = self.target.port_or_default().ok_or_else(|| {
            ProbeError::InvalidTarget(format!("{} target without a port", self.target.service))
        })?;
        self.connect_port(port).await
    }

    /// Opens a TCP connection to `port` of the target's host.
    pub async fn connect_port(&mut self, port: u16) -> Result<TcpStream, ProbeError> {
        let mut last = None;
        for addr in self.resolve(port).await? {
            // Checked again right before the connection: nothing reaches a refused address.
            self.permit(addr.ip())?;
            self.findings.address = Some(addr.ip());
            let connect = async {
                TcpStream::connect(addr)
                    .await
                    .map_err(|source| ProbeError::Connect { addr, source })
            };
            match self.step("connecting", connect).await {
                Ok(stream) => {
                    // Small writes of a line protocol must not wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(err @ ProbeError::Connect { .. }) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| ProbeError::NoAddress {
            host: self.target.host.clone(),
        }))
    }

    /// Reads exactly `buf.len()` bytes before the deadline.
    pub async fn read_exact<S: AsyncRead + Unpin>(
        &self,
        stream: &mut S,
        buf: &mut [u8],
        phase: &'static str,
    ) -> Result<(), ProbeError> {
        let read = async {
            stream
                .read_exact(buf)
                .await
                .map(drop)
                .map_err(|e| ProbeError::io(phase, e))
        };
        self.step(phase, read).await
    }

    /// Writes and flushes `bytes` before the deadline.
    pub async fn write_all<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        bytes: &[u8],
        phase: &'static str,
    ) -> Result<(), ProbeError> {
        let write = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        self.step(phase, async {
            write.await.map_err(|e| ProbeError::io(phase, e))
        })
        .await
    }

    /// Completes a TLS handshake on `stream`, verifying the server against the configured
    /// roots and the target's server name, and records the certificate's expiry.
    pub async fn start_tls<S>(&mut self, stream: S) -> Result<TlsStream<S>, ProbeError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let name = self.target.server_name().to_owned();
        let handshake = self.tls.prepare(&name)?;
        let result = self
            .step("completing the TLS handshake", handshake.run(stream))
            .await;
        if let Some(expiry) = handshake.leaf_not_after() {
            self.findings.tls_cert_expiry = Some(expiry);
        }
        result
    }
}

/// Closes a connection politely (TLS close_notify, TCP FIN) without waiting long for it.
pub(crate) async fn shutdown<S: AsyncWrite + Unpin>(stream: &mut S) {
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.shutdown()).await;
}
