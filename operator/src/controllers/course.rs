//! The Course controller: status counts the end users on the course and says whether the
//! course is usable (its runtime versions allowed by the security policy).

use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use oem_crds::conditions::{Condition, ConditionStatus, merge};
use oem_crds::course::{Course, CourseStatus};
use oem_crds::enduser::EndUser;

use super::status;
use crate::context::Context;
use crate::error::{Error, Result};

const CONTROLLER: &str = "course";

pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    Controller::new(
        Api::<Course>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<EndUser>::all(client.clone()),
        watcher::Config::default(),
        |eu| {
            eu.namespace()
                .map(|ns| ObjectRef::<Course>::new(&eu.spec.course_ref.name).within(&ns))
        },
    )
    // End users come and change in bursts (a GitOps sync, a provisioning wave); counting
    // them once the burst settles saves a reconcile per change.
    .with_config(kube::runtime::controller::Config::default().debounce(super::COUNT_DEBOUNCE))
    .shutdown_on_signal()
    .run(reconcile, error_policy, ctx)
    .for_each(|_| async {})
    .await;
}

fn error_policy(course: Arc<Course>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(CONTROLLER, error.metric_label());
    tracing::warn!(course = %course.name_any(), %error, "reconcile failed");
    Action::requeue(error.retry_after(ctx.config.transient_retry, ctx.config.spec_retry))
}

/// Why the security policy refuses the course, if it does.
pub fn policy_violation(course: &Course, allowed_php: &[String]) -> Option<String> {
    let web = course.spec.services.web.as_ref()?;
    (!allowed_php.contains(&web.php_version)).then(|| {
        format!(
            "spec.services.web.phpVersion {} is not allowed by the security policy (allowed: {})",
            web.php_version,
            allowed_php.join(", ")
        )
    })
}

async fn reconcile(course: Arc<Course>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = course.namespace().unwrap_or_default();
    let endusers = Api::<EndUser>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("list", "EndUser", ns.clone()))?;
    let on_course = endusers
        .items
        .iter()
        .filter(|eu| eu.spec.course_ref.name == course.name_any())
        .count();
    let ready = match policy_violation(&course, &ctx.config.security_policy.php_versions) {
        Some(message) => Condition::ready(
            ConditionStatus::False,
            "RuntimeNotAllowed",
            message,
            course.meta().generation,
            ctx.clock.now(),
        ),
        None => Condition::ready(
            ConditionStatus::True,
            "Valid",
            "the course's services are allowed",
            course.meta().generation,
            ctx.clock.now(),
        ),
    };
    let previous = course.status.clone().unwrap_or_default();
    let next = CourseStatus {
        end_users: Some(i32::try_from(on_course).unwrap_or(i32::MAX)),
        services: Some(course.spec.services.enabled().join(",")),
        observed_generation: course.meta().generation,
        conditions: merge(&previous.conditions, ready),
    };
    let api: Api<Course> = Api::namespaced(ctx.client.clone(), &ns);
    status::write(&api, course.as_ref(), course.status.as_ref(), &next).await?;
    Ok(Action::requeue(ctx.config.resync_interval))
}
