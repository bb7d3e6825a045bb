//! Provisioning convergence benchmark (prints figures, never fails on time).
//!
//! For each N (default 100 and 500), side by side against the same local control plane, each
//! run repeated (3 times by default, `OEM_BENCH_REPEAT`) with the order alternating, medians
//! and spread printed:
//! - raw floor: a plain client sends only the writes the objects need — server-side applies of
//!   exactly the objects the operator would create (its own pure builders: the hosting
//!   namespace's children, the login Secret, the domain claims and the operator's Secret
//!   RoleBinding), no reads — an end user's objects at once after its namespace, with the
//!   operator's parallelism, and waits until every StatefulSet is ready;
//! - operator: N EndUsers are created with the same parallelism and the clock runs until all
//!   report `Active` (monitor off: the Service names it would probe do not resolve here);
//! - steady state: the operator restarted with every loop on (monitor, usage reporter, alert
//!   controller), its reads and writes per minute over two idle minutes from the audit log.
//!
//! Above N = 500 (`FLOOR_MAX`) the operator runs once and alone: the ratio to the floor is
//! asked at 500; larger N measure the memory and the idle reads, which do not need it.
//!
//! Usage: `cargo run -p oem-e2e --bin bench-provisioning [N ...]` (`make bench`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use oem_crds::DomainClaim;
use oem_crds::policy;
use oem_e2e::hosting::{self, apply_course, apply_enduser, phase_of};
use oem_e2e::operator::{OPERATOR_ACCOUNT, OPERATOR_NAMESPACE, Operator, OperatorOptions};
use oem_e2e::{Cluster, wait};
use oem_operator::config::Config;
use oem_operator::hosting::dkim;
use oem_operator::hosting::{
    self as build, DatabasePlan, DbEngine, FtpPlan, HostingPlan, WebPlan, rbac,
};
use oem_operator::{identity, naming};
use serde_json::json;

const PARALLELISM: usize = 16;
/// The largest N that is measured against the raw floor, and repeated.
const FLOOR_MAX: usize = 500;
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

/// Writes the raw floor sent (it reads nothing).
#[derive(Default)]
struct Requests {
    writes: AtomicUsize,
}

/// Server-side applies `objects` at once: one PATCH each, no read.
async fn write_all<K>(api: Api<K>, objects: Vec<K>, requests: &Requests) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let params = PatchParams::apply(RAW_MANAGER).force();
    futures::future::try_join_all(objects.into_iter().map(|o| {
        let (api, params) = (&api, &params);
        async move {
            let o = unmanaged(o);
            let name = o.meta().name.clone().unwrap_or_default();
            api.patch(&name, params, &Patch::Apply(&o)).await?;
            requests.writes.fetch_add(1, Ordering::Relaxed);
            anyhow::Ok(())
        }
    }))
    .await?;
    Ok(())
}

