//! A node goes down under two end users of one reseller (issue 18): each contact gets one
//! outage notice and one recovery notice listing both, not one per end user.
//!
//! A control plane of its own with one kwok node, so both end users' pods are bound to it.
//! Their PostgreSQL is the real one of the probe tests (`monitoring.endpoints`); the node is
//! deleted (the Node object gone: the operator's view no longer has it, the pods stay bound to
//! it until the pod garbage collector's 40 s) and the server hung (SIGSTOP), so both end users
//! fail together. Both incidents record the node (`spec.node`); the scaled 10 minutes later one
//! mail names both end users; the node is put back before the pod collector would act, the
//! server resumed, and one recovery mail names both again. Real SMTP (aiosmtpd), no webhook.

#[path = "../../operator/tests/probes_support/mod.rs"]
mod probes_support;

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};
use oem_crds::{EndUser, Incident};
use oem_e2e::cluster::DownOnDrop;
use oem_e2e::hosting::{self, apply_enduser};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::prometheus::{SmtpSink, SmtpSinkOptions};
use oem_e2e::{Cluster, wait};
use oem_operator::alerting::notify::IDEMPOTENCY_MAIL_HEADER;
use probes_support::daemons;
use serde_json::{Value, json};

/// The specification's 10 minutes, scaled.
const TEN_MINUTES: Duration = Duration::from_secs(20);
const END_USERS: [&str; 2] = ["shop", "blog"];

/// The cluster's environment: its own folder and ports, one kwok node.
fn cluster_env() -> Vec<(&'static str, String)> {
    let dir = oem_e2e::cluster::repo_root().join(".cluster/node-outage");
    vec![
        ("OEM_CLUSTER_DIR", dir.to_string_lossy().into_owned()),
        ("OEM_CLUSTER_PORT_BASE", "48000".into()),
        ("OEM_CLUSTER_NODES", "1".into()),
    ]
}

/// The Node object as `cluster.sh` makes it, so kwok takes it up again.
fn node_manifest(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    \
         node.alpha.kubernetes.io/ttl: \"0\"\n    kwok.x-k8s.io/node: fake\n  labels:\n    \
         kubernetes.io/hostname: {name}\n    kubernetes.io/os: linux\n    \
         kubernetes.io/arch: amd64\n    type: kwok\n    oem.dev/hosting-node: \"true\"\n\
         status:\n  allocatable: {{cpu: \"64\", memory: 512Gi, pods: \"2000\", ephemeral-storage: 2Ti}}\n  \
         capacity: {{cpu: \"64\", memory: 512Gi, pods: \"2000\", ephemeral-storage: 2Ti}}\n"
    )
}

/// This reseller's mails of one notice event, quoted-printable soft breaks undone.
fn mails(smtp: &SmtpSink, reseller: &str, event: &str) -> anyhow::Result<Vec<String>> {
    let prefix = format!("{IDEMPOTENCY_MAIL_HEADER}: {event}-");
    let rcpt = format!("X-Sink-Rcpt-To: desk@{reseller}.example.jp");
    Ok(smtp
        .messages()?
        .into_iter()
        .filter(|m| m.contains(&prefix) && m.contains(&rcpt))
        .map(|m| {
            m.replace("=\r\n", "")
                .replace("=\n", "")
                .replace("=3D", "=")
        })
        .collect())
}

async fn wait_mail(
    smtp: &SmtpSink,
    reseller: &str,
    event: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    wait::until(
        &format!("the {event} mail"),
        limit,
        Duration::from_millis(300),
        || async {
            match mails(smtp, reseller, event)
                .map_err(|e| e.to_string())?
                .len()
            {
                0 => Err("none yet".to_owned()),
                _ => Ok(()),
            }
        },
    )
    .await
}

