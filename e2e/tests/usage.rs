//! Usage reporting end to end (SPEC §2 "server usage"): a real Prometheus holds known kubelet
//! and cAdvisor series for three end users' hosting namespaces (backfilled with promtool), the
//! operator runs as its own process under the chart's role with the usage reporter pointed at
//! that Prometheus, and the exact figures must land in `EndUser.status.usage`,
//! `Reseller.status.usage` and the operator's metrics.
//!
//! The operator's clock is anchored just after a chosen whole hour T (`OEM_CLOCK_FILE`), and
//! the reporter measures at instants aligned to its interval (1h here), so it measures exactly
//! T. Every counter starts at 0 inside the accounting period and has a sample at T, so
//! Prometheus's `increase` has nothing to extrapolate and the traffic figures are exact.
//!
//! The fallback source (metrics API and kubelet stats summary) is not tested end to end here:
//! the local control plane has no metrics-server (`metrics.k8s.io` is not served), and the API
//! server refuses to proxy to kwok's fake nodes, whose addresses are loopback
//! (`/api/v1/nodes/<node>/proxy/stats/summary` answers `BadRequest: address not allowed`).
//! `usage_without_prometheus_finds_no_metrics_api_here` pins that down, so the day the local
//! cluster serves either, the test fails and asks for a real fallback test. Its parsing is
//! unit-tested in `operator/src/usage/cluster.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use kube::Client;
use kube::api::Api;
use oem_crds::{EndUser, Reseller};
use oem_e2e::hosting::{self, apply_course, apply_enduser, apply_reseller};
use oem_e2e::operator::{Operator, OperatorOptions, sample};
use oem_e2e::prometheus::{Prometheus, PrometheusOptions};
use oem_e2e::{Cluster, wait};
use oem_operator::naming::hosting_namespace;
use oem_operator::usage::figures::period_start;
use serde_json::{Value, json};

const KI: f64 = 1024.0;
const MI: f64 = KI * KI;
const GI: f64 = MI * KI;
/// Samples every minute for the two hours before T.
const STEP: i64 = 60;
const SPAN: i64 = 7200;
const LIMIT: Duration = Duration::from_secs(120);

/// A whole hour at least an hour ago whose two hours before it (and a margin) lie inside the
/// calendar month of both time zones used, so the data is inside the accounting period.
fn measurement_hour(now: Timestamp) -> Timestamp {
    let mut t = now.as_second().div_euclid(3600) * 3600 - 3600;
    loop {
        let at = Timestamp::from_second(t).expect("a valid instant");
        let inside = ["Asia/Tokyo", "Europe/London"]
            .iter()
            .all(|tz| period_start(at, tz).as_second() <= t - SPAN - 3600);
        if inside {
            return at;
        }
        t -= 3 * 3600;
    }
}

/// OpenMetrics text for the backfill.
struct Series {
    text: String,
    t: i64,
}

