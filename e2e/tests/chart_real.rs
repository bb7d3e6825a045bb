//! Day one of a provider, on the real node: the project's operator, webhooks and panel images
//! (built by `scripts/build-images.sh` from the release binaries) imported into the node, `helm
//! install` of `charts/oem-hosting` with its default image names, and the three Deployments
//! running on the real node. The panel answers the new reseller's login page through its
//! Service. A reseller, a course and an end user applied with kubectl are
//! admitted by the in-cluster webhooks (the mutating one normalises the domain), provisioned by
//! the in-cluster operator on the real node, and served: `index.php` uploaded over FTPS with
//! the end user's account is rendered through the web Service. A manifest only the webhooks can
//! judge is refused by them with their message. Deleting the end user and reseller, then `helm
//! uninstall`, leaves nothing of the release; admission works again without the webhooks.
//!
//! Runs only inside a network and mount namespace of its own (scripts/test.sh does that), on
//! the real-node cluster of `real_node.rs`; whatever it needs and misses, it fails.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use oem_e2e::cluster::{DownOnDrop, REAL_NODE, repo_root};
use oem_e2e::hosting::{self, wait_phase};
use oem_e2e::real_hosting::{cluster_ip, curl, import_images, retrying, upload_over_ftps};
use oem_e2e::{Cluster, http_get, wait};
use serde_json::{Value, json};

const RELEASE: &str = "oem-hosting";
const NAMESPACE: &str = "oem-hosting-system";
const LIMIT: Duration = Duration::from_secs(180);

/// What a provider changes on day one for this cluster: the project's pods and the hosting
/// pods on the real node (the kwok node runs nothing), a quicker resync. Images, resources and
/// everything else are the chart's defaults.
const VALUES: &str = "\
operator:
  nodeSelector: {type: real}
  config:
    placement:
      nodeSelector: {type: real}
    resyncInterval: 10s
    specRetry: 3s
webhooks:
  nodeSelector: {type: real}
panel:
  nodeSelector: {type: real}
";

/// The end user's site: proves PHP runs the file uploaded to the end user's volume.
const INDEX_PHP: &str = "<?php printf(\"day one on php %d.%d for %s\\n\", PHP_MAJOR_VERSION, PHP_MINOR_VERSION, 'uday1');\n";

fn yaml(value: &Value) -> anyhow::Result<String> {
    Ok(serde_yaml::to_string(value)?)
}

