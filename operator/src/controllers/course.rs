//! The Course controller: status counts the end users on the course and says whether the
//! course is usable (its runtime versions allowed by the security policy).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use oem_crds::conditions::{Condition, ConditionStatus, merge};
use oem_crds::course::{Course, CourseStatus, DatabaseEngine};
use oem_crds::enduser::EndUser;
use oem_crds::policy::{SecurityPolicy, Unservable};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::status::owners;
use crate::view::{Feed, SpecChanges, View};

const CONTROLLER: &str = "course";

/// What a reconcile reads: the context, and the view's end users to count.
struct CourseContext {
    ctx: Arc<Context>,
    view: View,
}

/// Runs the controller until `stop`, driven by the view's shared streams of courses and of
/// end users (a course's count changes with them).
pub async fn run(
    ctx: Arc<Context>,
    view: View,
    courses: Feed<Course>,
    endusers: Feed<EndUser>,
    stop: oem_supervisor::Stop,
) -> std::result::Result<(), String> {
    // Not before the view is filled: kube's controller waits for its store's first list, and
    // a store's readiness wakes one waiter only (the view's own).
    if !view.wait_ready(&stop, "Course controller").await {
        return Ok(());
    }
    let store = view.courses.clone();
    // Only an end user that comes, goes or changes course changes a count, not its status
    // writes. A move wakes the course it left as well as the one it joined.
    let endusers = SpecChanges::of(endusers, view.endusers.clone());
    let moves = CourseMoves {
        endusers: view.endusers.clone(),
        on: Mutex::default(),
    };
    let context = Arc::new(CourseContext { ctx, view });
    Controller::for_shared_stream(courses, store)
        .watches_shared_stream(endusers, move |eu| moves.courses_of(&eu))
        // End users come and change in bursts (a GitOps sync, a provisioning wave); counting
        // them once the burst settles saves a reconcile per change.
        .with_config(kube::runtime::controller::Config::default().debounce(super::COUNT_DEBOUNCE))
        .graceful_shutdown_on(stop.requested())
        .run(reconcile, error_policy, context)
        .for_each(|_| async {})
        .await;
    Ok(())
}

/// The course each end user was last seen on, so that a move wakes both courses.
struct CourseMoves {
    endusers: Store<EndUser>,
    /// (namespace, end user) → course; an end user gone from the view is forgotten.
    on: Mutex<HashMap<(String, String), String>>,
}

impl CourseMoves {
    /// The courses whose count `eu`'s change may have changed: the one it names, and the one
    /// it named before if it moved.
    fn courses_of(&self, eu: &EndUser) -> Vec<ObjectRef<Course>> {
        let Some(ns) = eu.namespace() else {
            return Vec::new();
        };
        let now = &eu.spec.course_ref.name;
        let key = (ns.clone(), eu.name_any());
        let gone = self.endusers.get(&ObjectRef::from_obj(eu)).is_none();
        let before = match self.on.lock() {
            Ok(mut on) if gone => on.remove(&key),
            Ok(mut on) => on.insert(key, now.clone()),
            // Poisoned: wake the one it names; a resync corrects the other count.
            Err(_) => None,
        };
        before
            .filter(|b| b != now)
            .into_iter()
            .chain([now.clone()])
            .map(|course| ObjectRef::new(&course).within(&ns))
            .collect()
    }
}

fn error_policy(course: Arc<Course>, error: &Error, context: Arc<CourseContext>) -> Action {
    let ctx = &context.ctx;
    ctx.metrics.failed(CONTROLLER, error.metric_label());
    tracing::warn!(course = %course.name_any(), %error, "reconcile failed");
    Action::requeue(error.retry_after(ctx.config.transient_retry, ctx.config.spec_retry))
}

