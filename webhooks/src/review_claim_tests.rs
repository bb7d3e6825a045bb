//! What an admission may claim and look up, whoever sends it: cluster claims only for an
//! allowed, stored end-user change, bounded in number; the password Secret looked up only in
//! a reseller's namespace.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::fixtures::{cluster, end_user};

fn request(
    operation: &str,
    namespace: &str,
    object: Value,
    dry_run: bool,
) -> AdmissionRequest<DynamicObject> {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or("x")
        .to_owned();
    let body = serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "hosting.oem.dev", "version": "v1alpha1", "kind": "EndUser"},
            "resource": {"group": "hosting.oem.dev", "version": "v1alpha1", "resource": "endusers"},
            "name": name, "namespace": namespace, "operation": operation,
            "userInfo": {"username": "test"},
            "object": object, "oldObject": null, "dryRun": dry_run
        }
    }))
    .unwrap();
    decode(&body).unwrap()
}

fn claims() -> Claims {
    Claims::new(Duration::from_secs(30))
}

#[test]
fn an_admitted_end_user_claims_its_normalised_domains_and_a_dry_run_claims_nothing() {
    let eu =
        serde_json::to_value(end_user("reseller-acme", "alice", &["Shop.Example.JP."])).unwrap();
    let req = request("CREATE", "reseller-acme", eu.clone(), false);
    let response = validate(&req, &cluster(), &claims());
    assert!(response.allowed, "{}", response.result.message);
    assert_eq!(
        domains_to_claim(&req, &response),
        Some(DomainsToClaim {
            namespace: "reseller-acme".into(),
            name: "alice".into(),
            domains: vec!["shop.example.jp".into()],
        })
    );
    let dry = request("CREATE", "reseller-acme", eu, true);
    let response = validate(&dry, &cluster(), &claims());
    assert!(response.allowed);
    assert_eq!(domains_to_claim(&dry, &response), None);
}

#[test]
fn a_refused_end_user_claims_nothing() {
    let eu = serde_json::to_value(end_user("reseller-acme", "alice", &["bad domain"])).unwrap();
    let req = request("CREATE", "reseller-acme", eu, false);
    let response = validate(&req, &cluster(), &claims());
    assert!(!response.allowed);
    assert_eq!(domains_to_claim(&req, &response), None);
}

#[test]
fn more_domains_than_an_end_user_may_have_are_refused_before_any_is_claimed() {
    let domains: Vec<String> = (0..=MAX_DOMAINS)
        .map(|i| format!("d{i}.example.jp"))
        .collect();
    let domains: Vec<&str> = domains.iter().map(String::as_str).collect();
    // A course that would allow them all: only the bound of the API refuses.
    let mut lookup = cluster();
    let mut course = crate::fixtures::course("reseller-acme", "basic");
    course.spec.limits.domains = 1000;
    lookup.courses = vec![std::sync::Arc::new(course)];
    let eu = serde_json::to_value(end_user("reseller-acme", "alice", &domains)).unwrap();
    let req = request("CREATE", "reseller-acme", eu, false);
    let claims = claims();
    let response = validate(&req, &lookup, &claims);
    assert!(!response.allowed);
    assert_eq!(
        response.result.message,
        "spec.domains: 101 domains exceed the most an end user may have (100)"
    );
    assert!(
        claims.lock().reserved().is_empty(),
        "nothing reserved in the process"
    );
    assert_eq!(
        domains_to_claim(&req, &response),
        None,
        "nothing claimed in the cluster"
    );
}

#[test]
fn a_refusal_by_the_cluster_releases_what_the_process_held() {
    let claims = claims();
    let eu = end_user("reseller-acme", "alice", &["shop.example.jp"]);
    {
        let mut guard = claims.lock();
        guard.reserve("reseller-acme/alice", &eu.spec.domains);
        guard.admit("reseller-acme/alice", eu.clone());
        guard.reserve("reseller-acme/bob", &["other.example.jp".to_owned()]);
    }
    claims.lock().release("reseller-acme/alice");
    let guard = claims.lock();
    assert!(guard.admitted().is_empty());
    let reserved: Vec<_> = guard.reserved().into_iter().map(|r| r.owner).collect();
    assert_eq!(reserved, ["reseller-acme/bob"]);
}

#[test]
fn a_password_secret_is_looked_up_only_in_a_resellers_namespace() {
    let mut eu = end_user("reseller-acme", "alice", &[]);
    eu.spec.password_secret_ref = Some(oem_crds::enduser::PasswordSecretRef {
        name: "pw".into(),
        key: "password".into(),
    });
    let in_reseller = request(
        "CREATE",
        "reseller-acme",
        serde_json::to_value(&eu).unwrap(),
        false,
    );
    assert_eq!(
        password_secret(&in_reseller, &cluster()),
        Some(("reseller-acme".into(), "pw".into()))
    );
    for namespace in ["kube-system", "reseller-nobody", "h-acme-alice"] {
        let mut elsewhere = eu.clone();
        elsewhere.metadata.namespace = Some(namespace.into());
        let req = request(
            "CREATE",
            namespace,
            serde_json::to_value(&elsewhere).unwrap(),
            false,
        );
        assert_eq!(password_secret(&req, &cluster()), None, "{namespace}");
    }
}
