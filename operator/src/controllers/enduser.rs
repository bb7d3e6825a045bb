//! The EndUser controller: turns an end user into its hosting namespace and keeps it so.
//! Pipeline: dereference (course, reseller, password) → validate (`plan`) → the reseller's
//! pool (`pool`: held beyond it) → build (`hosting`) → apply (diff-before-write) → observe
//! workloads → write status if it changed.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use oem_crds::conditions::{Condition, ConditionStatus, merge};
use oem_crds::enduser::{
    DeletionPolicy, EndUser, EndUserPhase, EndUserStatus, WAITING_FOR_WORKLOADS,
};
use oem_crds::{Course, Reseller};

use super::cache::{AddressMemo, Caches};
use super::domains::DOMAIN_CONFLICT;
use super::phase::{Found, Observed, held_back, observe, phase};
use super::pool::{self, QUOTA_EXCEEDED, Resources, Share};
use super::quotas::GRANT_ANNOTATION;
use super::{children, secrets};
use crate::apply::{Live, LiveStore};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hosting::public::{self, PublicAddresses};
use crate::hosting::{self, HostingPlan, certificate};
use crate::naming;
use crate::status::owners;
use crate::view::{Feed, View};

pub const FINALIZER: &str = "hosting.oem.dev/hosting-cleanup";
const CONTROLLER: &str = "enduser";

/// The controller's context: the operator's shared one and the caches.
pub struct EndUserContext {
    ctx: Arc<Context>,
    caches: Arc<Caches>,
    /// Every end user (the controller's store): the reseller's pool is shared among them.
    end_users: Store<EndUser>,
}

/// The view's feeds the EndUser controller reads.
pub struct Triggers {
    /// Its end users.
    pub endusers: Feed<EndUser>,
    /// Courses: a changed course wakes its end users.
    pub courses: Feed<Course>,
    /// Resellers: a changed reseller wakes its end users.
    pub resellers: Feed<Reseller>,
}

/// Runs the controller until `stop`, driven by the view's feed of end users.
pub async fn run(
    ctx: Arc<Context>,
    view: View,
    triggers: Triggers,
    stop: oem_supervisor::Stop,
) -> std::result::Result<(), String> {
    let client = ctx.client.clone();
    // One watch per child kind feeds both a cache and the end users to wake: a change (a hand
    // edit, a workload turning ready, a course or reseller edited) reconciles its end users.
    let end_users = view.endusers.clone();
    let (caches, woken, drivers) = Caches::start(
        &client,
        &view,
        triggers.courses,
        triggers.resellers,
        ctx.config.certificates.issuer.is_some(),
    );
    // The caches' watches run as tasks of this part: dropped with it, and it fails when one
    // ends (or panics) while the controller runs.
    let mut watches = tokio::task::JoinSet::new();
    for driver in drivers {
        watches.spawn(driver);
    }
    let controller = async {
        // Not before the view is filled: kube's controller waits for its store's first list,
        // and a store's readiness wakes one waiter only (the view's own).
        if !view.wait_ready(&stop, "EndUser controller").await {
            return Ok(());
        }
        if !caches.ready().await {
            return Err("a watch of its caches ended before its first list".to_owned());
        }
        // The orphan sweep reads the same caches and view (`orphans.rs`).
        let sweep = super::orphans::run(ctx.clone(), view.clone(), caches.clone(), stop.clone());
        let controller = Controller::for_shared_stream(triggers.endusers, end_users.clone());
        let context = Arc::new(EndUserContext {
            ctx: ctx.clone(),
            caches: caches.clone(),
            end_users,
        });
        let reconciles = controller
            .with_config(
                kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency),
            )
            .reconcile_on(woken)
            .graceful_shutdown_on(stop.requested())
            .run(reconcile, error_policy, context)
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "enduser reconcile failed");
                }
            });
        // Both end at the stop, the controller once its reconciles in flight are done.
        let ((), swept) = tokio::join!(reconciles, sweep);
        swept
    };
    tokio::select! {
        result = controller => result,
        Some(ended) = watches.join_next() => Err(match ended {
            Ok(()) => "a watch of its caches ended".to_owned(),
            Err(error) => format!("a watch of its caches failed: {error}"),
        }),
    }
}

