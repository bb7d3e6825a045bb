//! Mass mail (SPEC §7 level 1: "temporarily stop use, e.g. lock the account"): the course
//! limit exported for the HostingMassMail rule, the lock (`EndUser.status.mailLocked`, which
//! makes the EndUser controller drop the hosting namespace's SMTP egress NetworkPolicy and run
//! the mail container with `MAIL_LOCKED=true`, so its MTA refuses relaying) and its lifting by
//! the reseller (the `hosting.oem.dev/mail-unlock` annotation on the EndUser).

use std::collections::HashMap;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use oem_crds::enduser::EndUser;
use serde_json::json;

use super::incidents::World;
use crate::naming;
use crate::status::owners;

/// Set by the reseller (`kubectl annotate enduser NAME hosting.oem.dev/mail-unlock=yes`) to
/// lift a mail lock; the operator removes it once the lock is lifted.
pub const ANNOTATION_MAIL_UNLOCK: &str = "hosting.oem.dev/mail-unlock";

/// Whether the reseller asked to lift the end user's mail lock.
pub fn unlock_requested(enduser: &EndUser) -> bool {
    enduser.annotations().contains_key(ANNOTATION_MAIL_UNLOCK)
}

/// `oem_course_mail_rate_limit_per_hour` and `oem_mail_locked` of every end user whose course
/// sends mail, labelled (reseller, enduser).
pub(super) fn gauges(world: &World) -> (HashMap<Vec<String>, f64>, HashMap<Vec<String>, f64>) {
    let mut limits = HashMap::new();
    let mut locked = HashMap::new();
    for ((namespace, name), enduser) in &world.endusers {
        let Some(reseller) = naming::reseller_of_namespace(namespace) else {
            continue;
        };
        let course = world
            .courses
            .get(&(namespace.clone(), enduser.spec.course_ref.name.clone()));
        let Some(mail) = course.and_then(|c| c.spec.services.mail.as_ref()) else {
            continue;
        };
        let labels = vec![reseller.to_owned(), name.clone()];
        limits.insert(labels.clone(), f64::from(mail.max_sends_per_hour));
        let is_locked = enduser.status.as_ref().is_some_and(|s| s.mail_locked);
        locked.insert(labels, if is_locked { 1.0 } else { 0.0 });
    }
    (limits, locked)
}

/// Locks or unlocks the end user's outbound mail; unlocking also removes the reseller's
/// unlock annotation.
pub async fn set_lock(
    client: &kube::Client,
    enduser: &EndUser,
    lock: bool,
) -> Result<String, kube::Error> {
    let namespace = enduser.namespace().unwrap_or_default();
    let api: Api<EndUser> = Api::namespaced(client.clone(), &namespace);
    let name = enduser.name_any();
    owners::ENDUSER_MAIL_LOCK
        .write(&api, &name, None, &json!({ "mailLocked": lock }))
        .await?;
    if !lock && unlock_requested(enduser) {
        let remove = json!({"metadata": {"annotations": {ANNOTATION_MAIL_UNLOCK: null}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&remove))
            .await?;
    }
    Ok(if lock {
        format!("outbound mail of {namespace}/{name} locked (relaying refused, SMTP egress closed)")
    } else {
        format!("outbound mail of {namespace}/{name} unlocked by the reseller")
    })
}
