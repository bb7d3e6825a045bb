//! Monitoring end to end (SPEC §6): the operator's monitor, running as its own process under
//! the chart's role with time-scaled intervals, probes real daemons on 127.0.0.1 named as the
//! end user's monitoring endpoints; a stopped dovecot turns pop3/pop3s/imap/imaps Down and the
//! end user Degraded, and its restart brings them Up and the end user Active again. Services
//! at in-cluster addresses (which do not resolve here) are Down with a reason, never stuck.
//! Endpoints a reseller names at another tenant's Service or at the API server's Service are
//! refused, with a fixed reason.
//! Needs root and the daemons of `e2e/daemons/install.sh`.

#[path = "../../operator/tests/probes_support/mod.rs"]
mod probes_support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::Api;
use oem_crds::EndUser;
use oem_e2e::hosting::{self, apply_course, apply_enduser, phase_of};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::{Cluster, wait};
use probes_support::{MONITORED_DOMAIN, daemons, free_ports, lab};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

static OPERATOR: OnceCell<Operator> = OnceCell::const_new();

/// The shared control plane and one operator for this binary's tests, with time-scaled probe
/// intervals, loopback-only probes and the lab's CA as the probes' trust root.
async fn setup() -> anyhow::Result<(&'static Cluster, Client, &'static Operator)> {
    let cluster = Cluster::shared().await?;
    let operator = OPERATOR
        .get_or_try_init(|| async {
            let ca = lab().pki.ca.display().to_string();
            let env = [
                ("OEM_PROBE_INTERVAL", "4s"),
                ("OEM_PROBE_RETRY_INTERVAL", "1s"),
                ("OEM_PROBE_TIMEOUT", "1s"),
                ("OEM_PROBE_ALLOW", "127.0.0.0/8"),
                ("OEM_PROBE_CA_FILE", ca.as_str()),
                ("OEM_RESYNC_INTERVAL", "20s"),
            ];
            let env = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Operator::start(cluster, OperatorOptions::with_env(env)).await
        })
        .await?;
    Ok((cluster, cluster.client().await?, operator))
}

/// Provisioning (kwok) plus a first probe of every service.
const FIRST_UP: Duration = Duration::from_secs(120);
/// A few retry intervals (1 s) plus the write debounce and the controller's reaction.
const CHANGE: Duration = Duration::from_secs(30);

fn every_service() -> Value {
    json!({
        "web": {"phpVersion": "8.4"}, "ftp": {"tls": true},
        "mail": {"maxSendsPerHour": 100}, "database": {"engine": "mariadb"}
    })
}

fn course(namespace: &str, name: &str, services: Value) -> Value {
    json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Course",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "displayName": name,
            "resources": {"cpu": "1", "memory": "2Gi", "storage": "10Gi"},
            "limits": {"domains": 3, "mailAccounts": 5, "databases": 1, "ftpAccounts": 1},
            "services": services
        }
    })
}

/// `status.services` as service → (state, message).
fn services(enduser: &EndUser) -> BTreeMap<String, (String, String)> {
    let status = serde_json::to_value(enduser)
        .map(|v| v["status"]["services"].clone())
        .unwrap_or_default();
    status
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (text("service"), (text("state"), text("message")))
        })
        .collect()
}

/// Waits until `check` accepts the end user's services and phase.
async fn wait_for(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    limit: Duration,
    check: impl Fn(&BTreeMap<String, (String, String)>, &str) -> bool,
) -> anyhow::Result<EndUser> {
    let api: Api<EndUser> = Api::namespaced(client.clone(), ns);
    wait::until(what, limit, Duration::from_millis(300), || async {
        let eu = api.get(name).await.map_err(|e| e.to_string())?;
        let found = services(&eu);
        let phase = phase_of(&eu);
        if check(&found, &phase) {
            Ok(eu)
        } else {
            Err(format!("phase {phase:?}, services {found:?}"))
        }
    })
    .await
}

const MAILBOX: [&str; 4] = ["pop3", "pop3s", "imap", "imaps"];
const ALL: [&str; 11] = [
    "http", "https", "ftp", "ftps", "smtp", "smtps", "pop3", "pop3s", "imap", "imaps", "mysql",
];

fn all_up(found: &BTreeMap<String, (String, String)>) -> bool {
    ALL.iter()
        .all(|s| found.get(*s).is_some_and(|(state, _)| state == "Up"))
}

