//! The EndUser controller: turns an end user into its hosting namespace and keeps it so.
//! Pipeline: dereference (course, reseller, password) → validate (`plan`) → build (`hosting`)
//! → apply (diff-before-write) → observe workloads → write status if it changed.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use oem_crds::conditions::{Condition, ConditionStatus, merge};
use oem_crds::course::Course;
use oem_crds::enduser::{DeletionPolicy, EndUser, EndUserPhase, EndUserStatus};
use oem_crds::reseller::Reseller;

use super::{children, secrets, status};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hosting::{self, HostingPlan};
use crate::naming;

pub const FINALIZER: &str = "hosting.oem.dev/hosting-cleanup";
const CONTROLLER: &str = "enduser";

/// Runs the controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let controller = Controller::new(
        Api::<EndUser>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    let managed = watcher::Config::default().labels(&format!(
        "{}={}",
        naming::LABEL_MANAGED_BY,
        naming::MANAGED_BY
    ));
    // Metadata-only watches of every kind of child: a change (a hand edit, a workload turning
    // ready) wakes its end user without caching the children's specs.
    macro_rules! children_of {
        ($kind:ty) => {
            Api::<PartialObjectMeta<$kind>>::all(client.clone())
        };
    }
    let course_store = store.clone();
    controller
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency),
        )
        .watches(
            Api::<Course>::all(client.clone()),
            watcher::Config::default(),
            move |course| on_course(&course_store, &course),
        )
        .watches(children_of!(Namespace), managed.clone(), children::owner)
        .watches(children_of!(StatefulSet), managed.clone(), children::owner)
        .watches(children_of!(Service), managed.clone(), children::owner)
        .watches(children_of!(Ingress), managed.clone(), children::owner)
        .watches(
            children_of!(NetworkPolicy),
            managed.clone(),
            children::owner,
        )
        .watches(
            children_of!(ResourceQuota),
            managed.clone(),
            children::owner,
        )
        .watches(children_of!(LimitRange), managed.clone(), children::owner)
        .watches(children_of!(RoleBinding), managed.clone(), children::owner)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "enduser reconcile failed");
            }
        })
        .await;
}

/// Every end user on a course is reconciled when the course changes.
fn on_course(store: &Store<EndUser>, course: &Course) -> Vec<ObjectRef<EndUser>> {
    let ns = course.namespace();
    store
        .state()
        .iter()
        .filter(|eu| eu.namespace() == ns && eu.spec.course_ref.name == course.name_any())
        .map(|eu| ObjectRef::from_obj(eu.as_ref()))
        .collect()
}

