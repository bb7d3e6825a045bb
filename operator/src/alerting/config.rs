//! The alerting part of the operator's configuration (`alerting:` in the file, `OEM_*` in the
//! environment): where alerts come from, how long an outage runs before the reseller is told,
//! how remediation backs off, when the report goes out. Every duration is here so tests can
//! scale time.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::notify::NotifyConfig;

/// Where the alert controller learns of outages.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum SourceMode {
    /// Prometheus when the operator's `prometheusUrl` is set, otherwise embedded.
    #[default]
    Auto,
    /// The monitor's own probe history (`EndUser.status.services`); no Prometheus needed.
    Embedded,
    /// Pending and firing alerts read from Prometheus's HTTP API (`/api/v1/alerts`).
    Prometheus,
    /// Alerts pushed by Alertmanager to the operator's receiver (`POST /alertmanager/webhook`).
    Alertmanager,
}

/// `alerting:` in the operator's configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct AlertingConfig {
    pub source: SourceMode,
    /// How often alerts are read (Prometheus) or the inbox and the monitor's history looked at.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// File holding the bearer token Alertmanager must present (`OEM_ALERTMANAGER_TOKEN` too).
    pub alertmanager_token_file: Option<PathBuf>,
    /// Base URL of Alertmanager's API, e.g. `http://alertmanager:9093`. In Alertmanager mode
    /// its active alerts are read every poll, so what the webhook pushed is not lost with a
    /// restart (or a resolve pushed while the operator was down); unset: the webhook alone.
    pub alertmanager_url: Option<String>,
    /// The `for:` of HostingServiceDown / HostingHostDown: in Alertmanager mode an alert's
    /// `startsAt` is when it began firing, so the first failure is `startsAt - alertFor`.
    #[serde(with = "humantime_serde")]
    pub alert_for: Duration,
    /// The reseller is notified when an outage has lasted this long (SPEC §8: 10 minutes).
    #[serde(with = "humantime_serde")]
    pub notify_after: Duration,
    /// Level 1: restarts of the failing workload at most.
    pub max_restarts: u32,
    /// Level 1: wait before the first repeat restart; doubles with each.
    #[serde(with = "humantime_serde")]
    pub restart_backoff: Duration,
    /// Level 2: cordon a NotReady node and move its tenant pods away.
    pub allow_node_cordon: bool,
    /// The report goes out this long before its deadline when no cause was recorded.
    #[serde(with = "humantime_serde")]
    pub report_lead_time: Duration,
    /// After a reseller lifts a mail lock, mass-mail alerts of that end user are ignored this
    /// long (the sending rate is measured over a window that still holds the burst).
    #[serde(with = "humantime_serde")]
    pub mail_unlock_grace: Duration,
    /// Flap damping: a service that falls again within this of its incident's recovery, when
    /// that incident was too short to be told, reopens it instead of opening another; a
    /// service flapping all day so makes one Incident. `0s`: every fall is its own.
    #[serde(with = "humantime_serde")]
    pub flap_window: Duration,
    /// Maintenance windows are announced to the affected resellers' contacts this long before
    /// their start (a window created later is announced at once).
    #[serde(with = "humantime_serde")]
    pub announce_lead_time: Duration,
    /// A finished incident (reported, or resolved with nothing to report) is deleted this long
    /// after it ended, so incidents do not pile up without bound. At least 62 days: the
    /// monthly availability report reads the previous month's incidents.
    #[serde(with = "humantime_serde")]
    pub incident_retention: Duration,
    /// How notices are delivered: SMTP, retries, backoff (`notify::NotifyConfig`).
    pub notify: serde_json::Value,
}

/// The shortest incident retention: two months, so the monthly report finds every incident of
/// the month it covers.
pub const MIN_INCIDENT_RETENTION: Duration = Duration::from_secs(62 * 86400);

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            source: SourceMode::Auto,
            poll_interval: Duration::from_secs(15),
            alertmanager_token_file: None,
            alertmanager_url: None,
            alert_for: Duration::from_secs(600),
            notify_after: Duration::from_secs(600),
            max_restarts: 3,
            restart_backoff: Duration::from_secs(60),
            allow_node_cordon: false,
            report_lead_time: Duration::from_secs(2 * 3600),
            mail_unlock_grace: Duration::from_secs(3600),
            flap_window: Duration::from_secs(3600),
            announce_lead_time: Duration::from_secs(72 * 3600),
            incident_retention: Duration::from_secs(90 * 86400),
            notify: serde_json::Value::Null,
        }
    }
}

impl AlertingConfig {
    /// The source actually used, given the operator's `prometheusUrl`.
    pub fn mode(&self, prometheus_url: Option<&str>) -> SourceMode {
        match self.source {
            SourceMode::Auto if prometheus_url.is_some() => SourceMode::Prometheus,
            SourceMode::Auto => SourceMode::Embedded,
            other => other,
        }
    }

