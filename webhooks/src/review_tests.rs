//! The AdmissionReview exchange: skipped operations, responses, patches, the domain race, and
//! arbitrary input never panicking.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::fixtures::{cluster, end_user, reseller};

fn body(
    kind: &str,
    operation: &str,
    namespace: Option<&str>,
    name: &str,
    object: Value,
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "hosting.oem.dev", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "hosting.oem.dev", "version": "v1alpha1", "resource": format!("{}s", kind.to_lowercase())},
            "name": name, "namespace": namespace, "operation": operation,
            "userInfo": {"username": "test"},
            "object": object, "oldObject": null, "dryRun": false
        }
    }))
    .unwrap()
}

fn response(review: AdmissionReview<DynamicObject>) -> AdmissionResponse {
    review.response.expect("a response")
}

fn claims() -> Claims {
    Claims::new(Duration::from_secs(30))
}

#[test]
fn delete_is_never_judged() {
    let b = body(
        "EndUser",
        "DELETE",
        Some("reseller-acme"),
        "alice",
        Value::Null,
    );
    let r = response(respond(&b, Endpoint::Validate, &cluster(), &claims()));
    assert!(r.allowed);
    assert_eq!(r.uid, "u-1");
}

#[test]
fn a_refusal_carries_the_rule_message() {
    let eu = serde_json::to_value(end_user("reseller-acme", "alice", &["bad domain"])).unwrap();
    let b = body("EndUser", "CREATE", Some("reseller-acme"), "alice", eu);
    let r = response(respond(&b, Endpoint::Validate, &cluster(), &claims()));
    assert!(!r.allowed);
    assert_eq!(
        r.result.message,
        "spec.domains[0]: bad domain is not a valid DNS domain name"
    );
}

#[test]
fn a_maintenance_window_for_a_missing_end_user_is_refused_naming_the_target() {
    let window = json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Maintenance",
        "metadata": {"name": "php-upgrade"},
        "spec": {"targets": [{"endUser": "ghost"}], "start": "2026-12-09T18:00:00Z",
                 "end": "2026-12-09T19:00:00Z", "reason": {"en": "PHP upgrade"}}
    });
    let b = body(
        "Maintenance",
        "CREATE",
        Some("reseller-acme"),
        "php-upgrade",
        window,
    );
    let r = response(respond(&b, Endpoint::Validate, &cluster(), &claims()));
    assert!(!r.allowed);
    assert!(
        r.result
            .message
            .starts_with("spec.targets[0].endUser: end user ghost does not exist"),
        "{}",
        r.result.message
    );
}

#[test]
fn warnings_are_returned_with_an_allowed_response() {
    let mut r = reseller("acme");
    r.spec.contacts.clear();
    let b = body(
        "Reseller",
        "CREATE",
        None,
        "acme",
        serde_json::to_value(r).unwrap(),
    );
    let r = response(respond(&b, Endpoint::Validate, &cluster(), &claims()));
    assert!(r.allowed);
    assert_eq!(r.warnings.unwrap().len(), 1);
}

#[test]
fn mutate_answers_a_json_patch() {
    let eu = serde_json::to_value(end_user("reseller-acme", "alice", &["A.example.jp."])).unwrap();
    let b = body("EndUser", "CREATE", Some("reseller-acme"), "alice", eu);
    let r = response(respond(&b, Endpoint::Mutate, &cluster(), &claims()));
    assert!(r.allowed);
    let patch: Value = serde_json::from_slice(&r.patch.unwrap()).unwrap();
    assert_eq!(patch[0]["value"], json!(["a.example.jp"]));
    assert_eq!(patch[1]["path"], "/spec/passwordSecretRef");
}

#[test]
fn garbage_is_answered_as_an_invalid_review() {
    let r = response(respond(
        b"{\"kind\": 3}",
        Endpoint::Validate,
        &cluster(),
        &claims(),
    ));
    assert!(!r.allowed);
}

