//! Benchmark: the resellers' panel with 1,000 end users in one reseller. The real server on a
//! loopback port, its caches filled by hand (the pages read only the caches; writes are not
//! measured), a signed-in reseller, and 500 requests per page: the customer list (first page,
//! sorted, and a search), one customer's page and the usage page. Prints p50/p99 per page and
//! the process's resident memory before and after filling the caches (the target: p99 ≤ 50 ms).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use oem_crds::{Course, EndUser, Reseller};
use oem_e2e::panel::PanelClient;
use oem_panel::app::App;
use oem_panel::auth::password::{Hasher, SecretKey};
use oem_panel::config::Config;
use serde_json::json;

const END_USERS: usize = 1000;
const REQUESTS: usize = 500;
const NS: &str = "reseller-bench";

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let before = rss_kib();
    let (caches, mut w) = oem_panel::cache::stores();
    let reseller: Reseller = serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Reseller", "metadata": {"name": "bench"},
        "spec": {"displayName": "ベンチ", "contacts": [{"name": "desk", "email": "d@example.jp"}],
                 "quota": {"maxEndUsers": 2000, "totalCpu": "2000", "totalMemory": "4Ti", "totalStorage": "100Ti"}}
    }))?;
    w.resellers.apply_watcher_event(&Event::Apply(reseller));
    for course in ["small", "medium", "large"] {
        let c: Course = serde_json::from_value(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Course",
            "metadata": {"name": course, "namespace": NS},
            "spec": {"displayName": course, "resources": {"cpu": "1", "memory": "1Gi", "storage": "10Gi"},
                     "services": {"web": {"phpVersion": "8.2"}}}
        }))?;
        w.courses.apply_watcher_event(&Event::Apply(c));
    }
    for i in 0..END_USERS {
        let name = format!("eu-{i:04}");
        let course = ["small", "medium", "large"][i % 3];
        let eu: EndUser = serde_json::from_value(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "EndUser",
            "metadata": {"name": name, "namespace": NS, "managedFields": [{
                "manager": "argocd", "operation": "Apply", "apiVersion": "hosting.oem.dev/v1alpha1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:contractName": {}, "f:domains": {}}}}]},
            "spec": {"loginId": name, "contractName": format!("契約 {i}"), "contactEmail": "a@example.jp",
                     "customerNumber": format!("C-{i}"), "courseRef": {"name": course},
                     "domains": [format!("{name}.example.jp"), format!("www.{name}.example.jp")],
                     "contractDate": "2026-01-01", "startDate": "2026-01-01"},
            "status": {"phase": "Active", "services": [
                {"service": "http", "state": "Up"}, {"service": "https", "state": "Up"},
                {"service": "ftp", "state": "Up"}],
                "usage": {"disk": format!("{}Mi", i % 900), "memory": "200Mi", "networkIn": "1Gi", "networkOut": "2Gi"}}
        }))?;
        w.endusers.apply_watcher_event(&Event::Apply(eu));
    }
    let accounts: PartialObjectMeta<Secret> = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "oem-hosting-panel-bench", "namespace": "oem-hosting-system", "resourceVersion": "1"}
    }))?;
    w.secrets.apply_watcher_event(&Event::Apply(accounts));
    let filled = rss_kib();
    let mut config = Config::default();
    config.session.secure_cookies = false;
    let hasher = Hasher::start(config.hash_cost).map_err(|e| anyhow::anyhow!("{e}"))?;
    let password = "bench-password-1";
    let digest = hasher
        .hash(password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // No API server is asked: the pages read the caches.
    let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse()?))?;
    let timeouts = config.timeouts;
    let app = Arc::new(App::new(config, caches, client, hasher));
    app.auth().hashes.insert(
        SecretKey {
            namespace: "oem-hosting-system".into(),
            name: "oem-hosting-panel-bench".into(),
            key: "admin".into(),
        },
        "1".into(),
        digest,
    );
    app.set_ready();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(oem_panel::server::serve_on(listener, app.clone(), timeouts));
    // Sign in, as a browser would (the e2e tests' cookie-keeping client).
    let browser = PanelClient::new(&base)?;
    let signed = browser.reseller_login("bench", "admin", password).await?;
    anyhow::ensure!(signed.status == 303, "sign-in failed: {}", signed.status);
    println!(
        "resellers' panel, {END_USERS} end users in one reseller, {REQUESTS} requests per page over loopback"
    );
    for (what, path) in [
        ("customer list, page 1", "/r/bench/customers"),
        (
            "customer list, by disk desc",
            "/r/bench/customers?sort=disk&dir=desc",
        ),
        ("customer list, search", "/r/bench/customers?q=eu-05"),
        ("customer list, page 20", "/r/bench/customers?page=20"),
        ("one customer's page", "/r/bench/customers/eu-0500"),
        ("usage", "/r/bench/usage"),
    ] {
        let mut took: Vec<Duration> = Vec::with_capacity(REQUESTS);
        let mut bytes = 0;
        for _ in 0..REQUESTS {
            let started = Instant::now();
            let answer = browser.get(path).await?;
            anyhow::ensure!(answer.status == 200, "{path}: {}", answer.status);
            bytes = answer.body.len();
            took.push(started.elapsed());
        }
        took.sort();
        println!(
            "  {what:<30} p50 {:>7.2} ms  p99 {:>7.2} ms  ({} KiB)",
            took[REQUESTS / 2].as_secs_f64() * 1000.0,
            took[REQUESTS * 99 / 100].as_secs_f64() * 1000.0,
            bytes / 1024
        );
    }
    println!(
        "  resident memory: {} KiB before the caches, {} KiB with them, {} KiB after the requests",
        before,
        filled,
        rss_kib()
    );
    Ok(())
}
