//! The one status writer: server-side apply of `.status` with the operator's field manager,
//! and only when the status differs from what is stored.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{Error, Result};
use crate::naming::FIELD_MANAGER;

/// Writes `status` on `object` unless `current` already equals it. Returns whether it wrote.
pub async fn write<K, S>(api: &Api<K>, object: &K, current: Option<&S>, status: &S) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    write_except(api, object, current, status, &[]).await
}

/// Like [`write`], leaving out the top-level status fields in `others`: fields another writer
/// owns under its own field manager (the monitor's `services`, the usage reporter's `usage`).
/// Not sending them means this manager neither owns nor overwrites them.
pub async fn write_except<K, S>(
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    status: &S,
    others: &[&str],
) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    let mut status = serde_json::to_value(status).map_err(|source| Error::Serialize {
        what: "status",
        source,
    })?;
    if let Some(fields) = status.as_object_mut() {
        for field in others {
            fields.remove(*field);
        }
    }
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::kube("write status of", "object", object.name_any()))?;
    Ok(true)
}