async fn reconcile(enduser: Arc<EndUser>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = enduser.namespace().unwrap_or_default();
    let api: Api<EndUser> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, enduser, |event| async {
        match event {
            Finalize::Apply(enduser) => apply(&enduser, &ctx).await,
            Finalize::Cleanup(enduser) => cleanup(&enduser, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(enduser: Arc<EndUser>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(CONTROLLER, error.metric_label());
    tracing::warn!(enduser = %enduser.name_any(), %error, "reconcile failed");
    Action::requeue(error.retry_after(ctx.config.transient_retry, ctx.config.spec_retry))
}

/// What was observed of the workloads.
struct Observed {
    phase: EndUserPhase,
    ready: ConditionStatus,
    reason: &'static str,
    message: String,
}

async fn apply(enduser: &EndUser, ctx: &Context) -> Result<Action> {
    let outcome = provision(enduser, ctx).await;
    let (observed, plan_ns, password_secret) = match &outcome {
        Ok((observed, plan, secret)) => (
            Observed {
                phase: observed.phase,
                ready: observed.ready,
                reason: observed.reason,
                message: observed.message.clone(),
            },
            plan.as_ref().map(|p| p.namespace.clone()),
            secret.clone(),
        ),
        Err(error) => (
            Observed {
                phase: enduser
                    .status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .unwrap_or(EndUserPhase::Provisioning),
                ready: ConditionStatus::False,
                reason: error.reason(),
                message: error.to_string(),
            },
            None,
            None,
        ),
    };
    write_status(enduser, ctx, observed, plan_ns, password_secret).await?;
    match outcome {
        Ok((_, Some(_), _)) => Ok(Action::requeue(ctx.config.resync_interval)),
        // Scheduled: look again at the next resync (the start date is a calendar day).
        Ok((_, None, _)) => Ok(Action::requeue(ctx.config.resync_interval)),
        Err(error) => Err(error),
    }
}

type Provisioned = (Observed, Option<HostingPlan>, Option<String>);

async fn provision(enduser: &EndUser, ctx: &Context) -> Result<Provisioned> {
    let ns = enduser.namespace().unwrap_or_default();
    let object = format!("enduser {ns}/{}", enduser.name_any());
    let reseller_name = naming::reseller_of_namespace(&ns)
        .ok_or_else(|| Error::NotInResellerNamespace {
            object: object.clone(),
        })?
        .to_owned();
    let client = &ctx.client;
    let course_name = &enduser.spec.course_ref.name;
    let course = Api::<Course>::namespaced(client.clone(), &ns)
        .get_opt(course_name)
        .await
        .map_err(Error::kube("get", "Course", course_name.clone()))?
        .ok_or_else(|| Error::CourseNotFound {
            object: object.clone(),
            course: course_name.clone(),
            namespace: ns.clone(),
        })?;
    let reseller = Api::<Reseller>::all(client.clone())
        .get_opt(&reseller_name)
        .await
        .map_err(Error::kube("get", "Reseller", reseller_name.clone()))?
        .ok_or_else(|| Error::ResellerNotFound {
            object: object.clone(),
            reseller: reseller_name.clone(),
        })?;

    let today = super::today(ctx, &reseller);
    let start = super::start_date(enduser);
    if start.is_some_and(|start| start > today) {
        let observed = Observed {
            phase: EndUserPhase::Scheduled,
            ready: ConditionStatus::False,
            reason: "Scheduled",
            message: format!(
                "hosting starts on {} ({})",
                start.map(|d| d.to_string()).unwrap_or_default(),
                reseller.spec.business_calendar.time_zone
            ),
        };
        return Ok((observed, None, None));
    }

    let plan = super::plan::hosting_plan(&reseller_name, enduser, &course)?;
    let password_secret = secrets::ensure_login_password(ctx, enduser, &object).await?;
    let config = &ctx.config;
    let ser = |what| move |source| Error::Serialize { what, source };

    let ns_api: Api<Namespace> = Api::all(client.clone());
    children::apply(
        ctx,
        &ns_api,
        &hosting::namespace(&plan).map_err(ser("namespace"))?,
    )
    .await?;
    let admins = super::admin_subjects(&reseller);
    let viewer = hosting::rbac::tenant_viewer_binding(&reseller_name, &plan.namespace, &admins)
        .map_err(ser("rolebinding"))?;
    let in_ns = |kind| children::Scope::new(client.clone(), &plan.namespace, kind);
    in_ns("RoleBinding")
        .converge::<RoleBinding>(ctx, vec![viewer])
        .await?;
    in_ns("ResourceQuota")
        .converge(
            ctx,
            vec![hosting::resource_quota(&plan).map_err(ser("quota"))?],
        )
        .await?;
    in_ns("LimitRange")
        .converge(
            ctx,
            vec![hosting::limit_range(&plan).map_err(ser("limitrange"))?],
        )
        .await?;
    in_ns("NetworkPolicy")
        .converge(
            ctx,
            hosting::network_policies(&plan, &config.network).map_err(ser("networkpolicy"))?,
        )
        .await?;
    secrets::ensure_credentials(ctx, &plan).await?;
    let mut sets = hosting::stateful_sets(&plan, config).map_err(ser("statefulset"))?;
    children::keep_volume_templates(ctx, &plan.namespace, &mut sets).await?;
    in_ns("StatefulSet").converge(ctx, sets).await?;
    in_ns("Service")
        .converge(
            ctx,
            hosting::services(&plan, config).map_err(ser("service"))?,
        )
        .await?;
    in_ns("Ingress")
        .converge(
            ctx,
            hosting::ingresses(&plan, config).map_err(ser("ingress"))?,
        )
        .await?;
    children::remove_unused_volumes(ctx, &plan).await?;

    let observed = observe(ctx, &plan).await?;
    Ok((observed, Some(plan), Some(password_secret)))
}

/// Active when every workload is ready; Suspended while suspended; Provisioning otherwise.
async fn observe(ctx: &Context, plan: &HostingPlan) -> Result<Observed> {
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &plan.namespace);
    let list = sets
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            naming::LABEL_MANAGED_BY,
            naming::MANAGED_BY
        )))
        .await
        .map_err(Error::kube("list", "StatefulSet", plan.namespace.clone()))?;
    if plan.suspended {
        return Ok(Observed {
            phase: EndUserPhase::Suspended,
            ready: ConditionStatus::False,
            reason: "Suspended",
            message: "suspended: nothing is served, all data is kept".into(),
        });
    }
    let not_ready: Vec<String> = list
        .items
        .iter()
        .filter(|s| {
            let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let status = s.status.as_ref();
            let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
            let current = status.and_then(|s| s.observed_generation) == s.metadata.generation;
            ready < want || !current
        })
        .map(|s| s.name_any())
        .collect();
    Ok(
        if not_ready.is_empty() && list.items.len() == plan.groups().len() {
            Observed {
                phase: EndUserPhase::Active,
                ready: ConditionStatus::True,
                reason: "WorkloadsReady",
                message: format!("{} workloads ready", list.items.len()),
            }
        } else {
            Observed {
                phase: EndUserPhase::Provisioning,
                ready: ConditionStatus::False,
                reason: "WorkloadsNotReady",
                message: format!("waiting for: {}", not_ready.join(", ")),
            }
        },
    )
}

