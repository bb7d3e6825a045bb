//! Generated credentials. Values are created once and never logged, put in events, status or
//! metrics; reconciles after the first only check that the keys are there.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use oem_crds::enduser::{EndUser, PasswordSecretRef};
use oem_crds::reseller::{FIRST_PANEL_LOGIN, Reseller, panel_accounts_secret};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;

use super::cache::Caches;
use crate::apply::{Live, LiveStore, fingerprint};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hosting::dkim::{self, ANNOTATION_PUBLIC_KEY, DKIM_SECRET, DkimKey, KEY_PRIVATE};
use crate::hosting::{
    CREDENTIALS_SECRET, HostingPlan, KEY_DB_PASSWORD, KEY_DB_ROOT_PASSWORD, KEY_FTP_PASSWORD,
    KEY_MAIL_ACCOUNTS,
};
use crate::naming;

/// Keys of the hosting namespace's credentials Secret.
const CREDENTIAL_KEYS: [&str; 4] = [
    KEY_FTP_PASSWORD,
    KEY_MAIL_ACCOUNTS,
    KEY_DB_PASSWORD,
    KEY_DB_ROOT_PASSWORD,
];

fn password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

/// The name of the Secret holding the login password: the referenced one (checked to exist
/// with its key), or `<name>-login` generated in the reseller's namespace and owned by the
/// EndUser, so it goes with it.
pub async fn ensure_login_password(
    ctx: &Context,
    caches: &Caches,
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
    // The generated Secret carries the managed-by label, so the Secret cache knows it; when
    // the cache does not (yet), creating it is the check (an existing one is kept).
    if !matches!(caches.secrets.live(Some(&ns), &name), Live::Absent) {
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
    if create_once(&api, &secret).await?.is_some() {
        tracing::info!(secret = %name, "generated the login password");
    }
    Ok(name)
}

/// The hosting namespace's credentials Secret: created with fresh passwords when absent, a
/// missing key added, existing values never changed. Read only when the Secret changed since
/// it was last checked (the cache holds its metadata, never its values). Returns the Secret's
/// resourceVersion when known, which the workloads carry so that a rotation restarts them.
pub async fn ensure_credentials(
    ctx: &Context,
    caches: &Caches,
    plan: &HostingPlan,
) -> Result<Option<String>> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &plan.namespace);
    let ns = plan.namespace.as_str();
    let keys = fingerprint(&CREDENTIAL_KEYS)?;
    if let Live::Meta(version) = caches.secrets.live(Some(ns), CREDENTIALS_SECRET)
        && caches
            .applier
            .checked(CREDENTIAL_CHECK, ns, CREDENTIALS_SECRET, &version, keys)
    {
        return Ok(Some(version));
    }
    // Not cached: most likely new, so create it; an existing one (409) is read and checked.
    let cached = !matches!(
        caches.secrets.live(Some(ns), CREDENTIALS_SECRET),
        Live::Absent
    );
    if !cached {
        let fresh = credentials_secret(plan, &CREDENTIAL_KEYS)?;
        if let Some(version) = create_once(&api, &fresh).await? {
            caches.applier.record_check(
                CREDENTIAL_CHECK,
                ns,
                CREDENTIALS_SECRET,
                Some(version.clone()),
                keys,
            );
            return Ok(Some(version));
        }
    }
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
        let version = current.as_ref().and_then(|s| s.resource_version());
        caches.applier.record_check(
            CREDENTIAL_CHECK,
            ns,
            CREDENTIALS_SECRET,
            version.clone(),
            keys,
        );
        return Ok(version);
    }
    let secret = credentials_secret(plan, &missing)?;
    // Recorded on the next reconcile, which reads the written Secret back once.
    if current.is_none() {
        create_once(&api, &secret).await
    } else {
        caches
            .applier
            .ensure(ctx, &api, &secret, Live::Unknown)
            .await
            .map(|_| None)
    }
}

/// What [`ensure_credentials`] records: the Secret was checked to hold every key.
const CREDENTIAL_CHECK: &str = "credential-keys";