/// Why the course cannot be served, if it cannot: a runtime version the security policy does
/// not list, or lists without an image. (Past end of life is the webhooks' warning: courses
/// already on such a version keep running until the provider migrates them.) Returns the
/// condition's reason and message.
pub fn policy_violation(
    course: &Course,
    policy: &SecurityPolicy,
) -> Option<(&'static str, String)> {
    let services = &course.spec.services;
    let mut runtimes = Vec::new();
    if let Some(web) = &services.web {
        runtimes.push((
            "spec.services.web.phpVersion",
            format!("PHP {}", web.php_version),
            policy.php_runtime(&web.php_version),
        ));
    }
    if let Some(db) = &services.database {
        let engine = match db.engine {
            DatabaseEngine::Mariadb => "MariaDB",
            DatabaseEngine::Postgresql => "PostgreSQL",
        };
        let version = db
            .version
            .as_deref()
            .or_else(|| policy.default_database(db.engine));
        runtimes.push((
            "spec.services.database.version",
            format!(
                "{engine} {}",
                version.unwrap_or("(no version with an image)")
            ),
            policy.database_runtime(db.engine, db.version.as_deref()),
        ));
    }
    runtimes
        .into_iter()
        .find_map(|(field, what, runtime)| match runtime.err()? {
            Unservable::NotListed => Some((
                "RuntimeNotAllowed",
                format!("{field}: {what} is not allowed by the security policy"),
            )),
            Unservable::NoImage => Some((
                "NoImage",
                format!(
                    "{field}: {what} has no image in the security policy, so it cannot be served"
                ),
            )),
        })
}

async fn reconcile(course: Arc<Course>, context: Arc<CourseContext>) -> Result<Action> {
    let ctx = &context.ctx;
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = course.namespace().unwrap_or_default();
    // From the view: its shared stream of end users wakes this course when one comes, goes or
    // moves, so the count is read, never listed.
    let on_course = context
        .view
        .endusers
        .state()
        .iter()
        .filter(|eu| {
            eu.namespace().as_deref() == Some(ns.as_str())
                && eu.spec.course_ref.name == course.name_any()
        })
        .count();
    let ready = match policy_violation(&course, &ctx.config.security_policy) {
        Some((reason, message)) => Condition::ready(
            ConditionStatus::False,
            reason,
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
    owners::COURSE
        .write(&api, &course.name_any(), course.status.as_ref(), &next)
        .await
        .map_err(Error::kube("write status of", "course", course.name_any()))?;
    Ok(Action::requeue(ctx.config.resync_interval))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oem_crds::policy::RuntimeVersion;

    fn course(services: serde_json::Value) -> Course {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Course",
            "metadata": {"name": "basic", "namespace": "reseller-acme"},
            "spec": {
                "displayName": "basic",
                "resources": {"cpu": "1", "memory": "1Gi", "storage": "10Gi"},
                "services": services
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_course_whose_versions_have_images_is_servable() {
        let c = course(
            serde_json::json!({"web": {"phpVersion": "8.4"}, "database": {"engine": "postgresql"}}),
        );
        assert_eq!(policy_violation(&c, &SecurityPolicy::builtin()), None);
    }

    #[test]
    fn a_php_version_the_policy_does_not_list_is_not_allowed() {
        let c = course(serde_json::json!({"web": {"phpVersion": "7.4"}}));
        let (reason, message) = policy_violation(&c, &SecurityPolicy::builtin()).unwrap();
        assert_eq!(reason, "RuntimeNotAllowed");
        assert_eq!(
            message,
            "spec.services.web.phpVersion: PHP 7.4 is not allowed by the security policy"
        );
    }

    #[test]
    fn a_version_without_an_image_makes_the_course_not_ready_with_that_reason() {
        let mut policy = SecurityPolicy::builtin();
        policy.php.push(RuntimeVersion {
            version: "8.3".into(),
            end_of_life: None,
            image: None,
        });
        let c = course(serde_json::json!({"web": {"phpVersion": "8.3"}}));
        let (reason, message) = policy_violation(&c, &policy).unwrap();
        assert_eq!(reason, "NoImage");
        assert!(message.contains("PHP 8.3 has no image"), "{message}");
        let c = course(serde_json::json!({"database": {"engine": "mariadb", "version": "10.6"}}));
        let (reason, message) = policy_violation(&c, &policy).unwrap();
        assert_eq!(reason, "NoImage");
        assert!(message.contains("MariaDB 10.6"), "{message}");
    }
}
