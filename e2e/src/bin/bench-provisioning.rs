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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use oem_crds::policy;
use oem_e2e::hosting::{self, apply_course, apply_enduser, phase_of};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::{Cluster, wait};
use oem_operator::apply::{Applied, apply};
use oem_operator::config::Config;
use oem_operator::hosting::{
    self as build, DatabasePlan, DbEngine, FtpPlan, HostingPlan, WebPlan, rbac,
};
use oem_operator::naming;
use serde_json::json;

const PARALLELISM: usize = 16;
/// The `managed-by` value of the raw floor's objects.
const RAW_MANAGER: &str = "oem-bench-raw";

fn plan(reseller: &str, i: usize) -> HostingPlan {
    let enduser = format!("user-{i:04}");
    HostingPlan {
        reseller: reseller.into(),
        namespace: naming::hosting_namespace(reseller, &enduser),
        enduser_namespace: naming::reseller_namespace(reseller),
        enduser: enduser.clone(),
        cpu: "1".into(),
        memory: "1Gi".into(),
        storage: "10Gi".into(),
        bandwidth: "100M".into(),
        login_id: enduser.clone(),
        web: Some(WebPlan {
            php_version: "8.4".into(),
            image: policy::project_image("web-php8.4"),
        }),
        ftp: Some(FtpPlan { tls: true }),
        mail: None,
        database: Some(DatabasePlan {
            engine: DbEngine::MariaDb,
            image: policy::project_image("mariadb"),
        }),
        domains: vec![format!("user-{i:04}.{reseller}.example.jp")],
        suspended: false,
        mail_locked: false,
        retain_data: false,
        credentials_version: None,
        tls_version: None,
    }
}

/// Labels raw-floor objects as the benchmark's own, so the operator (managed-by selector) never
/// watches, adopts or sweeps them: the two runs must not disturb each other.
fn unmanaged<K: Resource>(mut object: K) -> K {
    object
        .meta_mut()
        .labels
        .get_or_insert_with(Default::default)
        .insert(naming::LABEL_MANAGED_BY.into(), RAW_MANAGER.into());
    object
}

/// Requests the raw floor sent: one GET per object (apply looks first), one PATCH when it
/// wrote.
#[derive(Default)]
struct Requests {
    reads: AtomicUsize,
    writes: AtomicUsize,
}

async fn raw_one(
    client: &Client,
    config: &Config,
    plan: &HostingPlan,
    requests: &Requests,
) -> anyhow::Result<()> {
    async fn each<K>(api: Api<K>, objects: Vec<K>, requests: &Requests) -> anyhow::Result<()>
    where
        K: Resource<DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        for o in objects {
            requests.reads.fetch_add(1, Ordering::Relaxed);
            if apply(&api, &unmanaged(o)).await? == Applied::Written {
                requests.writes.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
    let ns = plan.namespace.as_str();
    let all = Api::all(client.clone());
    each::<Namespace>(all, vec![build::namespace(plan)?], requests).await?;
    let binding = rbac::tenant_viewer_binding(&plan.reseller, &plan.namespace, &[])?;
    each::<RoleBinding>(Api::namespaced(client.clone(), ns), vec![binding], requests).await?;
    each::<ResourceQuota>(
        Api::namespaced(client.clone(), ns),
        vec![build::resource_quota(plan)?],
        requests,
    )
    .await?;
    each::<LimitRange>(
        Api::namespaced(client.clone(), ns),
        vec![build::limit_range(plan)?],
        requests,
    )
    .await?;
    let policies = build::network_policies(plan, &config.network)?;
    each::<NetworkPolicy>(Api::namespaced(client.clone(), ns), policies, requests).await?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "credentials", "namespace": plan.namespace},
        "stringData": {"ftp-password": "x", "mail-password": "x", "db-password": "x"}
    }))?;
    each::<Secret>(Api::namespaced(client.clone(), ns), vec![secret], requests).await?;
    each::<StatefulSet>(
        Api::namespaced(client.clone(), ns),
        build::stateful_sets(plan, config)?,
        requests,
    )
    .await?;
    each::<Service>(
        Api::namespaced(client.clone(), ns),
        build::services(plan, config)?,
        requests,
    )
    .await?;
    each::<Ingress>(
        Api::namespaced(client.clone(), ns),
        build::ingresses(plan, config)?,
        requests,
    )
    .await?;
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