async fn reconcile(enduser: Arc<EndUser>, context: Arc<EndUserContext>) -> Result<Action> {
    let (ctx, caches) = (&context.ctx, &context.caches);
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = enduser.namespace().unwrap_or_default();
    let api: Api<EndUser> = Api::namespaced(ctx.client.clone(), &ns);
    let outcome = finalizer(&api, FINALIZER, enduser, |event| async {
        match event {
            Finalize::Apply(enduser) => apply(&enduser, ctx, caches, &context.end_users).await,
            Finalize::Cleanup(enduser) => cleanup(&enduser, ctx, caches).await,
        }
    })
    .await;
    super::finalized(outcome)
}

fn error_policy(enduser: Arc<EndUser>, error: &Error, context: Arc<EndUserContext>) -> Action {
    let ctx = &context.ctx;
    ctx.metrics.failed(CONTROLLER, error.metric_label());
    tracing::warn!(enduser = %enduser.name_any(), %error, "reconcile failed");
    Action::requeue(error.retry_after(ctx.config.transient_retry, ctx.config.spec_retry))
}

async fn apply(
    enduser: &EndUser,
    ctx: &Context,
    caches: &Caches,
    end_users: &Store<EndUser>,
) -> Result<Action> {
    let outcome = provision(enduser, ctx, caches, end_users).await;
    let (observed, plan_ns, password_secret) = match &outcome {
        Ok((observed, plan, secret)) => (
            Observed {
                found: observed.found,
                ready: observed.ready,
                reason: observed.reason,
                message: observed.message.clone(),
                held: observed.held.clone(),
                conflict: observed.conflict.clone(),
                dns: observed.dns.clone(),
            },
            plan.as_ref().map(|p| p.namespace.clone()),
            secret.clone(),
        ),
        Err(error) => (
            Observed {
                found: Found::Failed,
                ready: ConditionStatus::False,
                reason: error.reason(),
                message: error.to_string(),
                held: None,
                conflict: None,
                dns: None,
            },
            None,
            None,
        ),
    };
    let held = write_status(enduser, ctx, caches, observed, plan_ns, password_secret).await?;
    match outcome {
        // A start whose status is held back is looked at again when it may be said.
        Ok((_, Some(_), _)) => Ok(Action::requeue(
            held.map_or(ctx.config.resync_interval, |h| {
                h.min(ctx.config.resync_interval)
            }),
        )),
        // Scheduled: look again at the next resync (the start date is a calendar day).
        Ok((_, None, _)) => Ok(Action::requeue(ctx.config.resync_interval)),
        Err(error) => Err(error),
    }
}

type Provisioned = (Observed, Option<HostingPlan>, Option<String>);