#[test]
fn of_two_concurrent_claims_of_one_domain_exactly_one_wins() {
    let lookup = Arc::new(cluster());
    let claims = Arc::new(claims());
    let threads: Vec<_> = ["alice", "bob"]
        .into_iter()
        .map(|name| {
            let (lookup, claims) = (lookup.clone(), claims.clone());
            std::thread::spawn(move || {
                let eu =
                    serde_json::to_value(end_user("reseller-acme", name, &["shop.example.jp"]))
                        .unwrap();
                let b = body("EndUser", "CREATE", Some("reseller-acme"), name, eu);
                response(respond(&b, Endpoint::Validate, &*lookup, &claims)).allowed
            })
        })
        .collect();
    let wins = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|allowed| *allowed)
        .count();
    assert_eq!(wins, 1);
}

#[test]
fn a_dry_run_does_not_reserve() {
    let claims = claims();
    let eu =
        serde_json::to_value(end_user("reseller-acme", "alice", &["shop.example.jp"])).unwrap();
    let mut v: Value = serde_json::from_slice(&body(
        "EndUser",
        "CREATE",
        Some("reseller-acme"),
        "alice",
        eu,
    ))
    .unwrap();
    v["request"]["dryRun"] = json!(true);
    let r = response(respond(
        &serde_json::to_vec(&v).unwrap(),
        Endpoint::Validate,
        &cluster(),
        &claims,
    ));
    assert!(r.allowed);
    assert!(claims.lock().reserved().is_empty());
}

/// An UPDATE of end user `alice` from `old` to `new`.
fn update(old: &EndUser, new: &EndUser) -> Vec<u8> {
    let new = serde_json::to_value(new).unwrap();
    let mut v: Value = serde_json::from_slice(&body(
        "EndUser",
        "UPDATE",
        Some("reseller-acme"),
        "alice",
        new,
    ))
    .unwrap();
    v["request"]["oldObject"] = serde_json::to_value(old).unwrap();
    serde_json::to_vec(&v).unwrap()
}

/// End user `alice` on a course that no longer exists, with the operator's finalizer.
fn orphaned_alice() -> EndUser {
    let mut eu = end_user("reseller-acme", "alice", &["shop.example.jp"]);
    eu.spec.course_ref.name = "deleted-course".into();
    eu.metadata.finalizers = Some(vec!["hosting.oem.dev/hosting-cleanup".into()]);
    eu
}

#[test]
fn removing_the_finalizer_of_a_deleted_end_user_passes_when_its_course_is_gone() {
    let mut old = orphaned_alice();
    old.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-06-01T00:00:00Z".parse().unwrap(),
    ));
    let mut new = old.clone();
    new.metadata.finalizers = None;
    let r = response(respond(
        &update(&old, &new),
        Endpoint::Validate,
        &cluster(),
        &claims(),
    ));
    assert!(r.allowed, "{}", r.result.message);
}

#[test]
fn a_spec_change_of_an_end_user_being_deleted_is_still_judged() {
    let mut old = orphaned_alice();
    old.spec.course_ref.name = "basic".into();
    old.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-06-01T00:00:00Z".parse().unwrap(),
    ));
    let mut new = old.clone();
    new.spec.domains = vec!["bad domain".into()];
    let r = response(respond(
        &update(&old, &new),
        Endpoint::Validate,
        &cluster(),
        &claims(),
    ));
    assert!(!r.allowed);
    assert!(
        r.result.message.contains("spec.domains[0]"),
        "{}",
        r.result.message
    );
}

#[test]
fn an_end_user_being_deleted_is_not_defaulted() {
    let mut eu = end_user("reseller-acme", "alice", &["A.example.jp."]);
    eu.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-06-01T00:00:00Z".parse().unwrap(),
    ));
    let r = response(respond(
        &update(&eu, &eu),
        Endpoint::Mutate,
        &cluster(),
        &claims(),
    ));
    assert!(r.allowed);
    assert!(r.patch.is_none(), "no defaults on an object being deleted");
}

#[test]
fn an_update_that_leaves_the_spec_unchanged_passes_when_its_course_is_gone() {
    let old = orphaned_alice();
    let mut new = old.clone();
    new.metadata.labels = Some([("team".to_owned(), "a".to_owned())].into());
    let r = response(respond(
        &update(&old, &new),
        Endpoint::Validate,
        &cluster(),
        &claims(),
    ));
    assert!(r.allowed, "{}", r.result.message);
}

