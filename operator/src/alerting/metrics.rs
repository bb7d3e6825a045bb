//! The alert controller's metrics (names fixed: the dashboards and the operator-health alerts
//! use them). What the loop exports into them after each look is `export.rs`. Labels are
//! names of resellers, end users, kinds, channels: never anything secret.

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::gauges::{Families, Gauges};

#[derive(Clone)]
pub struct AlertingMetrics {
    pub incidents_open: Gauges,
    pub incidents_total: IntCounterVec,
    pub incidents_deleted: IntCounterVec,
    pub time_to_notify: HistogramVec,
    pub time_to_recover: HistogramVec,
    pub notifications: IntCounterVec,
    pub remediations: IntCounterVec,
    pub reports_overdue: Gauges,
    pub source_polls: IntCounterVec,
    pub source_up: GaugeVec,
    pub mail_locked: Gauges,
    pub mail_rate_limit: Gauges,
    pub maintenance_active: Gauges,
}

impl AlertingMetrics {
    pub fn register(registry: &Registry, families: &Families) -> prometheus::Result<Self> {
        // A series per reseller or end user: compact families (`gauges.rs`), each replaced
        // whole after every look.
        let gauge = |name: &'static str, help: &'static str, labels: &'static [&'static str]| {
            families
                .gauges(name, help, labels)
                .map_err(prometheus::Error::Msg)
        };
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
            incidents_deleted: counter(
                "oem_incidents_deleted_total",
                "Finished incidents deleted after alerting.incidentRetention, by reseller",
                &["reseller"],
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
            source_up: GaugeVec::new(
                Opts::new(
                    "oem_alert_source_up",
                    "1 when the last look at the alert source succeeded, 0 while it cannot be read (open incidents are frozen: no remediation, no notice)",
                ),
                &["mode"],
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
            maintenance_active: gauge(
                "oem_maintenance_active",
                "1 while an open maintenance window covers the end user's service (the availability rules leave these samples out)",
                &["reseller", "enduser", "service"],
            )?,
        };
        registry.register(Box::new(m.incidents_total.clone()))?;
        registry.register(Box::new(m.incidents_deleted.clone()))?;
        registry.register(Box::new(m.time_to_notify.clone()))?;
        registry.register(Box::new(m.time_to_recover.clone()))?;
        registry.register(Box::new(m.notifications.clone()))?;
        registry.register(Box::new(m.remediations.clone()))?;
        registry.register(Box::new(m.source_polls.clone()))?;
        registry.register(Box::new(m.source_up.clone()))?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_gauges_are_families_of_their_own() {
        let registry = Registry::new();
        let families = Families::default();
        let m = AlertingMetrics::register(&registry, &families).unwrap();
        m.mail_rate_limit
            .replace([(["sakura".to_owned(), "a".to_owned()], 50.0)]);
        let mut out = String::new();
        families.write_text(&mut out);
        assert!(out.contains(
            "oem_course_mail_rate_limit_per_hour{reseller=\"sakura\",enduser=\"a\"} 50\n"
        ));
        assert!(
            registry
                .gather()
                .iter()
                .all(|f| f.name() != "oem_course_mail_rate_limit_per_hour"),
            "written once, not by the registry too"
        );
    }
}