async fn provision(
    enduser: &EndUser,
    ctx: &Context,
    caches: &Caches,
    end_users: &Store<EndUser>,
) -> Result<Provisioned> {
    let ns = enduser.namespace().unwrap_or_default();
    let object = format!("enduser {ns}/{}", enduser.name_any());
    let reseller_name = naming::reseller_of_namespace(&ns)
        .ok_or_else(|| Error::NotInResellerNamespace {
            object: object.clone(),
        })?
        .to_owned();
    let client = &ctx.client;
    let course_name = &enduser.spec.course_ref.name;
    // From the caches: their watches wake this end user when a missing one appears.
    let course = caches
        .course(&ns, course_name)
        .ok_or_else(|| Error::CourseNotFound {
            object: object.clone(),
            course: course_name.clone(),
            namespace: ns.clone(),
        })?;
    let reseller = caches
        .reseller(&reseller_name)
        .ok_or_else(|| Error::ResellerNotFound {
            object: object.clone(),
            reseller: reseller_name.clone(),
        })?;
    // The reseller's controller grants the operator its Secret access in the reseller's
    // namespace before it records the namespace in the status: an end user applied with its
    // reseller waits for that instead of being refused by the API server.
    if !reseller.is_set_up() {
        return Err(Error::ResellerNotSetUp {
            object,
            reseller: reseller_name,
        });
    }

    // Claimed before anything else, so an end user scheduled or held keeps (and releases)
    // its domains too; only the domains its claims name are served.
    let claimed =
        super::domains::ensure(client, &caches.domain_claims, enduser, ctx.clock.now()).await?;
    let conflict = Some(claimed.conflict());

    let today = super::today(ctx, &reseller);
    let start = super::start_date(enduser);
    if start.is_some_and(|start| start > today) {
        let observed = Observed {
            found: Found::Scheduled,
            ready: ConditionStatus::False,
            reason: "Scheduled",
            message: format!(
                "hosting starts on {} ({})",
                start.map(|d| d.to_string()).unwrap_or_default(),
                reseller.spec.business_calendar.time_zone
            ),
            held: Some(None),
            conflict,
            dns: None,
        };
        return Ok((observed, None, None));
    }

    let mut plan = super::plan::hosting_plan(
        &reseller_name,
        enduser,
        &course,
        &ctx.config.security_policy,
    )?;
    // The reseller's pool: beyond it, a new end user is not provisioned at all and a raised
    // course is not applied (what exists is left as it is, never taken back).
    let held = match pool::share_of(enduser, &reseller, caches, end_users) {
        Share::Full => None,
        Share::Held { keep: None, why } => {
            let observed = Observed {
                found: Found::Held,
                ready: ConditionStatus::False,
                reason: QUOTA_EXCEEDED,
                message: why.clone(),
                held: Some(Some(why)),
                conflict,
                dns: None,
            };
            return Ok((observed, None, None));
        }
        Share::Held {
            keep: Some(keep),
            why,
        } => {
            plan.cpu = keep.cpu;
            plan.memory = keep.memory;
            plan.storage = keep.storage;
            Some(why)
        }
    };
    plan.domains = claimed.served;
    let password_secret = secrets::ensure_login_password(ctx, caches, enduser, &object).await?;
    let config = &ctx.config;
    let hosting_ns = plan.namespace.as_str();

    // Never adopt or write into a namespace that is not this end user's.
    children::check_namespace_owner(caches, &plan, &object)?;
    let namespace = hosting::namespace(&plan);
    caches
        .applier
        .ensure(
            ctx,
            &Api::<Namespace>::all(client.clone()),
            &namespace,
            caches.namespaces.live(None, hosting_ns),
        )
        .await?;
    let admins = super::admin_subjects(&reseller);
    let viewer = hosting::rbac::tenant_viewer_binding(&reseller_name, hosting_ns, &admins);
    // The operator's own Secret access in the namespace, before `credentials` is written.
    let own = hosting::rbac::operator_secrets_binding(&reseller_name, hosting_ns, &ctx.identity);
    caches
        .applier
        .converge(ctx, &caches.role_bindings, hosting_ns, vec![viewer, own])
        .await?;
    let hosts = certificate::Hosts {
        shared_exchanger: config.front_door.mail_exchanger.is_some(),
        public_ftp: config.network.load_balancer.enabled,
    };
    let mut quota = hosting::resource_quota(&plan);
    certificate::make_room(&mut quota, &plan, &config.certificates, hosts);
    public::allow(&mut quota, &plan, &config.network.load_balancer);
    let granted = Resources {
        cpu: plan.cpu.clone(),
        memory: plan.memory.clone(),
        storage: plan.storage.clone(),
    };
    quota
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(GRANT_ANNOTATION.to_owned(), granted.annotation());
    caches
        .applier
        .converge(ctx, &caches.quotas, hosting_ns, vec![quota])
        .await?;
    let limits = hosting::limit_range(&plan);
    caches
        .applier
        .converge(ctx, &caches.limit_ranges, hosting_ns, vec![limits])
        .await?;
    let policies = hosting::network_policies(&plan, &config.network, config.mail.relay);
    caches
        .applier
        .converge(ctx, &caches.network_policies, hosting_ns, policies)
        .await?;
    plan.credentials_version = secrets::ensure_credentials(ctx, caches, &plan).await?;
    let dkim_public = secrets::ensure_dkim(ctx, caches, &plan).await?;
    if let Some(store) = &caches.certificates {
        let wanted = certificate::certificates(&plan, &config.certificates, hosts);
        caches
            .applier
            .converge(ctx, store, hosting_ns, wanted)
            .await?;
    }
    plan.tls_version = match caches
        .tls_secrets
        .live(Some(&plan.namespace), crate::hosting::TLS_SECRET)
    {
        Live::Meta(version) => Some(version),
        _ => None,
    };
    let mut sets = hosting::stateful_sets(&plan, config);
    children::keep_volume_templates(ctx, caches, hosting_ns, &mut sets).await?;
    caches
        .applier
        .converge(ctx, &caches.stateful_sets, hosting_ns, sets)
        .await?;
    let mut services = hosting::services(&plan, config);
    services.extend(public::services(&plan, &config.network.load_balancer));
    caches
        .applier
        .converge(ctx, &caches.services, hosting_ns, services)
        .await?;
    let ingresses = hosting::ingresses(&plan, config);
    caches
        .applier
        .converge(ctx, &caches.ingresses, hosting_ns, ingresses)
        .await?;
    children::remove_unused_volumes(ctx, caches, &plan).await?;

    let mut observed = observe(caches, &plan);
    observed.held = Some(held);
    observed.conflict = conflict;
    let public = public_addresses(ctx, caches, &plan).await?;
    observed.dns = Some(hosting::dns::records(
        &plan,
        &config.front_door,
        &config.mail,
        dkim_public.as_deref(),
        public.as_ref(),
    ));
    Ok((observed, Some(plan), Some(password_secret)))
}