/// The credentials Secret with fresh passwords for `keys`. The mail accounts start with one:
/// `info@` the first domain (`postmaster@` the mail host's name without a domain).
fn credentials_secret(plan: &HostingPlan, keys: &[&str]) -> Result<Secret> {
    let data: BTreeMap<&str, String> = keys
        .iter()
        .map(|k| match *k {
            KEY_MAIL_ACCOUNTS => (*k, format!("{}:{}\n", first_mailbox(plan), password())),
            _ => (*k, password()),
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": CREDENTIALS_SECRET, "namespace": plan.namespace, "labels": plan.labels()},
        "type": "Opaque",
        "stringData": data
    }))
    .map_err(|source| Error::Serialize {
        what: "credentials",
        source,
    })
}

/// The first mail account's address.
pub fn first_mailbox(plan: &HostingPlan) -> String {
    match plan.domains.first() {
        Some(domain) => format!("info@{domain}"),
        None => format!("postmaster@{}", plan.mail_hostname()),
    }
}

/// The hosting namespace's DKIM key when the plan has mail: made once (the `dkim` Secret,
/// mounted into the mail pod, which signs with it) and never changed while it is usable.
/// Returns its public half, from the Secret's cached annotation once it was checked against
/// the private key at that resourceVersion; a Secret edited by hand is read and its
/// annotation corrected, an unusable key (missing, not an RSA key in PEM) replaced.
pub async fn ensure_dkim(
    ctx: &Context,
    caches: &Caches,
    plan: &HostingPlan,
) -> Result<Option<String>> {
    if plan.mail.is_none() {
        return Ok(None);
    }
    let ns = plan.namespace.as_str();
    let name = format!("{ns}/{DKIM_SECRET}");
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    // The secrets' store keeps each one's public-key annotation.
    let cached = caches.secrets.get(ns, DKIM_SECRET);
    match cached {
        Some(entry) => {
            if let Some(public) = entry.kept
                && caches
                    .applier
                    .checked(DKIM_CHECK, ns, DKIM_SECRET, &entry.version, 0)
            {
                return Ok(Some(public.into()));
            }
        }
        // Made by this process moments ago, before its watch event: read below rather than
        // make a key (a quarter of a second of a core) only to be told it exists.
        None if caches.applier.recorded(DKIM_CHECK, ns, DKIM_SECRET) => {}
        // Not cached: most likely new, so make one; an existing one (409) is read below.
        None => {
            if let Some(public) = make_dkim(&api, caches, plan, &name).await? {
                return Ok(Some(public));
            }
        }
    }
    let Some(current) =
        api.get_opt(DKIM_SECRET)
            .await
            .map_err(Error::kube("get", "Secret", name.clone()))?
    else {
        // Deleted (a rotation, or since the cache saw it): a new key now.
        return make_dkim(&api, caches, plan, &name).await;
    };
    let version = current.resource_version();
    let published = current.annotations().get(ANNOTATION_PUBLIC_KEY).cloned();
    let private = current
        .data
        .as_ref()
        .and_then(|d| d.get(KEY_PRIVATE))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned());
    let usable = match private.as_deref().map(dkim::public_of) {
        Some(Ok(public)) => Ok(public),
        Some(Err(why)) => Err(why),
        None => Err(format!("it has no {KEY_PRIVATE}")),
    };
    let patch = match usable {
        Ok(public) if published.as_deref() == Some(public.as_str()) => {
            caches
                .applier
                .record_check(DKIM_CHECK, ns, DKIM_SECRET, version, 0);
            return Ok(Some(public));
        }
        // The key was put there by hand: publish its public half.
        Ok(public) => json!({
            "metadata": {"resourceVersion": version, "annotations": {ANNOTATION_PUBLIC_KEY: public}},
        }),
        Err(why) => {
            tracing::warn!(secret = %name, %why, "the DKIM key is unusable: replacing it");
            let key = new_key(&name).await?;
            json!({
                "metadata": {"resourceVersion": version, "annotations": {ANNOTATION_PUBLIC_KEY: key.public}},
                "stringData": {KEY_PRIVATE: key.private_pem},
            })
        }
    };
    // On the version read: a concurrent edit fails it (409) and the next reconcile looks again.
    let written = api
        .patch(DKIM_SECRET, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::kube("patch", "Secret", name.clone()))?;
    Ok(written.annotations().get(ANNOTATION_PUBLIC_KEY).cloned())
}

