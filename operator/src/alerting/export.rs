//! The gauges the alert loop exports after each look: mail limits and locks, open
//! maintenance windows and the services they cover, open incidents and overdue reports.

use std::collections::HashMap;

use jiff::Timestamp;
use oem_crds::incident::IncidentKind;

use super::controller::Alerting;
use super::incidents::{World, is_open, key_of, kind_text, service_text};
use super::maintenance::{Phase, Target, covering};
use super::source::AlertKey;
use super::{flow, mail};
use crate::naming;

/// The gauges the alert loop exports after each look.
impl Alerting {
    pub(super) fn export_mail(&self, world: &World) {
        let (limits, locked) = mail::gauges(world);
        let m = &self.ctx.metrics.alerting;
        m.mail_rate_limit.replace(limits);
        m.mail_locked.replace(locked);
    }

    /// `oem_maintenance_active` of every end user's service an open window covers now (a
    /// provider's node window: of the end users seen failing on that node, whose nodes the
    /// loop looked up).
    pub(super) fn export_maintenance(
        &self,
        world: &World,
        nodes: &HashMap<AlertKey, Vec<String>>,
        now: Timestamp,
    ) {
        let covered = covered_services(world, nodes, now);
        let m = &self.ctx.metrics.alerting;
        m.maintenance_active.replace(covered);
    }

    pub(super) fn export_incidents(&self, world: &World, now: Timestamp) {
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
        m.incidents_open.replace(open);
        m.reports_overdue.replace(overdue);
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
            endusers: HashMap::from([(
                ("reseller-sakura".into(), "shop".into()),
                std::sync::Arc::new(enduser),
            )]),
            courses: HashMap::new(),
            incidents: Vec::new(),
            maintenances: Vec::new(),
            cluster_maintenances: Vec::new(),
            pods: HashMap::new(),
            nodes_ready: HashMap::new(),
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
}
