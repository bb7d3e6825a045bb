//! A stand-in volume provisioner for the local control plane, which has no storage: for every
//! PersistentVolumeClaim of the `local-fake` StorageClass it creates a PersistentVolume bound to
//! that claim, and deletes Released volumes whose reclaim policy is Delete. It stores no data;
//! it only lets StatefulSets with volume claims schedule on kwok's fake nodes.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

const STORAGE_CLASS: &str = "local-fake";
const PROVISIONER: &str = "oem.dev/local-fake";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    eprintln!("local-provisioner: provisioning claims of StorageClass {STORAGE_CLASS}");
    let claims_stream = watcher(claims, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .filter_map(|c| async move { c.ok().map(|c| Event::Claim(Box::new(c))) });
    let volumes_stream = watcher(volumes.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .filter_map(|v| async move { v.ok().map(|v| Event::Volume(Box::new(v))) });
    let mut events = std::pin::pin!(futures::stream::select(claims_stream, volumes_stream));
    while let Some(event) = events.next().await {
        let result = match event {
            Event::Claim(claim) => provision(&volumes, &claim).await,
            Event::Volume(volume) => reclaim(&volumes, &volume).await,
        };
        if let Err(error) = result {
            eprintln!("local-provisioner: {error:#}");
        }
    }
    Ok(())
}

enum Event {
    Claim(Box<PersistentVolumeClaim>),
    Volume(Box<PersistentVolume>),
}

async fn provision(
    volumes: &Api<PersistentVolume>,
    claim: &PersistentVolumeClaim,
) -> anyhow::Result<()> {
    let Some(spec) = &claim.spec else {
        return Ok(());
    };
    let class = spec.storage_class_name.as_deref();
    let pending = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending");
    if class != Some(STORAGE_CLASS)
        || !pending
        || spec.volume_name.is_some()
        || claim.metadata.deletion_timestamp.is_some()
    {
        return Ok(());
    }
    let (Some(ns), Some(uid)) = (claim.namespace(), claim.uid()) else {
        return Ok(());
    };
    let name = format!("pvc-{uid}");
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| "1Gi".into());
    let labels: BTreeMap<String, String> = claim.labels().clone();
    let volume: PersistentVolume = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}
        },
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.access_modes.clone().unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "hostPath": {"path": format!("/var/lib/local-fake/{name}")},
            "claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": ns, "name": claim.name_any(), "uid": uid
            }
        }
    }))?;
    match volumes.create(&PostParams::default(), &volume).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn reclaim(volumes: &Api<PersistentVolume>, volume: &PersistentVolume) -> anyhow::Result<()> {
    let released = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
    let spec = volume.spec.as_ref();
    let deletes =
        spec.and_then(|s| s.persistent_volume_reclaim_policy.as_deref()) == Some("Delete");
    let ours = spec.and_then(|s| s.storage_class_name.as_deref()) == Some(STORAGE_CLASS);
    if released && deletes && ours {
        match volumes
            .delete(&volume.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
