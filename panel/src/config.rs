//! The panel's configuration: one typed struct, loaded once at start from an optional YAML file
//! (`--config <file>` / `OEM_PANEL_CONFIG`) with a few environment overrides, validated with a
//! clear message. Every duration is here so tests can scale time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Wrong-password limits: per login ID (which locks the login, visibly to the reseller) and per
/// client address (which slows down one source guessing many logins).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LockoutConfig {
    /// Wrong passwords for one login ID within `window` that lock it.
    pub max_failures: u32,
    /// Wrong passwords from one client address within `window` that block the address.
    pub max_address_failures: u32,
    /// How far back failures count.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long a lock (of a login or of an address) lasts.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            max_failures: 5,
            max_address_failures: 20,
            window: Duration::from_secs(15 * 60),
            duration: Duration::from_secs(15 * 60),
        }
    }
}

/// How long a session lives.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SessionConfig {
    /// A session unused this long ends.
    #[serde(with = "humantime_serde")]
    pub idle: Duration,
    /// A session ends this long after login, used or not.
    #[serde(with = "humantime_serde")]
    pub absolute: Duration,
    /// Cookies carry `Secure`. Only the local plain-http development URL turns this off.
    pub secure_cookies: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            secure_cookies: true,
        }
    }
}

/// Time limits of the HTTP server.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ServerTimeouts {
    /// For the whole of a request's headers, and the idle time of a keep-alive connection.
    #[serde(with = "humantime_serde")]
    pub header_read: Duration,
    /// After this long a connection is asked to close, whatever it does.
    #[serde(with = "humantime_serde")]
    pub max_connection_age: Duration,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(300),
        }
    }
}

/// Cost of the argon2id password hash (RFC 9106 / OWASP: 19 MiB, 2 passes, 1 lane), and how
/// many hashes run at once (each worker holds `memoryKib` for good).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct HashCost {
    pub memory_kib: u32,
    pub passes: u32,
    pub workers: u16,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            passes: 2,
            workers: 2,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Config {
    /// Where the panel serves (pages, `/healthz`, `/readyz`).
    pub http_addr: SocketAddr,
    /// A header carrying the client's address, set by a trusted ingress (e.g.
    /// `x-forwarded-for`, whose first entry is taken); none: the TCP peer address.
    pub client_address_header: Option<String>,
    pub lockout: LockoutConfig,
    pub session: SessionConfig,
    pub timeouts: ServerTimeouts,
    pub hash_cost: HashCost,
    pub resellers: ResellerPanelConfig,
}

/// The resellers' panel.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ResellerPanelConfig {
    /// The provider's namespace holding each reseller's panel logins
    /// (`oem-hosting-panel-<reseller>`, written by the operator in the namespace of its
    /// `panelServiceAccount`, the panel's own; the chart sets it to the release's namespace).
    pub accounts_namespace: String,
    /// Prometheus's HTTP API, for the usage charts (the operator's `oem_usage_*` series);
    /// none: the usage page shows the latest figures without charts.
    pub prometheus_url: Option<String>,
    /// Rows per page of the customer list.
    pub page_size: usize,
}

impl Default for ResellerPanelConfig {
    fn default() -> Self {
        Self {
            accounts_namespace: "oem-hosting-system".to_owned(),
            prometheus_url: None,
            page_size: 50,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            client_address_header: None,
            lockout: LockoutConfig::default(),
            session: SessionConfig::default(),
            timeouts: ServerTimeouts::default(),
            hash_cost: HashCost::default(),
            resellers: ResellerPanelConfig::default(),
        }
    }
}