impl Series {
    fn family(&mut self, name: &str, kind: &str) {
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One series over the two hours up to T; `value(i, n)` for sample i of n.
    fn samples(&mut self, name: &str, labels: &str, value: impl Fn(i64, i64) -> f64) {
        let n = SPAN / STEP + 1;
        for i in 0..n {
            let ts = self.t - SPAN + i * STEP;
            let _ = writeln!(self.text, "{name}{{{labels}}} {} {ts}", value(i, n));
        }
    }

    /// A counter from 0 at the first sample rising evenly to `last` at T.
    fn counter(&mut self, name: &str, labels: &str, last: f64) {
        self.samples(name, labels, |i, n| {
            (last * i as f64 / (n - 1) as f64).round()
        });
    }
}

struct Names {
    a: String,
    b: String,
    alice: String,
    bob: String,
    carol: String,
}

fn backfill(names: &Names, t: Timestamp) -> String {
    let mut s = Series {
        text: String::new(),
        t: t.as_second(),
    };
    let (alice, bob, carol) = (&names.alice, &names.bob, &names.carol);
    let l = |ns: &str, rest: &str| format!("namespace=\"{ns}\",{rest}");

    s.family("kubelet_volume_stats_used_bytes", "gauge");
    let disk = [
        (
            alice,
            "persistentvolumeclaim=\"data-web-0\",instance=\"node-a\"",
            3.0 * GI,
        ),
        // The same claim scraped by a second job: counted once.
        (
            alice,
            "persistentvolumeclaim=\"data-web-0\",instance=\"node-a-copy\"",
            3.0 * GI,
        ),
        (
            alice,
            "persistentvolumeclaim=\"data-db-0\",instance=\"node-a\"",
            GI,
        ),
        (
            bob,
            "persistentvolumeclaim=\"data-web-0\",instance=\"node-a\"",
            512.0 * MI,
        ),
        (
            carol,
            "persistentvolumeclaim=\"data-web-0\",instance=\"node-b\"",
            2.0 * GI,
        ),
    ];
    for (ns, rest, v) in disk {
        s.samples("kubelet_volume_stats_used_bytes", &l(ns, rest), |_, _| v);
    }
    // Not a hosting namespace: never counted.
    s.samples(
        "kubelet_volume_stats_used_bytes",
        "namespace=\"kube-system\",persistentvolumeclaim=\"etcd\",instance=\"node-a\"",
        |_, _| 7.0 * GI,
    );

    s.family("container_memory_working_set_bytes", "gauge");
    let memory = [
        (alice, "pod=\"web-0\",container=\"php\"", 200.0 * MI),
        (alice, "pod=\"web-0\",container=\"ftp\"", 56.0 * MI),
        (alice, "pod=\"db-0\",container=\"mariadb\"", 256.0 * MI),
        // Pod-level cgroup and pause container: left out.
        (alice, "pod=\"web-0\",container=\"\"", 999.0 * MI),
        (alice, "pod=\"web-0\",container=\"POD\"", MI),
        (bob, "pod=\"web-0\",container=\"php\"", 128.0 * MI),
        (carol, "pod=\"web-0\",container=\"php\"", 64.0 * MI),
    ];
    for (ns, rest, v) in memory {
        s.samples("container_memory_working_set_bytes", &l(ns, rest), |_, _| v);
    }

    s.family("container_network_receive_bytes", "counter");
    let rx = "container_network_receive_bytes_total";
    // alice's web pod restarted halfway: 100M before, 50M after; the counter reset to 0.
    let restart = |i: i64, n: i64| {
        let half = n / 2;
        if i < half {
            (100e6 * i as f64 / (half - 1) as f64).round()
        } else {
            (50e6 * (i - half) as f64 / (n - 1 - half) as f64).round()
        }
    };
    s.samples(
        rx,
        &l(alice, "pod=\"web-0\",container=\"\",interface=\"eth0\""),
        restart,
    );
    // cAdvisor may report the same interface on the pause container too: counted once.
    s.samples(
        rx,
        &l(alice, "pod=\"web-0\",container=\"POD\",interface=\"eth0\""),
        restart,
    );
    s.counter(
        rx,
        &l(alice, "pod=\"db-0\",container=\"\",interface=\"eth0\""),
        25e6,
    );
    // Loopback is not the end user's line.
    s.counter(
        rx,
        &l(alice, "pod=\"web-0\",container=\"\",interface=\"lo\""),
        1e9,
    );
    s.counter(
        rx,
        &l(bob, "pod=\"web-0\",container=\"\",interface=\"eth0\""),
        MI,
    );
    s.counter(
        rx,
        &l(carol, "pod=\"web-0\",container=\"\",interface=\"eth0\""),
        10e6,
    );

    s.family("container_network_transmit_bytes", "counter");
    let tx = "container_network_transmit_bytes_total";
    s.counter(
        tx,
        &l(alice, "pod=\"web-0\",container=\"\",interface=\"eth0\""),
        300e6,
    );
    s.counter(
        tx,
        &l(bob, "pod=\"web-0\",container=\"\",interface=\"eth0\""),
        2.0 * MI,
    );
    s.counter(
        tx,
        &l(carol, "pod=\"web-0\",container=\"\",interface=\"eth0\""),
        20e6,
    );
    s.text.push_str("# EOF\n");
    s.text
}

/// `status.usage` as field → quantity text.
fn usage_of(value: &Value) -> BTreeMap<String, String> {
    value["status"]["usage"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "updatedAt")
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map(str::to_owned).unwrap_or(v.to_string()),
            )
        })
        .collect()
}

