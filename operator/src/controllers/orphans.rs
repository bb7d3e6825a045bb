//! The orphan sweep: a hosting namespace whose EndUser no longer exists is removed (volumes
//! kept when its recorded deletion policy is Retain). The EndUser finalizer prevents orphans
//! in the normal course; this catches what a finalizer cannot (a finalizer removed by hand, an
//! EndUser force-deleted while the operator was down).
//!
//! Deleting a namespace is the most destructive thing the operator does, so the sweep is
//! careful: a namespace qualifies only when its name is exactly one computed from its own
//! owner labels (a hand-labelled namespace of another name is never touched), it must be found
//! orphaned on two consecutive sweeps (an EndUser briefly missing from a list is not enough),
//! and at most `orphanSweepCap` namespaces go per sweep; the rest wait, and are logged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use oem_crds::enduser::EndUser;

use super::cache::Caches;
use super::children;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hosting::ANNOTATION_DELETION_POLICY;
use crate::naming::{self, HostingOwner};
use crate::view::View;

/// Sweeps now and then every resync interval, until the stop. Run by the EndUser controller's
/// part once its caches and the view are filled: the sweep reads the hosting namespaces from
/// the controller's cache, the claims from its watch and the end users from the view, so it
/// sends no request until something is to go (a list of every end user was 45 MB at 2,000).
pub async fn run(
    ctx: Arc<Context>,
    view: View,
    caches: Arc<Caches>,
    stop: oem_supervisor::Stop,
) -> Result<(), String> {
    let mut suspects = BTreeSet::new();
    loop {
        tokio::select! {
            _ = sweep_once(&ctx, &view, &caches, &mut suspects) => {}
            _ = stop.requested() => return Ok(()),
        }
        tokio::select! {
            _ = tokio::time::sleep(ctx.config.resync_interval) => {}
            _ = stop.requested() => return Ok(()),
        }
    }
}

/// One sweep of orphaned namespaces and unused domain claims, its outcome logged.
async fn sweep_once(ctx: &Context, view: &View, caches: &Caches, suspects: &mut BTreeSet<String>) {
    match sweep(ctx, view, caches, suspects).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "orphaned hosting namespaces removed"),
        Err(error) => tracing::warn!(%error, "orphan sweep failed"),
    }
    let now = ctx.clock.now();
    match super::domains::sweep(&ctx.client, &caches.domain_claims, &view.endusers, now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(released = n, "unused domain claims released"),
        Err(error) => tracing::warn!(%error, "domain claim sweep failed"),
    }
}

/// A labelled hosting namespace as the sweep sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub deleting: bool,
}

/// What one sweep decided, by namespace name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Orphaned on this sweep and the one before: to delete now.
    pub delete: Vec<String>,
    /// Orphaned twice but over the cap: left for a later sweep.
    pub deferred: Vec<String>,
    /// Orphaned for the first time: deleted on the next sweep if still orphaned.
    pub suspects: BTreeSet<String>,
    /// Labelled as hosting namespaces but not named as their labels' owner's namespace: never
    /// deleted by the sweep.
    pub misnamed: Vec<String>,
}

/// Decides, without I/O, what a sweep does with `namespaces` given which end users exist
/// (`exists`: namespace, name), the namespaces found orphaned on the previous sweep and the cap
/// per sweep.
pub fn decide(
    namespaces: &[Seen],
    exists: &dyn Fn(&str, &str) -> bool,
    previous: &BTreeSet<String>,
    cap: usize,
) -> Decision {
    let mut decision = Decision::default();
    for ns in namespaces {
        if ns.deleting {
            continue;
        }
        let Some(owner) = HostingOwner::of_labels(&ns.labels) else {
            continue;
        };
        if !owner.is_named(&ns.name) {
            decision.misnamed.push(ns.name.clone());
            continue;
        }
        if exists(&owner.enduser_namespace, &owner.enduser) {
            continue;
        }
        if !previous.contains(&ns.name) {
            decision.suspects.insert(ns.name.clone());
        } else if decision.delete.len() < cap {
            decision.delete.push(ns.name.clone());
        } else {
            // Still an orphan: stays a suspect, so it goes on a later sweep.
            decision.deferred.push(ns.name.clone());
            decision.suspects.insert(ns.name.clone());
        }
    }
    decision
}

