//! One behaviour per test: each EndUser rule refused, and its valid twin accepted.

use std::sync::Arc;

use oem_crds::enduser::PasswordSecretRef;
use proptest::prelude::*;

use super::*;
use crate::fixtures::{cluster, course, end_user};
use crate::lookup::{ReservedDomain, Snapshot};

const NS: &str = "reseller-acme";

fn with_users(mut s: Snapshot, users: Vec<EndUser>) -> Snapshot {
    s.end_users = users.into_iter().map(Arc::new).collect();
    s
}

#[test]
fn a_valid_end_user_is_accepted_without_warnings() {
    let v = validate_end_user(
        &end_user(NS, "alice", &["alice.example.jp"]),
        None,
        &cluster(),
    );
    assert_eq!(v, Verdict::default());
}

#[test]
fn the_course_must_exist_in_the_same_namespace() {
    let mut eu = end_user(NS, "alice", &[]);
    eu.spec.course_ref.name = "gold".into();
    let v = validate_end_user(&eu, None, &cluster());
    assert_eq!(
        v.denials,
        ["spec.courseRef.name: course gold does not exist in namespace reseller-acme"]
    );
    // A course of that name in another reseller's namespace does not count.
    let mut s = cluster();
    s.courses.push(Arc::new(course("reseller-other", "gold")));
    assert!(!validate_end_user(&eu, None, &s).allowed());
}

#[test]
fn domains_beyond_the_course_limit_are_refused() {
    let eu = end_user(
        NS,
        "alice",
        &["a.example.jp", "b.example.jp", "c.example.jp"],
    );
    let v = validate_end_user(&eu, None, &cluster());
    assert_eq!(
        v.denials,
        ["spec.domains: 3 domains exceed the limit of 2 of course basic (limits.domains)"]
    );
    let twin = end_user(NS, "alice", &["a.example.jp", "b.example.jp"]);
    assert!(validate_end_user(&twin, None, &cluster()).allowed());
}

#[test]
fn a_domain_used_by_an_end_user_of_another_reseller_is_refused() {
    let s = with_users(
        cluster(),
        vec![end_user("reseller-other", "bob", &["shop.example.jp"])],
    );
    let eu = end_user(NS, "alice", &["alice.example.jp", "Shop.Example.JP."]);
    let v = validate_end_user(&eu, None, &s);
    assert_eq!(
        v.denials,
        ["spec.domains[1]: domain shop.example.jp is already used by another end user"]
    );
    let twin = end_user(NS, "alice", &["alice.example.jp", "shop2.example.jp"]);
    assert!(validate_end_user(&twin, None, &s).allowed());
}

#[test]
fn an_end_user_keeps_its_own_domains_on_update() {
    let me = end_user(NS, "alice", &["alice.example.jp"]);
    let s = with_users(cluster(), vec![me.clone()]);
    assert!(validate_end_user(&me, Some(&me), &s).allowed());
}

#[test]
fn a_domain_reserved_by_an_admission_in_flight_is_refused() {
    let mut s = cluster();
    s.reserved.push(ReservedDomain {
        owner: "reseller-other/bob".into(),
        domain: "shop.example.jp".into(),
    });
    let v = validate_end_user(&end_user(NS, "alice", &["shop.example.jp"]), None, &s);
    assert_eq!(
        v.denials,
        ["spec.domains[0]: domain shop.example.jp is already used by another end user"]
    );
    s.reserved[0].owner = "reseller-acme/alice".into();
    assert!(validate_end_user(&end_user(NS, "alice", &["shop.example.jp"]), None, &s).allowed());
}

#[test]
fn a_domain_listed_twice_is_refused() {
    let v = validate_end_user(
        &end_user(NS, "alice", &["a.example.jp", "A.example.jp"]),
        None,
        &cluster(),
    );
    assert_eq!(
        v.denials,
        ["spec.domains[1]: domain a.example.jp is listed twice (also spec.domains[0])"]
    );
}

#[test]
fn an_invalid_domain_is_refused() {
    let v = validate_end_user(&end_user(NS, "alice", &["not a domain"]), None, &cluster());
    assert_eq!(
        v.denials,
        ["spec.domains[0]: not a domain is not a valid DNS domain name"]
    );
}

#[test]
fn an_ip_address_is_not_accepted_as_a_domain() {
    for ip in ["192.0.2.1", "10.0.0.1", "::1"] {
        let v = validate_end_user(&end_user(NS, "alice", &[ip]), None, &cluster());
        assert_eq!(
            v.denials,
            [format!(
                "spec.domains[0]: {ip} is an IP address; an end user's domain must be a DNS name"
            )]
        );
    }
}

