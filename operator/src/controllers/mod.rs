//! The controllers: Reseller, Course and EndUser, plus the orphan sweep that removes hosting
//! namespaces whose EndUser disappeared while the operator was not looking; `run` also starts
//! the monitor and the usage reporter.

mod cache;
mod children;
pub mod course;
pub mod domains;
pub mod enduser;
pub mod orphans;
pub mod plan;
pub mod pool;
pub mod reseller;
mod secrets;
mod status;

use std::sync::Arc;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use k8s_openapi::api::rbac::v1::Subject;
use oem_crds::enduser::EndUser;
use oem_crds::reseller::Reseller;

use crate::context::Context;

/// How long the Course and Reseller controllers wait for end-user changes to settle before
/// counting (each new change within it waits again).
pub const COUNT_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs every controller, the monitor, the usage reporter and the alert controller (fed by
/// `inbox` in Alertmanager mode) until the process is asked to stop.
pub async fn run(ctx: Arc<Context>, inbox: crate::alerting::AlertInbox) {
    tokio::join!(
        crate::alerting::run(ctx.clone(), inbox),
        reseller::run(ctx.clone()),
        course::run(ctx.clone()),
        enduser::run(ctx.clone()),
        crate::monitor::run(ctx.clone()),
        crate::usage::run(ctx.clone()),
        orphans::run(ctx),
    );
}

/// Today's date in the reseller's time zone (Asia/Tokyo by default), by the injected clock.
pub fn today(ctx: &Context, reseller: &Reseller) -> Date {
    let tz = TimeZone::get(&reseller.spec.business_calendar.time_zone)
        .or_else(|_| TimeZone::get("Asia/Tokyo"))
        .unwrap_or(TimeZone::UTC);
    ctx.clock.now().to_zoned(tz).date()
}

/// The end user's start date, if it parses (the schema makes sure it does).
pub fn start_date(enduser: &EndUser) -> Option<Date> {
    enduser.spec.start_date.to_string().parse().ok()
}

/// The reseller's admins as RBAC subjects. A `system:` identity is never bound, whatever the
/// stored object says (the schema refuses it; this holds for objects older than that rule):
/// `system:authenticated` would give every user the reseller's access.
pub fn admin_subjects(reseller: &Reseller) -> Vec<Subject> {
    reseller
        .spec
        .admins
        .iter()
        .filter(|a| !a.name.starts_with("system:"))
        .map(|a| {
            let kind = format!("{:?}", a.kind);
            let service_account = kind == "ServiceAccount";
            Subject {
                api_group: (!service_account).then(|| "rbac.authorization.k8s.io".to_owned()),
                kind,
                name: a.name.clone(),
                namespace: if service_account {
                    a.namespace.clone()
                } else {
                    None
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_identities_are_never_bound_as_reseller_admins() {
        let reseller: Reseller = serde_json::from_value(serde_json::json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Reseller",
            "metadata": {"name": "sakura"},
            "spec": {"displayName": "さくら",
                "admins": [
                    {"kind": "Group", "name": "system:authenticated"},
                    {"kind": "User", "name": "system:anonymous"},
                    {"kind": "User", "name": "alice@sakura.example.jp"}
                ],
                "contacts": [{"name": "desk", "email": "noc@sakura.example.jp"}],
                "quota": {"maxEndUsers": 1, "totalCpu": "1", "totalMemory": "1Gi", "totalStorage": "1Gi"}}
        }))
        .unwrap();
        let names: Vec<String> = admin_subjects(&reseller)
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["alice@sakura.example.jp"]);
    }
}
