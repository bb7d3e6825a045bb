//! One behaviour per test: each Course rule refused, and its valid twin accepted.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use oem_crds::Usage;
use oem_crds::enduser::EndUserStatus;

use super::*;
use crate::fixtures::{cluster, course, end_user};

const NS: &str = "reseller-acme";

fn with_php(version: &str) -> Course {
    let mut c = course(NS, "basic");
    c.spec.services.web.as_mut().unwrap().php_version = version.into();
    c
}

fn using_disk(name: &str, disk: &str) -> Arc<oem_crds::EndUser> {
    let mut eu = end_user(NS, name, &[]);
    eu.status = Some(EndUserStatus {
        usage: Some(Usage {
            disk: Some(Quantity(disk.into())),
            ..Usage::default()
        }),
        ..EndUserStatus::default()
    });
    Arc::new(eu)
}

fn forced(mut c: Course) -> Course {
    c.metadata.annotations = Some(BTreeMap::from([(
        FORCE_ANNOTATION.to_owned(),
        "true".to_owned(),
    )]));
    c
}

#[test]
fn a_supported_php_version_is_accepted() {
    assert_eq!(
        validate_course(&with_php("8.4"), None, &cluster()),
        Verdict::default()
    );
}

#[test]
fn a_php_version_not_in_the_policy_is_refused() {
    let v = validate_course(&with_php("5.6"), None, &cluster());
    assert_eq!(
        v.denials,
        ["spec.services.web.phpVersion: PHP 5.6 is not allowed by the security policy"]
    );
}

#[test]
fn a_php_version_without_an_image_is_refused() {
    let mut s = cluster();
    s.policy.php.push(crate::policy::RuntimeVersion {
        version: "8.3".into(),
        end_of_life: None,
        image: None,
    });
    let v = validate_course(&with_php("8.3"), None, &s);
    assert_eq!(
        v.denials,
        [
            "spec.services.web.phpVersion: PHP 8.3 has no image in the security policy, so it cannot be served"
        ]
    );
}

#[test]
fn a_new_course_on_an_end_of_life_php_is_refused() {
    let v = validate_course(&with_php("8.1"), None, &cluster());
    assert_eq!(
        v.denials,
        [
            "spec.services.web.phpVersion: PHP 8.1 reached end of life on 2025-12-31 and is not allowed for new courses or changes (security policy)"
        ]
    );
}

#[test]
fn an_existing_course_on_an_end_of_life_php_is_warned_not_refused() {
    let old = with_php("8.1");
    let mut new = old.clone();
    new.spec.display_name = "renamed".into();
    let v = validate_course(&new, Some(&old), &cluster());
    assert!(v.allowed());
    assert_eq!(
        v.warnings,
        [
            "spec.services.web.phpVersion: PHP 8.1 reached end of life on 2025-12-31 (security policy); upgrade this course"
        ]
    );
}

#[test]
fn changing_to_an_end_of_life_php_is_refused() {
    let v = validate_course(&with_php("8.1"), Some(&with_php("8.4")), &cluster());
    assert!(!v.allowed());
}

#[test]
fn a_version_near_end_of_life_draws_a_warning() {
    let mut s = cluster();
    s.today = jiff::civil::date(2028, 5, 1);
    let mut c = with_php("8.2");
    c.spec.services.database = None;
    let v = validate_course(&c, None, &s);
    assert!(v.allowed());
    assert_eq!(v.warnings.len(), 1, "{v:?}");
}

#[test]
fn an_end_of_life_database_version_is_refused_for_new_courses() {
    let mut c = course(NS, "basic");
    c.spec.services.database.as_mut().unwrap().version = Some("10.6".into());
    let mut s = cluster();
    s.today = jiff::civil::date(2026, 8, 1);
    let v = validate_course(&c, None, &s);
    assert_eq!(
        v.denials,
        [
            "spec.services.database.version: MariaDB 10.6 reached end of life on 2026-07-06 and is not allowed for new courses or changes (security policy)"
        ]
    );
    c.spec.services.database.as_mut().unwrap().version = None;
    assert!(validate_course(&c, None, &s).allowed());
}

