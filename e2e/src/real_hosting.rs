//! Helpers of the tests that run the project's hosting images on the real node
//! (`hosting_real.rs`, `chart_real.rs`, `monitoring_real.rs`, `mail_real.rs`,
//! `lifecycle_real.rs`): importing the images, waiting until an end user is
//! Active there, reading its credentials and Service addresses, talking to its services with
//! curl (FTPS, SMTP, IMAP, POP3) and saying what its pods do when something fails.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use oem_crds::EndUser;

use crate::Cluster;
use crate::cluster::{REAL_NODE, repo_root};
use crate::hosting::{self, wait_phase};

/// The names in this network namespace resolve through the real node's cluster DNS
/// (`scripts/netns-cluster-dns.sh`), as in the operator's pod: else the monitor cannot reach
/// `web.<namespace>.svc`.
pub fn require_cluster_dns() -> anyhow::Result<()> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").context("reading /etc/resolv.conf")?;
    ensure!(
        conf.lines().any(|l| l.trim() == "nameserver 10.96.0.10")
            && conf.contains("svc.cluster.local"),
        "/etc/resolv.conf does not name the cluster DNS (run scripts/netns-cluster-dns.sh in \
         the test's namespace first, as scripts/test-in-netns.sh does):\n{conf}"
    );
    Ok(())
}