    /// Applies `OEM_ALERT_*`, `OEM_ALERTMANAGER_URL`,
    /// `OEM_ALERTMANAGER_TOKEN_FILE`,
    /// `OEM_NOTIFY_AFTER`, `OEM_RESTART_BACKOFF`, `OEM_REPORT_LEAD_TIME`, `OEM_MAIL_UNLOCK_GRACE`,
    /// `OEM_FLAP_WINDOW`, `OEM_ANNOUNCE_LEAD_TIME`, `OEM_INCIDENT_RETENTION`, `OEM_NOTIFY` (the
    /// `notify` section as YAML or JSON). Errors name the variable.
    pub fn apply_env(&mut self, var: &impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let duration = |key: &str, v: String| {
            humantime::parse_duration(&v)
                .map_err(|e| format!("{key}: {v:?} is not a duration ({e})"))
        };
        if let Some(v) = var("OEM_ALERT_SOURCE") {
            self.source = serde_yaml::from_str(&v).map_err(|_| {
                format!("OEM_ALERT_SOURCE: {v:?} is not auto, embedded, prometheus or alertmanager")
            })?;
        }
        if let Some(v) = var("OEM_ALERTMANAGER_URL") {
            self.alertmanager_url = Some(v);
        }
        if let Some(v) = var("OEM_ALERTMANAGER_TOKEN_FILE") {
            self.alertmanager_token_file = Some(PathBuf::from(v));
        }
        for (key, field) in [
            ("OEM_ALERT_POLL_INTERVAL", &mut self.poll_interval),
            ("OEM_ALERT_FOR", &mut self.alert_for),
            ("OEM_NOTIFY_AFTER", &mut self.notify_after),
            ("OEM_RESTART_BACKOFF", &mut self.restart_backoff),
            ("OEM_REPORT_LEAD_TIME", &mut self.report_lead_time),
            ("OEM_MAIL_UNLOCK_GRACE", &mut self.mail_unlock_grace),
            ("OEM_FLAP_WINDOW", &mut self.flap_window),
            ("OEM_ANNOUNCE_LEAD_TIME", &mut self.announce_lead_time),
            ("OEM_INCIDENT_RETENTION", &mut self.incident_retention),
        ] {
            if let Some(v) = var(key) {
                *field = duration(key, v)?;
            }
        }
        if let Some(v) = var("OEM_MAX_RESTARTS") {
            self.max_restarts = v
                .parse()
                .map_err(|e| format!("OEM_MAX_RESTARTS: {v:?} is not a count ({e})"))?;
        }
        if let Some(v) = var("OEM_ALLOW_NODE_CORDON") {
            self.allow_node_cordon = v
                .parse()
                .map_err(|e| format!("OEM_ALLOW_NODE_CORDON: {v:?} is not true or false ({e})"))?;
        }
        if let Some(v) = var("OEM_NOTIFY") {
            self.notify = serde_yaml::from_str(&v)
                .map_err(|e| format!("OEM_NOTIFY: not a notify section ({e})"))?;
        }
        Ok(())
    }

    /// The bearer token Alertmanager presents: the file's content (trimmed), else
    /// `OEM_ALERTMANAGER_TOKEN`. Never logged; `None` disables the receiver.
    pub fn alertmanager_token(&self) -> Result<Option<String>, String> {
        let token =
            match &self.alertmanager_token_file {
                Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                    format!("alerting.alertmanagerTokenFile {}: {e}", path.display())
                })?),
                None => std::env::var("OEM_ALERTMANAGER_TOKEN").ok(),
            };
        Ok(token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()))
    }

    /// The transport's settings (`notify:`), defaults where absent.
    pub fn notify_config(&self) -> Result<NotifyConfig, String> {
        if self.notify.is_null() {
            return Ok(NotifyConfig::default());
        }
        let config: NotifyConfig = serde_json::from_value(self.notify.clone())
            .map_err(|e| format!("alerting.notify: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// Why the section cannot work, given the operator's `prometheusUrl`.
    pub fn validate(&self, prometheus_url: Option<&str>) -> Result<(), String> {
        self.notify_config()?;
        if self.poll_interval.is_zero() {
            return Err("alerting.pollInterval must be above zero".into());
        }
        if self.incident_retention < MIN_INCIDENT_RETENTION {
            return Err(format!(
                "alerting.incidentRetention {} is below 62d: the monthly report reads the previous \
                 month's incidents",
                humantime::format_duration(self.incident_retention)
            ));
        }
        if self.mode(prometheus_url) == SourceMode::Prometheus && prometheus_url.is_none() {
            return Err("alerting.source prometheus needs prometheusUrl".into());
        }
        if let Some(url) = &self.alertmanager_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "alerting.alertmanagerUrl {url:?} is not an http(s) URL"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_prometheus_when_a_url_is_given_else_embedded() {
        let mut c = AlertingConfig::default();
        assert_eq!(c.mode(None), SourceMode::Embedded);
        let url = Some("http://127.0.0.1:9090");
        assert_eq!(c.mode(url), SourceMode::Prometheus);
        c.source = SourceMode::Alertmanager;
        assert_eq!(c.mode(url), SourceMode::Alertmanager);
    }

    #[test]
    fn environment_scales_time_and_names_bad_values() {
        let mut c = AlertingConfig::default();
        let env = |k: &str| match k {
            "OEM_NOTIFY_AFTER" => Some("12s".to_owned()),
            "OEM_ALERT_SOURCE" => Some("alertmanager".to_owned()),
            _ => None,
        };
        c.apply_env(&env).unwrap();
        assert_eq!(c.notify_after, Duration::from_secs(12));
        assert_eq!(c.mode(None), SourceMode::Alertmanager);
        let err = c
            .apply_env(&|k: &str| (k == "OEM_RESTART_BACKOFF").then(|| "soon".to_owned()))
            .unwrap_err();
        assert!(err.contains("OEM_RESTART_BACKOFF"), "{err}");
    }

    #[test]
    fn prometheus_mode_needs_a_url() {
        let c = AlertingConfig {
            source: SourceMode::Prometheus,
            ..AlertingConfig::default()
        };
        assert!(c.validate(None).unwrap_err().contains("prometheusUrl"));
        assert_eq!(c.validate(Some("http://prom:9090")), Ok(()));
    }
}
