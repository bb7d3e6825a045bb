//! Small valid objects for tests, the proptests and the fuzz target: a reseller `acme` with
//! room for a few end users, a course `basic`, end users on it, and a [`Snapshot`] holding them.

use std::sync::Arc;

use jiff::civil::date;
use oem_crds::{Course, EndUser, Reseller};
use serde_json::json;

use crate::lookup::Snapshot;
use crate::policy::SecurityPolicy;

/// Reseller `name`: 3 end users, 4 cpu, 8Gi memory, 30Gi storage; one reachable contact.
pub fn reseller(name: &str) -> Reseller {
    serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Reseller",
        "metadata": {"name": name},
        "spec": {
            "displayName": name,
            "contacts": [{"name": "noc", "email": "noc@acme.example.jp",
                          "webhook": {"url": "https://hooks.acme.example.jp/oem"}}],
            "quota": {"maxEndUsers": 3, "totalCpu": "4", "totalMemory": "8Gi", "totalStorage": "30Gi"}
        }
    }))
    .expect("fixture reseller")
}

/// Course `name` in `namespace`: 1 cpu, 2Gi, 10Gi, 2 domains, web (PHP 8.4), mail, ftp, MariaDB 10.11.
pub fn course(namespace: &str, name: &str) -> Course {
    serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Course",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "displayName": name,
            "resources": {"cpu": "1", "memory": "2Gi", "storage": "10Gi"},
            "limits": {"domains": 2},
            "services": {"web": {"phpVersion": "8.4"}, "mail": {"maxSendsPerHour": 200}, "ftp": {},
                         "database": {"engine": "mariadb", "version": "10.11"}}
        }
    }))
    .expect("fixture course")
}

/// End user `name` in `namespace` on course `basic`, login ID = name, serving `domains`.
pub fn end_user(namespace: &str, name: &str, domains: &[&str]) -> EndUser {
    serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "EndUser",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "loginId": name, "contractName": name, "contactEmail": "owner@example.jp",
            "courseRef": {"name": "basic"}, "domains": domains,
            "contractDate": "2026-01-01", "startDate": "2026-01-01"
        }
    }))
    .expect("fixture end user")
}

/// Reseller `acme` with course `basic` in `reseller-acme`, no end users, the built-in policy,
/// today 2026-06-01.
pub fn cluster() -> Snapshot {
    Snapshot {
        courses: vec![Arc::new(course("reseller-acme", "basic"))],
        resellers: vec![Arc::new(reseller("acme"))],
        policy: SecurityPolicy::builtin(),
        today: date(2026, 6, 1),
        ..Snapshot::default()
    }
}