#[tokio::test]
async fn a_stopped_daemon_degrades_the_end_user_until_it_runs_again() -> anyhow::Result<()> {
    let nginx = daemons::nginx();
    let ftp = daemons::vsftpd();
    let postfix = daemons::postfix();
    let mariadb = daemons::mariadb();
    let ports = free_ports(4);
    let (dovecot, mailbox) =
        daemons::start_dovecot_on("dovecot-monitoring", &ports).map_err(anyhow::Error::msg)?;
    let (_cluster, client, operator) = setup().await?;

    let reseller = format!("mon{}", std::process::id() % 100000);
    let ns = hosting::reseller_with_namespace(&client, &reseller, json!([])).await?;
    apply_course(&client, course(&ns, "full", every_service())).await?;
    let endpoint =
        |service: &str, port: u16| json!({"service": service, "host": "127.0.0.1", "port": port});
    let endpoints = json!([
        endpoint("http", nginx.http),
        endpoint("https", nginx.https),
        endpoint("ftp", ftp),
        endpoint("ftps", ftp),
        endpoint("smtp", postfix.smtp),
        endpoint("smtps", postfix.smtps),
        endpoint("pop3", mailbox.pop3),
        endpoint("pop3s", mailbox.pop3s),
        endpoint("imap", mailbox.imap),
        endpoint("imaps", mailbox.imaps),
        endpoint("mysql", mariadb),
    ]);
    let extra = json!({"domains": [MONITORED_DOMAIN], "monitoring": {"endpoints": endpoints}});
    apply_enduser(
        &client,
        hosting::enduser(&ns, "shop", "full", "2025-01-01", extra),
    )
    .await?;

    let started = std::time::Instant::now();
    wait_for(
        &client,
        &ns,
        "shop",
        "every service Up, Active",
        FIRST_UP,
        |found, phase| all_up(found) && phase == "Active",
    )
    .await
    .map_err(|e| e.context(operator.log_tail(40)))?;
    eprintln!("every service Up after {:?}", started.elapsed());

    let stopped = std::time::Instant::now();
    drop(dovecot);
    let eu = wait_for(
        &client,
        &ns,
        "shop",
        "the mailbox services Down and the end user Degraded",
        CHANGE,
        |found, phase| {
            phase == "Degraded"
                && MAILBOX
                    .iter()
                    .all(|s| found.get(*s).is_some_and(|(state, _)| state == "Down"))
        },
    )
    .await
    .map_err(|e| e.context(operator.log_tail(40)))?;
    eprintln!(
        "Down and Degraded {:?} after dovecot stopped",
        stopped.elapsed()
    );
    let found = services(&eu);
    for service in ["http", "https", "smtp", "mysql"] {
        assert_eq!(found[service].0, "Up", "{service} stays up: {found:?}");
    }
    assert!(!found["imap"].1.is_empty(), "a Down service says why");

    let restarted = std::time::Instant::now();
    let (dovecot, _) =
        daemons::start_dovecot_on("dovecot-monitoring", &ports).map_err(anyhow::Error::msg)?;
    wait_for(
        &client,
        &ns,
        "shop",
        "every service Up again, Active",
        CHANGE,
        |found, phase| all_up(found) && phase == "Active",
    )
    .await
    .map_err(|e| e.context(operator.log_tail(40)))?;
    eprintln!(
        "Up and Active {:?} after dovecot restarted",
        restarted.elapsed()
    );

    // The series comes back with the next probe: the alert controller's level-1 restart of the
    // mail StatefulSet makes the end user briefly not Active, which drops its targets.
    let metrics = wait::until(
        "the imaps success metric to read 1",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || async {
            let metrics = operator.metrics().await.map_err(|e| e.to_string())?;
            let line = metrics
                .lines()
                .find(|l| {
                    l.starts_with("oem_probe_success{")
                        && l.contains("enduser=\"shop\"")
                        && l.contains("service=\"imaps\"")
                })
                .unwrap_or_default()
                .to_owned();
            if line.ends_with(" 1") {
                Ok(metrics)
            } else {
                Err(format!("imaps success metric: {line:?}"))
            }
        },
    )
    .await?;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("oem_tls_cert_expiry_seconds{")
                && l.contains("service=\"https\"")),
        "certificate expiry exported"
    );
    assert!(!metrics.contains("password"), "no secret in metrics");
    drop(dovecot);
    Ok(())
}

