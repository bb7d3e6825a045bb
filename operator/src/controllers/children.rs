//! Children of an end user in its hosting namespace: applied by kind with diff-before-write,
//! the ones no longer desired removed (a service dropped from the course takes its objects
//! with it), and the whole namespace removed on deletion (volumes kept when retained).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use super::cache::Caches;
use crate::apply::{Live, LiveStore, fingerprint};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hosting::HostingPlan;
use crate::naming;
use crate::versions::CLUSTER;
use oem_crds::quantity;

/// A StatefulSet's volume claim templates cannot change once created: existing sets keep
/// theirs, and a larger course grows the claims themselves (the StorageClass allows expansion).
/// Sets and claims are read from the caches; a claim's size is fetched only when the claim
/// or the wanted size changed since it was last checked.
pub async fn keep_volume_templates(
    ctx: &Context,
    caches: &Caches,
    namespace: &str,
    desired: &mut [StatefulSet],
) -> Result<()> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
    for set in desired.iter_mut() {
        let name = set.name_any();
        let Some(live) = caches.stateful_sets.get(namespace, &name) else {
            continue;
        };
        let Some(spec) = set.spec.as_mut() else {
            continue;
        };
        let live_templates = live.templates()?;
        let wanted = template_storage(&spec.volume_claim_templates).cloned();
        if !templates_kept(&live_templates, &spec.volume_claim_templates)? {
            spec.volume_claim_templates = live_templates.clone();
        }
        let Some(wanted) = wanted else { continue };
        // The claim was made from the live template and claims never shrink: only a size
        // beyond the template's can need growing.
        let template = template_storage(&live_templates).and_then(|q| quantity::value(&q.0));
        if template.is_some_and(|t| quantity::value(&wanted.0).is_some_and(|w| w <= t)) {
            continue;
        }
        let claim_name = format!("data-{name}-0");
        let Live::Meta(version) = caches.claims.live(Some(namespace), &claim_name) else {
            continue;
        };
        let size = fingerprint(&wanted.0)?;
        if caches
            .applier
            .checked(CLAIM_SIZE, namespace, &claim_name, &version, size)
        {
            continue;
        }
        let Some(claim) = claims.get_opt(&claim_name).await.map_err(Error::kube(
            "get",
            "PersistentVolumeClaim",
            claim_name.clone(),
        ))?
        else {
            continue;
        };
        let current = claim.spec.as_ref().and_then(|s| {
            s.resources
                .as_ref()?
                .requests
                .as_ref()?
                .get("storage")
                .cloned()
        });
        let grow = match (
            current.as_ref().and_then(|q| quantity::value(&q.0)),
            quantity::value(&wanted.0),
        ) {
            (Some(have), Some(want)) => want > have,
            _ => false,
        };
        let mut checked_at = claim.resource_version();
        if grow {
            let patch = json!({"spec": {"resources": {"requests": {"storage": wanted.0}}}});
            let grown = claims
                .patch(&claim_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(Error::kube(
                    "grow",
                    "PersistentVolumeClaim",
                    claim_name.clone(),
                ))?;
            checked_at = grown.resource_version();
            tracing::info!(claim = %claim_name, size = %wanted.0, "volume grown with the course");
        }
        caches
            .applier
            .record_check(CLAIM_SIZE, namespace, &claim_name, checked_at, size);
    }
    Ok(())
}

/// Whether the live templates already hold every field of the desired ones (the server adds
/// defaults and a status): the desired ones are then applied as they are, so what is wanted
/// stays the same from one reconcile to the next and a set found as verified costs no read.
/// Otherwise (a course's larger size) the live ones are applied back, unchanged.
fn templates_kept(
    live: &Option<Vec<PersistentVolumeClaim>>,
    desired: &Option<Vec<PersistentVolumeClaim>>,
) -> Result<bool> {
    let value = |templates| {
        serde_json::to_value(templates).map_err(|source| Error::Serialize {
            what: "volume claim templates",
            source,
        })
    };
    Ok(crate::apply::contains(&value(live)?, &value(desired)?))
}

