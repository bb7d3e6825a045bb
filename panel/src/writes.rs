//! Everything the panel reads from or writes to the API server outside the watches, in one
//! place, with the field manager `oem-hosting-panel`: password Secret values (read to hash,
//! written on a change), the hosting's `credentials` Secret (read to show, written to rotate),
//! and the lock annotation on an EndUser. Errors name the object, never a value.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use oem_crds::EndUser;
use serde_json::json;

use crate::auth::limiter::LOCK_ANNOTATION;

/// The field manager of the panel's writes: the resellers' edits of their end users,
/// courses and incidents (server-side apply, acting as the reseller) and the end users'
/// Secret changes.
pub const FIELD_MANAGER: &str = "oem-hosting-panel";
/// The field manager of the login lock annotation alone: an apply under [`FIELD_MANAGER`]
/// naming only the annotation would drop the spec fields a reseller set through the panel.
pub const LOCK_FIELD_MANAGER: &str = "oem-hosting-panel-lock";

/// The hosting namespace's credentials Secret (the operator creates it; see
/// docs/credentials.md) and its keys.
pub const CREDENTIALS_SECRET: &str = "credentials";
pub const KEY_FTP_PASSWORD: &str = "ftp-password";
pub const KEY_MAIL_ACCOUNTS: &str = "mail-accounts";
pub const KEY_DB_PASSWORD: &str = "db-password";

/// A failed API call, naming the object.
#[derive(Debug, thiserror::Error)]
#[error("{verb} {kind} {namespace}/{name}: {source}")]
pub struct WriteError {
    verb: &'static str,
    kind: &'static str,
    namespace: String,
    name: String,
    source: kube::Error,
}

impl WriteError {
    /// The API server refused it as a conflict (409): another field manager owns the field.
    pub fn is_conflict(&self) -> bool {
        matches!(&self.source, kube::Error::Api(status) if status.code == 409)
    }
}

fn failed<'a>(
    verb: &'static str,
    kind: &'static str,
    namespace: &'a str,
    name: &'a str,
) -> impl FnOnce(kube::Error) -> WriteError + 'a {
    move |source| WriteError {
        verb,
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    }
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// A Secret's string values and its resourceVersion, or None when it does not exist.
pub async fn read_secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<(String, BTreeMap<String, String>)>, WriteError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(name)
        .await
        .map_err(failed("get", "Secret", namespace, name))?;
    Ok(secret.map(|s| {
        let version = s.resource_version().unwrap_or_default();
        let values = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect();
        (version, values)
    }))
}

/// Writes one key of a Secret (a merge patch: other keys are kept).
pub async fn write_secret_key(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
    value: &str,
) -> Result<(), WriteError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    api.patch(
        name,
        &params(),
        &Patch::Merge(json!({"stringData": {key: value}})),
    )
    .await
    .map_err(failed("patch", "Secret", namespace, name))?;
    Ok(())
}

/// Publishes (Some) or withdraws (None) the login lock on the EndUser, by server-side apply of
/// the one annotation the panel owns.
pub async fn publish_lock(
    client: &Client,
    enduser: &EndUser,
    until: Option<Timestamp>,
) -> Result<(), WriteError> {
    let namespace = enduser.namespace().unwrap_or_default();
    let name = enduser.name_any();
    let api: Api<EndUser> = Api::namespaced(client.clone(), &namespace);
    let mut metadata = json!({"name": name, "namespace": namespace});
    if let Some(until) = until {
        metadata["annotations"] = json!({LOCK_ANNOTATION: until.to_string()});
    }
    let apply = json!({
        "apiVersion": "hosting.oem.dev/v1alpha1",
        "kind": "EndUser",
        "metadata": metadata,
    });
    let params = PatchParams {
        field_manager: Some(LOCK_FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(&name, &params.force(), &Patch::Apply(apply))
        .await
        .map_err(failed("apply", "EndUser", &namespace, &name))?;
    Ok(())
}

/// The field manager of what an end user chooses for itself in its panel (its PHP version):
/// its own, apart from the reseller's and the panel's.
pub const ENDUSER_FIELD_MANAGER: &str = "oem-hosting-enduser";

/// The end user's choice of PHP version, by server-side apply of `spec.web.phpVersion` alone
/// under [`ENDUSER_FIELD_MANAGER`], not forced: a version another applier (the reseller's
/// GitOps) owns is refused with a conflict (409), never taken over.
pub async fn choose_php(
    client: &Client,
    enduser: &EndUser,
    version: &str,
) -> Result<(), WriteError> {
    let namespace = enduser.namespace().unwrap_or_default();
    let name = enduser.name_any();
    let api: Api<EndUser> = Api::namespaced(client.clone(), &namespace);
    let apply = json!({
        "apiVersion": "hosting.oem.dev/v1alpha1",
        "kind": "EndUser",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"web": {"phpVersion": version}},
    });
    api.patch(
        &name,
        &PatchParams::apply(ENDUSER_FIELD_MANAGER),
        &Patch::Apply(apply),
    )
    .await
    .map_err(failed("apply", "EndUser", &namespace, &name))?;
    Ok(())
}

/// The login lock the EndUser shows, if any.
pub fn published_lock(enduser: &EndUser) -> Option<Timestamp> {
    enduser
        .annotations()
        .get(LOCK_ANNOTATION)
        .and_then(|v| v.parse().ok())
}
