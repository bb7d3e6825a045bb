//! The local control plane's volume provisioner: for every PersistentVolumeClaim of the
//! `local-fake` StorageClass it creates a folder under `$OEM_VOLUME_DIR` (default
//! `$OEM_CLUSTER_DIR/volumes`), owned by uid/gid 10001 (the uid every hosting container runs
//! as) with mode 0770, and a `hostPath` PersistentVolume of that folder bound to the claim.
//! Released volumes whose reclaim policy is Delete lose their folder, then their object.
//! On the real node (`OEM_CLUSTER_REAL_NODES=1`) pods really store data there; kwok's fake
//! nodes only see a bound claim.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

const STORAGE_CLASS: &str = "local-fake";
const PROVISIONER: &str = "oem.dev/local-fake";
/// The uid and gid of every hosting container; volume folders belong to it.
const VOLUME_OWNER: u32 = 10001;

fn volume_root() -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    if let Some(dir) = std::env::var_os("OEM_VOLUME_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let cluster = std::env::var_os("OEM_CLUSTER_DIR")
        .context("neither OEM_VOLUME_DIR nor OEM_CLUSTER_DIR is set")?;
    Ok(Path::new(&cluster).join("volumes"))
}

/// Creates the volume's folder, writable by the hosting uid and no one else but root.
fn create_volume_dir(path: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    std::os::unix::fs::chown(path, Some(VOLUME_OWNER), Some(VOLUME_OWNER))
        .with_context(|| format!("chown {VOLUME_OWNER} {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o770))
        .with_context(|| format!("chmod 0770 {}", path.display()))?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = volume_root()?;
    std::fs::create_dir_all(&root)?;
    let client = Client::try_default().await?;
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    eprintln!(
        "local-provisioner: provisioning claims of StorageClass {STORAGE_CLASS} in {}",
        root.display()
    );
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
            Event::Claim(claim) => provision(&root, &volumes, &claim).await,
            Event::Volume(volume) => reclaim(&root, &volumes, &volume).await,
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
    root: &Path,
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
    let path = root.join(&name);
    create_volume_dir(&path)?;
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
            "hostPath": {"path": path.to_string_lossy(), "type": "Directory"},
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

async fn reclaim(
    root: &Path,
    volumes: &Api<PersistentVolume>,
    volume: &PersistentVolume,
) -> anyhow::Result<()> {
    let released = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
    let spec = volume.spec.as_ref();
    let deletes =
        spec.and_then(|s| s.persistent_volume_reclaim_policy.as_deref()) == Some("Delete");
    let ours = spec.and_then(|s| s.storage_class_name.as_deref()) == Some(STORAGE_CLASS);
    if released && deletes && ours {
        // Only a folder this provisioner made: directly under the root, named after the volume.
        let name = volume.name_any();
        let path = spec
            .and_then(|s| s.host_path.as_ref())
            .map(|h| PathBuf::from(&h.path));
        if let Some(path) = path.filter(|p| *p == root.join(&name)) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => anyhow::bail!("removing {}: {e}", path.display()),
            }
        }
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