/// Whether every pod of `component` (at least `count`) is Ready on the real node; else what
/// they are doing.
async fn ready_on_real_node(pods: &Api<Pod>, component: &str, count: usize) -> Result<(), String> {
    let selector =
        format!("app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}");
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| e.to_string())?;
    let ready = |p: &Pod| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(REAL_NODE)
            && p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    if list.items.len() >= count && list.items.iter().all(ready) {
        return Ok(());
    }
    Err(list
        .items
        .iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            format!(
                "{} node={:?} phase={:?} containers={}",
                p.name_any(),
                p.spec.as_ref().and_then(|s| s.node_name.clone()),
                status.phase,
                serde_json::to_string(&status.container_statuses).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Logs of the release's pods, for a failure's message.
fn release_logs(cluster: &Cluster) -> String {
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    match cluster.kubectl(
        &[
            "logs",
            "-n",
            NAMESPACE,
            "-l",
            &selector,
            "--tail",
            "30",
            "--prefix",
            "--all-containers",
        ],
        None,
    ) {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("(no logs: {e:#})"),
    }
}

/// Uninstalls the release when dropped, also when the test fails halfway.
struct Release(Cluster);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self.0.helm(&[
            "uninstall",
            RELEASE,
            "-n",
            NAMESPACE,
            "--wait",
            "--timeout",
            "120s",
        ]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_install_runs_the_projects_images_on_the_real_node_and_serves_an_end_user()
-> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(Cluster::real_node).await??;
    let guard = DownOnDrop(Some(cluster));
    let cluster = guard.0.as_ref().context("cluster")?;
    eprintln!(
        "real-node cluster up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    import_images(
        cluster,
        &["operator", "webhooks", "panel", "web-php8.4", "ftp"],
    )?;
    let client = cluster.client().await?;

    // helm install with the chart's default image names (oem.local/oem-hosting/*:<images/TAG>).
    let dir = tempfile::tempdir()?;
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, VALUES)?;
    let chart = repo_root().join("charts/oem-hosting");
    let installing = Instant::now();
    let release = Release(cluster.clone());
    cluster.helm_ok(&[
        "install",
        RELEASE,
        &chart.to_string_lossy(),
        "-n",
        NAMESPACE,
        "--create-namespace",
        "--values",
        &values.to_string_lossy(),
    ])?;
    let helm_secs = installing.elapsed().as_secs_f64();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    // The components watched at once: each one's time from `helm install` to all Ready.
    let components = [("operator", 2), ("webhooks", 2), ("panel", 1)];
    let mut ready_at: [Option<f64>; 3] = [None, None, None];
    let deadline = Instant::now() + LIMIT;
    while ready_at.iter().any(Option::is_none) {
        let mut waiting = Vec::new();
        for (i, (component, count)) in components.iter().enumerate() {
            if ready_at[i].is_some() {
                continue;
            }
            match ready_on_real_node(&pods, component, *count).await {
                Ok(()) => ready_at[i] = Some(installing.elapsed().as_secs_f64()),
                Err(e) => waiting.push(format!("{component}: {e}")),
            }
        }
        if !waiting.is_empty() && Instant::now() > deadline {
            bail!(
                "the release's pods not Ready on {REAL_NODE} within {LIMIT:?}:\n{}\n{}",
                waiting.join("\n"),
                release_logs(cluster)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "helm install returned in {helm_secs:.1} s; Ready after install: operator (2 pods) \
         {:.1} s, webhooks (2 pods) {:.1} s, panel {:.1} s",
        ready_at[0].unwrap_or_default(),
        ready_at[1].unwrap_or_default(),
        ready_at[2].unwrap_or_default()
    );
    for (component, image) in [
        ("operator", "operator"),
        ("webhooks", "webhooks"),
        ("panel", "panel"),
    ] {
        let want = format!(
            "oem.local/oem-hosting/{image}:{}",
            std::fs::read_to_string(repo_root().join("images/TAG"))?.trim()
        );
        let images = cluster.kubectl_ok(
            &[
                "get",
                "pods",
                "-n",
                NAMESPACE,
                "-l",
                &format!("app.kubernetes.io/component={component}"),
                "-o",
                "jsonpath={.items[*].spec.containers[*].image}",
            ],
            None,
        )?;
        ensure!(
            images.split_whitespace().all(|i| i == want),
            "{component} runs {images}, not {want}"
        );
    }

    // The two operator pods elected one leader on the chart's Lease.
    let operator_pods = cluster.kubectl_ok(
        &[
            "get",
            "pods",
            "-n",
            NAMESPACE,
            "-l",
            "app.kubernetes.io/component=operator",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
        None,
    )?;
    let holder = wait::until(
        "an operator pod holding the Lease",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let holder = cluster
                .kubectl_ok(
                    &[
                        "get",
                        "lease",
                        "oem-hosting-operator",
                        "-n",
                        NAMESPACE,
                        "-o",
                        "jsonpath={.spec.holderIdentity}",
                    ],
                    None,
                )
                .map_err(|e| e.to_string())?;
            if operator_pods.split_whitespace().any(|p| p == holder.trim()) {
                Ok(holder.trim().to_owned())
            } else {
                Err(format!("held by {holder:?}, pods {operator_pods}"))
            }
        },
    )
    .await?;
    eprintln!("the Lease is held by {holder} of {operator_pods}");

    // A reseller, a course and an end user, applied with kubectl; the end user's domain in
    // capitals with a trailing dot, which the mutating webhook normalises.
    let reseller_ns = "reseller-dayone";
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&yaml(&hosting::reseller(
            "dayone",
            json!([{"kind": "User", "name": "dayone-admin"}]),
        ))?),
    )?;
    wait::until(
        "the reseller's namespace",
        LIMIT,
        Duration::from_millis(250),
        || async {
            match cluster.kubectl(&["get", "namespace", reseller_ns], None) {
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
    .map_err(|e| e.context(release_logs(cluster)))?;
    // The panel serves the new reseller's login page through its Service (its caches see the
    // Reseller by its watch).
    let panel_ip = cluster_ip(&client, NAMESPACE, &format!("{RELEASE}-panel")).await?;
    let login_url = format!("http://{panel_ip}/login/dayone");
    retrying("the panel's login page through its Service", LIMIT, || {
        let page = curl(&["-f", &login_url])?;
        ensure!(page.contains("name=\"password\""), "no login form: {page}");
        Ok(())
    })
    .await
    .map_err(|e| e.context(release_logs(cluster)))?;
    let mut course = hosting::course(
        reseller_ns,
        "site",
        "512Mi",
        json!({"web": {"phpVersion": "8.4"}, "ftp": {"tls": true}}),
    );
    course["spec"]["resources"]["cpu"] = json!("500m");
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&yaml(&course)?))?;
    let enduser = hosting::enduser(
        reseller_ns,
        "day1",
        "site",
        "2025-01-01",
        json!({"domains": ["Day1.Example.JP."]}),
    );
    let applied = Instant::now();
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&yaml(&enduser)?))?;
    let active = wait_phase(&client, reseller_ns, "day1", "Active", LIMIT)
        .await
        .map_err(|e| e.context(release_logs(cluster)))?;
    let active_secs = applied.elapsed().as_secs_f64();
    ensure!(
        active.spec.domains == ["day1.example.jp"],
        "the mutating webhook did not normalise the domain: {:?}",
        active.spec.domains
    );

    // Served on the real node: FTPS upload with the end user's account, then the web Service.
    let hosting_ns = hosting::hosting_namespace(&active)?;
    let hosting_pods = Api::<Pod>::namespaced(client.clone(), &hosting_ns)
        .list(&ListParams::default())
        .await?;
    ensure!(!hosting_pods.items.is_empty(), "no pods in {hosting_ns}");
    for pod in &hosting_pods.items {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        ensure!(
            node.as_deref() == Some(REAL_NODE),
            "hosting pod {} runs on {node:?}",
            pod.name_any()
        );
    }
    let credentials = Api::<Secret>::namespaced(client.clone(), &hosting_ns)
        .get("credentials")
        .await?;
    let ByteString(password) = credentials
        .data
        .as_ref()
        .and_then(|d| d.get("ftp-password"))
        .context("credentials Secret has no ftp-password")?;
    let password = String::from_utf8(password.clone())?;
    let web_ip = Api::<Service>::namespaced(client.clone(), &hosting_ns)
        .get("web")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the web Service has no cluster IP")?;
    upload_over_ftps(
        &web_ip,
        &active.spec.login_id,
        &password,
        "index.php",
        INDEX_PHP,
    )
    .await?;
    let url = format!("http://{web_ip}:80/index.php");
    let body = wait::until(
        &format!("{url} to render the uploaded page"),
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            match http_get(&url).await {
                Ok((200, body)) if body.contains("day one on php 8.4 for uday1") => Ok(body),
                Ok((status, body)) => Err(format!(
                    "{status}: {}",
                    body.chars().take(200).collect::<String>()
                )),
                Err(e) => Err(format!("{e:#}")),
            }
        },
    )
    .await?;
    let served_secs = applied.elapsed().as_secs_f64();
    let line = body
        .lines()
        .find(|l| l.contains("day one"))
        .unwrap_or_default();
    eprintln!(
        "end user day1: Active {active_secs:.1} s after kubectl apply, page served after \
         {served_secs:.1} s (FTPS upload included): {line}"
    );

    // Manifests only the webhooks can judge: another end user's domain, a missing course.
    let refusals = [
        (
            hosting::enduser(
                reseller_ns,
                "copycat",
                "site",
                "2025-01-01",
                json!({"domains": ["day1.example.jp"]}),
            ),
            "domain day1.example.jp is already used by another end user",
        ),
        (
            hosting::enduser(
                reseller_ns,
                "orphan",
                "no-such-course",
                "2025-01-01",
                json!({}),
            ),
            "course no-such-course does not exist in namespace reseller-dayone",
        ),
    ];
    for (manifest, message) in refusals {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&yaml(&manifest)?))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success()
                && stderr
                    .contains("admission webhook \"namespaced.validate.hosting.oem.dev\" denied")
                && stderr.contains(message),
            "expected the webhooks to refuse with {message:?}; kubectl said: {stderr}"
        );
    }
    eprintln!("the in-cluster webhooks refused both bad manifests with their messages");

    // Clean up through the operator, then uninstall: nothing of the release is left.
    cluster.kubectl_ok(
        &[
            "delete",
            "enduser",
            "day1",
            "-n",
            reseller_ns,
            "--timeout",
            "120s",
        ],
        None,
    )?;
    cluster.kubectl_ok(&["delete", "reseller", "dayone", "--timeout", "120s"], None)?;
    for ns in [hosting_ns.as_str(), reseller_ns] {
        wait::until(
            &format!("namespace {ns} to be gone"),
            LIMIT,
            Duration::from_millis(500),
            || async {
                match cluster.kubectl(
                    &["get", "namespace", ns, "--ignore-not-found", "-o", "name"],
                    None,
                ) {
                    Ok(out) if out.stdout.is_empty() && out.status.success() => Ok(()),
                    Ok(out) => Err(String::from_utf8_lossy(&out.stdout).into_owned()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;
    }
    let manifest = cluster.helm_ok(&["get", "manifest", RELEASE, "-n", NAMESPACE])?;
    let uninstalling = Instant::now();
    drop(release);
    let helm_uninstall_secs = uninstalling.elapsed().as_secs_f64();
    let left = |args: &[&str], stdin: Option<&str>| -> Result<(), String> {
        let out = cluster.kubectl(args, stdin).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && text.is_empty() {
            Ok(())
        } else {
            Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        }
    };
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    wait::until(
        "the release's objects and pods to be gone",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            left(&["get", "-n", NAMESPACE, "-f", "-", "-o", "name", "--ignore-not-found"], Some(&manifest))?;
            left(&["get", "pods,secrets,configmaps", "-A", "-l", &selector, "-o", "name"], None)?;
            left(
                &[
                    "get",
                    "clusterroles,clusterrolebindings,validatingwebhookconfigurations,mutatingwebhookconfigurations",
                    "-l", &selector, "-o", "name",
                ],
                None,
            )
        },
    )
    .await?;
    // With the configurations gone (they fail closed), admission no longer calls the webhooks.
    let mut later = hosting::reseller("after", json!([{"kind": "User", "name": "after-admin"}]));
    later["metadata"]["labels"] = json!({"e2e.oem.dev/after-uninstall": "true"});
    cluster.kubectl_ok(
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&yaml(&later)?),
    )?;
    // The pods stop on the runtime's stop signal (SIGTERM for the operator, the image's
    // STOPSIGNAL SIGINT for the webhooks), not at the end of their 30 s grace period.
    let gone_secs = uninstalling.elapsed().as_secs_f64();
    ensure!(
        gone_secs < 25.0,
        "the release's pods took {gone_secs:.1} s to stop: one ignored its stop signal"
    );
    let helm_list = cluster.helm_ok(&["list", "-a", "-q", "-n", NAMESPACE])?;
    ensure!(helm_list.trim().is_empty(), "helm still lists {helm_list}");
    eprintln!(
        "helm uninstall returned in {helm_uninstall_secs:.1} s; nothing of the release left \
         after {gone_secs:.1} s; whole test {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
