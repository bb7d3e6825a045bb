//! The alert controller's metrics (names fixed: the dashboards and the operator-health alerts
//! use them), and the gauges the loop exports after each look. Labels are names of resellers,
//! end users, kinds, channels: never anything secret.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use oem_crds::incident::IncidentKind;

use super::controller::Alerting;
use super::incidents::{World, is_open, key_of, kind_text, service_text};
use super::maintenance::{Phase, Target, covering};
use super::source::AlertKey;
use super::{flow, mail};
use crate::naming;

#[derive(Clone)]
pub struct AlertingMetrics {
    pub incidents_open: GaugeVec,
    pub incidents_total: IntCounterVec,
    pub incidents_deleted: IntCounterVec,
    pub time_to_notify: HistogramVec,
    pub time_to_recover: HistogramVec,
    pub notifications: IntCounterVec,
    pub remediations: IntCounterVec,
    pub reports_overdue: GaugeVec,
    pub source_polls: IntCounterVec,
    pub source_up: GaugeVec,
    pub mail_locked: GaugeVec,
    pub mail_rate_limit: GaugeVec,
    pub maintenance_active: GaugeVec,
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
            source_up: gauge(
                "oem_alert_source_up",
                "1 when the last look at the alert source succeeded, 0 while it cannot be read (open incidents are frozen: no remediation, no notice)",
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
        registry.register(Box::new(m.incidents_open.clone()))?;
        registry.register(Box::new(m.incidents_total.clone()))?;
        registry.register(Box::new(m.incidents_deleted.clone()))?;
        registry.register(Box::new(m.time_to_notify.clone()))?;
        registry.register(Box::new(m.time_to_recover.clone()))?;
        registry.register(Box::new(m.notifications.clone()))?;
        registry.register(Box::new(m.remediations.clone()))?;
        registry.register(Box::new(m.reports_overdue.clone()))?;
        registry.register(Box::new(m.source_polls.clone()))?;
        registry.register(Box::new(m.source_up.clone()))?;
        registry.register(Box::new(m.mail_locked.clone()))?;
        registry.register(Box::new(m.mail_rate_limit.clone()))?;
        registry.register(Box::new(m.maintenance_active.clone()))?;
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

    /// `oem_maintenance_active` of every end user's service an open window covers now (a
    /// provider's node window: of the end users seen failing on that node, whose nodes the
    /// loop looked up).
    pub(super) fn export_maintenance(
        &mut self,
        world: &World,
        nodes: &HashMap<AlertKey, Vec<String>>,
        now: Timestamp,
    ) {
        let covered = covered_services(world, nodes, now);
        let m = &self.ctx.metrics.alerting;
        sync_gauge(
            &m.maintenance_active,
            self.series.entry("maintenance").or_default(),
            covered,
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

/// (reseller, end user, service) of every service an open window covers at `now`, valued 1.
fn covered_services(
    world: &World,
    nodes: &HashMap<AlertKey, Vec<String>>,
    now: Timestamp,
) -> HashMap<Vec<String>, f64> {
    let mut out = HashMap::new();
    if !world.windows.iter().any(|w| w.phase(now) == Phase::Open) {
        return out;
    }
    for ((namespace, name), enduser) in &world.endusers {
        let Some(reseller) = naming::reseller_of_namespace(namespace) else {
            continue;
        };
        let services = enduser.status.iter().flat_map(|s| &s.services);
        for health in services {
            let key = AlertKey {
                namespace: namespace.clone(),
                enduser: name.clone(),
                service: health.service,
                kind: IncidentKind::ServiceDown,
            };
            let on = nodes.get(&key).map(Vec::as_slice).unwrap_or_default();
            if covering(&world.windows, &Target::of(&key, on), now).is_some() {
                out.insert(
                    vec![
                        reseller.to_owned(),
                        name.clone(),
                        service_text(health.service),
                    ],
                    1.0,
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_window_marks_the_services_it_covers_and_no_other() {
        use crate::alerting::maintenance::{Cover, Window};
        use oem_crds::enduser::{EndUser, ServiceName};
        let enduser: EndUser = serde_json::from_value(serde_json::json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "EndUser",
            "metadata": {"name": "shop", "namespace": "reseller-sakura"},
            "spec": {"loginId": "shop", "contractName": "Shop", "contactEmail": "a@example.jp",
                "courseRef": {"name": "c"}, "contractDate": "2026-01-01", "startDate": "2026-01-01"},
            "status": {"services": [
                {"service": "http", "state": "Down"}, {"service": "smtp", "state": "Up"}
            ]}
        }))
        .unwrap();
        let start: Timestamp = "2026-12-09T17:00:00Z".parse().unwrap();
        let world = World {
            resellers: HashMap::new(),
            endusers: HashMap::from([(("reseller-sakura".into(), "shop".into()), enduser)]),
            courses: HashMap::new(),
            incidents: Vec::new(),
            maintenances: Vec::new(),
            cluster_maintenances: Vec::new(),
            windows: vec![Window {
                name: "reseller-sakura/w".into(),
                covers: vec![Cover::EndUser {
                    namespace: "reseller-sakura".into(),
                    end_user: "shop".into(),
                    services: vec![ServiceName::Http],
                }],
                start,
                end: start + jiff::SignedDuration::from_hours(1),
                end_when_recovered: false,
                first_down_at: None,
                recovered_at: None,
            }],
        };
        let inside = start + jiff::SignedDuration::from_mins(5);
        let covered = covered_services(&world, &HashMap::new(), inside);
        let expected = vec!["sakura".to_owned(), "shop".to_owned(), "http".to_owned()];
        assert_eq!(covered, HashMap::from([(expected, 1.0)]));
        let after = start + jiff::SignedDuration::from_hours(2);
        assert!(covered_services(&world, &HashMap::new(), after).is_empty());
    }

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
