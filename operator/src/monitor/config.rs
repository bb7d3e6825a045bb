//! The monitor's schedule: how often each target is probed, how soon a failed one is
//! re-checked, how many probes run at once and how often the target list is refreshed.

use std::time::Duration;

use serde::Deserialize;

/// Embedded in the operator's configuration as `monitor:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Whether the monitor runs at all (default true). Off only where something else watches
    /// the services, or in tests of provisioning alone.
    pub enabled: bool,
    /// Each target is probed once per interval (SPEC §6: every 10 minutes).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// After a failure, the target is re-checked this often until it answers.
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
    /// A target still down once the reseller has been told (`alerting.notifyAfter` after the
    /// first failure) is re-checked less often, the wait doubling from `retryInterval` up to
    /// this (default: `interval`, so a down target is never probed less often than an up one).
    /// Its recovery is then seen within this wait, and its hanging probes leave the capacity
    /// to others.
    #[serde(with = "humantime_serde")]
    pub max_retry_interval: Option<Duration>,
    /// Probes running at once.
    pub concurrency: usize,
    /// How often end users, courses, pods and nodes are listed again.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// The TCP port a node's ping falls back to when ICMP cannot be used (the kubelet's).
    pub node_port: u16,
    /// An end user still waiting for its workloads this long after it began to (`Ready`
    /// reason `WorkloadsNotReady`) is probed like a serving one: a workload that never becomes
    /// ready (an image that cannot be pulled, a crash at start) is seen Down and alerted, not
    /// left unseen in `Provisioning`.
    #[serde(with = "humantime_serde")]
    pub startup_grace: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(600),
            retry_interval: Duration::from_secs(60),
            max_retry_interval: None,
            concurrency: 64,
            refresh_interval: Duration::from_secs(30),
            node_port: 10250,
            startup_grace: Duration::from_secs(600),
        }
    }
}

impl MonitorConfig {
    /// The longest wait between re-checks of a target that stays down.
    pub fn max_retry(&self) -> Duration {
        self.max_retry_interval
            .unwrap_or(self.interval)
            .max(self.retry_interval)
    }

    /// Why the configuration cannot work, for the start-up check.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval.is_zero() || self.retry_interval.is_zero() {
            return Err("monitor.interval and monitor.retryInterval must be above zero".into());
        }
        if self
            .max_retry_interval
            .is_some_and(|max| max < self.retry_interval)
        {
            return Err("monitor.maxRetryInterval must be at least monitor.retryInterval".into());
        }
        if self.concurrency == 0 {
            return Err("monitor.concurrency must be at least 1".into());
        }
        if self.refresh_interval.is_zero() {
            return Err("monitor.refreshInterval must be above zero".into());
        }
        Ok(())
    }
}
