//! Fixtures for hosting tests: a reseller of the test's own, courses and end users built as
//! JSON (what a reseller would write in YAML), and waits on what the operator reports.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use oem_crds::{Course, EndUser, Reseller};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::wait;

/// The field manager test fixtures apply with (a reseller's GitOps pipeline, say).
pub const TEST_MANAGER: &str = "e2e-reseller";

/// Server-side applies a JSON object of kind `K`.
pub async fn apply<K>(api: &Api<K>, value: Value) -> anyhow::Result<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = value["metadata"]["name"]
        .as_str()
        .context("fixture without metadata.name")?
        .to_owned();
    api.patch(
        &name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&value),
    )
    .await
    .with_context(|| format!("applying {name}"))
}

pub fn reseller(name: &str, admins: Value) -> Value {
    json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Reseller",
        "metadata": {"name": name},
        "spec": {
            "displayName": format!("{name} hosting"),
            "admins": admins,
            "contacts": [{"name": "desk", "email": format!("noc@{name}.example.jp")}],
            "quota": {"maxEndUsers": 1000, "totalCpu": "1000", "totalMemory": "4Ti", "totalStorage": "100Ti"}
        }
    })
}

pub fn course(namespace: &str, name: &str, memory: &str, services: Value) -> Value {
    json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Course",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "displayName": name,
            "resources": {"cpu": "1", "memory": memory, "storage": "10Gi"},
            "limits": {"domains": 3},
            "services": services
        }
    })
}

pub fn web_and_db() -> Value {
    json!({"web": {"phpVersion": "8.4"}, "ftp": {}, "database": {"engine": "mariadb"}})
}

pub fn enduser(namespace: &str, name: &str, course: &str, start: &str, extra: Value) -> Value {
    let mut spec = json!({
        "loginId": format!("u{}", name.replace('.', "-")).chars().take(32).collect::<String>(),
        "contractName": format!("{name} Co., Ltd."),
        "contactEmail": format!("{name}@example.jp"),
        "courseRef": {"name": course},
        // Under the reseller's namespace: domains are unique cluster-wide (DomainClaims), and
        // tests sharing the kwok cluster reuse end-user names.
        "domains": [format!("{name}.{namespace}.example.jp")],
        "contractDate": "2025-01-01",
        "startDate": start
    });
    if let (Value::Object(spec), Value::Object(extra)) = (&mut spec, extra) {
        spec.extend(extra);
    }
    json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "EndUser",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec
    })
}

/// Creates a reseller of the tests' own and waits for its namespace.
pub async fn reseller_with_namespace(
    client: &Client,
    name: &str,
    admins: Value,
) -> anyhow::Result<String> {
    apply_reseller(client, reseller(name, admins)).await
}