/// Builds the project's images (cached by content, `scripts/build-images.sh`) and imports them
/// into the real node's containerd: those named, or all of them when `images` is empty. The
/// operator's, webhooks' and panel's images take the debug binaries the tests run anyway
/// (`OEM_PROGRAM_PROFILE=dev`, as `make test` sets it) unless the caller chose otherwise: a
/// release build here would take half an hour on two cores.
pub fn import_images(cluster: &Cluster, images: &[&str]) -> anyhow::Result<()> {
    let started = Instant::now();
    let profile = std::env::var("OEM_PROGRAM_PROFILE").unwrap_or_else(|_| "dev".to_owned());
    let out = Command::new("bash")
        .env("OEM_PROGRAM_PROFILE", profile)
        .arg(repo_root().join("scripts/build-images.sh"))
        .arg("--import")
        .arg(cluster.containerd_socket())
        .args(images)
        .stdin(Stdio::null())
        .output()
        .context("running scripts/build-images.sh")?;
    ensure!(
        out.status.success(),
        "scripts/build-images.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "images built (or cached) and imported in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One value of a Secret, as text.
pub fn secret_value(secret: &Secret, key: &str) -> anyhow::Result<String> {
    let ByteString(bytes) = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .with_context(|| format!("Secret {} has no {key}", secret.name_any()))?;
    Ok(String::from_utf8(bytes.clone())?)
}

/// The cluster IP of a Service.
pub async fn cluster_ip(client: &Client, ns: &str, service: &str) -> anyhow::Result<String> {
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get(service)
        .await
        .with_context(|| format!("reading Service {ns}/{service}"))?;
    svc.spec
        .and_then(|s| s.cluster_ip)
        .filter(|ip| !ip.is_empty() && ip != "None")
        .with_context(|| format!("Service {ns}/{service} has no cluster IP"))
}

/// What the pods of `ns` are doing, for a failure's message.
pub async fn pods_report(client: &Client, ns: &str) -> String {
    let Ok(pods) = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
    else {
        return format!("(cannot list pods of {ns})");
    };
    pods.items
        .iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            let containers: Vec<String> = status
                .container_statuses
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    format!(
                        "{} image={} ready={} restarts={} state={}",
                        c.name,
                        c.image,
                        c.ready,
                        c.restart_count,
                        serde_json::to_string(&c.state).unwrap_or_default()
                    )
                })
                .collect();
            format!(
                "{} uid={} phase={:?} ip={:?} conditions={} [{}]",
                p.name_any(),
                p.uid().unwrap_or_default(),
                status.phase,
                status.pod_ip,
                serde_json::to_string(&status.conditions).unwrap_or_default(),
                containers.join("; ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An end user Active on the real node: its hosting namespace, login and credentials.
pub struct Served {
    pub ns: String,
    pub login: String,
    pub credentials: Secret,
    /// The web Service's cluster IP; empty when the course has no web service.
    pub web_ip: String,
}

/// Waits until the end user is Active, with every pod on the real node under a restricted
/// security context.
pub async fn active_on_the_real_node(
    client: &Client,
    enduser: &EndUser,
    limit: Duration,
) -> anyhow::Result<Served> {
    let reseller_ns = enduser.namespace().unwrap_or_default();
    let started = Instant::now();
    let active = match wait_phase(client, &reseller_ns, &enduser.name_any(), "Active", limit).await
    {
        Ok(active) => active,
        Err(e) => {
            let eu = Api::<EndUser>::namespaced(client.clone(), &reseller_ns)
                .get(&enduser.name_any())
                .await?;
            let ns = hosting::hosting_namespace(&eu).unwrap_or_default();
            return Err(e.context(format!("pods of {ns}:\n{}", pods_report(client, &ns).await)));
        }
    };
    eprintln!(
        "{} Active in {:.1} s",
        enduser.name_any(),
        started.elapsed().as_secs_f64()
    );
    let ns = hosting::hosting_namespace(&active)?;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    ensure!(!pods.items.is_empty(), "no pods in {ns}");
    for pod in &pods.items {
        let spec = pod.spec.as_ref().context("pod without spec")?;
        ensure!(
            spec.node_name.as_deref() == Some(REAL_NODE),
            "pod {} runs on {:?}, not the real node",
            pod.name_any(),
            spec.node_name
        );
        for c in &spec.containers {
            let sc = c.security_context.as_ref().with_context(|| {
                format!(
                    "container {} of {} has no security context",
                    c.name,
                    pod.name_any()
                )
            })?;
            ensure!(
                sc.allow_privilege_escalation == Some(false)
                    && sc.capabilities.as_ref().and_then(|c| c.drop.clone())
                        == Some(vec!["ALL".into()]),
                "container {} of {} may escalate or keeps capabilities",
                c.name,
                pod.name_any()
            );
        }
    }
    let credentials = Api::<Secret>::namespaced(client.clone(), &ns)
        .get("credentials")
        .await
        .with_context(|| format!("reading {ns}/credentials"))?;
    Ok(Served {
        login: active.spec.login_id.clone(),
        web_ip: cluster_ip(client, &ns, "web").await.unwrap_or_default(),
        ns,
        credentials,
    })
}

/// Runs curl with `args` (TLS certificates not checked: the images' are self-signed); its
/// standard output, or an error with what it said.
pub fn curl(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("curl")
        .args(["-sS", "--insecure", "--max-time", "20"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running curl")?;
    if !out.status.success() {
        bail!(
            "curl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Retries `attempt` every 2 s for up to `limit` (a daemon still starting).
pub async fn retrying<T>(
    what: &str,
    limit: Duration,
    mut attempt: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("{what}: gave up after {limit:?}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

/// Uploads `content` as `name` over explicit FTPS (AUTH TLS) to the FTP server at `ip:21`;
/// retries while the server starts.
pub async fn upload_over_ftps(
    ip: &str,
    user: &str,
    password: &str,
    name: &str,
    content: &str,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join(name);
    std::fs::write(&file, content)?;
    let file = file.to_string_lossy().into_owned();
    let login = format!("{user}:{password}");
    let url = format!("ftp://{ip}:21/{name}");
    retrying(
        &format!("FTPS upload of {name} to {ip} as {user}"),
        Duration::from_secs(60),
        || curl(&["--ssl-reqd", "--user", &login, "-T", &file, &url]).map(|_| ()),
    )
    .await
}

/// Sends one mail from `account` (address, password) to `to` over smtps (465) of the mail
/// Service at `ip`; curl's error on a refusal.
pub fn send_over_smtps(
    ip: &str,
    account: &(String, String),
    to: &str,
    file: &str,
) -> anyhow::Result<String> {
    curl(&[
        "--ssl-reqd",
        "--user",
        &format!("{}:{}", account.0, account.1),
        "--mail-from",
        &account.0,
        "--mail-rcpt",
        to,
        "-T",
        file,
        &format!("smtps://{ip}:465"),
    ])
}

/// The first `address:password` line of the end user's `mail-accounts`.
pub fn first_mail_account(served: &Served) -> anyhow::Result<(String, String)> {
    let accounts = secret_value(&served.credentials, "mail-accounts")?;
    let (address, password) = accounts
        .lines()
        .next()
        .and_then(|l| l.split_once(':'))
        .context("mail-accounts has no address:password line")?;
    Ok((address.to_owned(), password.to_owned()))
}