#[tokio::test]
async fn services_at_unresolvable_in_cluster_addresses_are_down_with_a_reason() -> anyhow::Result<()>
{
    let (_cluster, client, operator) = setup().await?;
    let reseller = format!("mon{}b", std::process::id() % 100000);
    let ns = hosting::reseller_with_namespace(&client, &reseller, json!([])).await?;
    apply_course(
        &client,
        course(&ns, "web", json!({"web": {"phpVersion": "8.4"}})),
    )
    .await?;
    apply_enduser(
        &client,
        hosting::enduser(&ns, "plain", "web", "2025-01-01", json!({})),
    )
    .await?;
    let eu = wait_for(
        &client,
        &ns,
        "plain",
        "http and https Down, Degraded",
        FIRST_UP,
        |found, phase| {
            phase == "Degraded"
                && ["http", "https"]
                    .iter()
                    .all(|s| found.get(*s).is_some_and(|(state, _)| state == "Down"))
        },
    )
    .await
    .map_err(|e| e.context(operator.log_tail(40)))?;
    let found = services(&eu);
    eprintln!("in-cluster addresses: {found:?}");
    assert!(
        found.values().all(|(_, message)| !message.is_empty()),
        "{found:?}"
    );
    // The hosting pods are pinged too (kwok pod IPs are on loopback here).
    let metrics = operator.metrics().await?;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("oem_probe_success{") && l.contains("service=\"ping\"")),
        "pod or node ping exported"
    );
    // Its memory, for the SRE's dashboard: the process's resident bytes, and the allocator's
    // live and resident bytes inside them.
    let heap =
        |kind| oem_e2e::operator::sample(&metrics, "oem_operator_heap_bytes", &[("kind", kind)]);
    let (resident, allocated, heap) = (
        oem_e2e::operator::sample(&metrics, "process_resident_memory_bytes", &[]),
        heap("allocated"),
        heap("resident"),
    );
    assert!(
        matches!((resident, allocated, heap), (Some(r), Some(a), Some(h)) if 0.0 < a && a <= h && h <= r),
        "memory figures: resident {resident:?}, heap allocated {allocated:?}, heap resident {heap:?}"
    );
    Ok(())
}

#[tokio::test]
async fn endpoints_at_another_tenants_service_or_the_api_server_are_refused() -> anyhow::Result<()>
{
    let (_cluster, client, operator) = setup().await?;
    let reseller = format!("mon{}c", std::process::id() % 100000);
    let ns = hosting::reseller_with_namespace(&client, &reseller, json!([])).await?;
    apply_course(
        &client,
        course(&ns, "web", json!({"web": {"phpVersion": "8.4"}})),
    )
    .await?;
    // The victim: an end user whose web Service has a ClusterIP (loopback range on kwok,
    // inside the allow-list of this operator).
    apply_enduser(
        &client,
        hosting::enduser(&ns, "victim", "web", "2025-01-01", json!({})),
    )
    .await?;
    let victim = wait_for(
        &client,
        &ns,
        "victim",
        "victim monitored",
        FIRST_UP,
        |f, _| f.contains_key("http"),
    )
    .await
    .map_err(|e| e.context(operator.log_tail(40)))?;
    let hosting_ns = victim
        .status
        .as_ref()
        .and_then(|s| s.hosting_namespace.clone())
        .ok_or_else(|| anyhow::anyhow!("the victim has no hosting namespace"))?;
    let cluster_ip = |svc: Service| svc.spec.and_then(|s| s.cluster_ip).unwrap_or_default();
    let web = cluster_ip(
        Api::<Service>::namespaced(client.clone(), &hosting_ns)
            .get("web")
            .await?,
    );
    let api_server = cluster_ip(
        Api::<Service>::namespaced(client.clone(), "default")
            .get("kubernetes")
            .await?,
    );
    eprintln!("victim's web Service {web}, API server's Service {api_server}");
    // The nosy end user of the same reseller names them as its own endpoints.
    let endpoints = json!([
        {"service": "http", "host": web, "port": 80},
        {"service": "https", "host": api_server, "port": 443},
    ]);
    apply_enduser(
        &client,
        hosting::enduser(
            &ns,
            "nosy",
            "web",
            "2025-01-01",
            json!({"monitoring": {"endpoints": endpoints}}),
        ),
    )
    .await?;
    let nosy = wait_for(
        &client,
        &ns,
        "nosy",
        "http and https refused",
        FIRST_UP,
        |f, _| {
            ["http", "https"]
                .iter()
                .all(|s| f.get(*s).is_some_and(|(_, m)| m.starts_with("refused:")))
        },
    )
    .await
    .map_err(|e| e.context(operator.log_tail(40)))?;
    let found = services(&nosy);
    eprintln!("named endpoints at others' addresses: {found:?}");
    assert_eq!(
        found["http"],
        (
            "Down".to_owned(),
            "refused: the address belongs to another tenant".to_owned()
        )
    );
    assert_eq!(
        found["https"],
        (
            "Down".to_owned(),
            "refused: the address belongs to the control plane".to_owned()
        )
    );
    Ok(())
}
