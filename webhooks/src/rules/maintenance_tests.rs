//! One behaviour per test: each maintenance window rule refused, and a valid window accepted.

use std::sync::Arc;

use oem_crds::maintenance::{ClusterMaintenance, Maintenance};
use serde_json::json;

use super::*;
use crate::fixtures::{cluster, end_user};
use crate::lookup::Snapshot;

const NS: &str = "reseller-acme";

fn window(namespace: &str, end_user: &str, start: &str, end: &str) -> Maintenance {
    serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Maintenance",
        "metadata": {"name": "php-upgrade", "namespace": namespace},
        "spec": {
            "targets": [{"endUser": end_user, "services": ["http", "https"]}],
            "start": start, "end": end,
            "reason": {"ja": "PHP の更新", "en": "PHP upgrade"}
        }
    }))
    .unwrap()
}

fn platform_window(start: &str, end: &str) -> ClusterMaintenance {
    serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "ClusterMaintenance",
        "metadata": {"name": "kernel-update"},
        "spec": {
            "targets": [{"node": "node-a"}],
            "start": start, "end": end,
            "reason": {"en": "kernel update"}
        }
    }))
    .unwrap()
}

fn with_shop() -> Snapshot {
    let mut s = cluster();
    s.end_users.push(Arc::new(end_user(NS, "shop", &[])));
    s.end_users
        .push(Arc::new(end_user("reseller-other", "blog", &[])));
    s
}

#[test]
fn a_window_for_an_end_user_of_its_namespace_is_accepted() {
    let w = window(
        NS,
        "shop",
        "2026-12-10T02:00:00+09:00",
        "2026-12-10T04:00:00+09:00",
    );
    assert_eq!(validate_maintenance(&w, &with_shop()), Verdict::default());
}

#[test]
fn a_window_ending_before_it_starts_is_refused() {
    let w = window(NS, "shop", "2026-12-09T19:00:00Z", "2026-12-09T18:00:00Z");
    assert_eq!(
        validate_maintenance(&w, &with_shop()).denials,
        [
            "spec.end: 2026-12-09T18:00:00Z is not after spec.start 2026-12-09T19:00:00Z: a window ends after it starts"
        ]
    );
}

#[test]
fn a_window_ending_when_it_starts_is_refused() {
    let w = window(NS, "shop", "2026-12-09T18:00:00Z", "2026-12-09T18:00:00Z");
    assert_eq!(validate_maintenance(&w, &with_shop()).denials.len(), 1);
}

#[test]
fn a_window_longer_than_the_provider_allows_is_refused() {
    let w = window(NS, "shop", "2026-12-09T18:00:00Z", "2026-12-11T00:00:00Z");
    assert_eq!(
        validate_maintenance(&w, &with_shop()).denials,
        [
            "spec.end: the window lasts 30h, longer than the 24h the provider allows (maximum window length)"
        ]
    );
}

#[test]
fn a_window_of_exactly_the_maximum_is_accepted() {
    let w = window(NS, "shop", "2026-12-09T18:00:00Z", "2026-12-10T18:00:00Z");
    assert!(validate_maintenance(&w, &with_shop()).allowed());
}

#[test]
fn the_provider_sets_the_maximum() {
    let mut s = with_shop();
    s.max_maintenance_window = Some(SignedDuration::from_hours(4));
    let w = window(NS, "shop", "2026-12-09T18:00:00Z", "2026-12-09T23:00:00Z");
    assert_eq!(
        validate_maintenance(&w, &s).denials,
        [
            "spec.end: the window lasts 5h, longer than the 4h the provider allows (maximum window length)"
        ]
    );
}

#[test]
fn a_target_missing_from_the_namespace_is_refused() {
    let w = window(NS, "blog", "2026-12-09T18:00:00Z", "2026-12-09T19:00:00Z");
    assert_eq!(
        validate_maintenance(&w, &with_shop()).denials,
        [
            "spec.targets[0].endUser: end user blog does not exist in namespace reseller-acme: a window targets end users of its own namespace"
        ]
    );
}

#[test]
fn a_window_outside_a_resellers_namespace_is_refused() {
    let w = window(
        "default",
        "shop",
        "2026-12-09T18:00:00Z",
        "2026-12-09T19:00:00Z",
    );
    assert_eq!(
        validate_maintenance(&w, &with_shop()).denials,
        [
            "metadata.namespace: default is not a reseller's namespace: a maintenance window lives in its reseller's namespace (reseller-<name>)"
        ]
    );
}

#[test]
fn the_providers_window_is_held_to_the_same_span_rules() {
    let ok = platform_window("2026-12-09T18:00:00Z", "2026-12-09T20:00:00Z");
    assert!(validate_cluster_maintenance(&ok, &cluster()).allowed());
    let backwards = platform_window("2026-12-09T20:00:00Z", "2026-12-09T18:00:00Z");
    assert_eq!(
        validate_cluster_maintenance(&backwards, &cluster()).denials,
        [
            "spec.end: 2026-12-09T18:00:00Z is not after spec.start 2026-12-09T20:00:00Z: a window ends after it starts"
        ]
    );
    let long = platform_window("2026-12-09T18:00:00Z", "2026-12-12T18:00:00Z");
    assert_eq!(
        validate_cluster_maintenance(&long, &cluster()).denials,
        [
            "spec.end: the window lasts 72h, longer than the 24h the provider allows (maximum window length)"
        ]
    );
}
