//! The webhook server's configuration: flags, each with an environment fallback, validated
//! once at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::policy::SecurityPolicy;

/// Everything the server needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// `--listen` / `OEM_WEBHOOKS_LISTEN`, default `0.0.0.0:8443`.
    pub listen: SocketAddr,
    /// `--tls-cert` / `OEM_WEBHOOKS_TLS_CERT`: PEM chain, re-read when it changes.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key` / `OEM_WEBHOOKS_TLS_KEY`: PEM private key, re-read when it changes.
    pub tls_key: Option<PathBuf>,
    /// `--service-dns` / `OEM_WEBHOOKS_SERVICE_DNS`: a SAN of the generated certificate.
    pub service_dns: String,
    /// `--validating-config` / `OEM_WEBHOOKS_VALIDATING_CONFIG`: whose caBundle to patch
    /// with a generated CA.
    pub validating_configs: Vec<String>,
    /// `--mutating-config` / `OEM_WEBHOOKS_MUTATING_CONFIG`: likewise.
    pub mutating_configs: Vec<String>,
    /// `--policy` / `OEM_WEBHOOKS_POLICY`: security policy YAML; default the built-in one.
    pub policy: SecurityPolicy,
    /// `--reload-interval`: how often the certificate files are checked (seconds).
    pub reload_interval: Duration,
    /// `--claim-ttl`: how long an admitted domain stays reserved (seconds).
    pub claim_ttl: Duration,
    /// `--claim-timeout`: bound of recording one admission's domain claims in the cluster
    /// (seconds, default 3; under the webhook configurations' 5 s timeout).
    pub claim_timeout: Duration,
    /// `--secret-timeout`: bound of the password Secret lookup (seconds).
    pub secret_timeout: Duration,
    /// `--client-ca` / `OEM_WEBHOOKS_CLIENT_CA`: PEM CA certificates; when set, a client must
    /// present a certificate signed by one of them (the API server's, see docs/webhooks.md),
    /// and any other connection is refused during the TLS handshake.
    pub client_ca: Option<PathBuf>,
    /// `--max-maintenance-window`: the longest maintenance window allowed (seconds, default
    /// 86400: 24 h).
    pub max_maintenance_window: Duration,
}

impl Config {
    /// Reads flags (`--name value`) and the environment.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        use anyhow::Context;
        let mut flags: Vec<(String, String)> = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                anyhow::bail!("unexpected argument {arg}");
            };
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => (
                    name.to_owned(),
                    args.next()
                        .with_context(|| format!("--{name} needs a value"))?,
                ),
            };
            flags.push((name, value));
        }
        let get = |name: &str| -> Option<String> {
            flags
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| {
                    std::env::var(format!(
                        "OEM_WEBHOOKS_{}",
                        name.to_uppercase().replace('-', "_")
                    ))
                    .ok()
                })
                .filter(|v| !v.is_empty())
        };
        let list = |name: &str| -> Vec<String> {
            get(name)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let secs = |name: &str, default: u64| -> anyhow::Result<Duration> {
            Ok(Duration::from_secs_f64(match get(name) {
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0)
                    .with_context(|| {
                        format!("--{name}: {v} is not a positive number of seconds")
                    })?,
                None => default as f64,
            }))
        };
        let known = [
            "listen",
            "tls-cert",
            "tls-key",
            "service-dns",
            "validating-config",
            "mutating-config",
            "policy",
            "reload-interval",
            "claim-ttl",
            "claim-timeout",
            "secret-timeout",
            "client-ca",
            "max-maintenance-window",
        ];
        if let Some((unknown, _)) = flags.iter().find(|(n, _)| !known.contains(&n.as_str())) {
            anyhow::bail!("unknown flag --{unknown}");
        }
        let listen = get("listen")
            .unwrap_or_else(|| "0.0.0.0:8443".into())
            .parse()
            .context("--listen must be host:port")?;
        let tls_cert = get("tls-cert").map(PathBuf::from);
        let tls_key = get("tls-key").map(PathBuf::from);
        if tls_cert.is_some() != tls_key.is_some() {
            anyhow::bail!("--tls-cert and --tls-key go together");
        }
        let policy = match get("policy") {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading the security policy {path}"))?;
                serde_yaml::from_str(&text)
                    .with_context(|| format!("the security policy {path} is not valid"))?
            }
            None => SecurityPolicy::builtin(),
        };
        Ok(Self {
            listen,
            tls_cert,
            tls_key,
            service_dns: get("service-dns")
                .unwrap_or_else(|| "oem-hosting-webhooks.oem-hosting.svc".into()),
            validating_configs: list("validating-config"),
            mutating_configs: list("mutating-config"),
            policy,
            reload_interval: secs("reload-interval", 5)?,
            claim_ttl: secs("claim-ttl", 30)?,
            claim_timeout: secs("claim-timeout", 3)?,
            client_ca: get("client-ca").map(PathBuf::from),
            secret_timeout: secs("secret-timeout", 2)?,
            max_maintenance_window: secs("max-maintenance-window", 24 * 3600)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn flags_override_defaults() {
        let c = Config::from_args(args(
            "--listen 127.0.0.1:9443 --validating-config a,b --claim-ttl=10",
        ))
        .unwrap();
        assert_eq!(c.listen.port(), 9443);
        assert_eq!(c.validating_configs, ["a", "b"]);
        assert_eq!(c.claim_ttl, Duration::from_secs(10));
        assert_eq!(c.max_maintenance_window, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        assert!(Config::from_args(args("--tls-cert /x.pem")).is_err());
        assert!(Config::from_args(args("--bogus 1")).is_err());
    }
}
