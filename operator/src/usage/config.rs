//! When and from where usage is measured: `usage:` in the operator's configuration.

use std::time::Duration;

use serde::Deserialize;

/// Embedded in the operator's configuration as `usage:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct UsageConfig {
    /// How often usage is measured and written. Figures are taken at instants aligned to this
    /// interval (for 5m: :00, :05, :10…), so every replica and every restart measures the same
    /// instant and a re-measurement of an unchanged instant writes nothing.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Between measurements, how often end users and resellers are listed, so new ones get
    /// their first figures without waiting for the next interval.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Read disk and traffic from each node's kubelet stats summary through the API server's
    /// node proxy when there is no Prometheus. Off by default: the chart grants `nodes/proxy`
    /// (which reaches every kubelet API) only when this is on.
    pub kubelet_stats: bool,
    /// Bound on one query (Prometheus or the API server).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            refresh_interval: Duration::from_secs(30),
            kubelet_stats: false,
            timeout: Duration::from_secs(30),
        }
    }
}

impl UsageConfig {
    /// Why the configuration cannot work, for the start-up check.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval < Duration::from_secs(1) {
            return Err("usage.interval must be at least 1s".into());
        }
        if self.refresh_interval.is_zero() {
            return Err("usage.refreshInterval must be above zero".into());
        }
        if self.timeout.is_zero() {
            return Err("usage.timeout must be above zero".into());
        }
        Ok(())
    }
}
