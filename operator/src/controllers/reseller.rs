//! The Reseller controller: the reseller's namespace and its admins' access; status counts its
//! end users. A reseller that still has end users cannot be deleted: the finalizer stays and
//! the Ready condition says why.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use oem_crds::conditions::{Condition, ConditionStatus, merge};
use oem_crds::enduser::EndUser;
use oem_crds::reseller::{Reseller, ResellerStatus};

use crate::apply::{Applier, Listed, Live};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hosting::rbac;
use crate::naming;
use crate::status::owners;
use crate::view::{Feed, SpecChanges, View};

pub const FINALIZER: &str = "hosting.oem.dev/reseller-cleanup";
const CONTROLLER: &str = "reseller";

/// What a reconcile reads: the context, and the view's end users to count.
struct ResellerContext {
    ctx: Arc<Context>,
    view: View,
    /// Writes its children (namespace, bindings, roles, ServiceAccount).
    applier: Applier,
}

/// Runs the controller until `stop`, driven by the view's shared streams of resellers and of
/// end users (a reseller's count changes with them).
pub async fn run(
    ctx: Arc<Context>,
    view: View,
    resellers: Feed<Reseller>,
    endusers: Feed<EndUser>,
    stop: oem_supervisor::Stop,
) -> std::result::Result<(), String> {
    // Not before the view is filled: kube's controller waits for its store's first list, and
    // a store's readiness wakes one waiter only (the view's own).
    if !view.wait_ready(&stop, "Reseller controller").await {
        return Ok(());
    }
    let store = view.resellers.clone();
    let context = Arc::new(ResellerContext {
        ctx,
        view,
        applier: Applier::default(),
    });
    // Only an end user that comes or goes changes the count, not its status writes.
    let endusers = SpecChanges::of(endusers, context.view.endusers.clone());
    Controller::for_shared_stream(resellers, store)
        .watches_shared_stream(endusers, |eu| {
            eu.namespace()
                .as_deref()
                .and_then(naming::reseller_of_namespace)
                .map(ObjectRef::<Reseller>::new)
        })
        // End users come and change in bursts (a GitOps sync, a provisioning wave); counting
        // them once the burst settles saves a reconcile per change.
        .with_config(kube::runtime::controller::Config::default().debounce(super::COUNT_DEBOUNCE))
        .graceful_shutdown_on(stop.requested())
        .run(reconcile, error_policy, context)
        .for_each(|_| async {})
        .await;
    Ok(())
}

async fn reconcile(reseller: Arc<Reseller>, context: Arc<ResellerContext>) -> Result<Action> {
    let ctx = &context.ctx;
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let api: Api<Reseller> = Api::all(ctx.client.clone());
    let outcome = finalizer(&api, FINALIZER, reseller, |event| async {
        match event {
            Finalize::Apply(reseller) => {
                apply(&reseller, ctx, &context.view, &context.applier).await
            }
            Finalize::Cleanup(reseller) => cleanup(&reseller, ctx).await,
        }
    })
    .await;
    super::finalized(outcome)
}

fn error_policy(reseller: Arc<Reseller>, error: &Error, context: Arc<ResellerContext>) -> Action {
    let ctx = &context.ctx;
    ctx.metrics.failed(CONTROLLER, error.metric_label());
    tracing::warn!(reseller = %reseller.name_any(), %error, "reconcile failed");
    Action::requeue(error.retry_after(ctx.config.transient_retry, ctx.config.spec_retry))
}