/// Deletes the namespaces labelled with `reseller` and waits until they are gone, so the next
/// run starts on a cluster as empty as the first.
async fn clear_namespaces(client: &Client, reseller: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let selector = ListParams::default().labels(&format!("{}={reseller}", naming::LABEL_RESELLER));
    for ns in api.list_metadata(&selector).await?.items {
        let name = ns.metadata.name.unwrap_or_default();
        match api.delete(&name, &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    wait::until(
        "the run's namespaces gone",
        Duration::from_secs(1800),
        Duration::from_secs(1),
        || async {
            match api.list_metadata(&selector).await {
                Ok(l) if l.items.is_empty() => Ok(()),
                Ok(l) => Err(format!("{} left", l.items.len())),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

struct Run {
    /// The end users' namespace (operator runs).
    namespace: String,
    reseller: String,
    elapsed: Duration,
    reads: usize,
    writes: usize,
}

async fn raw_floor(client: &Client, n: usize, tag: &str) -> anyhow::Result<Run> {
    let reseller = format!("bench-raw-{tag}");
    let config = Config::default();
    let plans: Vec<HostingPlan> = (0..n).map(|i| plan(&reseller, i)).collect();
    let requests = Requests::default();
    let start = Instant::now();
    futures::stream::iter(plans.iter().map(|p| raw_one(client, &config, p, &requests)))
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
    let elapsed = start.elapsed();
    clear_namespaces(client, &reseller).await?;
    Ok(Run {
        namespace: String::new(),
        reseller,
        elapsed,
        reads: requests.reads.into_inner(),
        writes: requests.writes.into_inner(),
    })
}

async fn with_operator(
    cluster: &Cluster,
    client: &Client,
    operator: &Operator,
    n: usize,
    tag: &str,
) -> anyhow::Result<Run> {
    let reseller = format!("bench-op-{tag}");
    let ns = hosting::reseller_with_namespace(client, &reseller, json!([])).await?;
    apply_course(
        client,
        hosting::course(&ns, "plan", "1Gi", hosting::web_and_db()),
    )
    .await?;
    let (reads_before, writes_before) = oem_e2e::operator::requests(cluster)?;
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
    .await
    .with_context(|| format!("operator log:\n{}", operator.log_tail(20)))?;
    let elapsed = start.elapsed();
    // The audit log is written as requests complete; give the last ones a moment to land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (reads, writes) = oem_e2e::operator::requests(cluster)?;
    Ok(Run {
        namespace: ns,
        reseller,
        elapsed,
        reads: reads - reads_before,
        writes: writes - writes_before,
    })
}

/// Allocatable CPUs of all nodes: each end user's course asks for one.
async fn node_cpus(client: &Client) -> anyhow::Result<f64> {
    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(nodes
        .items
        .iter()
        .filter_map(|n| n.status.as_ref()?.allocatable.as_ref()?.get("cpu").cloned())
        .filter_map(|q| oem_operator::apply::quantity_value(&q.0))
        .sum())
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
    println!(
        "provisioning convergence, parallelism {PARALLELISM}, course web+ftp+mariadb (2 StatefulSets each)"
    );
    println!(
        "{:>6} {:>12} {:>12} {:>8} {:>18} {:>22} {:>18}",
        "N",
        "raw floor s",
        "operator s",
        "ratio",
        "operator peak RSS",
        "operator reads/writes",
        "raw reads/writes"
    );
    let capacity = node_cpus(&client).await?;
    if let Some(n) = sizes.iter().find(|n| **n as f64 > capacity) {
        anyhow::bail!(
            "N = {n} needs {n} CPUs of fake nodes (1 per end user) but the cluster has {capacity}: \
             start it with OEM_CLUSTER_NODES={} (64 CPUs each)",
            n.div_ceil(64)
        );
    }
    for (i, &n) in sizes.iter().enumerate() {
        let tag = format!("{n}-{}", std::process::id() % 10000);
        // The raw floor runs with no operator up; the operator then starts on a cluster the
        // raw floor has left empty again.
        let raw = raw_floor(&client, n, &tag).await?;
        // Provisioning alone: the monitor would probe Service names that do not resolve here.
        let operator = Operator::start(
            cluster,
            OperatorOptions {
                env: vec![("OEM_MONITOR_ENABLED".into(), "false".into())],
            },
        )
        .await?;
        let op = with_operator(cluster, &client, &operator, n, &tag).await?;
        let rss = peak_rss_kib(operator.pid())
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_default();
        println!(
            "{n:>6} {:>12.1} {:>12.1} {:>8.2} {:>18} {:>22} {:>18}",
            raw.elapsed.as_secs_f64(),
            op.elapsed.as_secs_f64(),
            op.elapsed.as_secs_f64() / raw.elapsed.as_secs_f64(),
            rss,
            format!("{}/{}", op.reads, op.writes),
            format!("{}/{}", raw.reads, raw.writes),
        );
        // Cleaned up through the operator (finalizers), so the next size starts on an empty
        // cluster; after the last one the cluster goes anyway.
        if i + 1 < sizes.len() {
            Api::<oem_crds::EndUser>::namespaced(client.clone(), &op.namespace)
                .delete_collection(&Default::default(), &ListParams::default())
                .await?;
            clear_namespaces(&client, &op.reseller).await?;
        }
        drop(operator);
    }
    Ok(())
}