/// Both end users' postgresql incidents, once `check` holds for each.
async fn wait_incidents(
    client: &Client,
    ns: &str,
    what: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Vec<Value>> {
    let api: Api<Incident> = Api::namespaced(client.clone(), ns);
    wait::until(what, limit, Duration::from_millis(300), || async {
        let found: Vec<Value> = api
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .iter()
            .filter_map(|i| serde_json::to_value(i).ok())
            .filter(|v| v["spec"]["service"] == "postgresql")
            .collect();
        let users: Vec<&str> = found
            .iter()
            .filter_map(|v| v["spec"]["endUser"].as_str())
            .collect();
        if found.len() == END_USERS.len()
            && END_USERS.iter().all(|e| users.contains(e))
            && found.iter().all(&check)
        {
            Ok(found)
        } else {
            Err(format!("{found:?}"))
        }
    })
    .await
}

#[tokio::test]
async fn end_users_on_a_node_that_goes_down_get_one_notice_per_contact() -> anyhow::Result<()> {
    let started = Instant::now();
    let env = cluster_env();
    let cluster = tokio::task::spawn_blocking(move || Cluster::up_with(&env)).await??;
    let guard = DownOnDrop(Some(cluster));
    let cluster = guard.0.as_ref().context("cluster")?;
    let client = cluster.client().await?;
    eprintln!("cluster up in {:?}", started.elapsed());

    let smtp = SmtpSink::start(SmtpSinkOptions {
        tls: false,
        user: None,
        fail_first: 0,
        host: None,
    })
    .await?;
    let db_port = tokio::task::spawn_blocking(daemons::postgres).await?;
    let notify = json!({
        "smtpHost": "127.0.0.1", "smtpPort": smtp.port, "starttls": "none",
        "from": "noc@provider.example", "timeout": "5s",
        "maxAttempts": 10, "backoffBase": "1s", "backoffMax": "2s"
    });
    let env: Vec<(String, String)> = [
        ("OEM_PROBE_INTERVAL", "2s"),
        ("OEM_PROBE_RETRY_INTERVAL", "1s"),
        ("OEM_PROBE_TIMEOUT", "1s"),
        ("OEM_PROBE_ALLOW", "127.0.0.0/8"),
        ("OEM_ALERT_POLL_INTERVAL", "1s"),
        ("OEM_NOTIFY_AFTER", "20s"),
        ("OEM_ALERT_FOR", "20s"),
        // No restart while the node is away: the notices are what is measured.
        ("OEM_RESTART_BACKOFF", "10m"),
        ("OEM_REPORT_LEAD_TIME", "1h"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([("OEM_NOTIFY".to_owned(), notify.to_string())])
    .collect();
    let operator = Operator::start(cluster, OperatorOptions::with_env(env)).await?;

    let reseller = "nodeout";
    let mut spec = hosting::reseller(reseller, json!([]));
    spec["spec"]["contacts"] = json!([{
        "name": "desk", "email": format!("desk@{reseller}.example.jp"), "language": "en"
    }]);
    let ns = hosting::apply_reseller(&client, spec).await?;
    hosting::apply_postgresql_course(&client, &ns).await?;
    let endpoints = json!({"monitoring": {"endpoints": [
        {"service": "postgresql", "host": "127.0.0.1", "port": db_port}
    ]}});
    for name in END_USERS {
        apply_enduser(
            &client,
            hosting::enduser(&ns, name, "db", "2025-01-01", endpoints.clone()),
        )
        .await?;
    }
    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &ns);
    let context = |e: anyhow::Error| e.context(format!("operator log:\n{}", operator.log_tail(40)));
    wait::until(
        "both end users' postgresql Up and their pods bound",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            for name in END_USERS {
                let eu = endusers.get(name).await.map_err(|e| e.to_string())?;
                let v = serde_json::to_value(&eu).map_err(|e| e.to_string())?;
                let up = v["status"]["services"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| s["service"] == "postgresql" && s["state"] == "Up");
                if !up || v["status"]["phase"] != "Active" {
                    return Err(format!("{name}: {}", v["status"]));
                }
            }
            Ok(())
        },
    )
    .await
    .map_err(context)?;

    // Both end users' pods are on the one node.
    let mut nodes = Vec::new();
    for name in END_USERS {
        let eu = endusers.get(name).await?;
        let hosting_ns = eu
            .status
            .and_then(|s| s.hosting_namespace)
            .context("no hosting namespace")?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &hosting_ns);
        for pod in pods.list(&ListParams::default()).await?.items {
            nodes.extend(pod.spec.and_then(|s| s.node_name));
        }
    }
    nodes.sort();
    nodes.dedup();
    let [node] = nodes.as_slice() else {
        anyhow::bail!("the pods are on {nodes:?}, not on one node");
    };

    // The node goes, and the server with it.
    cluster.kubectl_ok(&["delete", "node", node, "--wait=false"], None)?;
    let hung = daemons::hang_postgres().map_err(anyhow::Error::msg)?;
    let down = Instant::now();
    let opened = wait_incidents(
        &client,
        &ns,
        "both incidents open, naming the node",
        Duration::from_secs(20),
        |v| v["spec"]["node"] == node.as_str(),
    )
    .await
    .map_err(context)?;
    eprintln!(
        "both incidents opened {:?} after the node went",
        down.elapsed()
    );
    for v in &opened {
        let first = v["status"]["timeline"][0]["message"]
            .as_str()
            .unwrap_or_default();
        ensure!(
            first.contains(&format!("node {node} down")),
            "the first timeline entry names the node: {first}"
        );
    }
    wait_mail(
        &smtp,
        reseller,
        "outage",
        TEN_MINUTES + Duration::from_secs(20),
    )
    .await
    .map_err(context)?;
    eprintln!("outage mail {:?} after the node went", down.elapsed());
    // Back before the pod collector (40 s after the node went) deletes the pods.
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&node_manifest(node)))?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let outage = mails(&smtp, reseller, "outage")?;
    ensure!(outage.len() == 1, "one outage mail, got {}", outage.len());
    for login in ["User ID: ushop", "User ID: ublog", "Service: postgresql"] {
        ensure!(outage[0].contains(login), "{login} in:\n{}", outage[0]);
    }

    hung.resume().map_err(anyhow::Error::msg)?;
    let back = Instant::now();
    wait_incidents(
        &client,
        &ns,
        "both incidents resolved",
        Duration::from_secs(30),
        |v| v["status"]["phase"] == "Resolved",
    )
    .await
    .map_err(context)?;
    wait_mail(&smtp, reseller, "recovered", Duration::from_secs(15))
        .await
        .map_err(context)?;
    eprintln!(
        "recovery mail {:?} after the server answered",
        back.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let recovered = mails(&smtp, reseller, "recovered")?;
    ensure!(
        recovered.len() == 1,
        "one recovery mail, got {}",
        recovered.len()
    );
    for login in ["User ID: ushop", "User ID: ublog"] {
        ensure!(
            recovered[0].contains(login),
            "{login} in:\n{}",
            recovered[0]
        );
    }
    ensure!(
        mails(&smtp, reseller, "outage")?.len() == 1,
        "still one outage mail"
    );
    eprintln!("node outage: {:?}", started.elapsed());
    Ok(())
}