#[test]
fn a_login_id_used_in_the_same_reseller_is_refused() {
    let mut bob = end_user(NS, "bob", &[]);
    bob.spec.login_id = "alice".into();
    let s = with_users(cluster(), vec![bob]);
    let v = validate_end_user(&end_user(NS, "alice", &[]), None, &s);
    assert_eq!(
        v.denials,
        ["spec.loginId: login ID alice is already used by end user bob of this reseller"]
    );
}

#[test]
fn the_same_login_id_in_another_reseller_is_accepted() {
    let mut other = cluster();
    other.end_users = vec![Arc::new(end_user("reseller-other", "alice", &[]))];
    assert!(validate_end_user(&end_user(NS, "alice", &[]), None, &other).allowed());
}

#[test]
fn the_end_user_count_quota_is_enforced_on_create() {
    let users = (0..3)
        .map(|i| end_user(NS, &format!("u{i}"), &[]))
        .collect::<Vec<_>>();
    let mut s = with_users(cluster(), users);
    // Give the quota room in cpu/memory/storage so only the count matters.
    let mut r = (*s.resellers[0]).clone();
    r.spec.quota.total_cpu.0 = "100".into();
    r.spec.quota.total_memory.0 = "100Gi".into();
    r.spec.quota.total_storage.0 = "1000Gi".into();
    s.resellers = vec![Arc::new(r)];
    let v = validate_end_user(&end_user(NS, "alice", &[]), None, &s);
    assert_eq!(
        v.denials,
        [
            "metadata.namespace: reseller acme already has 3 end users, its quota (quota.maxEndUsers) is 3"
        ]
    );
    // An update of an existing end user is not a new one.
    let u0 = end_user(NS, "u0", &[]);
    assert!(validate_end_user(&u0, Some(&u0), &s).allowed());
}

#[test]
fn a_course_beyond_the_cpu_quota_is_refused_and_within_it_accepted() {
    let mut s = with_users(
        cluster(),
        vec![end_user(NS, "u0", &[]), end_user(NS, "u1", &[])],
    );
    let mut big = course(NS, "big");
    big.spec.resources.cpu.0 = "2500m".into();
    s.courses.push(Arc::new(big));
    let mut eu = end_user(NS, "alice", &[]);
    eu.spec.course_ref.name = "big".into();
    let v = validate_end_user(&eu, None, &s);
    assert_eq!(
        v.denials,
        [
            "spec.courseRef.name: course big needs 2500m, which with the 2 already used by the reseller's other end users exceeds reseller acme's quota.totalCpu of 4"
        ]
    );
    eu.spec.course_ref.name = "basic".into();
    assert!(validate_end_user(&eu, None, &s).allowed());
}

#[test]
fn a_course_beyond_the_storage_quota_is_refused() {
    let s = with_users(
        cluster(),
        vec![end_user(NS, "u0", &[]), end_user(NS, "u1", &[])],
    );
    let mut s = s;
    let mut r = (*s.resellers[0]).clone();
    r.spec.quota.total_storage.0 = "25Gi".into();
    s.resellers = vec![Arc::new(r)];
    let v = validate_end_user(&end_user(NS, "alice", &[]), None, &s);
    assert_eq!(v.denials.len(), 1);
    assert!(v.denials[0].contains("quota.totalStorage of 25Gi"), "{v:?}");
    assert!(v.denials[0].contains("20Gi already used"), "{v:?}");
}

#[test]
fn a_course_beyond_the_memory_quota_is_refused() {
    let mut s = with_users(cluster(), vec![end_user(NS, "u0", &[])]);
    let mut r = (*s.resellers[0]).clone();
    r.spec.quota.total_memory.0 = "3Gi".into();
    s.resellers = vec![Arc::new(r)];
    let v = validate_end_user(&end_user(NS, "alice", &[]), None, &s);
    assert!(v.denials[0].contains("quota.totalMemory of 3Gi"), "{v:?}");
}

#[test]
fn an_existing_overage_only_warns_when_the_course_is_unchanged() {
    let mut s = with_users(cluster(), vec![end_user(NS, "u0", &[])]);
    let mut r = (*s.resellers[0]).clone();
    r.spec.quota.total_memory.0 = "3Gi".into();
    s.resellers = vec![Arc::new(r)];
    let me = end_user(NS, "alice", &[]);
    let v = validate_end_user(&me, Some(&me), &s);
    assert!(v.allowed());
    assert_eq!(v.warnings.len(), 1);
}