/// The end users in `namespace` as the view holds them: what the status shows (the view's
/// stream wakes the reseller when one comes or goes).
fn end_users_seen(view: &View, namespace: &str) -> i32 {
    let count = view
        .endusers
        .state()
        .iter()
        .filter(|eu| eu.namespace().as_deref() == Some(namespace))
        .count();
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// The end users in `namespace` as the API server has them now: what a deletion waits for
/// (one just created may not be in the view yet).
async fn count_end_users(ctx: &Context, namespace: &str) -> Result<i32> {
    let list = Api::<EndUser>::namespaced(ctx.client.clone(), namespace)
        .list_metadata(&ListParams::default())
        .await
        .map_err(Error::kube("list", "EndUser", namespace))?;
    Ok(i32::try_from(list.items.len()).unwrap_or(i32::MAX))
}

async fn apply(
    reseller: &Reseller,
    ctx: &Context,
    view: &View,
    applier: &Applier,
) -> Result<Action> {
    let name = reseller.name_any();
    let namespace = naming::reseller_namespace(&name);
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    applier
        .ensure(
            ctx,
            &ns_api,
            &rbac::reseller_namespace(&name),
            Live::Unknown,
        )
        .await?;
    let admins = super::admin_subjects(reseller);
    // The operator's own Secret access here first: end users' password Secrets and webhook
    // keys are read, and generated logins written, only through it.
    let mut bindings = vec![rbac::operator_secrets_binding(
        &name,
        &namespace,
        &ctx.identity,
    )];
    // The webhooks' get of password Secrets (their key names), when the configuration names
    // their ServiceAccount; converged with the others, so emptying it removes the binding.
    if let Some(webhooks) = &ctx.config.webhooks_service_account {
        bindings.push(rbac::webhooks_secrets_binding(&name, &webhooks.subject()));
    }
    // The ServiceAccount its panel acts as (one of `admins`), and the panel's right to
    // impersonate it here, when the configuration names the panel's ServiceAccount.
    applier
        .ensure(
            ctx,
            &Api::<ServiceAccount>::namespaced(ctx.client.clone(), &namespace),
            &rbac::reseller_panel_account(&name),
            Live::Unknown,
        )
        .await?;
    if let Some(panel) = &ctx.config.panel_service_account {
        bindings.push(rbac::panel_impersonation_binding(&name, &panel.subject()));
    }
    if !admins.is_empty() {
        bindings.push(rbac::reseller_admin_binding(&name, &admins));
    }
    let present = Listed::managed::<RoleBinding>(&ctx.client, &namespace).await?;
    applier
        .converge(ctx, &present, &namespace, bindings)
        .await?;
    // Its read of its own (cluster-scoped) Reseller, for `kubectl get reseller <name>`.
    let uid = reseller.uid().unwrap_or_default();
    applier
        .ensure(
            ctx,
            &Api::<ClusterRole>::all(ctx.client.clone()),
            &rbac::reseller_self_role(&name, &uid),
            Live::Unknown,
        )
        .await?;
    applier
        .ensure(
            ctx,
            &Api::<ClusterRoleBinding>::all(ctx.client.clone()),
            &rbac::reseller_self_binding(&name, &uid, &admins),
            Live::Unknown,
        )
        .await?;
    // Its panel logins, in the namespace of the panel's ServiceAccount (the provider's),
    // where the operator needs its Secret access.
    if let Some(panel) = &ctx.config.panel_service_account {
        applier
            .ensure(
                ctx,
                &Api::<RoleBinding>::namespaced(ctx.client.clone(), &panel.namespace),
                &rbac::panel_accounts_binding(&panel.namespace, &ctx.identity),
                Live::Unknown,
            )
            .await?;
        super::secrets::ensure_panel_accounts(ctx, reseller, &panel.namespace).await?;
    }
    let end_users = end_users_seen(view, &namespace);
    let ready = Condition::ready(
        ConditionStatus::True,
        "NamespaceReady",
        format!("namespace {namespace} and admin access in place"),
        reseller.meta().generation,
        ctx.clock.now(),
    );
    write_status(reseller, ctx, &namespace, end_users, ready).await?;
    Ok(Action::requeue(ctx.config.resync_interval))
}

async fn write_status(
    reseller: &Reseller,
    ctx: &Context,
    namespace: &str,
    end_users: i32,
    ready: Condition,
) -> Result<()> {
    let previous = reseller.status.clone().unwrap_or_default();
    let next = ResellerStatus {
        namespace: Some(namespace.to_owned()),
        end_users: Some(end_users),
        observed_generation: reseller.meta().generation,
        conditions: merge(&previous.conditions, ready),
        ..previous
    };
    let api: Api<Reseller> = Api::all(ctx.client.clone());
    owners::RESELLER
        .write(&api, &reseller.name_any(), reseller.status.as_ref(), &next)
        .await
        .map_err(Error::kube(
            "write status of",
            "reseller",
            reseller.name_any(),
        ))?;
    Ok(())
}

async fn cleanup(reseller: &Reseller, ctx: &Context) -> Result<Action> {
    let name = reseller.name_any();
    let namespace = naming::reseller_namespace(&name);
    let remaining = count_end_users(ctx, &namespace).await?;
    if remaining > 0 {
        let message =
            format!("{remaining} end users remain in {namespace}; delete them before the reseller");
        let ready = Condition::ready(
            ConditionStatus::False,
            "EndUsersRemain",
            message.clone(),
            reseller.meta().generation,
            ctx.clock.now(),
        );
        write_status(reseller, ctx, &namespace, remaining, ready).await?;
        ctx.event(
            &reseller.object_ref(&()),
            true,
            "DeletionBlocked",
            "Delete",
            message,
        )
        .await;
        return Err(Error::EndUsersRemain {
            reseller: name,
            count: remaining,
        });
    }
    match Api::<Namespace>::all(ctx.client.clone())
        .delete(&namespace, &DeleteParams::background())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(Error::kube("delete", "Namespace", namespace)(e)),
    }
    Ok(Action::await_change())
}