impl Config {
    /// The file named by `--config` (or `OEM_PANEL_CONFIG`), then `OEM_PANEL_*` environment
    /// overrides, then validation.
    pub fn load(args: &[String]) -> Result<Self, ConfigError> {
        let path = args
            .iter()
            .position(|a| a == "--config")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("OEM_PANEL_CONFIG").map(PathBuf::from));
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
        if let Some(addr) = var("OEM_PANEL_HTTP_ADDR") {
            self.http_addr = addr
                .parse()
                .map_err(|_| invalid("OEM_PANEL_HTTP_ADDR", format!("{addr:?} is not ip:port")))?;
        }
        if let Some(namespace) = var("OEM_PANEL_ACCOUNTS_NAMESPACE") {
            self.resellers.accounts_namespace = namespace;
        }
        if let Some(url) = var("OEM_PANEL_PROMETHEUS_URL") {
            self.resellers.prometheus_url = Some(url).filter(|u| !u.is_empty());
        }
        if let Some(secure) = var("OEM_PANEL_SECURE_COOKIES") {
            self.session.secure_cookies = secure.parse().map_err(|_| {
                invalid(
                    "OEM_PANEL_SECURE_COOKIES",
                    format!("{secure:?} is not true or false"),
                )
            })?;
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.lockout.max_failures == 0 || self.lockout.max_address_failures == 0 {
            return Err(invalid("lockout", "failure limits must be at least 1"));
        }
        if self.lockout.window.is_zero() || self.lockout.duration.is_zero() {
            return Err(invalid("lockout", "window and duration must be positive"));
        }
        if self.session.idle.is_zero() || self.session.absolute < self.session.idle {
            return Err(invalid(
                "session",
                "idle must be positive and absolute at least idle",
            ));
        }
        if self.timeouts.header_read.is_zero() {
            return Err(invalid("timeouts.headerRead", "must be positive"));
        }
        if self.hash_cost.memory_kib < 8 * 1024
            || self.hash_cost.passes == 0
            || self.hash_cost.workers == 0
        {
            return Err(invalid(
                "hashCost",
                "at least 8192 KiB of memory, one pass and one worker",
            ));
        }
        if !oem_crds::schema::is_dns_label(&self.resellers.accounts_namespace) {
            return Err(invalid(
                "resellers.accountsNamespace",
                "must be a namespace name (a DNS label)",
            ));
        }
        if let Some(url) = &self.resellers.prometheus_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "resellers.prometheusUrl",
                "must start with http:// or https://",
            ));
        }
        if !(1..=500).contains(&self.resellers.page_size) {
            return Err(invalid("resellers.pageSize", "must be between 1 and 500"));
        }
        if let Some(header) = &self.client_address_header
            && http::HeaderName::from_bytes(header.as_bytes()).is_err()
        {
            return Err(invalid(
                "clientAddressHeader",
                format!("{header:?} is not a header name"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_secure() {
        let c = Config::default();
        c.validate().unwrap();
        assert!(c.session.secure_cookies);
        assert_eq!(c.lockout.max_failures, 5);
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let err = serde_yaml::from_str::<Config>("lockout: {maxFailure: 3}").unwrap_err();
        assert!(err.to_string().contains("maxFailure"), "{err}");
    }

    #[test]
    fn a_file_sets_durations() {
        let c: Config =
            serde_yaml::from_str("session: {idle: 5m, absolute: 1h, secureCookies: false}\n")
                .unwrap();
        assert_eq!(c.session.idle, Duration::from_secs(300));
        assert!(!c.session.secure_cookies);
        c.validate().unwrap();
    }

    #[test]
    fn the_front_door_moved_to_the_operator_and_is_refused_by_name() {
        let err = serde_yaml::from_str::<Config>("frontDoor: {ipv4: [192.0.2.10]}\n").unwrap_err();
        assert!(err.to_string().contains("frontDoor"), "{err}");
    }

    #[test]
    fn environment_overrides_and_names_bad_values() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "OEM_PANEL_HTTP_ADDR").then(|| "127.0.0.1:9000".into()))
            .unwrap();
        assert_eq!(c.http_addr.port(), 9000);
        let err = c
            .apply_env(|k| (k == "OEM_PANEL_SECURE_COOKIES").then(|| "maybe".into()))
            .unwrap_err();
        assert!(err.to_string().contains("OEM_PANEL_SECURE_COOKIES"));
    }

    #[test]
    fn an_absolute_lifetime_shorter_than_idle_is_refused() {
        let mut c = Config::default();
        c.session.absolute = Duration::from_secs(60);
        assert!(c.validate().is_err());
    }
}