/// The addresses the load balancer gave the end user's public Services (`None`: no load
/// balancer): each read from the Service's status once per version of it in the cache.
async fn public_addresses(
    ctx: &Context,
    caches: &Caches,
    plan: &HostingPlan,
) -> Result<Option<PublicAddresses>> {
    if !ctx.config.network.load_balancer.enabled {
        return Ok(None);
    }
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &plan.namespace);
    let mut found = PublicAddresses::default();
    for (name, slot) in [
        (public::MAIL_PUBLIC, &mut found.mail),
        (public::FTP_PUBLIC, &mut found.ftp),
    ] {
        let Live::Meta(version) = caches.services.live(Some(&plan.namespace), name) else {
            continue;
        };
        let key = (plan.namespace.clone(), name.to_owned());
        let known = memo(caches).get(&key).cloned();
        *slot = match known {
            Some((seen, ips)) if seen == version => ips,
            _ => {
                let service = api.get_opt(name).await.map_err(Error::kube(
                    "get",
                    "child",
                    format!("Service/{name}"),
                ))?;
                let ips = service.as_ref().map(public::assigned).unwrap_or_default();
                memo(caches).insert(key, (version, ips.clone()));
                ips
            }
        };
    }
    Ok(Some(found))
}

fn memo(caches: &Caches) -> std::sync::MutexGuard<'_, AddressMemo> {
    caches
        .public_addresses
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn forget_public_addresses(caches: &Caches, namespace: &str) {
    memo(caches).retain(|(ns, _), _| ns != namespace);
}