/// Makes a key and creates the `dkim` Secret with it; its public half, or `None` when a
/// Secret was there already (kept).
async fn make_dkim(
    api: &Api<Secret>,
    caches: &Caches,
    plan: &HostingPlan,
    name: &str,
) -> Result<Option<String>> {
    let key = new_key(name).await?;
    let secret = dkim::secret(&plan.namespace, plan.labels(), &key);
    let Some(version) = create_once(api, &secret).await? else {
        return Ok(None);
    };
    caches
        .applier
        .record_check(DKIM_CHECK, &plan.namespace, DKIM_SECRET, Some(version), 0);
    tracing::info!(secret = %name, "made the end user's DKIM key");
    Ok(Some(key.public))
}

/// What [`ensure_dkim`] records: the Secret's annotation was checked to be its key's public half.
const DKIM_CHECK: &str = "dkim-key";

/// A fresh DKIM key, made on a blocking thread (a quarter of a second of one core).
async fn new_key(secret: &str) -> Result<DkimKey> {
    tokio::task::spawn_blocking(dkim::generate)
        .await
        .map_err(|e| e.to_string())
        .and_then(|made| made)
        .map_err(|message| Error::Internal {
            what: format!("DKIM key for Secret {secret}"),
            message,
        })
}

/// A reseller's panel logins, `oem-hosting-panel-<reseller>` in the provider's `namespace`:
/// created with the login `admin` and a generated password, owned by the Reseller (so it goes
/// with it); afterwards every key with an empty value gets a generated password (the provider
/// adds a login, or rotates one, by setting its value to ""), and nothing else is changed. Read
/// once per reconcile (a Reseller resyncs every few minutes); written only when a value is
/// missing.
pub async fn ensure_panel_accounts(
    ctx: &Context,
    reseller: &Reseller,
    namespace: &str,
) -> Result<()> {
    let name = panel_accounts_secret(&reseller.name_any());
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let current = api.get_opt(&name).await.map_err(Error::kube(
        "get",
        "Secret",
        format!("{namespace}/{name}"),
    ))?;
    let Some(current) = current else {
        let owner = reseller.controller_owner_ref(&()).map(|o| vec![o]);
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {naming::LABEL_MANAGED_BY: naming::MANAGED_BY, naming::LABEL_RESELLER: reseller.name_any()},
                "ownerReferences": owner,
            },
            "type": "Opaque",
            "stringData": {FIRST_PANEL_LOGIN: password()}
        }))
        .map_err(|source| Error::Serialize { what: "panel accounts", source })?;
        if create_once(&api, &secret).await?.is_some() {
            tracing::info!(secret = %format!("{namespace}/{name}"), "generated the reseller's panel login");
        }
        return Ok(());
    };
    let empty: BTreeMap<String, String> = current
        .data
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, value)| value.0.is_empty())
        .map(|(login, _)| (login, password()))
        .collect();
    if empty.is_empty() {
        return Ok(());
    }
    let logins: Vec<&String> = empty.keys().collect();
    // A merge patch of those keys only, on the version read: a concurrent edit makes it fail
    // (409) and the next reconcile looks again, instead of overwriting a value just set.
    let patch = json!({
        "metadata": {"resourceVersion": current.metadata.resource_version},
        "stringData": empty,
    });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::kube(
            "patch",
            "Secret",
            format!("{namespace}/{name}"),
        ))?;
    tracing::info!(secret = %format!("{namespace}/{name}"), ?logins, "generated panel passwords for logins without one");
    Ok(())
}

/// Creates `secret` unless it exists. Returns the new Secret's resourceVersion, or `None` when
/// one was there already (its values are kept).
async fn create_once(api: &Api<Secret>, secret: &Secret) -> Result<Option<String>> {
    match api.create(&PostParams::default(), secret).await {
        Ok(created) => Ok(Some(created.resource_version().unwrap_or_default())),
        // Another reconcile created it first: keep its values.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
        Err(e) => Err(Error::kube("create", "Secret", secret.name_any())(e)),
    }
}