#[test]
fn an_update_that_changes_the_spec_is_still_judged() {
    let mut old = orphaned_alice();
    old.spec.course_ref.name = "basic".into();
    let new = orphaned_alice();
    let r = response(respond(
        &update(&old, &new),
        Endpoint::Validate,
        &cluster(),
        &claims(),
    ));
    assert!(!r.allowed);
    assert!(
        r.result.message.starts_with("spec.courseRef.name: "),
        "{}",
        r.result.message
    );
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9.\\- ]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// The fuzz target's property without cargo-fuzz: any JSON at all, or a well-formed review
    /// around an arbitrary object, gets an answer and never a panic.
    #[test]
    fn arbitrary_json_never_panics(v in arbitrary_json(), kind in prop_oneof![Just("EndUser"), Just("Course"), Just("Reseller"), Just("Maintenance"), Just("ClusterMaintenance")]) {
        let raw = serde_json::to_vec(&v).unwrap();
        let _ = respond(&raw, Endpoint::Validate, &cluster(), &claims());
        let wrapped = body(kind, "CREATE", Some("reseller-acme"), "x", json!({"metadata": {"name": "x"}, "spec": v}));
        let _ = respond(&wrapped, Endpoint::Validate, &cluster(), &claims());
        let _ = respond(&wrapped, Endpoint::Mutate, &cluster(), &claims());
    }
}

/// A CREATE of end user `name` on course `basic`, no domains.
fn create(name: &str) -> Vec<u8> {
    let eu = serde_json::to_value(end_user("reseller-acme", name, &[])).unwrap();
    body("EndUser", "CREATE", Some("reseller-acme"), name, eu)
}

#[test]
fn creates_admitted_but_not_cached_yet_count_against_the_quota() {
    // The caches never catch up here: acme's 4 cpu fit four 1-cpu end users, its
    // maxEndUsers of 3 only three.
    let lookup = cluster();
    let claims = claims();
    let allowed: Vec<bool> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|n| response(respond(&create(n), Endpoint::Validate, &lookup, &claims)).allowed)
        .collect();
    assert_eq!(allowed, [true, true, true, false]);
    let r = response(respond(&create("e"), Endpoint::Validate, &lookup, &claims));
    assert!(
        r.result.message.contains("already has 3 end users"),
        "{}",
        r.result.message
    );
}

#[test]
fn a_burst_of_parallel_creates_cannot_overshoot_the_resellers_pool() {
    let mut snapshot = cluster();
    Arc::make_mut(&mut snapshot.resellers[0])
        .spec
        .quota
        .max_end_users = 100;
    let lookup = Arc::new(snapshot);
    let claims = Arc::new(claims());
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let (lookup, claims) = (lookup.clone(), claims.clone());
            std::thread::spawn(move || {
                let b = create(&format!("u{i}"));
                response(respond(&b, Endpoint::Validate, &*lookup, &claims)).allowed
            })
        })
        .collect();
    let admitted = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|allowed| *allowed)
        .count();
    // 30Gi of storage over 10Gi courses: three, whatever the interleaving.
    assert_eq!(admitted, 3);
}

#[test]
fn a_course_raise_counts_end_users_admitted_but_not_cached_yet() {
    let lookup = cluster();
    let claims = claims();
    for n in ["a", "b"] {
        assert!(response(respond(&create(n), Endpoint::Validate, &lookup, &claims)).allowed);
    }
    let old = crate::fixtures::course("reseller-acme", "basic");
    let mut new = old.clone();
    new.spec.resources.cpu = k8s_openapi::apimachinery::pkg::api::resource::Quantity("3".into());
    let mut v: Value = serde_json::from_slice(&body(
        "Course",
        "UPDATE",
        Some("reseller-acme"),
        "basic",
        serde_json::to_value(&new).unwrap(),
    ))
    .unwrap();
    v["request"]["oldObject"] = serde_json::to_value(&old).unwrap();
    let r = response(respond(
        &serde_json::to_vec(&v).unwrap(),
        Endpoint::Validate,
        &lookup,
        &claims,
    ));
    assert!(!r.allowed);
    assert!(
        r.result
            .message
            .starts_with("spec.resources.cpu: raising cpu from 1 to 3 for the 2 end users"),
        "{}",
        r.result.message
    );
}