#[test]
fn shrinking_storage_below_an_end_users_usage_is_refused() {
    let mut s = cluster();
    s.end_users = vec![using_disk("alice", "6Gi"), using_disk("bob", "1Gi")];
    let old = course(NS, "basic");
    let mut new = old.clone();
    new.spec.resources.storage.0 = "5Gi".into();
    let v = validate_course(&new, Some(&old), &s);
    assert_eq!(
        v.denials,
        [
            "spec.resources.storage: storage 5Gi is less than the 6Gi end user alice uses on this course (shrinking below usage) is refused; annotate hosting.oem.dev/force: \"true\" to override"
        ]
    );
    new.spec.resources.storage.0 = "8Gi".into();
    assert_eq!(validate_course(&new, Some(&old), &s), Verdict::default());
}

#[test]
fn shrinking_storage_below_usage_is_allowed_when_forced() {
    let mut s = cluster();
    s.end_users = vec![using_disk("alice", "6Gi")];
    let old = course(NS, "basic");
    let mut new = forced(old.clone());
    new.spec.resources.storage.0 = "5Gi".into();
    let v = validate_course(&new, Some(&old), &s);
    assert!(v.allowed());
    assert_eq!(v.warnings.len(), 1);
}

#[test]
fn shrinking_storage_with_unknown_usage_warns() {
    let mut s = cluster();
    s.end_users = vec![Arc::new(end_user(NS, "alice", &[]))];
    let old = course(NS, "basic");
    let mut new = old.clone();
    new.spec.resources.storage.0 = "5Gi".into();
    let v = validate_course(&new, Some(&old), &s);
    assert!(v.allowed());
    assert_eq!(v.warnings.len(), 1);
}

#[test]
fn removing_a_service_while_end_users_are_on_the_course_is_refused() {
    let mut s = cluster();
    s.end_users = vec![Arc::new(end_user(NS, "alice", &[]))];
    let old = course(NS, "basic");
    let mut new = old.clone();
    new.spec.services.mail = None;
    let v = validate_course(&new, Some(&old), &s);
    assert_eq!(
        v.denials,
        [
            "spec.services.mail: removing mail deletes it, and its data, for the 1 end users on this course, which is refused while end users are on it; annotate hosting.oem.dev/force: \"true\" to override"
        ]
    );
    let v = validate_course(&forced(new), Some(&old), &s);
    assert!(v.allowed());
    assert_eq!(v.warnings.len(), 1);
}

#[test]
fn removing_each_service_is_refused() {
    let mut s = cluster();
    s.end_users = vec![Arc::new(end_user(NS, "alice", &[]))];
    let old = course(NS, "basic");
    for service in ["web", "mail", "ftp", "database"] {
        let mut new = old.clone();
        match service {
            "web" => new.spec.services.web = None,
            "mail" => new.spec.services.mail = None,
            "ftp" => new.spec.services.ftp = None,
            _ => new.spec.services.database = None,
        }
        let v = validate_course(&new, Some(&old), &s);
        assert!(
            v.denials[0].starts_with(&format!("spec.services.{service}: ")),
            "{v:?}"
        );
    }
}

#[test]
fn removing_a_service_from_an_unused_course_is_accepted() {
    let mut s = cluster();
    s.end_users = vec![Arc::new(end_user("reseller-other", "alice", &[]))];
    let old = course(NS, "basic");
    let mut new = old.clone();
    new.spec.services.mail = None;
    new.spec.resources.storage.0 = "1Gi".into();
    assert_eq!(validate_course(&new, Some(&old), &s), Verdict::default());
}

