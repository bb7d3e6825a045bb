//! The one place children are written: server-side apply with the operator's field manager,
//! and only when what the operator owns differs from what is there (a no-op reconcile writes
//! nothing; a hand edit of an owned field is put back).

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use oem_crds::quantity::value as quantity_value;

use crate::naming::FIELD_MANAGER;

/// What `apply` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The object was created or changed.
    Written,
    /// Everything the operator owns was already as desired.
    Unchanged,
}

/// Applies `desired` unless the live object already contains it. `api` must be scoped to the
/// object's namespace (or cluster-wide for cluster objects).
pub async fn apply<K>(api: &Api<K>, desired: &K) -> Result<Applied, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let current = api.get_opt(&desired.name_any()).await?;
    apply_over(api, desired, current.as_ref())
        .await
        .map(|(applied, _)| applied)
}

/// Like [`apply`] with the live object already known (`None`: absent, or not seen yet).
/// Returns what it did and the object's resourceVersion afterwards.
pub async fn apply_over<K>(
    api: &Api<K>,
    desired: &K,
    current: Option<&K>,
) -> Result<(Applied, Option<String>), kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    if let Some(current) = current {
        let want = serde_json::to_value(desired).map_err(kube::Error::SerdeError)?;
        let have = serde_json::to_value(current).map_err(kube::Error::SerdeError)?;
        if contains(&have, &want) {
            return Ok((Applied::Unchanged, current.resource_version()));
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let written = api
        .patch(&desired.name_any(), &params, &Patch::Apply(desired))
        .await?;
    Ok((Applied::Written, written.resource_version()))
}

/// True when every field set in `want` has the same value in `have`. Maps may hold more keys
/// (defaults the API server added, fields of other managers); lists must match element by
/// element; quantities compare by value ("1Gi" equals "1073741824", "0.5" equals "500m").
pub fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (_, Value::Null) => true,
        (Value::Object(h), Value::Object(w)) => w.iter().all(|(k, wv)| {
            if matches!(k.as_str(), "status" | "resourceVersion" | "managedFields") {
                return true;
            }
            match h.get(k) {
                Some(hv) => contains(hv, wv),
                None => is_empty(wv),
            }
        }),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(hv, wv)| contains(hv, wv))
        }
        (Value::String(h), Value::String(w)) => {
            h == w
                || matches!((quantity_value(h), quantity_value(w)), (Some(a), Some(b)) if same(a, b))
        }
        (Value::Number(h), Value::Number(w)) => h.as_f64() == w.as_f64(),
        (h, w) => h == w,
    }
}

/// An empty map or list the server dropped is not a difference.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= f64::EPSILON * a.abs().max(b.abs()).max(1.0) * 4.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_compare_by_value() {
        assert_eq!(quantity_value("1Gi"), Some(1073741824.0));
        assert_eq!(quantity_value("100M"), Some(1e8));
        assert_eq!(quantity_value("250m"), Some(0.25));
        assert_eq!(quantity_value("1e3"), Some(1000.0));
        assert_eq!(quantity_value("nginx:1.27"), None);
        assert_eq!(quantity_value("M"), None);
        assert!(contains(&json!("500m"), &json!("0.5")));
        assert!(!contains(&json!("1Gi"), &json!("1G")));
    }

    #[test]
    fn defaults_added_by_the_server_are_not_a_difference() {
        let have = json!({"spec": {"replicas": 1, "revisionHistoryLimit": 10,
            "template": {"spec": {"containers": [{"name": "web", "image": "a", "imagePullPolicy": "IfNotPresent"}]}}}});
        let want = json!({"spec": {"replicas": 1,
            "template": {"spec": {"containers": [{"name": "web", "image": "a"}]}}}});
        assert!(contains(&have, &want));
    }

    #[test]
    fn a_changed_owned_field_is_a_difference() {
        let have = json!({"spec": {"replicas": 0}});
        let want = json!({"spec": {"replicas": 1}});
        assert!(!contains(&have, &want));
    }

    #[test]
    fn a_missing_list_element_is_a_difference() {
        let have = json!({"ports": [{"port": 80}]});
        let want = json!({"ports": [{"port": 80}, {"port": 443}]});
        assert!(!contains(&have, &want));
    }

    #[test]
    fn empty_maps_the_server_dropped_are_not_a_difference() {
        let have = json!({"spec": {}});
        let want = json!({"spec": {"podSelector": {}}});
        assert!(contains(&have, &want));
        let want_label = json!({"metadata": {"labels": {"a": "b"}}});
        assert!(!contains(&json!({"metadata": {}}), &want_label));
    }
}