/// The storage size a StatefulSet's (first) volume claim template asks for.
fn template_storage(templates: &Option<Vec<PersistentVolumeClaim>>) -> Option<&Quantity> {
    templates
        .as_ref()?
        .first()?
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

/// What [`keep_volume_templates`] records: the claim was checked against a wanted size.
const CLAIM_SIZE: &str = "claim-size";

/// Removes the data volumes of service groups the course no longer has.
pub async fn remove_unused_volumes(
    ctx: &Context,
    caches: &Caches,
    plan: &HostingPlan,
) -> Result<()> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &plan.namespace);
    let groups: BTreeSet<&str> = plan.groups().iter().map(|g| g.name()).collect();
    // Each claim's service group is the label its store keeps.
    let unused: Vec<String> = caches
        .claims
        .in_namespace(&plan.namespace)
        .into_iter()
        .filter(|(_, claim)| claim.kept.as_deref().is_some_and(|g| !groups.contains(g)))
        .map(|(name, _)| name)
        .collect();
    for name in unused {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => tracing::info!(%name, "removed the volume of a dropped service"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube("delete", "PersistentVolumeClaim", name)(e)),
        }
    }
    Ok(())
}

/// The labels of namespace `name` if it exists: from the cache (which holds every namespace's
/// metadata), else read once (one made a moment ago may not be in it yet: what a deletion
/// must not miss).
pub async fn namespace_labels(
    ctx: &Context,
    caches: &Caches,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>> {
    if let Some(cached) = caches.namespaces.get(CLUSTER, name) {
        return Ok(Some(cached.labels()));
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let live = api
        .get_metadata_opt(name)
        .await
        .map_err(Error::kube("get", "Namespace", name))?;
    Ok(live.map(|ns| ns.labels().clone()))
}

/// Refuses to write into `plan`'s hosting namespace when it exists with labels that do not
/// name this end user (a collision, or a namespace the operator did not make for it).
pub fn check_namespace_owner(caches: &Caches, plan: &HostingPlan, object: &str) -> Result<()> {
    // The cache holds every namespace, so a new end user's namespace costs no read; one made
    // by someone else within the watch's lag (milliseconds) before it is the one case missed.
    let cached = caches.namespaces.get(CLUSTER, &plan.namespace);
    match cached.map(|ns| ns.labels()) {
        Some(labels) if !plan.owner().owns(&labels) => Err(Error::HostingNamespaceNotOwned {
            object: object.to_owned(),
            namespace: plan.namespace.clone(),
        }),
        _ => Ok(()),
    }
}

/// What [`delete_owned_hosting_namespace`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    Absent,
    /// The namespace exists with another owner's labels (or none): left alone.
    NotOwned,
}

/// Deletes `namespace` (volumes kept when `retain`) only when its labels name `owner`.
pub async fn delete_owned_hosting_namespace(
    ctx: &Context,
    caches: &Caches,
    namespace: &str,
    owner: &naming::HostingOwner,
    retain: bool,
) -> Result<Deletion> {
    match namespace_labels(ctx, caches, namespace).await? {
        None => Ok(Deletion::Absent),
        Some(labels) if !owner.owns(&labels) => Ok(Deletion::NotOwned),
        Some(_) => {
            delete_hosting_namespace(ctx, namespace, retain).await?;
            Ok(Deletion::Deleted)
        }
    }
}

/// Marks the volumes of `namespace` Retain (and labels them for recovery) when asked, then
/// deletes the namespace. Idempotent: a namespace already gone is fine. Callers check that
/// the namespace is the one they mean to delete (its owner labels and its name).
pub async fn delete_hosting_namespace(ctx: &Context, namespace: &str, retain: bool) -> Result<()> {
    if retain {
        retain_volumes(ctx, namespace).await?;
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    match api.delete(namespace, &DeleteParams::background()).await {
        Ok(_) => {
            tracing::info!(%namespace, retain, "hosting namespace deleted");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("delete", "Namespace", namespace)(e)),
    }
}

async fn retain_volumes(ctx: &Context, namespace: &str) -> Result<()> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let list = claims
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("list", "PersistentVolumeClaim", namespace))?;
    for claim in list.items {
        let Some(volume) = claim.spec.as_ref().and_then(|s| s.volume_name.clone()) else {
            continue;
        };
        let labels = claim.labels();
        let patch = json!({
            "metadata": {"labels": {
                naming::LABEL_RETAINED: "true",
                naming::LABEL_RESELLER: labels.get(naming::LABEL_RESELLER),
                naming::LABEL_ENDUSER: labels.get(naming::LABEL_ENDUSER),
                naming::LABEL_SERVICE_GROUP: labels.get(naming::LABEL_SERVICE_GROUP),
                "hosting.oem.dev/claim": claim.name_any(),
            }},
            "spec": {"persistentVolumeReclaimPolicy": "Retain"}
        });
        volumes
            .patch(&volume, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::kube("retain", "PersistentVolume", volume.clone()))?;
        tracing::info!(%volume, claim = %claim.name_any(), "volume retained");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::controllers::cache::tests::{context, detached, serving};
    use crate::controllers::namespaces::NamespaceEntry;
    use crate::hosting::tests::business_plan;

    /// The metadata of the plan's namespace with `enduser` in its owner labels.
    fn namespace_of(plan: &HostingPlan, enduser: &str) -> Value {
        let mut labels = plan.labels();
        labels.insert(naming::LABEL_ENDUSER.into(), enduser.into());
        json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": plan.namespace, "labels": labels, "resourceVersion": "3"}
        })
    }

    /// The check reads the cache of every namespace and sends no request.
    #[test]
    fn a_namespace_labelled_for_another_end_user_is_not_written_into() {
        let plan = business_plan();
        let with = |namespace: Option<Value>| {
            let mut caches = detached(Vec::new());
            let (store, feeder) = crate::versions::store(NamespaceEntry::of);
            if let Some(namespace) = namespace {
                let namespace = serde_json::from_value(namespace).unwrap();
                feeder.apply(&kube::runtime::watcher::Event::Apply(namespace));
            }
            caches.namespaces = store;
            check_namespace_owner(&caches, &plan, "enduser r/tanaka-shoten")
        };
        match with(Some(namespace_of(&plan, "someone-else"))) {
            Err(Error::HostingNamespaceNotOwned { namespace, .. }) => {
                assert_eq!(namespace, plan.namespace)
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let own = with(Some(namespace_of(&plan, &plan.enduser)));
        assert!(own.is_ok(), "{own:?}");
        let absent = with(None);
        assert!(absent.is_ok(), "{absent:?}");
    }

    #[test]
    fn templates_the_server_only_added_to_are_applied_as_desired() {
        let template = |size: &str, extra: Value| {
            let mut t = json!({
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": size}}}
            });
            if let (Some(t), Value::Object(extra)) = (t.as_object_mut(), extra) {
                t.extend(extra);
            }
            Some(vec![
                serde_json::from_value::<PersistentVolumeClaim>(t).unwrap(),
            ])
        };
        let live = template(
            "10Gi",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "status": {"phase": "Pending"}}),
        );
        assert!(templates_kept(&live, &template("10Gi", json!({}))).unwrap());
        assert!(
            templates_kept(&live, &template("10240Mi", json!({}))).unwrap(),
            "the same size written otherwise"
        );
        assert!(!templates_kept(&live, &template("20Gi", json!({}))).unwrap());
    }

    #[tokio::test]
    async fn a_namespace_labelled_for_another_end_user_is_not_deleted() {
        let (ctx, mut handle) = context();
        let caches = detached(Vec::new());
        let plan = business_plan();
        let owner = plan.owner();
        // Only the GET: a DELETE would be an unexpected request.
        let kept = serving(
            &mut handle,
            delete_owned_hosting_namespace(&ctx, &caches, &plan.namespace, &owner, false),
            vec![("GET", namespace_of(&plan, "someone-else"))],
        )
        .await;
        assert_eq!(kept.unwrap(), Deletion::NotOwned);
        let deleted = serving(
            &mut handle,
            delete_owned_hosting_namespace(&ctx, &caches, &plan.namespace, &owner, false),
            vec![
                ("GET", namespace_of(&plan, &plan.enduser)),
                (
                    "DELETE",
                    json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": plan.namespace}}),
                ),
            ],
        )
        .await;
        assert_eq!(deleted.unwrap(), Deletion::Deleted);
    }
}
