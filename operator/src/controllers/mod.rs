//! The controllers: Reseller, Course and EndUser, plus the orphan sweep that removes hosting
//! namespaces whose EndUser disappeared while the operator was not looking; `add_parts` adds
//! them, the monitor, the usage reporter and the alert controller to the operator's parts.

mod cache;
mod children;
pub mod course;
pub mod domains;
pub mod enduser;
mod namespaces;
pub mod orphans;
mod phase;
pub mod plan;
pub mod pool;
mod quotas;
pub mod reseller;
mod secrets;
mod sets;

use std::sync::Arc;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use k8s_openapi::api::rbac::v1::Subject;
use kube::ResourceExt;
use oem_crds::enduser::EndUser;
use oem_crds::reseller::Reseller;
use oem_supervisor::Supervisor;

use crate::context::Context;

/// How long the Course and Reseller controllers wait for end-user changes to settle before
/// counting (each new change within it waits again).
pub const COUNT_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(1);

/// A finalizer's outcome as a reconcile's. The object gone when its finalizer was to be
/// removed (a second reconcile, woken by an event of the object in deletion, removed it first)
/// is what the removal was for, not a failure to retry and log.
fn finalized(
    outcome: std::result::Result<
        kube::runtime::controller::Action,
        kube::runtime::finalizer::Error<crate::error::Error>,
    >,
) -> crate::error::Result<kube::runtime::controller::Action> {
    use kube::runtime::finalizer::Error as Finalizer;
    match outcome {
        Err(Finalizer::RemoveFinalizer(kube::Error::Api(status))) if status.code == 404 => {
            Ok(kube::runtime::controller::Action::await_change())
        }
        outcome => outcome.map_err(|e| crate::error::Error::Finalizer(Box::new(e))),
    }
}

/// Adds every controller (the orphan sweep runs within the EndUser controller's part), the
/// monitor, the usage reporter and the alert controller (fed by `inbox` in Alertmanager mode)
/// to the operator's parts: each runs until the supervisor's stop, and one ending before it
/// stops the operator.
pub fn add_parts(
    supervisor: &mut Supervisor,
    ctx: &Arc<Context>,
    inbox: crate::alerting::AlertInbox,
) {
    let stop = supervisor.stop();
    let (view, triggers) = crate::view::View::start(&ctx.client, supervisor);
    supervisor.add(
        "alert controller",
        crate::alerting::run(ctx.clone(), view.clone(), inbox, stop.clone()),
    );
    supervisor.add(
        "Reseller controller",
        reseller::run(
            ctx.clone(),
            view.clone(),
            triggers.resellers,
            triggers.endusers_of_resellers,
            stop.clone(),
        ),
    );
    supervisor.add(
        "Course controller",
        course::run(
            ctx.clone(),
            view.clone(),
            triggers.courses,
            triggers.endusers_of_courses,
            stop.clone(),
        ),
    );
    supervisor.add(
        "EndUser controller",
        enduser::run(
            ctx.clone(),
            view.clone(),
            enduser::Triggers {
                endusers: triggers.endusers,
                courses: triggers.courses_of_endusers,
                resellers: triggers.resellers_of_endusers,
            },
            stop.clone(),
        ),
    );
    supervisor.add(
        "monitor",
        crate::monitor::run(ctx.clone(), view.clone(), stop.clone()),
    );
    supervisor.add(
        "usage reporter",
        crate::usage::run(ctx.clone(), view, stop.clone()),
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

/// The reseller's admins as RBAC subjects, and the ServiceAccount its panel acts as
/// ([`oem_crds::reseller::PANEL_SERVICE_ACCOUNT`], in the reseller's namespace). A `system:` identity is never bound, whatever the
/// stored object says (the schema refuses it; this holds for objects older than that rule):
/// `system:authenticated` would give every user the reseller's access.
pub fn admin_subjects(reseller: &Reseller) -> Vec<Subject> {
    let panel = Subject {
        api_group: None,
        kind: "ServiceAccount".to_owned(),
        name: oem_crds::reseller::PANEL_SERVICE_ACCOUNT.to_owned(),
        namespace: Some(crate::naming::reseller_namespace(&reseller.name_any())),
    };
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
        .chain(std::iter::once(panel))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_gone_before_its_finalizer_was_removed_is_finalized_not_failed() {
        use kube::runtime::finalizer::Error as Finalizer;
        let removal = |code: u16| {
            Finalizer::RemoveFinalizer(kube::Error::Api(Box::new(
                kube::core::Status::failure("gone", "NotFound").with_code(code),
            )))
        };
        assert!(finalized(Err(removal(404))).is_ok());
        let conflict = finalized(Err(removal(409))).unwrap_err();
        assert_eq!(conflict.reason(), "FinalizerError");
        assert!(finalized(Ok(kube::runtime::controller::Action::await_change())).is_ok());
    }

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
        assert_eq!(
            names,
            ["alice@sakura.example.jp", "oem-hosting-reseller-panel"]
        );
    }
}
