//! Generated credentials. Values are created once and never logged, put in events, status or
//! metrics; reconciles after the first only check that the keys are there.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use oem_crds::enduser::{EndUser, PasswordSecretRef};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::hosting::{CREDENTIALS_SECRET, HostingPlan};
use crate::naming;

/// Keys of the hosting namespace's credentials Secret.
const CREDENTIAL_KEYS: [&str; 3] = ["ftp-password", "mail-password", "db-password"];

fn password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

/// The name of the Secret holding the login password: the referenced one (checked to exist
/// with its key), or `<name>-login` generated in the reseller's namespace and owned by the
/// EndUser, so it goes with it.
pub async fn ensure_login_password(
    ctx: &Context,
    enduser: &EndUser,
    object: &str,
) -> Result<String> {
    let ns = enduser.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let generated = PasswordSecretRef::generated(&enduser.name_any());
    let name = generated.name.clone();
    // The mutating webhook writes the generated Secret's name into the spec, so a reference to
    // it means "the generated one", created when missing.
    let generated_ref = enduser.spec.password_secret_ref.as_ref() == Some(&generated);
    if let Some(reference) = enduser
        .spec
        .password_secret_ref
        .as_ref()
        .filter(|_| !generated_ref)
    {
        let secret = api.get_opt(&reference.name).await.map_err(Error::kube(
            "get",
            "Secret",
            reference.name.clone(),
        ))?;
        let has_key = secret.as_ref().is_some_and(|s| {
            s.data
                .as_ref()
                .is_some_and(|d| d.contains_key(&reference.key))
                || s.string_data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(&reference.key))
        });
        if !has_key {
            return Err(Error::PasswordSecret {
                object: object.to_owned(),
                secret: reference.name.clone(),
                key: reference.key.clone(),
            });
        }
        return Ok(reference.name.clone());
    }
    if api
        .get_metadata_opt(&name)
        .await
        .map_err(Error::kube("get", "Secret", name.clone()))?
        .is_some()
    {
        return Ok(name);
    }
    let owner = enduser.controller_owner_ref(&()).map(|o| vec![o]);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {naming::LABEL_MANAGED_BY: naming::MANAGED_BY, naming::LABEL_ENDUSER: enduser.name_any()},
            "ownerReferences": owner,
        },
        "type": "Opaque",
        "stringData": {"login": enduser.spec.login_id, (generated.key.as_str()): password()}
    }))
    .map_err(|source| Error::Serialize { what: "login secret", source })?;
    create_once(&api, &secret).await?;
    tracing::info!(secret = %name, "generated the login password");
    Ok(name)
}

/// The hosting namespace's credentials Secret: created with fresh passwords when absent, a
/// missing key added, existing values never changed.
pub async fn ensure_credentials(ctx: &Context, plan: &HostingPlan) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &plan.namespace);
    let current = api.get_opt(CREDENTIALS_SECRET).await.map_err(Error::kube(
        "get",
        "Secret",
        CREDENTIALS_SECRET,
    ))?;
    let have: BTreeMap<String, ByteString> = current
        .as_ref()
        .and_then(|s| s.data.clone())
        .unwrap_or_default();
    let missing: Vec<&str> = CREDENTIAL_KEYS
        .iter()
        .copied()
        .filter(|k| !have.contains_key(*k))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    for key in missing {
        data.insert(key.to_owned(), password());
    }
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": CREDENTIALS_SECRET, "namespace": plan.namespace, "labels": plan.labels()},
        "type": "Opaque",
        "stringData": data
    }))
    .map_err(|source| Error::Serialize { what: "credentials", source })?;
    if current.is_none() {
        create_once(&api, &secret).await
    } else {
        super::children::apply(ctx, &api, &secret).await.map(|_| ())
    }
}

async fn create_once(api: &Api<Secret>, secret: &Secret) -> Result<()> {
    match api.create(&PostParams::default(), secret).await {
        Ok(_) => Ok(()),
        // Another reconcile created it first: keep its values.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(Error::kube("create", "Secret", secret.name_any())(e)),
    }
}