/// Applies a reseller and waits for the operator to create its namespace.
pub async fn apply_reseller(client: &Client, value: Value) -> anyhow::Result<String> {
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let api: Api<Reseller> = Api::all(client.clone());
    apply(&api, value).await?;
    let ns = format!("reseller-{name}");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    wait::until(
        "the reseller's namespace",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            match namespaces.get_opt(&ns).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("absent".into()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    Ok(ns)
}

pub async fn apply_course(client: &Client, value: Value) -> anyhow::Result<Course> {
    let ns = value["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    apply(&Api::<Course>::namespaced(client.clone(), &ns), value).await
}

/// The course `db` in `namespace`: 1 GiB, PostgreSQL only (the incident tests' end users,
/// whose PostgreSQL is the probe tests' real server through `monitoring.endpoints`).
pub async fn apply_postgresql_course(client: &Client, namespace: &str) -> anyhow::Result<Course> {
    apply_course(
        client,
        course(
            namespace,
            "db",
            "1Gi",
            json!({"database": {"engine": "postgresql"}}),
        ),
    )
    .await
}

pub async fn apply_enduser(client: &Client, value: Value) -> anyhow::Result<EndUser> {
    let ns = value["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    apply(&Api::<EndUser>::namespaced(client.clone(), &ns), value).await
}

/// The phase the operator reports, as text (`Active`, `Scheduled`…).
pub fn phase_of(enduser: &EndUser) -> String {
    serde_json::to_value(enduser)
        .ok()
        .and_then(|v| v["status"]["phase"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Waits until the end user reports `phase`; returns it as then observed.
pub async fn wait_phase(
    client: &Client,
    namespace: &str,
    name: &str,
    phase: &str,
    limit: Duration,
) -> anyhow::Result<EndUser> {
    let api: Api<EndUser> = Api::namespaced(client.clone(), namespace);
    wait::until(
        &format!("enduser {namespace}/{name} to be {phase}"),
        limit,
        Duration::from_millis(300),
        || async {
            let eu = api.get(name).await.map_err(|e| e.to_string())?;
            if phase_of(&eu) == phase {
                Ok(eu)
            } else {
                let status = serde_json::to_value(&eu)
                    .map(|v| v["status"].to_string())
                    .unwrap_or_default();
                Err(format!("status {status}"))
            }
        },
    )
    .await
}

/// The hosting namespace the end user's status names.
pub fn hosting_namespace(enduser: &EndUser) -> anyhow::Result<String> {
    serde_json::to_value(enduser)?["status"]["hostingNamespace"]
        .as_str()
        .map(str::to_owned)
        .context("status.hostingNamespace is empty")
}

/// How many end users of the reseller namespace `ns` are Active.
pub async fn active_count(client: &Client, ns: &str) -> anyhow::Result<usize> {
    let list = Api::<EndUser>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    Ok(list
        .items
        .iter()
        .filter(|e| phase_of(e) == "Active")
        .count())
}

/// After provisioning runs that crashed or failed over: the reseller's `expected` end users
/// each have exactly one hosting namespace holding exactly the StatefulSets `workloads`, and no
/// hosting namespace of the reseller belongs to an end user that does not exist.
pub async fn check_provisioned_once(
    client: &Client,
    reseller: &str,
    expected: usize,
    workloads: &[&str],
) -> anyhow::Result<()> {
    let endusers: BTreeSet<String> =
        Api::<EndUser>::namespaced(client.clone(), &format!("reseller-{reseller}"))
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|e| e.name_any())
            .collect();
    anyhow::ensure!(
        endusers.len() == expected,
        "{} end users exist, not {expected}",
        endusers.len()
    );
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default().labels(&format!(
            "app.kubernetes.io/managed-by=oem-hosting,hosting.oem.dev/reseller={reseller},hosting.oem.dev/enduser"
        )))
        .await?;
    let mut per_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for namespace in namespaces
        .items
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
    {
        let owner = namespace
            .labels()
            .get("hosting.oem.dev/enduser")
            .cloned()
            .unwrap_or_default();
        per_user
            .entry(owner)
            .or_default()
            .push(namespace.name_any());
    }
    let orphans: Vec<&Vec<String>> = per_user
        .iter()
        .filter(|(owner, _)| !endusers.contains(*owner))
        .map(|(_, names)| names)
        .collect();
    anyhow::ensure!(
        orphans.is_empty(),
        "orphaned hosting namespaces: {orphans:?}"
    );
    let duplicates: Vec<(&String, &Vec<String>)> = per_user
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .collect();
    anyhow::ensure!(
        duplicates.is_empty(),
        "duplicate hosting namespaces: {duplicates:?}"
    );
    let missing: Vec<&String> = endusers
        .iter()
        .filter(|e| !per_user.contains_key(*e))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "end users without a hosting namespace: {missing:?}"
    );
    for names in per_user.values() {
        for namespace in names {
            let sets = Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .list(&ListParams::default())
                .await?;
            let mut found: Vec<String> = sets.items.iter().map(|s| s.name_any()).collect();
            found.sort();
            anyhow::ensure!(
                found == workloads,
                "{namespace}: StatefulSets {found:?}, not exactly {workloads:?}"
            );
        }
    }
    Ok(())
}