#[test]
fn a_referenced_password_secret_must_exist_with_its_key() {
    let mut eu = end_user(NS, "alice", &[]);
    eu.spec.password_secret_ref = Some(PasswordSecretRef {
        name: "alice-pw".into(),
        key: "pw".into(),
    });
    let v = validate_end_user(&eu, None, &cluster());
    assert_eq!(
        v.denials,
        [
            "spec.passwordSecretRef.name: Secret alice-pw does not exist in namespace reseller-acme (the password Secret must exist)"
        ]
    );
    let mut s = cluster();
    s.secrets
        .push((NS.into(), "alice-pw".into(), vec!["password".into()]));
    let v = validate_end_user(&eu, None, &s);
    assert_eq!(
        v.denials,
        [
            "spec.passwordSecretRef.key: Secret alice-pw has no key pw (the password Secret must hold the password under that key)"
        ]
    );
    s.secrets[0].2.push("pw".into());
    assert!(validate_end_user(&eu, None, &s).allowed());
}

#[test]
fn the_defaulted_password_secret_may_not_exist_yet() {
    let mut eu = end_user(NS, "alice", &[]);
    eu.spec.password_secret_ref = Some(PasswordSecretRef {
        name: "alice-login".into(),
        key: "password".into(),
    });
    assert!(validate_end_user(&eu, None, &cluster()).allowed());
}

#[test]
fn an_unreadable_secret_warns_instead_of_refusing() {
    struct Flaky(Snapshot);
    impl Lookup for Flaky {
        fn course(&self, ns: &str, n: &str) -> Option<Arc<Course>> {
            self.0.course(ns, n)
        }
        fn end_users(&self) -> Vec<Arc<EndUser>> {
            self.0.end_users()
        }
        fn reseller(&self, n: &str) -> Option<Arc<oem_crds::Reseller>> {
            self.0.reseller(n)
        }
        fn secret_keys(&self, _: &str, _: &str) -> SecretKeys {
            SecretKeys::Unknown("timed out after 2s".into())
        }
        fn policy(&self) -> &crate::policy::SecurityPolicy {
            &self.0.policy
        }
        fn today(&self) -> jiff::civil::Date {
            self.0.today
        }
    }
    let mut eu = end_user(NS, "alice", &[]);
    eu.spec.password_secret_ref = Some(PasswordSecretRef {
        name: "alice-pw".into(),
        key: "pw".into(),
    });
    let v = validate_end_user(&eu, None, &Flaky(cluster()));
    assert!(v.allowed());
    assert_eq!(v.warnings.len(), 1);
}

proptest! {
    /// Whatever domains two end users of different resellers pick, the second is refused
    /// exactly when they share a domain (after normalisation).
    #[test]
    fn domain_uniqueness_matches_set_intersection(
        a in proptest::collection::vec("[a-c]\\.example\\.jp", 0..3),
        b in proptest::collection::vec("[a-cA-C]\\.example\\.jp\\.?", 0..3),
    ) {
        let a_refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let b_refs: Vec<&str> = b.iter().map(String::as_str).collect();
        let s = with_users(cluster(), vec![end_user("reseller-other", "bob", &a_refs)]);
        let v = validate_end_user(&end_user(NS, "alice", &b_refs), None, &s);
        let norm: Vec<String> = b.iter().map(|d| normalise_domain(d)).collect();
        let mut dedup = norm.clone();
        dedup.sort();
        dedup.dedup();
        let shared = norm.iter().any(|d| a.contains(d));
        let repeated = dedup.len() != norm.len();
        prop_assert_eq!(v.allowed(), !shared && !repeated, "{:?}", v);
    }
}

#[test]
fn an_end_users_php_version_must_be_one_its_course_allows() {
    let mut eu = end_user(NS, "alice", &[]);
    eu.spec.web = Some(oem_crds::enduser::EndUserWeb {
        php_version: Some("8.2".into()),
    });
    let v = validate_end_user(&eu, None, &cluster());
    assert_eq!(
        v.denials,
        [
            "spec.web.phpVersion: PHP 8.2 is not among the versions course basic allows (8.4; services.web.phpVersion and allowedPhpVersions)"
        ]
    );
    let mut s = cluster();
    let mut allowing = course(NS, "basic");
    allowing
        .spec
        .services
        .web
        .as_mut()
        .unwrap()
        .allowed_php_versions = vec!["8.2".into()];
    s.courses = vec![Arc::new(allowing)];
    assert!(validate_end_user(&eu, None, &s).allowed());
    // The course's own version is always a valid choice.
    eu.spec.web = Some(oem_crds::enduser::EndUserWeb {
        php_version: Some("8.4".into()),
    });
    assert!(validate_end_user(&eu, None, &cluster()).allowed());
}
