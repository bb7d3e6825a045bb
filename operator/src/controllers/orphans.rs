//! The orphan sweep: a hosting namespace whose EndUser no longer exists is removed (volumes
//! kept when its recorded deletion policy is Retain). The EndUser finalizer prevents orphans
//! in the normal course; this catches what a finalizer cannot (a finalizer removed by hand, an
//! EndUser force-deleted while the operator was down).

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use oem_crds::enduser::EndUser;

use super::children;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hosting::ANNOTATION_DELETION_POLICY;
use crate::naming;

/// Sweeps at start and then every resync interval: two lists per sweep, whatever the number
/// of end users.
pub async fn run(ctx: Arc<Context>) {
    loop {
        match sweep(&ctx).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "orphaned hosting namespaces removed"),
            Err(error) => tracing::warn!(%error, "orphan sweep failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(ctx.config.resync_interval) => {}
            _ = tokio::signal::ctrl_c() => return,
        }
    }
}

/// One sweep; returns how many namespaces it removed.
pub async fn sweep(ctx: &Context) -> Result<usize> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let selector = format!(
        "{}={},{}",
        naming::LABEL_MANAGED_BY,
        naming::MANAGED_BY,
        naming::LABEL_ENDUSER
    );
    let list = namespaces
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kube("list", "Namespace", "hosting namespaces"))?;
    // One list of every EndUser (listed after the namespaces, so an end user whose namespace
    // was listed is in it unless it went since); a namespace whose owner is missing is checked
    // once more by name before it goes.
    let owners: HashSet<(String, String)> = Api::<EndUser>::all(ctx.client.clone())
        .list_metadata(&ListParams::default())
        .await
        .map_err(Error::kube("list", "EndUser", "all namespaces"))?
        .items
        .iter()
        .map(|e| (e.namespace().unwrap_or_default(), e.name_any()))
        .collect();
    let mut removed = 0;
    for ns in list.items {
        if ns.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let labels = ns.labels();
        let (Some(owner), Some(owner_ns)) = (
            labels.get(naming::LABEL_ENDUSER),
            labels.get(naming::LABEL_ENDUSER_NAMESPACE),
        ) else {
            continue;
        };
        if owners.contains(&(owner_ns.clone(), owner.clone())) {
            continue;
        }
        let endusers: Api<EndUser> = Api::namespaced(ctx.client.clone(), owner_ns);
        let exists = endusers
            .get_metadata_opt(owner)
            .await
            .map_err(Error::kube("get", "EndUser", owner.clone()))?
            .is_some();
        if !exists {
            let retain = ns
                .annotations()
                .get(ANNOTATION_DELETION_POLICY)
                .is_some_and(|p| p == "Retain");
            tracing::warn!(namespace = %ns.name_any(), enduser = %owner, "orphaned hosting namespace");
            children::delete_hosting_namespace(ctx, &ns.name_any(), retain).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