async fn write_status(
    enduser: &EndUser,
    ctx: &Context,
    observed: Observed,
    hosting_namespace: Option<String>,
    password_secret: Option<String>,
) -> Result<()> {
    let previous = enduser.status.clone().unwrap_or_default();
    let now = ctx.clock.now();
    let ready = Condition::ready(
        observed.ready,
        observed.reason,
        observed.message,
        enduser.meta().generation,
        now,
    );
    let mut next = EndUserStatus {
        phase: Some(observed.phase),
        hosting_namespace: hosting_namespace.or(previous.hosting_namespace.clone()),
        password_secret: password_secret.or(previous.password_secret.clone()),
        observed_generation: enduser.meta().generation,
        conditions: merge(&previous.conditions, ready),
        ..previous.clone()
    };
    // A service found down by the monitor makes an otherwise active end user Degraded.
    if next.phase == Some(EndUserPhase::Active)
        && next
            .services
            .iter()
            .any(|s| s.state == oem_crds::enduser::HealthState::Down)
    {
        next.phase = Some(EndUserPhase::Degraded);
    }
    let api: Api<EndUser> =
        Api::namespaced(ctx.client.clone(), &enduser.namespace().unwrap_or_default());
    // `services` belongs to the monitor, `usage` to the usage reporter and `mailLocked` to the
    // incident controller; sending stale copies of them would undo their writes.
    let wrote = status::write_except(
        &api,
        enduser,
        enduser.status.as_ref(),
        &next,
        &["services", "usage", "mailLocked"],
    )
    .await?;
    if wrote && previous.phase != next.phase {
        let note = format!(
            "phase {} -> {:?}",
            previous
                .phase
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "none".into()),
            next.phase.unwrap_or(EndUserPhase::Provisioning)
        );
        ctx.event(
            &enduser.object_ref(&()),
            false,
            "PhaseChanged",
            "Reconcile",
            note,
        )
        .await;
    }
    Ok(())
}

/// Deletion: keep the data volumes when the policy says Retain, then remove the hosting
/// namespace. The finalizer is released only when that is done, so no orphan is left even if
/// the operator was down when the end user was deleted.
async fn cleanup(enduser: &EndUser, ctx: &Context) -> Result<Action> {
    let ns = enduser.namespace().unwrap_or_default();
    let Some(reseller) = naming::reseller_of_namespace(&ns) else {
        return Ok(Action::await_change());
    };
    let hosting_ns = naming::hosting_namespace(reseller, &enduser.name_any());
    let retain = enduser.spec.deletion_policy == DeletionPolicy::Retain;
    children::delete_hosting_namespace(ctx, &hosting_ns, retain).await?;
    ctx.event(
        &enduser.object_ref(&()),
        false,
        "HostingDeleted",
        "Delete",
        format!(
            "hosting namespace {hosting_ns} deleted{}",
            if retain {
                ", data volumes retained"
            } else {
                ""
            }
        ),
    )
    .await;
    Ok(Action::await_change())
}
