//! Provisioning convergence benchmark (prints figures, never fails on time).
//!
//! For each N (default 100 and 500), side by side against the same local control plane:
//! - raw floor: a plain client server-side applies exactly the objects the operator would
//!   create for N end users (the operator's own pure builders), with the operator's
//!   parallelism, and waits until every StatefulSet is ready;
//! - operator: N EndUsers are created with the same parallelism and the clock runs until all
//!   report `Active`.
//!
//! Usage: `cargo run -p oem-e2e --bin bench-provisioning [N ...]` (`make bench`).

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use oem_e2e::hosting::{self, apply_course, apply_enduser, phase_of};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::{Cluster, wait};
use oem_operator::apply::apply;
use oem_operator::config::Config;
use oem_operator::hosting::{self as build, DbEngine, HostingPlan, rbac};
use oem_operator::naming;
use serde_json::json;

const PARALLELISM: usize = 16;

fn plan(reseller: &str, i: usize) -> HostingPlan {
    let enduser = format!("user-{i:04}");
    HostingPlan {
        reseller: reseller.into(),
        namespace: naming::hosting_namespace(reseller, &enduser),
        enduser_namespace: naming::reseller_namespace(reseller),
        enduser,
        cpu: "1".into(),
        memory: "1Gi".into(),
        storage: "10Gi".into(),
        bandwidth: "100M".into(),
        web: Some("8.3".into()),
        ftp: true,
        mail: None,
        database: Some(DbEngine::MariaDb),
        domains: vec![format!("user-{i:04}.{reseller}.example.jp")],
        suspended: false,
        mail_locked: false,
        retain_data: false,
    }
}

async fn raw_one(client: &Client, config: &Config, plan: &HostingPlan) -> anyhow::Result<()> {
    async fn each<K>(client: &Client, ns: &str, objects: Vec<K>) -> anyhow::Result<()>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(client.clone(), ns);
        for o in &objects {
            apply(&api, o).await?;
        }
        Ok(())
    }
    let ns = &plan.namespace;
    apply(
        &Api::<Namespace>::all(client.clone()),
        &build::namespace(plan)?,
    )
    .await?;
    each::<RoleBinding>(
        client,
        ns,
        vec![rbac::tenant_viewer_binding(&plan.reseller, ns, &[])?],
    )
    .await?;
    each::<ResourceQuota>(client, ns, vec![build::resource_quota(plan)?]).await?;
    each::<LimitRange>(client, ns, vec![build::limit_range(plan)?]).await?;
    each::<NetworkPolicy>(client, ns, build::network_policies(plan, &config.network)?).await?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "credentials", "namespace": ns},
        "stringData": {"ftp-password": "x", "mail-password": "x", "db-password": "x"}
    }))?;
    each::<Secret>(client, ns, vec![secret]).await?;
    each::<StatefulSet>(client, ns, build::stateful_sets(plan, config)?).await?;
    each::<Service>(client, ns, build::services(plan, config)?).await?;
    each::<Ingress>(client, ns, build::ingresses(plan, config)?).await?;
    Ok(())
}

async fn ready_sets(client: &Client, reseller: &str) -> anyhow::Result<usize> {
    let list = Api::<StatefulSet>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{}={reseller}", naming::LABEL_RESELLER)))
        .await?;
    Ok(list
        .items
        .iter()
        .filter(|s| {
            s.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                >= 1
        })
        .count())
}

async fn raw_floor(client: &Client, n: usize, tag: &str) -> anyhow::Result<Duration> {
    let reseller = format!("bench-raw-{tag}");
    let config = Config::default();
    let plans: Vec<HostingPlan> = (0..n).map(|i| plan(&reseller, i)).collect();
    let start = Instant::now();
    futures::stream::iter(plans.iter().map(|p| raw_one(client, &config, p)))
        .buffer_unordered(PARALLELISM)
        .try_collect::<Vec<()>>()
        .await?;
    wait::until(
        "raw floor workloads ready",
        Duration::from_secs(1800),
        Duration::from_millis(250),
        || async {
            match ready_sets(client, &reseller).await {
                Ok(r) if r == 2 * n => Ok(()),
                Ok(r) => Err(format!("{r} of {} ready", 2 * n)),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    Ok(start.elapsed())
}

async fn with_operator(client: &Client, n: usize, tag: &str) -> anyhow::Result<Duration> {
    let reseller = format!("bench-op-{tag}");
    let ns = hosting::reseller_with_namespace(client, &reseller, json!([])).await?;
    apply_course(
        client,
        hosting::course(&ns, "plan", "1Gi", hosting::web_and_db()),
    )
    .await?;
    let start = Instant::now();
    futures::stream::iter((0..n).map(|i| {
        let ns = ns.clone();
        async move {
            apply_enduser(
                client,
                hosting::enduser(
                    &ns,
                    &format!("user-{i:04}"),
                    "plan",
                    "2025-01-01",
                    json!({}),
                ),
            )
            .await
            .map(|_| ())
        }
    }))
    .buffer_unordered(PARALLELISM)
    .try_collect::<Vec<()>>()
    .await?;
    let api: Api<oem_crds::EndUser> = Api::namespaced(client.clone(), &ns);
    wait::until(
        "all end users Active",
        Duration::from_secs(1800),
        Duration::from_millis(250),
        || async {
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let active = list
                .items
                .iter()
                .filter(|e| phase_of(e) == "Active")
                .count();
            if active == n {
                Ok(())
            } else {
                Err(format!("{active} of {n} Active"))
            }
        },
    )
    .await?;
    Ok(start.elapsed())
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 500]
    } else {
        sizes
    };
    let cluster = Cluster::shared().await?;
    let client = cluster.client().await?;
    // Provisioning alone: the monitor would probe Service names that do not resolve here.
    let operator = Operator::start(
        cluster,
        OperatorOptions {
            env: vec![("OEM_MONITOR_ENABLED".into(), "false".into())],
        },
    )
    .await?;
    println!(
        "provisioning convergence, parallelism {PARALLELISM}, course web+ftp+mariadb (2 StatefulSets each)"
    );
    println!(
        "{:>6} {:>12} {:>12} {:>8} {:>16}",
        "N", "raw floor s", "operator s", "ratio", "operator peak RSS"
    );
    for n in sizes {
        let tag = format!("{n}-{}", std::process::id() % 10000);
        let raw = raw_floor(&client, n, &tag).await?;
        let op = with_operator(&client, n, &tag).await?;
        let rss = peak_rss_kib(operator.pid())
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_default();
        println!(
            "{n:>6} {:>12.1} {:>12.1} {:>8.2} {:>16}",
            raw.as_secs_f64(),
            op.as_secs_f64(),
            op.as_secs_f64() / raw.as_secs_f64(),
            rss
        );
    }
    Ok(())
}