/// Course `basic` with two end users on it and one on course `small` (0.5 cpu, 1Gi, 5Gi).
fn two_on_basic_one_on_small() -> crate::lookup::Snapshot {
    let mut s = cluster();
    let mut small = course(NS, "small");
    small.spec.resources.cpu = Quantity("500m".into());
    small.spec.resources.memory = Quantity("1Gi".into());
    small.spec.resources.storage = Quantity("5Gi".into());
    s.courses.push(Arc::new(small));
    let mut carol = end_user(NS, "carol", &[]);
    carol.spec.course_ref.name = "small".into();
    s.end_users = vec![
        Arc::new(end_user(NS, "alice", &[])),
        Arc::new(end_user(NS, "bob", &[])),
        Arc::new(carol),
    ];
    s
}

#[test]
fn raising_a_course_beyond_the_resellers_quota_is_refused_naming_the_field_and_numbers() {
    let old = course(NS, "basic");
    let mut new = old.clone();
    new.spec.resources.cpu = Quantity("64".into());
    new.spec.resources.memory = Quantity("256Gi".into());
    new.spec.resources.storage = Quantity("10Ti".into());
    let v = validate_course(&new, Some(&old), &two_on_basic_one_on_small());
    assert_eq!(
        v.denials,
        [
            "spec.resources.cpu: raising cpu from 1 to 64 for the 2 end users on this course makes reseller acme's total 128.5 (2 × 64 + 0.5 of its other end users), over its quota.totalCpu of 4",
            "spec.resources.memory: raising memory from 2Gi to 256Gi for the 2 end users on this course makes reseller acme's total 513Gi (2 × 256Gi + 1Gi of its other end users), over its quota.totalMemory of 8Gi",
            "spec.resources.storage: raising storage from 10Gi to 10Ti for the 2 end users on this course makes reseller acme's total 20485Gi (2 × 10Ti + 5Gi of its other end users), over its quota.totalStorage of 30Gi",
        ]
    );
    // Even forced: the quota is the provider's, not the reseller's to override.
    let v = validate_course(&forced(new), Some(&old), &two_on_basic_one_on_small());
    assert_eq!(v.denials.len(), 3, "{v:?}");
}

#[test]
fn raising_a_course_within_the_resellers_quota_is_accepted() {
    let old = course(NS, "basic");
    let mut new = old.clone();
    // 2 × 1.75 + 0.5 = 4 cpu; 2 × 3.5Gi + 1Gi = 8Gi: exactly the quota.
    new.spec.resources.cpu = Quantity("1750m".into());
    new.spec.resources.memory = Quantity("3584Mi".into());
    let v = validate_course(&new, Some(&old), &two_on_basic_one_on_small());
    assert_eq!(v, Verdict::default());
}

#[test]
fn a_course_already_over_the_quota_may_still_be_lowered_or_left_as_is() {
    let mut s = two_on_basic_one_on_small();
    Arc::make_mut(&mut s.resellers[0]).spec.quota.total_cpu = Quantity("1".into());
    let old = course(NS, "basic");
    let mut renamed = old.clone();
    renamed.spec.display_name = "renamed".into();
    assert_eq!(
        validate_course(&renamed, Some(&old), &s),
        Verdict::default()
    );
    let mut lowered = old.clone();
    lowered.spec.resources.cpu = Quantity("250m".into());
    assert_eq!(
        validate_course(&lowered, Some(&old), &s),
        Verdict::default()
    );
}

#[test]
fn raising_a_course_nobody_is_on_is_accepted() {
    let old = course(NS, "basic");
    let mut new = old.clone();
    new.spec.resources.cpu = Quantity("64".into());
    assert_eq!(
        validate_course(&new, Some(&old), &cluster()),
        Verdict::default()
    );
}

#[test]
fn each_php_version_a_course_lets_end_users_choose_is_judged_like_its_own() {
    let mut c = with_php("8.4");
    c.spec.services.web.as_mut().unwrap().allowed_php_versions = vec!["8.2".into(), "5.6".into()];
    let v = validate_course(&c, None, &cluster());
    assert_eq!(
        v.denials,
        ["spec.services.web.allowedPhpVersions[1]: PHP 5.6 is not allowed by the security policy"]
    );
    c.spec.services.web.as_mut().unwrap().allowed_php_versions = vec!["8.2".into()];
    assert_eq!(validate_course(&c, None, &cluster()), Verdict::default());
}
