//! The resellers' writes: server-side apply with the field manager `oem-hosting-panel`, sent
//! by a client acting as the reseller's panel user (so the API server and the admission
//! webhooks judge them as the reseller's own). Who owns which field decides what an apply
//! carries: every field the panel already owns (else the apply would remove it), and a field
//! the reseller changed unless another applier (GitOps) owns it — that one is refused by name,
//! never taken over.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::ResellerRequest;
use crate::app::App;
use crate::writes::FIELD_MANAGER;

/// The top-level spec fields each field manager owns; `applied` only those of server-side
/// appliers (GitOps tools, `kubectl apply --server-side`), which re-apply their value.
pub fn spec_owners(meta: &ObjectMeta, applied: bool) -> BTreeMap<String, BTreeSet<String>> {
    let mut owners: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in meta.managed_fields.iter().flatten() {
        if entry.subresource.as_deref().is_some_and(|s| !s.is_empty()) {
            continue;
        }
        if applied && entry.operation.as_deref() != Some("Apply") {
            continue;
        }
        let manager = entry.manager.clone().unwrap_or_default();
        let spec = entry
            .fields_v1
            .as_ref()
            .and_then(|f| f.0.get("f:spec"))
            .and_then(Value::as_object);
        for key in spec.into_iter().flat_map(|s| s.keys()) {
            if let Some(field) = key.strip_prefix("f:") {
                owners
                    .entry(field.to_owned())
                    .or_default()
                    .insert(manager.clone());
            }
        }
    }
    owners
}

/// The other appliers owning each top-level spec field (the field is theirs: shown read-only,
/// never changed by the panel).
pub fn locked_fields(meta: &ObjectMeta) -> BTreeMap<String, String> {
    spec_owners(meta, true)
        .into_iter()
        .filter_map(|(field, managers)| {
            let others: Vec<String> = managers
                .into_iter()
                .filter(|m| m != FIELD_MANAGER)
                .collect();
            (!others.is_empty()).then(|| (field, others.join(", ")))
        })
        .collect()
}

/// The spec an apply carries: the panel's own fields (with the wanted value, or the live one
/// when the form does not show them), and each changed field; `Err` lists the changed fields
/// another applier owns, with who.
pub fn plan(
    live_spec: &Value,
    meta: &ObjectMeta,
    wanted: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<(String, String)>> {
    let owners = spec_owners(meta, false);
    let locked = locked_fields(meta);
    let ours = |field: &str| owners.get(field).is_some_and(|m| m.contains(FIELD_MANAGER));
    let mut body = Map::new();
    let mut refused = Vec::new();
    if let Some(live) = live_spec.as_object() {
        for (field, value) in live {
            if ours(field) && !wanted.contains_key(field) {
                body.insert(field.clone(), value.clone());
            }
        }
    }
    for (field, value) in wanted {
        let live = live_spec.get(field).unwrap_or(&Value::Null);
        let changed = live != value;
        if changed && let Some(managers) = locked.get(field) {
            refused.push((field.clone(), managers.clone()));
            continue;
        }
        if (changed || ours(field)) && !value.is_null() {
            body.insert(field.clone(), value.clone());
        }
    }
    if refused.is_empty() {
        Ok(body)
    } else {
        Err(refused)
    }
}

/// A refusal of the API server (or a webhook), its message as it came.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: u16,
    pub message: String,
}

impl Refusal {
    /// From a failed call `verb` of `K` `namespace/name`, logged (the message names fields and
    /// values the reseller typed, never a Secret's).
    fn of<K: Resource<DynamicType = ()>>(
        verb: &'static str,
        r: &ResellerRequest<'_>,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> Self {
        let object = format!("{} {}/{name}", K::kind(&()), r.namespace);
        move |error| {
            let refusal = match error {
                kube::Error::Api(status) => Self {
                    code: status.code,
                    message: status.message,
                },
                other => Self {
                    code: 503,
                    message: other.to_string(),
                },
            };
            tracing::info!(%object, verb, code = refusal.code, message = %refusal.message, "the API server refused a panel write");
            refusal
        }
    }
}

/// The reseller's `K`s, through a client acting as the reseller's panel user.
fn api<K>(app: &App, r: &ResellerRequest<'_>) -> Result<Api<K>, Refusal>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    let client = app
        .acting_as(&r.name)
        .map_err(|message| Refusal { code: 503, message })?;
    Ok(Api::namespaced(client, &r.namespace))
}

/// Applies `spec` (and `annotations`, when given) to the reseller's `K` `name`, as the
/// reseller. Forced: it takes fields over from non-applier writers (`kubectl edit`), as an
/// edit would; the panel never sends a field another applier owns ([`plan`]).
pub async fn apply<K>(
    app: &App,
    r: &ResellerRequest<'_>,
    name: &str,
    spec: Map<String, Value>,
    annotations: Option<Map<String, Value>>,
) -> Result<(), Refusal>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let mut metadata = json!({"name": name, "namespace": r.namespace});
    if let Some(annotations) = annotations {
        metadata["annotations"] = Value::Object(annotations);
    }
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": metadata,
        "spec": spec,
    });
    api::<K>(app, r)?
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .map(drop)
        .map_err(Refusal::of::<K>("apply", r, name))
}

