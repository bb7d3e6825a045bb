//! Every example under `examples/` deserialises into the Rust types and serialises back
//! without losing anything, with the schema's defaults filled in.

use std::path::PathBuf;

use oem_crds::{Course, EndUser, Maintenance, Reseller};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The YAML documents of a file, as JSON values.
fn documents(relative: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(relative)).expect("example readable");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Deserialises `doc` as `K`, serialises it back, and checks that nothing was lost.
fn round_trip<K: DeserializeOwned + serde::Serialize>(doc: &Value) -> (K, Value) {
    let typed: K = serde_json::from_value(doc.clone()).expect("example matches the Rust types");
    let back = serde_json::to_value(&typed).expect("serialisable");
    assert_contains(doc, &back, "");
    (typed, back)
}

/// Every field of `original` is in `written` with the same value (defaults may be added).
fn assert_contains(original: &Value, written: &Value, path: &str) {
    match (original, written) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let inner = format!("{path}.{key}");
                let other = b.get(key).unwrap_or_else(|| panic!("{inner} was lost"));
                assert_contains(value, other, &inner);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path} changed length");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_contains(x, y, &format!("{path}[{i}]"));
            }
        }
        (a, b) => assert_eq!(a, b, "{path} changed"),
    }
}

fn kinds(docs: &[Value]) -> Vec<&str> {
    docs.iter()
        .map(|d| d["kind"].as_str().expect("kind"))
        .collect()
}

#[test]
fn the_reseller_example_round_trips_with_calendar_defaults() {
    let docs = documents("examples/00-reseller.yaml");
    assert_eq!(kinds(&docs), ["Reseller"]);
    let (reseller, back): (Reseller, _) = round_trip(&docs[0]);
    let calendar = &reseller.spec.business_calendar;
    assert_eq!(calendar.time_zone, "Asia/Tokyo");
    let hours: Vec<_> = calendar
        .business_hours
        .iter()
        .map(|h| (h.start.as_str(), h.end.as_str()))
        .collect();
    assert_eq!(hours, [("10:00", "12:00"), ("13:00", "17:00")]);
    assert_eq!(
        back["spec"]["businessCalendar"]["businessHours"][1]["end"],
        "17:00"
    );
    assert!(
        reseller
            .spec
            .contacts
            .iter()
            .all(|c| c.email.is_some() || c.webhook.is_some() || c.fax_gateway_email.is_some())
    );
}

#[test]
fn the_course_examples_round_trip_with_bandwidth_and_limit_defaults() {
    let docs = documents("examples/10-courses.yaml");
    assert_eq!(kinds(&docs), ["Course", "Course"]);
    let (basic, _): (Course, _) = round_trip(&docs[0]);
    let (business, _): (Course, _) = round_trip(&docs[1]);
    assert_eq!(basic.spec.resources.bandwidth.0, "100M");
    assert_eq!(basic.spec.limits.mail_accounts, 10);
    assert_eq!(basic.spec.services.summary(), "web,ftp");
    assert!(basic.spec.services.ftp.as_ref().is_some_and(|ftp| ftp.tls));
    assert_eq!(business.spec.services.summary(), "web,mail,ftp,database");
    for doc in &docs {
        assert!(
            doc["metadata"]["namespace"]
                .as_str()
                .is_some_and(|ns| ns.starts_with("reseller-"))
        );
    }
}

#[test]
fn the_end_user_examples_round_trip_with_policy_defaults() {
    let docs = documents("examples/20-endusers.yaml");
    assert_eq!(kinds(&docs), ["EndUser", "EndUser", "EndUser"]);
    let users: Vec<EndUser> = docs.iter().map(|d| round_trip::<EndUser>(d).0).collect();
    let active = &users[0];
    assert!(!active.spec.suspended);
    assert_eq!(
        active.spec.deletion_policy,
        oem_crds::enduser::DeletionPolicy::Delete
    );
    assert!(
        users.iter().any(|u| u.spec.start_date.year() >= 2099),
        "one starts in the future"
    );
    assert!(users.iter().any(|u| u.spec.suspended), "one is suspended");
    for user in &users {
        assert!(user.spec.start_date >= user.spec.contract_date);
        assert!(
            user.metadata
                .namespace
                .as_deref()
                .is_some_and(|ns| ns.starts_with("reseller-"))
        );
    }
}

#[test]
fn the_maintenance_example_round_trips_for_an_end_user_of_the_examples() {
    let docs = documents("examples/30-maintenance.yaml");
    assert_eq!(kinds(&docs), ["Maintenance"]);
    let (window, _): (Maintenance, _) = round_trip(&docs[0]);
    assert!(window.spec.end.0 > window.spec.start.0);
    assert!(window.spec.reason.ja.is_some() && window.spec.reason.en.is_some());
    let users = documents("examples/20-endusers.yaml");
    for target in &window.spec.targets {
        assert!(
            users
                .iter()
                .any(|u| u["metadata"]["name"] == target.end_user.as_str()),
            "{} is an end user of the examples",
            target.end_user
        );
    }
    assert_eq!(
        window.metadata.namespace.as_deref(),
        Some("reseller-sakura-web")
    );
}