/// Merges the `Ready` condition, keeping its transition time while its status stays the same,
/// except that waiting for the workloads starts a time of its own: an end user scheduled,
/// suspended or refused (Ready False for other reasons) that begins to wait for its workloads
/// has waited since now, not since its earlier state began.
fn merge_ready(previous: &[Condition], ready: Condition) -> Vec<Condition> {
    let waits_anew = ready.reason == WAITING_FOR_WORKLOADS
        && oem_crds::conditions::find(previous, &ready.type_)
            .is_some_and(|c| c.reason != WAITING_FOR_WORKLOADS);
    if !waits_anew {
        return merge(previous, ready);
    }
    let mut merged = previous.to_vec();
    if let Some(existing) = merged.iter_mut().find(|c| c.type_ == ready.type_) {
        *existing = ready;
    }
    merged
}

/// Writes the status when it changed; returns how long a write was held back instead
/// ([`held_back`]: a start still waiting for its workloads).
async fn write_status(
    enduser: &EndUser,
    ctx: &Context,
    caches: &Caches,
    observed: Observed,
    hosting_namespace: Option<String>,
    password_secret: Option<String>,
) -> Result<Option<std::time::Duration>> {
    let previous = enduser.status.clone().unwrap_or_default();
    let now = ctx.clock.now();
    let generation = enduser.meta().generation;
    let ready = Condition::ready(
        observed.ready,
        observed.reason,
        observed.message,
        generation,
        now,
    );
    let mut conditions = merge_ready(&previous.conditions, ready);
    // Conditions that hold while the operator says why: the reseller's pool, another end
    // user's domain claims.
    let tracked = [
        (QUOTA_EXCEEDED, "ResellerPoolExhausted", &observed.held),
        (
            DOMAIN_CONFLICT,
            "ClaimedByAnotherEndUser",
            &observed.conflict,
        ),
    ];
    let mut told = Vec::new();
    for (type_, reason, why) in tracked {
        let was =
            oem_crds::conditions::find(&previous.conditions, type_).map(|c| c.message.clone());
        match why {
            Some(Some(why)) => {
                let condition = Condition::new(
                    type_,
                    ConditionStatus::True,
                    reason,
                    why.clone(),
                    generation,
                    now,
                );
                conditions = merge(&conditions, condition);
                // A Warning event when the reason is new, not on every resync.
                if was.as_ref() != Some(why) {
                    told.push((type_, why.clone()));
                }
            }
            Some(None) => conditions.retain(|c| c.type_ != type_),
            None => {}
        }
    }
    // A service found down by the monitor makes an otherwise active end user Degraded.
    let service_down = previous
        .services
        .iter()
        .any(|s| s.state == oem_crds::enduser::HealthState::Down);
    let next = EndUserStatus {
        phase: Some(phase(observed.found, previous.phase, service_down)),
        hosting_namespace: hosting_namespace.or(previous.hosting_namespace.clone()),
        password_secret: password_secret.or(previous.password_secret.clone()),
        domain_count: Some(i32::try_from(enduser.spec.domains.len()).unwrap_or(i32::MAX)),
        dns: observed.dns.unwrap_or(previous.dns.clone()),
        observed_generation: enduser.meta().generation,
        conditions,
        ..previous.clone()
    };
    // When its workloads were made: the latest of its sets (none seen yet: made just now).
    let made = next.hosting_namespace.as_deref().map(|ns| {
        let sets = caches.stateful_sets.in_namespace(ns);
        sets.iter()
            .filter_map(|(_, set)| set.created)
            .max()
            .unwrap_or(now)
    });
    if let Some(held) = held_back(&previous, &next, made, now) {
        return Ok(Some(held));
    }
    let wrote = write_own_status(ctx, caches, enduser, &next).await?;
    if wrote {
        for (type_, why) in told {
            ctx.event(&enduser.object_ref(&()), true, type_, "Reconcile", why)
                .await;
        }
    }
    // Not for a new end user's first phase when it is Provisioning: its creation says as much
    // (an event each would cost every new end user a write for nothing).
    let first_provisioning =
        previous.phase.is_none() && next.phase == Some(EndUserPhase::Provisioning);
    if wrote && previous.phase != next.phase && !first_provisioning {
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
    Ok(None)
}

/// The record of the status last written on an end user at the version it was read at
/// ([`Applier::checked`](crate::apply::Applier::checked)).
const STATUS_WRITTEN: &str = "EndUserStatus";

/// Writes the fields of `status` this controller owns, when they changed. Not again when the
/// object is still at the version this controller wrote the same status over: a reconcile
/// that ran before the watch brought the write back (another change woke it meanwhile) saw
/// the old status, and wrote the same one twice (one write an end user, twice, while
/// provisioning).
async fn write_own_status(
    ctx: &Context,
    caches: &Caches,
    enduser: &EndUser,
    status: &EndUserStatus,
) -> Result<bool> {
    let ns = enduser.namespace().unwrap_or_default();
    let name = enduser.name_any();
    let read_at = enduser.resource_version().unwrap_or_default();
    let wanted = crate::apply::fingerprint(&owners::ENDUSER.pick(status).map_err(|source| {
        Error::Serialize {
            what: "end user status",
            source,
        }
    })?)?;
    if caches
        .applier
        .checked(STATUS_WRITTEN, &ns, &name, &read_at, wanted)
    {
        return Ok(false);
    }
    let api: Api<EndUser> = Api::namespaced(ctx.client.clone(), &ns);
    let written = owners::ENDUSER
        .write(&api, &name, enduser.status.as_ref(), status)
        .await
        .map(|written| written.is_some())
        .map_err(Error::kube("write status of", "enduser", name.clone()))?;
    if written {
        // Kept until the next write, or until the end user is gone: one record an end user.
        caches
            .applier
            .record_check(STATUS_WRITTEN, &ns, &name, Some(read_at), wanted);
    }
    Ok(written)
}

/// Deletion: keep the data volumes when the policy says Retain, then remove the hosting
/// namespace. The finalizer is released only when that is done, so no orphan is left even if
/// the operator was down when the end user was deleted. Only a namespace whose labels name
/// this end user is deleted (under either of its names, see `naming::HostingOwner`); one that
/// is someone else's is left alone, with a warning event.
async fn cleanup(enduser: &EndUser, ctx: &Context, caches: &Caches) -> Result<Action> {
    let ns = enduser.namespace().unwrap_or_default();
    let Some(reseller) = naming::reseller_of_namespace(&ns) else {
        return Ok(Action::await_change());
    };
    let owner = naming::HostingOwner {
        reseller: reseller.to_owned(),
        enduser_namespace: ns.clone(),
        enduser: enduser.name_any(),
    };
    let retain = enduser.spec.deletion_policy == DeletionPolicy::Retain;
    // Said first, so `kubectl get endusers` shows why it is still there while its hosting goes.
    let previous = enduser.status.clone().unwrap_or_default();
    let terminating = EndUserStatus {
        phase: Some(phase(Found::Deleting, previous.phase, false)),
        ..previous
    };
    write_own_status(ctx, caches, enduser, &terminating).await?;
    super::domains::release_all(&ctx.client, &ns, &enduser.name_any()).await?;
    for hosting_ns in owner.namespace_names() {
        let deletion =
            children::delete_owned_hosting_namespace(ctx, caches, &hosting_ns, &owner, retain)
                .await?;
        let (warning, reason, note) = match deletion {
            children::Deletion::Absent => continue,
            children::Deletion::Deleted => {
                caches.applier.forget_namespace(&hosting_ns);
                forget_public_addresses(caches, &hosting_ns);
                (
                    false,
                    "HostingDeleted",
                    format!(
                        "hosting namespace {hosting_ns} deleted{}",
                        if retain {
                            ", data volumes retained"
                        } else {
                            ""
                        }
                    ),
                )
            }
            children::Deletion::NotOwned => (
                true,
                "HostingNamespaceConflict",
                format!(
                    "namespace {hosting_ns} is not labelled as this end user's hosting namespace; left in place"
                ),
            ),
        };
        ctx.event(&enduser.object_ref(&()), warning, reason, "Delete", note)
            .await;
    }
    caches
        .applier
        .record_check(STATUS_WRITTEN, &ns, &enduser.name_any(), None, 0);
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::cache::tests::{context, detached, serving};

    /// A reconcile that still sees the object at the version it wrote the same status over
    /// (the watch has not brought the write back) sends nothing; a newer version is compared
    /// as ever.
    #[tokio::test]
    async fn the_same_status_is_not_written_twice_over_one_version() {
        let (ctx, mut handle) = context();
        let caches = detached(Vec::new());
        let enduser = |version: &str, phase: Option<&str>| -> EndUser {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "EndUser",
                "metadata": {"name": "alice", "namespace": "reseller-acme",
                    "resourceVersion": version},
                "spec": {"loginId": "alice", "contractName": "A", "contactEmail": "a@example.com",
                    "courseRef": {"name": "c"}, "contractDate": "2026-01-01",
                    "startDate": "2026-01-01"},
                "status": phase.map(|p| serde_json::json!({"phase": p}))
            }))
            .unwrap()
        };
        let active = EndUserStatus {
            phase: Some(EndUserPhase::Active),
            ..EndUserStatus::default()
        };
        let stored = serde_json::to_value(enduser("6", Some("Active"))).unwrap();
        let old = enduser("5", None);
        let first = serving(
            &mut handle,
            write_own_status(&ctx, &caches, &old, &active),
            vec![("PATCH", stored)],
        )
        .await;
        assert!(first.unwrap(), "written");
        let again = serving(
            &mut handle,
            write_own_status(&ctx, &caches, &old, &active),
            vec![],
        )
        .await;
        assert!(
            !again.unwrap(),
            "the same status over the same version: nothing sent"
        );
        // The watch brought it back: nothing to write, as the status says it already.
        let caught_up = serving(
            &mut handle,
            write_own_status(&ctx, &caches, &enduser("6", Some("Active")), &active),
            vec![],
        )
        .await;
        assert!(!caught_up.unwrap());
        // Someone put another phase back at a newer version: written again.
        let reverted = enduser("7", Some("Provisioning"));
        let stored = serde_json::to_value(enduser("8", Some("Active"))).unwrap();
        let fixed = serving(
            &mut handle,
            write_own_status(&ctx, &caches, &reverted, &active),
            vec![("PATCH", stored)],
        )
        .await;
        assert!(fixed.unwrap());
    }

    #[test]
    fn waiting_for_workloads_counts_from_when_the_wait_began() {
        let at = |s: i64| jiff::Timestamp::from_second(s).unwrap();
        let ready = |status, reason: &str, t| Condition::ready(status, reason, "", Some(1), at(t));
        let other = Condition::new("Other", ConditionStatus::True, "Fine", "", None, at(1));
        let time = |c: &[Condition]| {
            oem_crds::conditions::find(c, "Ready")
                .map(|c| c.last_transition_time.0)
                .unwrap()
        };
        // Scheduled (or suspended) for long, then waiting: the wait starts now; the order of
        // the conditions is kept.
        let scheduled = vec![
            ready(ConditionStatus::False, "Scheduled", 100),
            other.clone(),
        ];
        let waiting = merge_ready(
            &scheduled,
            ready(ConditionStatus::False, WAITING_FOR_WORKLOADS, 5000),
        );
        assert_eq!(time(&waiting), at(5000));
        assert_eq!(waiting[1], other);
        // Still waiting later: the time the wait began is kept.
        let still = merge_ready(
            &waiting,
            ready(ConditionStatus::False, WAITING_FOR_WORKLOADS, 9000),
        );
        assert_eq!(time(&still), at(5000));
        // Any other change keeps the usual rule (time kept while the status stays False).
        let refused = merge_ready(
            &still,
            ready(ConditionStatus::False, "CourseNotFound", 9500),
        );
        assert_eq!(time(&refused), at(5000));
        // A first condition is simply added.
        let first = merge_ready(&[], ready(ConditionStatus::False, WAITING_FOR_WORKLOADS, 7));
        assert_eq!(time(&first), at(7));
    }
}