async fn raw_one(
    client: &Client,
    config: &Config,
    plan: &HostingPlan,
    requests: &Requests,
) -> anyhow::Result<()> {
    let ns = plan.namespace.as_str();
    write_all::<Namespace>(
        Api::all(client.clone()),
        vec![build::namespace(plan)],
        requests,
    )
    .await?;
    let binding = rbac::tenant_viewer_binding(&plan.reseller, &plan.namespace, &[]);
    // The operator's own Secret access in the namespace, which it binds before its Secrets.
    let operator = identity::subject_of(&format!(
        "system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"
    ));
    let own = rbac::operator_secrets_binding(&plan.reseller, ns, &operator);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "credentials", "namespace": plan.namespace},
        "stringData": {"ftp-password": "x", "mail-password": "x", "db-password": "x"}
    }))?;
    // The end user's login Secret: the operator's lives in the reseller's namespace, which
    // the floor has none of; a write is a write.
    let login: Secret = serde_json::from_value(json!({
        "metadata": {"name": "login-password", "namespace": plan.namespace},
        "stringData": {"login": plan.login_id, "password": "x"}
    }))?;
    // The domains' claims (cluster-scoped), as the operator makes them.
    let claims: Vec<DomainClaim> = plan
        .domains
        .iter()
        .map(|d| DomainClaim::for_end_user(d, &plan.enduser_namespace, &plan.enduser))
        .collect();
    // The DKIM key is work the floor must do too: a fresh key per end user with mail.
    let mut secrets = vec![secret, login];
    if plan.mail.is_some() {
        let key = tokio::task::spawn_blocking(dkim::generate)
            .await?
            .map_err(anyhow::Error::msg)?;
        secrets.push(dkim::secret(ns, plan.labels(), &key));
    }
    futures::try_join!(
        write_all::<RoleBinding>(
            Api::namespaced(client.clone(), ns),
            vec![binding, own],
            requests
        ),
        write_all::<DomainClaim>(Api::all(client.clone()), claims, requests),
        write_all::<ResourceQuota>(
            Api::namespaced(client.clone(), ns),
            vec![build::resource_quota(plan)],
            requests
        ),
        write_all::<LimitRange>(
            Api::namespaced(client.clone(), ns),
            vec![build::limit_range(plan)],
            requests
        ),
        write_all::<NetworkPolicy>(
            Api::namespaced(client.clone(), ns),
            build::network_policies(plan, &config.network, config.mail.relay),
            requests
        ),
        write_all::<Secret>(Api::namespaced(client.clone(), ns), secrets, requests),
        write_all::<StatefulSet>(
            Api::namespaced(client.clone(), ns),
            build::stateful_sets(plan, config),
            requests
        ),
        write_all::<Service>(
            Api::namespaced(client.clone(), ns),
            build::services(plan, config),
            requests
        ),
        write_all::<Ingress>(
            Api::namespaced(client.clone(), ns),
            build::ingresses(plan, config),
            requests
        ),
    )?;
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
/// Sends a request again (up to 5 times, 2 s apart) when no answer came back: with thousands
/// of namespaces going, the API server closed a connection before answering (a 2,000 run's
/// clean-up ended there). An answer, even an error, is returned as it is.
async fn persist<T, F, Fut>(what: &str, request: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    for _ in 1..5 {
        match request().await {
            Err(kube::Error::Service(error)) => {
                eprintln!("{what}: {error}; sending it again");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            other => return other.with_context(|| what.to_owned()),
        }
    }
    request().await.with_context(|| what.to_owned())
}

async fn clear_namespaces(client: &Client, reseller: &str) -> anyhow::Result<()> {
    // The floor's domain claims (the operator releases its own as its end users go).
    let of_floor = ListParams::default().labels(&format!(
        "{}={}",
        naming::LABEL_ENDUSER_NAMESPACE,
        naming::reseller_namespace(reseller)
    ));
    let claims = Api::<DomainClaim>::all(client.clone());
    let delete = DeleteParams::default();
    persist("deleting the floor's domain claims", || {
        claims.delete_collection(&delete, &of_floor)
    })
    .await?;
    let api: Api<Namespace> = Api::all(client.clone());
    let selector = ListParams::default().labels(&format!("{}={reseller}", naming::LABEL_RESELLER));
    let listed = persist("listing the run's namespaces", || {
        api.list_metadata(&selector)
    })
    .await?;
    for ns in listed.items {
        let name = ns.metadata.name.unwrap_or_default();
        match persist("deleting a namespace", || api.delete(&name, &delete)).await {
            Ok(_) => {}
            Err(e) if matches!(e.downcast_ref(), Some(kube::Error::Api(s)) if s.code == 404) => {}
            Err(e) => return Err(e),
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
        reads: 0,
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
    // A pool for all N (the tests' reseller holds 1,000 end users of 1 CPU).
    let mut spec = hosting::reseller(&reseller, json!([]));
    spec["spec"]["quota"]["maxEndUsers"] = json!(n);
    spec["spec"]["quota"]["totalCpu"] = json!(n.to_string());
    let ns = hosting::apply_reseller(client, spec).await?;
    // Set up (its namespace recorded, the operator's Secret access granted) before the clock
    // starts: a reseller's one-off setup is not its end users' provisioning, and an end user
    // applied before it waits for it.
    let resellers: Api<oem_crds::Reseller> = Api::all(client.clone());
    wait::until(
        "the reseller set up",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            match resellers.get(&reseller).await {
                Ok(r) if r.is_set_up() => Ok(()),
                Ok(_) => Err("not yet".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    apply_course(
        client,
        hosting::course(&ns, "plan", "1Gi", hosting::web_and_db()),
    )
    .await?;
    let counts_before = oem_e2e::operator::request_counts(cluster)?;
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
    let counts = oem_e2e::operator::request_counts(cluster)?;
    let made = oem_e2e::operator::requests_between(&counts_before, &counts);
    eprintln!(
        "N = {n}, operator requests while provisioning: {}",
        breakdown(&made)
    );
    let count = |write: bool| {
        made.iter()
            .filter(|(k, _)| oem_e2e::operator::is_write(k) == write)
            .map(|(_, n)| n)
            .sum()
    };
    Ok(Run {
        namespace: ns,
        reseller,
        elapsed,
        reads: count(false),
        writes: count(true),
    })
}

/// "42 get pods, 7 patch endusers/status, ...": what requests went to, largest first.
fn breakdown(made: &[(String, usize)]) -> String {
    if made.is_empty() {
        return "none".into();
    }
    made.iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
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
        .filter_map(|q| oem_crds::quantity::value(&q.0))
        .sum())
}

/// A memory figure of `/proc/<pid>/status` (`VmHWM`: peak RSS, `VmRSS`: now), as MiB text.
fn memory(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map(|kib| format!("{:.1} MiB", kib / 1024.0))
        .unwrap_or_default()
}

/// What the operator's resident memory is made of: anonymous pages (the heap, stacks) and
/// file pages (the program's mapped code), and the allocator's figures from its `/metrics`.
async fn resident_parts(operator: &Operator) -> String {
    let mut parts = vec![
        format!("anonymous {}", memory(operator.pid(), "RssAnon")),
        format!("file {}", memory(operator.pid(), "RssFile")),
    ];
    match operator.metrics().await {
        Ok(text) => parts.extend(["allocated", "active", "resident", "metadata"].map(|kind| {
            let bytes =
                oem_e2e::operator::sample(&text, "oem_operator_heap_bytes", &[("kind", kind)]);
            match bytes {
                Some(bytes) => format!("heap {kind} {:.1} MiB", bytes / 1048576.0),
                None => format!("heap {kind} missing"),
            }
        })),
        Err(error) => parts.push(format!("no metrics: {error}")),
    }
    parts.join(", ")
}

/// The median and the spread of `values` (seconds), as `median (min–max)`.
fn spread(values: &[f64]) -> (f64, String) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    let (min, max) = (
        sorted.first().copied().unwrap_or_default(),
        sorted.last().copied().unwrap_or_default(),
    );
    (median, format!("{median:.1} ({min:.1}–{max:.1})"))
}

/// One operator run of `n` end users (monitor off); the operator is returned still running,
/// with its end users in place, and its peak RSS.
async fn operator_run(
    cluster: &Cluster,
    client: &Client,
    n: usize,
    tag: &str,
) -> anyhow::Result<(Run, Operator, String)> {
    let operator = Operator::start(
        cluster,
        OperatorOptions {
            env: vec![("OEM_MONITOR_ENABLED".into(), "false".into())],
            ..Default::default()
        },
    )
    .await?;
    let run = with_operator(cluster, client, &operator, n, tag).await?;
    let rss = memory(operator.pid(), "VmHWM");
    Ok((run, operator, rss))
}

/// Deletes the run's end users and its reseller through the operator and waits until their
/// namespaces are gone. The Reseller goes too: while it exists its controller makes its
/// namespace again at the next resync (the clean-ups that never ended after a steady state,
/// whose resync is a minute, were waiting for that namespace).
async fn clean(client: &Client, run: &Run) -> anyhow::Result<()> {
    // One by one, with the runs' parallelism: one request for 2,000 end users outlasted the
    // client's wait for an answer.
    let api = Api::<oem_crds::EndUser>::namespaced(client.clone(), &run.namespace);
    let names: Vec<String> = api
        .list_metadata(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|e| e.metadata.name)
        .collect();
    futures::stream::iter(names.into_iter().map(|name| {
        let api = api.clone();
        async move {
            match api.delete(&name, &Default::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(anyhow::Error::from(e)),
            }
        }
    }))
    .buffer_unordered(PARALLELISM)
    .try_collect::<Vec<()>>()
    .await?;
    match Api::<oem_crds::Reseller>::all(client.clone())
        .delete(&run.reseller, &Default::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    clear_namespaces(client, &run.reseller).await
}

/// With `n` Active end users in place: the operator with every loop on (monitor, usage
/// reporter, alert controller; their Prometheus answers nothing, so no incident opens), idle
/// for two minutes after three of settling. Reads and writes per minute (audit log, watches
/// and the Lease not counted) and RSS at the end. The startup grace is 30 s and every target
/// is probed once a minute, so every service's first fall (nothing listens on kwok) and the
/// phases it moves are written before the two minutes; the resync is 60 s, so every end user
/// is reconciled twice in them: the steady state, not the settling.
async fn steady_state(
    cluster: &Cluster,
    binary: Option<PathBuf>,
) -> anyhow::Result<(Operator, f64, f64, String)> {
    let mut options = OperatorOptions::with_env(vec![
        ("OEM_PROMETHEUS_URL".into(), "http://127.0.0.1:9".into()),
        ("OEM_PROBE_STARTUP_GRACE".into(), "30s".into()),
        ("OEM_PROBE_INTERVAL".into(), "60s".into()),
        ("OEM_RESYNC_INTERVAL".into(), "60s".into()),
    ]);
    options.binary = binary;
    let operator = Operator::start(cluster, options).await?;
    tokio::time::sleep(Duration::from_secs(180)).await;
    let before = oem_e2e::operator::request_counts(cluster)?;
    tokio::time::sleep(Duration::from_secs(120)).await;
    let made =
        oem_e2e::operator::requests_between(&before, &oem_e2e::operator::request_counts(cluster)?);
    eprintln!("idle, two minutes, every loop on: {}", breakdown(&made));
    // Counted as integers: a float sum of nothing is -0.0, printed "-0.0 writes/min".
    let per_minute = |write: bool| {
        made.iter()
            .filter(|(k, _)| oem_e2e::operator::is_write(k) == write)
            .map(|(_, n)| *n)
            .sum::<usize>() as f64
            / 2.0
    };
    let rss = memory(operator.pid(), "VmRSS");
    eprintln!(
        "idle: {:.1} reads/min, {:.1} writes/min, RSS {rss} ({})",
        per_minute(false),
        per_minute(true),
        resident_parts(&operator).await
    );
    Ok((operator, per_minute(false), per_minute(true), rss))
}

/// Other builds of the operator whose steady state is measured too, one after another
/// (`OEM_BENCH_COMPARE`, paths separated by `:`), e.g. with another allocator.
fn compared() -> Vec<PathBuf> {
    std::env::var_os("OEM_BENCH_COMPARE")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default()
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
    let repeat: usize = std::env::var("OEM_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let cluster = Cluster::shared().await?;
    let client = cluster.client().await?;
    println!(
        "provisioning convergence, parallelism {PARALLELISM}, course web+ftp+mariadb (2 StatefulSets \
         each), {repeat} runs of each, order alternating; seconds as median (min–max)"
    );
    let capacity = node_cpus(&client).await?;
    if let Some(n) = sizes.iter().find(|n| **n as f64 > capacity) {
        anyhow::bail!(
            "N = {n} needs {n} CPUs of fake nodes (1 per end user) but the cluster has {capacity}: \
             start it with OEM_CLUSTER_NODES={} (64 CPUs each)",
            n.div_ceil(64)
        );
    }
    let mut rows: Vec<Row> = Vec::new();
    for &n in &sizes {
        let (mut raws, mut ops) = (Vec::new(), Vec::new());
        let (mut peak, mut requests, mut raw_writes) = (String::new(), String::new(), 0);
        let mut steady = None;
        let (repeat, floor) = if n > FLOOR_MAX {
            (1, false)
        } else {
            (repeat, true)
        };
        for r in 0..repeat {
            let tag = format!("{n}-{r}-{}", std::process::id() % 10000);
            // The raw floor runs with no operator up; each run starts on an empty cluster.
            if floor && r % 2 == 1 {
                let raw = raw_floor(&client, n, &tag).await?;
                raws.push(raw.elapsed.as_secs_f64());
                raw_writes = raw.writes;
            }
            let (op, operator, rss) = operator_run(cluster, &client, n, &tag).await?;
            // Printed at once: a later step cut off (a clean-up that hangs) keeps these.
            eprintln!(
                "N = {n}, operator run {}: {:.1} s, peak RSS {rss}, reads/writes {}/{}",
                r + 1,
                op.elapsed.as_secs_f64(),
                op.reads,
                op.writes
            );
            ops.push(op.elapsed.as_secs_f64());
            peak = rss;
            requests = format!("{}/{}", op.reads, op.writes);
            if r + 1 == repeat {
                drop(operator);
                let (mut operator, reads, writes, rss) = steady_state(cluster, None).await?;
                steady = Some((reads, writes, rss));
                // Other builds of the operator, each in the same steady state in turn.
                for binary in compared() {
                    drop(operator);
                    let (other, _, _, rss) = steady_state(cluster, Some(binary.clone())).await?;
                    eprintln!("N = {n}, steady state of {}: RSS {rss}", binary.display());
                    operator = other;
                }
                clean(&client, &op).await?;
                drop(operator);
            } else {
                clean(&client, &op).await?;
                drop(operator);
            }
            if floor && r % 2 == 0 {
                let raw = raw_floor(&client, n, &format!("{tag}b")).await?;
                raws.push(raw.elapsed.as_secs_f64());
                raw_writes = raw.writes;
            }
            eprintln!(
                "N = {n}, run {}: raw floor {:?} s, operator {:?} s",
                r + 1,
                raws,
                ops
            );
        }
        let (raw_median, raw_text) = spread(&raws);
        let (op_median, op_text) = spread(&ops);
        let (raw_text, ratio) = if raws.is_empty() {
            ("-".to_owned(), "-".to_owned())
        } else {
            (raw_text, format!("{:.2}", op_median / raw_median))
        };
        let row = Row {
            n,
            raw: raw_text,
            op: op_text,
            ratio,
            peak,
            requests,
            raw_writes,
            steady,
        };
        // Printed as soon as measured: a run cut off later keeps this size's figures.
        println!("{}\n{}", Row::header(), row.line());
        rows.push(row);
    }
    println!("all sizes:\n{}", Row::header());
    for row in &rows {
        println!("{}", row.line());
    }
    Ok(())
}

/// One size's figures, as a line of the table.
struct Row {
    n: usize,
    raw: String,
    op: String,
    ratio: String,
    peak: String,
    requests: String,
    raw_writes: usize,
    /// Idle reads and writes a minute and RSS, when the steady state was measured.
    steady: Option<(f64, f64, String)>,
}

impl Row {
    fn header() -> String {
        format!(
            "{:>6} {:>20} {:>20} {:>7} {:>10} {:>14} {:>10} {:>22} {:>12}",
            "N",
            "raw floor s",
            "operator s",
            "ratio",
            "peak RSS",
            "op reads/writes",
            "raw writes",
            "idle reads, writes /min",
            "idle RSS"
        )
    }

    fn line(&self) -> String {
        let (idle, idle_rss) = match &self.steady {
            Some((reads, writes, rss)) => (format!("{reads:.1}, {writes:.1}"), rss.clone()),
            None => (String::new(), String::new()),
        };
        format!(
            "{:>6} {:>20} {:>20} {:>7} {:>10} {:>14} {:>10} {idle:>22} {idle_rss:>12}",
            self.n, self.raw, self.op, self.ratio, self.peak, self.requests, self.raw_writes
        )
    }
}