/// One sweep; returns how many namespaces it removed. `suspects` carries the namespaces
/// found orphaned from one sweep to the next. A namespace to delete is read again by name, and
/// so is its end user, before it goes: the stores may lag.
pub async fn sweep(
    ctx: &Context,
    view: &View,
    caches: &Caches,
    suspects: &mut BTreeSet<String>,
) -> Result<usize> {
    let mut seen = Vec::new();
    caches.namespaces.each(|_, name, entry| {
        // Every namespace passes here each sweep: the labels are copied for hosting ones only.
        let hosting = entry.label(naming::LABEL_MANAGED_BY) == Some(naming::MANAGED_BY)
            && entry.label(naming::LABEL_ENDUSER).is_some();
        if hosting {
            seen.push(Seen {
                name: name.to_owned(),
                labels: entry.labels(),
                deleting: entry.deleting,
            });
        }
    });
    let exists = |namespace: &str, name: &str| {
        view.endusers
            .get(&ObjectRef::new(name).within(namespace))
            .is_some()
    };
    let decision = decide(&seen, &exists, suspects, ctx.config.orphan_sweep_cap);
    for name in &decision.misnamed {
        tracing::debug!(namespace = %name, "labelled as a hosting namespace but not named as one; not swept");
    }
    for name in &decision.suspects {
        if !suspects.contains(name) {
            tracing::info!(namespace = %name, "hosting namespace without its end user; removed on the next sweep if still so");
        }
    }
    if !decision.deferred.is_empty() {
        tracing::warn!(
            cap = ctx.config.orphan_sweep_cap,
            left = ?decision.deferred,
            "orphaned hosting namespaces over the cap of this sweep; left for a later sweep"
        );
    }
    *suspects = decision.suspects;
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let mut removed = 0;
    for name in decision.delete {
        let Some(ns) = namespaces
            .get_metadata_opt(&name)
            .await
            .map_err(Error::kube("get", "Namespace", name.clone()))?
        else {
            continue;
        };
        let Some(owner) = HostingOwner::of_labels(ns.labels()) else {
            continue;
        };
        if ns.metadata.deletion_timestamp.is_some() || !owner.is_named(&name) {
            continue;
        }
        let endusers: Api<EndUser> = Api::namespaced(ctx.client.clone(), &owner.enduser_namespace);
        let exists = endusers
            .get_metadata_opt(&owner.enduser)
            .await
            .map_err(Error::kube("get", "EndUser", owner.enduser.clone()))?
            .is_some();
        if exists {
            continue;
        }
        let retain = ns
            .annotations()
            .get(ANNOTATION_DELETION_POLICY)
            .is_some_and(|p| p == "Retain");
        tracing::warn!(namespace = %name, enduser = %owner.enduser, "orphaned hosting namespace");
        children::delete_hosting_namespace(ctx, &name, retain).await?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESELLER_NS: &str = "reseller-sakura";

    fn labelled(name: &str, enduser: &str) -> Seen {
        Seen {
            name: name.to_owned(),
            labels: BTreeMap::from([
                (naming::LABEL_MANAGED_BY.into(), naming::MANAGED_BY.into()),
                (naming::LABEL_RESELLER.into(), "sakura".into()),
                (naming::LABEL_ENDUSER_NAMESPACE.into(), RESELLER_NS.into()),
                (naming::LABEL_ENDUSER.into(), enduser.into()),
            ]),
            deleting: false,
        }
    }

    /// The namespace the operator gives `enduser` of reseller `sakura`.
    fn hosting(enduser: &str) -> Seen {
        labelled(&naming::hosting_namespace("sakura", enduser), enduser)
    }

    fn none(_: &str, _: &str) -> bool {
        false
    }

    #[test]
    fn an_orphan_goes_only_on_the_second_consecutive_sweep() {
        let all = [hosting("gone")];
        let first = decide(&all, &none, &BTreeSet::new(), 10);
        assert!(first.delete.is_empty());
        assert_eq!(first.suspects, BTreeSet::from([all[0].name.clone()]));
        let second = decide(&all, &none, &first.suspects, 10);
        assert_eq!(second.delete, vec![all[0].name.clone()]);
    }

    #[test]
    fn an_end_user_seen_again_clears_the_suspicion() {
        let all = [hosting("back")];
        let first = decide(&all, &none, &BTreeSet::new(), 10);
        let back = |ns: &str, name: &str| ns == RESELLER_NS && name == "back";
        let second = decide(&all, &back, &first.suspects, 10);
        assert!(second.delete.is_empty() && second.suspects.is_empty());
        let third = decide(&all, &none, &second.suspects, 10);
        assert!(
            third.delete.is_empty(),
            "orphaned once more, not twice in a row"
        );
    }

    #[test]
    fn a_namespace_not_named_as_its_labels_say_is_never_swept() {
        let all = [
            labelled("kube-system", "gone"),
            labelled("h-sakura-gone-00000000", "gone"),
        ];
        let mut previous = BTreeSet::new();
        for _ in 0..3 {
            let decision = decide(&all, &none, &previous, 10);
            assert!(decision.delete.is_empty() && decision.suspects.is_empty());
            assert_eq!(decision.misnamed.len(), 2);
            previous = decision.suspects;
        }
    }

    #[test]
    fn a_namespace_of_the_name_given_before_the_hash_was_widened_is_swept() {
        let owner = HostingOwner {
            reseller: "sakura".into(),
            enduser_namespace: RESELLER_NS.into(),
            enduser: "old".into(),
        };
        let [_, legacy] = owner.namespace_names();
        let all = [labelled(&legacy, "old")];
        let first = decide(&all, &none, &BTreeSet::new(), 10);
        let second = decide(&all, &none, &first.suspects, 10);
        assert_eq!(second.delete, vec![legacy]);
    }

    #[test]
    fn at_most_the_cap_goes_per_sweep_and_the_rest_wait() {
        let all: Vec<Seen> = (0..5).map(|i| hosting(&format!("gone{i}"))).collect();
        let first = decide(&all, &none, &BTreeSet::new(), 2);
        let second = decide(&all, &none, &first.suspects, 2);
        assert_eq!(second.delete.len(), 2);
        assert_eq!(second.deferred.len(), 3);
        // The deferred stay suspects: the next sweep takes the next two.
        let rest: Vec<Seen> = all
            .iter()
            .filter(|s| !second.delete.contains(&s.name))
            .cloned()
            .collect();
        let third = decide(&rest, &none, &second.suspects, 2);
        assert_eq!(third.delete.len(), 2);
        assert_eq!(third.deferred.len(), 1);
    }

    #[test]
    fn a_namespace_already_being_deleted_is_left_alone() {
        let mut ns = hosting("gone");
        ns.deleting = true;
        let decision = decide(&[ns], &none, &BTreeSet::new(), 10);
        assert_eq!(decision, Decision::default());
    }
}