/// Why a change was not written.
#[derive(Debug)]
pub enum Unchanged {
    /// Changed fields another applier owns, with who ([`plan`]).
    OwnedElsewhere(Vec<(String, String)>),
    /// The API server (or a webhook) refused, or could not be asked.
    Refused(Refusal),
}

/// Changes the reseller's `K` `name` to `wanted` (top-level spec fields): reads the object as
/// it is now, plans the apply against who owns what now ([`plan`]), and applies. Read, not
/// taken from the cache: a write the cache has not seen yet (the panel's own, a moment ago)
/// would be left out of the plan, and the apply would then remove it.
pub async fn change<K>(
    app: &App,
    r: &ResellerRequest<'_>,
    name: &str,
    wanted: &Map<String, Value>,
    annotations: Option<Map<String, Value>>,
) -> Result<(), Unchanged>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let live = api::<K>(app, r)
        .map_err(Unchanged::Refused)?
        .get(name)
        .await
        .map_err(|e| Unchanged::Refused(Refusal::of::<K>("get", r, name)(e)))?;
    let spec = serde_json::to_value(&live)
        .ok()
        .and_then(|v| v.get("spec").cloned())
        .unwrap_or(Value::Null);
    let body = plan(&spec, live.meta(), wanted).map_err(Unchanged::OwnedElsewhere)?;
    apply::<K>(app, r, name, body, annotations)
        .await
        .map_err(Unchanged::Refused)
}

/// A merge patch of the annotations of the reseller's `K` `name` (`null` removes one), as the
/// reseller.
pub async fn annotate<K>(
    app: &App,
    r: &ResellerRequest<'_>,
    name: &str,
    annotations: Map<String, Value>,
) -> Result<(), Refusal>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let patch = json!({"metadata": {"annotations": annotations}});
    api::<K>(app, r)?
        .patch(name, &params, &Patch::Merge(patch))
        .await
        .map(drop)
        .map_err(Refusal::of::<K>("patch", r, name))
}

/// Deletes the reseller's `K` `name`, as the reseller.
pub async fn delete<K>(app: &App, r: &ResellerRequest<'_>, name: &str) -> Result<(), Refusal>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    api::<K>(app, r)?
        .delete(name, &DeleteParams::default())
        .await
        .map(drop)
        .map_err(Refusal::of::<K>("delete", r, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(entries: Value) -> ObjectMeta {
        serde_json::from_value(json!({"name": "shop", "managedFields": entries})).unwrap()
    }

    fn entry(manager: &str, operation: &str, fields: &[&str]) -> Value {
        let spec: Map<String, Value> = fields
            .iter()
            .map(|f| (format!("f:{f}"), json!({})))
            .collect();
        json!({"manager": manager, "operation": operation, "apiVersion": "hosting.oem.dev/v1alpha1",
               "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": spec}})
    }

    fn wanted(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn a_field_gitops_applies_is_refused_by_name_and_nothing_is_sent() {
        let live = json!({"contractName": "Tanaka", "contactEmail": "a@example.jp"});
        let meta = meta(json!([entry(
            "argocd",
            "Apply",
            &["contractName", "contactEmail"]
        )]));
        let refused = plan(
            &live,
            &meta,
            &wanted(&[
                ("contractName", json!("Suzuki")),
                ("contactEmail", json!("a@example.jp")),
            ]),
        )
        .unwrap_err();
        assert_eq!(refused, [("contractName".to_owned(), "argocd".to_owned())]);
    }

    #[test]
    fn unchanged_fields_of_others_are_left_out_and_the_panels_own_kept() {
        let live =
            json!({"contractName": "Tanaka", "suspended": true, "domains": ["a.example.jp"]});
        let meta = meta(json!([
            entry("argocd", "Apply", &["contractName"]),
            entry(FIELD_MANAGER, "Apply", &["suspended"]),
            entry("kubectl-edit", "Update", &["domains"]),
        ]));
        let body = plan(
            &live,
            &meta,
            &wanted(&[
                ("contractName", json!("Tanaka")),
                ("domains", json!(["b.example.jp"])),
            ]),
        )
        .unwrap();
        assert_eq!(
            Value::Object(body),
            json!({"suspended": true, "domains": ["b.example.jp"]})
        );
    }

    #[test]
    fn a_field_the_panel_owns_and_the_form_empties_is_dropped() {
        let live = json!({"customerNumber": "C-1"});
        let meta = meta(json!([entry(FIELD_MANAGER, "Apply", &["customerNumber"])]));
        let body = plan(&live, &meta, &wanted(&[("customerNumber", Value::Null)])).unwrap();
        assert!(body.is_empty(), "{body:?}");
    }
}
