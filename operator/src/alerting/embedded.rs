//! Embedded mode (the default, no Prometheus): the alert rules' tenant conditions evaluated on
//! the monitor's own history, `EndUser.status.services` (state and `since`, written by the
//! monitor when a service changes state, so it survives operator restarts). A service Down is
//! `HostingServiceDown` pending since its `since` (`ping` is `HostingHostDown`); a service Up
//! again recovered at its `since`. Mass mail needs the mail servers' counters, which only
//! Prometheus scrapes: it is not evaluated here (see docs/incidents.md).

use std::borrow::Borrow;

use jiff::Timestamp;
use kube::ResourceExt;
use oem_crds::enduser::{EndUser, HealthState, ServiceName};
use oem_crds::incident::IncidentKind;

use super::source::{AlertKey, Observation};

/// The kind of outage a failing service is.
pub fn kind_of(service: ServiceName) -> IncidentKind {
    if service == ServiceName::Ping {
        IncidentKind::HostDown
    } else {
        IncidentKind::ServiceDown
    }
}

/// Every end user's failing services (since their first failure) and recovered ones.
pub fn evaluate(endusers: &[impl Borrow<EndUser>], now: Timestamp) -> Observation {
    let mut seen = Observation {
        complete: true,
        ..Observation::default()
    };
    for enduser in endusers.iter().map(Borrow::borrow) {
        let Some(namespace) = enduser.namespace() else {
            continue;
        };
        if crate::naming::reseller_of_namespace(&namespace).is_none() {
            continue;
        }
        let Some(status) = &enduser.status else {
            continue;
        };
        for health in &status.services {
            let key = AlertKey {
                namespace: namespace.clone(),
                enduser: enduser.name_any(),
                service: health.service,
                kind: kind_of(health.service),
            };
            let since = health.since.as_ref().map(|t| t.0).unwrap_or(now);
            match health.state {
                HealthState::Down => {
                    seen.active.insert(key, since);
                }
                HealthState::Up => {
                    seen.recovered.insert(key, since);
                }
                HealthState::Unknown => {}
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enduser(ns: &str, services: serde_json::Value) -> EndUser {
        serde_json::from_value(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "EndUser",
            "metadata": {"name": "shop", "namespace": ns},
            "spec": {"loginId": "shop", "contractName": "Shop", "contactEmail": "a@example.jp",
                "courseRef": {"name": "c"}, "contractDate": "2026-01-01", "startDate": "2026-01-01"},
            "status": {"services": services}
        }))
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-03-02T01:30:00Z".parse().unwrap()
    }

    #[test]
    fn a_down_service_is_active_since_its_first_failure() {
        let eu = enduser(
            "reseller-sakura",
            json!([
                {"service": "imap", "state": "Down", "since": "2026-03-02T01:00:00Z"},
                {"service": "http", "state": "Up", "since": "2026-03-01T00:00:00Z"}
            ]),
        );
        let seen = evaluate(&[eu], now());
        assert!(seen.complete);
        assert_eq!(seen.active.len(), 1);
        let (key, since) = seen.active.iter().next().unwrap();
        assert_eq!(key.service, ServiceName::Imap);
        assert_eq!(key.kind, IncidentKind::ServiceDown);
        assert_eq!(key.reseller(), "sakura");
        assert_eq!(since.to_string(), "2026-03-02T01:00:00Z");
    }

    #[test]
    fn ping_down_is_a_host_down() {
        let eu = enduser(
            "reseller-sakura",
            json!([{"service": "ping", "state": "Down", "since": "2026-03-02T01:00:00Z"}]),
        );
        let seen = evaluate(&[eu], now());
        assert_eq!(
            seen.active.keys().next().unwrap().kind,
            IncidentKind::HostDown
        );
    }

    #[test]
    fn a_service_up_again_recovered_when_it_came_back() {
        let eu = enduser(
            "reseller-sakura",
            json!([{"service": "imap", "state": "Up", "since": "2026-03-02T01:12:00Z"}]),
        );
        let seen = evaluate(&[eu], now());
        assert!(seen.active.is_empty());
        assert_eq!(
            seen.recovered.values().next().unwrap().to_string(),
            "2026-03-02T01:12:00Z"
        );
    }

    #[test]
    fn unknown_states_and_foreign_namespaces_raise_nothing() {
        let unknown = enduser(
            "reseller-sakura",
            json!([{"service": "imap", "state": "Unknown"}]),
        );
        let foreign = enduser(
            "default",
            json!([{"service": "imap", "state": "Down", "since": "2026-03-02T01:00:00Z"}]),
        );
        let seen = evaluate(&[unknown, foreign], now());
        assert!(seen.active.is_empty() && seen.recovered.is_empty());
    }
}
