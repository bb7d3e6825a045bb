//! The alert controller's metrics (names fixed: the dashboards and the operator-health alerts
//! use them), and the gauges the loop exports after each look. Labels are names of resellers,
//! end users, kinds, channels: never anything secret.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::controller::Alerting;
use super::incidents::{World, is_open, key_of, kind_text};
use super::{flow, mail};

#[derive(Clone)]
pub struct AlertingMetrics {
    pub incidents_open: GaugeVec,
    pub incidents_total: IntCounterVec,
    pub time_to_notify: HistogramVec,
    pub time_to_recover: HistogramVec,
    pub notifications: IntCounterVec,
    pub remediations: IntCounterVec,
    pub reports_overdue: GaugeVec,
    pub source_polls: IntCounterVec,
    pub mail_locked: GaugeVec,
    pub mail_rate_limit: GaugeVec,
}

impl AlertingMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let gauge =
            |name: &str, help: &str, labels: &[&str]| GaugeVec::new(Opts::new(name, help), labels);
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets),
                &["reseller"],
            )
        };
        let m = Self {
            incidents_open: gauge(
                "oem_incidents_open",
                "Incidents not yet resolved, by reseller and kind",
                &["reseller", "kind"],
            )?,
            incidents_total: counter(
                "oem_incidents_total",
                "Incidents opened, by reseller and kind",
                &["reseller", "kind"],
            )?,
            time_to_notify: histogram(
                "oem_incident_time_to_notify_seconds",
                "From the first failure to the outage notice delivered",
                vec![
                    60.0, 300.0, 540.0, 600.0, 630.0, 660.0, 900.0, 1200.0, 1800.0, 3600.0,
                ],
            )?,
            time_to_recover: histogram(
                "oem_incident_time_to_recover_seconds",
                "From the first failure to the service answering again",
                vec![
                    60.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
                ],
            )?,
            notifications: counter(
                "oem_notifications_total",
                "Notice delivery attempts, by channel, event and result (sent, retry, failed)",
                &["channel", "event", "result"],
            )?,
            remediations: counter(
                "oem_remediations_total",
                "Remediation actions, by level, action and result (ok, error)",
                &["level", "action", "result"],
            )?,
            reports_overdue: gauge(
                "oem_incident_reports_overdue",
                "Resolved incidents whose report is neither sent nor deferred by its deadline",
                &["reseller"],
            )?,
            source_polls: counter(
                "oem_alert_source_polls_total",
                "Looks at the alert source, by mode and result (ok, error)",
                &["mode", "result"],
            )?,
            mail_locked: gauge(
                "oem_mail_locked",
                "1 while the end user's outbound mail is locked after mass mailing",
                &["reseller", "enduser"],
            )?,
            mail_rate_limit: gauge(
                "oem_course_mail_rate_limit_per_hour",
                "The end user's course limit of mails sent per hour (HostingMassMail compares)",
                &["reseller", "enduser"],
            )?,
        };
        registry.register(Box::new(m.incidents_open.clone()))?;
        registry.register(Box::new(m.incidents_total.clone()))?;
        registry.register(Box::new(m.time_to_notify.clone()))?;
        registry.register(Box::new(m.time_to_recover.clone()))?;
        registry.register(Box::new(m.notifications.clone()))?;
        registry.register(Box::new(m.remediations.clone()))?;
        registry.register(Box::new(m.reports_overdue.clone()))?;
        registry.register(Box::new(m.source_polls.clone()))?;
        registry.register(Box::new(m.mail_locked.clone()))?;
        registry.register(Box::new(m.mail_rate_limit.clone()))?;
        Ok(m)
    }
}

/// Sets a gauge family to exactly `values`: series not in it are removed, never reset all at
/// once (a scrape in between would see them missing and a rule's `for:` start again).
pub fn sync_gauge(
    gauge: &GaugeVec,
    previous: &mut HashSet<Vec<String>>,
    values: HashMap<Vec<String>, f64>,
) {
    for (labels, value) in &values {
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        gauge.with_label_values(&labels).set(*value);
    }
    for gone in previous.iter().filter(|l| !values.contains_key(*l)) {
        let labels: Vec<&str> = gone.iter().map(String::as_str).collect();
        let _ = gauge.remove_label_values(&labels);
    }
    *previous = values.into_keys().collect();
}

/// The gauges the alert loop exports after each look.
impl Alerting {
    pub(super) fn export_mail(&mut self, world: &World) {
        let (limits, locked) = mail::gauges(world);
        let m = &self.ctx.metrics.alerting;
        sync_gauge(
            &m.mail_rate_limit,
            self.series.entry("limit").or_default(),
            limits,
        );
        sync_gauge(
            &m.mail_locked,
            self.series.entry("locked").or_default(),
            locked,
        );
    }

    pub(super) fn export_incidents(&mut self, world: &World, now: Timestamp) {
        let mut open: HashMap<Vec<String>, f64> = HashMap::new();
        let mut overdue: HashMap<Vec<String>, f64> = HashMap::new();
        for incident in &world.incidents {
            let key = key_of(incident);
            // Every reseller and kind with an incident on record has a series, 0 when none is
            // open, so a dashboard shows "0 open" rather than no data after recovery.
            let count = open
                .entry(vec![
                    key.reseller().to_owned(),
                    kind_text(key.kind).to_owned(),
                ])
                .or_default();
            if is_open(incident) {
                *count += 1.0;
            }
            let late = overdue.entry(vec![key.reseller().to_owned()]).or_default();
            if flow::overdue(incident, now) {
                *late += 1.0;
            }
        }
        let m = &self.ctx.metrics.alerting;
        sync_gauge(
            &m.incidents_open,
            self.series.entry("open").or_default(),
            open,
        );
        sync_gauge(
            &m.reports_overdue,
            self.series.entry("overdue").or_default(),
            overdue,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synced_gauge_keeps_exactly_the_given_series() {
        let registry = Registry::new();
        let m = AlertingMetrics::register(&registry).unwrap();
        let mut prev = HashSet::new();
        let key = |e: &str| vec!["sakura".to_owned(), e.to_owned()];
        sync_gauge(
            &m.mail_rate_limit,
            &mut prev,
            HashMap::from([(key("a"), 100.0), (key("b"), 5.0)]),
        );
        sync_gauge(
            &m.mail_rate_limit,
            &mut prev,
            HashMap::from([(key("a"), 50.0)]),
        );
        let families = registry.gather();
        let family = families
            .iter()
            .find(|f| f.name() == "oem_course_mail_rate_limit_per_hour")
            .unwrap();
        assert_eq!(family.get_metric().len(), 1);
        assert_eq!(family.get_metric()[0].get_gauge().value(), 50.0);
    }
}