fn expected(disk: &str, memory: &str, rx: &str, tx: &str) -> BTreeMap<String, String> {
    [
        ("disk", disk),
        ("memory", memory),
        ("networkIn", rx),
        ("networkOut", tx),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn wait_enduser_usage(
    client: &Client,
    ns: &str,
    name: &str,
    want: &BTreeMap<String, String>,
) -> anyhow::Result<Value> {
    let api: Api<EndUser> = Api::namespaced(client.clone(), ns);
    wait::until(
        &format!("usage of end user {name}"),
        LIMIT,
        Duration::from_millis(500),
        || async {
            let v = serde_json::to_value(api.get(name).await.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            if &usage_of(&v) == want {
                Ok(v)
            } else {
                Err(format!("status {}", v["status"]))
            }
        },
    )
    .await
}

async fn wait_reseller_usage(
    client: &Client,
    name: &str,
    want: &BTreeMap<String, String>,
) -> anyhow::Result<Value> {
    let api: Api<Reseller> = Api::all(client.clone());
    wait::until(
        &format!("usage of reseller {name}"),
        LIMIT,
        Duration::from_millis(500),
        || async {
            let v = serde_json::to_value(api.get(name).await.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            if &usage_of(&v) == want {
                Ok(v)
            } else {
                Err(format!("status {}", v["status"]))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_from_prometheus_lands_exactly_in_status_and_metrics() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let cluster = Cluster::shared().await?;
    let client = cluster.client().await?;
    let pid = std::process::id() % 100_000;
    let (a, b) = (format!("usage-a{pid}"), format!("usage-b{pid}"));
    let names = Names {
        alice: hosting_namespace(&a, "alice"),
        bob: hosting_namespace(&a, "bob"),
        carol: hosting_namespace(&b, "carol"),
        a,
        b,
    };
    let t = measurement_hour(Timestamp::now());
    let prometheus = Prometheus::start(PrometheusOptions {
        scrape: vec![],
        scrape_interval: Duration::from_secs(5),
        evaluation_interval: Duration::from_secs(5),
        rule_files: vec![],
        alertmanagers: vec![],
        backfill_openmetrics: Some(backfill(&names, t)),
    })
    .await?;
    let probe = prometheus
        .query_at("kubelet_volume_stats_used_bytes", t.as_second() as f64)
        .await?;
    anyhow::ensure!(
        probe.len() == 6,
        "the backfill is not queryable at {t}: {probe:?}"
    );

    // The operator's "now" runs on from one second after T.
    let dir = tempfile::tempdir()?;
    let clock = dir.path().join("clock");
    std::fs::write(&clock, (t + jiff::SignedDuration::from_secs(1)).to_string())?;
    let env = [
        ("OEM_PROMETHEUS_URL", prometheus.url()),
        // Usage from that Prometheus; alerts as before, from the monitor's history.
        ("OEM_ALERT_SOURCE", "embedded".into()),
        ("OEM_USAGE_INTERVAL", "1h".into()),
        ("OEM_USAGE_REFRESH_INTERVAL", "1s".into()),
        ("OEM_CLOCK_FILE", clock.display().to_string()),
        ("OEM_RESYNC_INTERVAL", "20s".into()),
        // Usage alone: the monitor would probe the in-cluster Service names (unresolvable here),
        // mark the end users Degraded and open incidents, writing their status meanwhile.
        ("OEM_MONITOR_ENABLED", "false".into()),
    ];
    let operator = Operator::start(
        cluster,
        OperatorOptions {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Default::default()
        },
    )
    .await?;

    let mut tokyo = hosting::reseller(&names.a, json!([]));
    tokyo["spec"]["businessCalendar"] = json!({"timeZone": "Asia/Tokyo"});
    let mut london = hosting::reseller(&names.b, json!([]));
    london["spec"]["businessCalendar"] = json!({"timeZone": "Europe/London"});
    let ns_a = apply_reseller(&client, tokyo.clone()).await?;
    let ns_b = apply_reseller(&client, london).await?;
    for ns in [&ns_a, &ns_b] {
        apply_course(
            &client,
            hosting::course(ns, "basic", "1Gi", hosting::web_and_db()),
        )
        .await?;
    }
    for (ns, name) in [(&ns_a, "alice"), (&ns_a, "bob"), (&ns_b, "carol")] {
        apply_enduser(
            &client,
            hosting::enduser(ns, name, "basic", "2025-01-01", json!({})),
        )
        .await?;
    }

    let alice = expected("4Gi", "512Mi", "175M", "300M");
    let bob = expected("512Mi", "128Mi", "1Mi", "2Mi");
    let carol = expected("2Gi", "64Mi", "10M", "20M");
    let fail = |e: anyhow::Error| e.context(format!("operator log:\n{}", operator.log_tail(30)));
    let v = wait_enduser_usage(&client, &ns_a, "alice", &alice)
        .await
        .map_err(fail)?;
    assert_eq!(
        v["status"]["usage"]["updatedAt"].as_str(),
        Some(t.to_string().as_str()),
        "figures stand for the measurement instant T"
    );
    wait_enduser_usage(&client, &ns_a, "bob", &bob)
        .await
        .map_err(fail)?;
    wait_enduser_usage(&client, &ns_b, "carol", &carol)
        .await
        .map_err(fail)?;
    // 175M + 1Mi and 300M + 2Mi have no whole suffix: plain bytes.
    let sum_a = expected("4608Mi", "640Mi", "176048576", "302097152");
    let va = wait_reseller_usage(&client, &names.a, &sum_a)
        .await
        .map_err(fail)?;
    wait_reseller_usage(&client, &names.b, &carol)
        .await
        .map_err(fail)?;

    // status.usage is owned by the reporter's field manager alone.
    let managers: Vec<&str> = va["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["fieldsV1"]["f:status"].get("f:usage").is_some())
        .filter_map(|f| f["manager"].as_str())
        .collect();
    assert_eq!(
        managers,
        ["oem-hosting-usage"],
        "owners of the reseller's status.usage"
    );

    let text = operator.metrics().await?;
    let gauge = |name: &str, labels: &[(&str, &str)]| {
        sample(&text, name, labels).with_context(|| format!("{name}{labels:?} missing"))
    };
    let alice_l = [("reseller", names.a.as_str()), ("enduser", "alice")];
    assert_eq!(gauge("oem_usage_disk_bytes", &alice_l)?, 4.0 * GI);
    assert_eq!(gauge("oem_usage_memory_bytes", &alice_l)?, 512.0 * MI);
    assert_eq!(gauge("oem_usage_network_receive_bytes", &alice_l)?, 175e6);
    assert_eq!(gauge("oem_usage_network_transmit_bytes", &alice_l)?, 300e6);
    let carol_l = [("reseller", names.b.as_str()), ("enduser", "carol")];
    assert_eq!(gauge("oem_usage_network_receive_bytes", &carol_l)?, 10e6);
    let a_l = [("reseller", names.a.as_str())];
    assert_eq!(gauge("oem_reseller_usage_disk_bytes", &a_l)?, 4608.0 * MI);
    assert_eq!(gauge("oem_reseller_usage_memory_bytes", &a_l)?, 640.0 * MI);
    assert_eq!(
        gauge("oem_reseller_usage_network_receive_bytes", &a_l)?,
        175e6 + MI
    );
    assert_eq!(
        gauge("oem_reseller_usage_network_transmit_bytes", &a_l)?,
        300e6 + 2.0 * MI
    );
    assert_eq!(
        gauge("oem_usage_last_measurement_timestamp_seconds", &[])?,
        t.as_second() as f64
    );

    // A no-op: re-listing every second at the same instant writes nothing more.
    let writes = |text: &str| -> f64 {
        ["EndUser", "Reseller"]
            .iter()
            .filter_map(|k| {
                sample(
                    text,
                    "oem_usage_status_writes_total",
                    &[("kind", k), ("result", "ok")],
                )
            })
            .sum()
    };
    let before = writes(&text);
    let version = |v: &Value| v["metadata"]["resourceVersion"].as_str().map(str::to_owned);
    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &ns_a);
    let rv = version(&serde_json::to_value(endusers.get("bob").await?)?);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        writes(&operator.metrics().await?),
        before,
        "writes after the figures landed"
    );
    assert_eq!(
        version(&serde_json::to_value(endusers.get("bob").await?)?),
        rv
    );

    // The Reseller controller writes its status on a spec change and leaves usage alone.
    let resellers: Api<Reseller> = Api::all(client.clone());
    let mut renamed = tokyo;
    renamed["spec"]["displayName"] = json!("renamed hosting");
    hosting::apply(&resellers, renamed).await?;
    let generation = resellers.get(&names.a).await?.metadata.generation;
    wait::until(
        "the reseller controller to observe the rename",
        LIMIT,
        Duration::from_millis(300),
        || async {
            let r = resellers.get(&names.a).await.map_err(|e| e.to_string())?;
            let observed = r.status.as_ref().and_then(|s| s.observed_generation);
            if observed == generation {
                Ok(())
            } else {
                Err(format!(
                    "observedGeneration {observed:?}, generation {generation:?}"
                ))
            }
        },
    )
    .await?;
    let after = serde_json::to_value(resellers.get(&names.a).await?)?;
    assert_eq!(
        usage_of(&after),
        sum_a,
        "usage after the reseller controller wrote"
    );
    println!(
        "usage e2e: T={t}, alice {alice:?}, bob {bob:?}, carol {carol:?}, reseller {} {sum_a:?}; {:.1}s",
        names.a,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The fallback source needs `metrics.k8s.io` (metrics-server) and the kubelet's stats
/// summary; the local control plane serves neither. When it does, write the fallback test.
#[tokio::test(flavor = "multi_thread")]
async fn usage_without_prometheus_finds_no_metrics_api_here() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let groups = cluster.kubectl_ok(&["api-versions"], None)?;
    assert!(
        !groups.lines().any(|g| g.starts_with("metrics.k8s.io/")),
        "metrics.k8s.io is served now: test the fallback usage source end to end"
    );
    let nodes = cluster.kubectl_ok(&["get", "nodes", "-o", "name"], None)?;
    let node = nodes
        .lines()
        .next()
        .context("the local cluster has no node")?
        .trim_start_matches("node/");
    let summary = cluster.kubectl(
        &[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{node}/proxy/stats/summary"),
        ],
        None,
    )?;
    let body = String::from_utf8_lossy(&summary.stdout);
    println!(
        "fallback: metrics.k8s.io not served; node {node} /stats/summary via the node proxy: {} {}",
        summary.status,
        String::from_utf8_lossy(&summary.stderr).trim()
    );
    assert!(
        !summary.status.success() || oem_operator::usage::parse_summary(&body).is_err(),
        "node {node} serves a stats summary now: test the fallback usage source end to end"
    );
    Ok(())
}
