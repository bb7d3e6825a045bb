//! The course's bandwidth limit and the end user's deletion, on the real node.
//!
//! - Bandwidth (SPEC §4): the operator puts the course's limit on the hosting pods as the
//!   `kubernetes.io/{ingress,egress}-bandwidth` annotations; containerd hands them to the CNI
//!   `bandwidth` plugin, which shapes the pod's traffic with TBF (egress through an IFB
//!   device). A download from the site is measured once the kernel says the token bucket is
//!   empty (its overlimits counter moves): it runs near the course's rate, and a course with a
//!   ten times higher limit is faster.
//! - Deletion (SPEC §1): deleting an end user removes its hosting namespace, pods (their
//!   containers gone from the node's runtime), Services, claims and volumes; with
//!   `deletionPolicy: Retain` the volume stays, marked, with the site's files on the node.
//!
//! Runs only inside a network and mount namespace of its own (scripts/test.sh does that).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use oem_crds::EndUser;
use oem_e2e::cluster::{DownOnDrop, repo_root};
use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::operator::{Operator, OperatorOptions, real_node_config};
use oem_e2e::real_hosting::{
    Served, active_on_the_real_node, cluster_ip, import_images, pods_report, secret_value,
    upload_over_ftps,
};
use oem_e2e::{Cluster, http_get, wait};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(180);
const INDEX_PHP: &str =
    "<?php printf(\"kept by php %d.%d\\n\", PHP_MAJOR_VERSION, PHP_MINOR_VERSION);\n";
/// A sparse file in the document root: no disk used, far more than the token bucket holds.
const BIG_FILE_SIZE: &str = "2G";

/// A web + FTP course with `bandwidth`.
fn site_course(ns: &str, name: &str, bandwidth: &str) -> serde_json::Value {
    let mut course = hosting::course(
        ns,
        name,
        "512Mi",
        json!({"web": {"phpVersion": "8.4"}, "ftp": {"tls": true}}),
    );
    course["spec"]["resources"]["cpu"] = json!("500m");
    course["spec"]["resources"]["bandwidth"] = json!(bandwidth);
    course
}

/// The bits per second of a quantity such as `8M` (decimal suffixes, as the CNI reads them).
fn bits_per_second(quantity: &str) -> anyhow::Result<f64> {
    let (number, factor) = match quantity.chars().last() {
        Some('k') => (&quantity[..quantity.len() - 1], 1e3),
        Some('M') => (&quantity[..quantity.len() - 1], 1e6),
        Some('G') => (&quantity[..quantity.len() - 1], 1e9),
        _ => (quantity, 1.0),
    };
    Ok(number
        .parse::<f64>()
        .with_context(|| format!("bandwidth {quantity}"))?
        * factor)
}

/// What one download showed: the bytes that went at full speed (the token bucket's burst),
/// and the steady rate after it, in bits per second.
struct Download {
    burst_bytes: u64,
    burst_rate: f64,
    steady_rate: f64,
}

/// How often the kernel's token bucket filters shaping at `limit_bps` found their bucket empty
/// (`overlimits`, summed over every TBF qdisc with that rate; the bandwidth plugin puts one on
/// each pod's host veth and one on its IFB device). The node's veths live in this test's network
/// namespace, so `tc` sees them.
fn tbf_overlimits(limit_bps: f64) -> anyhow::Result<u64> {
    let out = Command::new("tc")
        .args(["-j", "-s", "qdisc", "show"])
        .stderr(Stdio::inherit())
        .output()
        .context("running tc -j -s qdisc show")?;
    ensure!(out.status.success(), "tc -j -s qdisc show: {}", out.status);
    let qdiscs: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).context("tc's JSON")?;
    let shaping = qdiscs.iter().filter(|q| {
        q["kind"] == "tbf"
            && q["options"]["rate"]
                .as_f64()
                .is_some_and(|bytes| (bytes * 8.0 - limit_bps).abs() < 1.0)
    });
    let (mut count, mut sum) = (0, 0);
    for q in shaping {
        count += 1;
        sum += q["overlimits"].as_u64().unwrap_or(0);
    }
    ensure!(
        count > 0,
        "no TBF qdisc shapes at {limit_bps} bit/s: the bandwidth plugin did not shape the pods"
    );
    Ok(sum)
}

/// Streams `url`, sampling every 250 ms. The burst is spent once the kernel's token bucket
/// at `limit_bps` runs empty (its overlimits counter moves; a rate threshold would mistake a
/// slow unshaped transfer on a busy machine for the shaped one). Then measures the rate over
/// the next `window` and stops reading.
async fn measure_download(url: &str, limit_bps: f64, window: Duration) -> anyhow::Result<Download> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(180))
        .build()?;
    let overlimits_before = tbf_overlimits(limit_bps)?;
    let mut response = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    ensure!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(150);
    let mut total: u64 = 0;
    let mut sample_at = started;
    let mut spent_at: Option<Instant> = None;
    let mut steady: Option<(Instant, u64)> = None;
    let mut burst = (0u64, 0f64);
    while let Some(chunk) = response.chunk().await.context("reading the download")? {
        total += chunk.len() as u64;
        let now = Instant::now();
        ensure!(
            now < deadline,
            "no steady rate within 150 s: {total} bytes read"
        );
        if let Some((from, bytes)) = steady {
            if now - from >= window {
                let rate = (total - bytes) as f64 * 8.0 / (now - from).as_secs_f64();
                return Ok(Download {
                    burst_bytes: burst.0,
                    burst_rate: burst.1,
                    steady_rate: rate,
                });
            }
        } else if let Some(spent) = spent_at {
            // One second for the queue the burst left to drain at the course's rate.
            if now - spent >= Duration::from_secs(1) {
                steady = Some((now, total));
            }
        } else if now - sample_at >= Duration::from_millis(250) {
            sample_at = now;
            if tbf_overlimits(limit_bps)? > overlimits_before {
                let elapsed = (now - started).as_secs_f64().max(0.001);
                burst = (total, total as f64 * 8.0 / elapsed);
                spent_at = Some(now);
            }
        }
    }
    bail!("the download ended after {total} bytes, before a steady rate was measured")
}

/// Runs `kubectl exec` in a container of a pod.
fn exec(
    cluster: &Cluster,
    ns: &str,
    pod: &str,
    container: &str,
    cmd: &[&str],
) -> anyhow::Result<String> {
    let mut args = vec!["exec", "-n", ns, pod, "-c", container, "--"];
    args.extend_from_slice(cmd);
    cluster.kubectl_ok(&args, None)
}

/// A site with `index.php` uploaded over FTPS and a large sparse file beside it.
async fn site(
    cluster: &Cluster,
    client: &Client,
    enduser: &EndUser,
) -> anyhow::Result<(Served, String)> {
    let served = active_on_the_real_node(client, enduser, LIMIT).await?;
    let ip = cluster_ip(client, &served.ns, "web").await?;
    let password = secret_value(&served.credentials, "ftp-password")?;
    upload_over_ftps(&ip, &served.login, &password, "index.php", INDEX_PHP).await?;
    let url = format!("http://{ip}:80/index.php");
    let answered = wait::until(
        &format!("{url} to run the uploaded page"),
        Duration::from_secs(60),
        Duration::from_secs(1),
        || async {
            match http_get(&url).await {
                Ok((200, body)) if body.contains("kept by php 8.4") => Ok(body),
                Ok((status, body)) => Err(format!("{status}: {body}")),
                Err(e) => Err(format!("{e:#}")),
            }
        },
    )
    .await;
    let body = match answered {
        Ok(body) => body,
        Err(e) => {
            return Err(e.context(format!("pods:\n{}", pods_report(client, &served.ns).await)));
        }
    };
    let line = body
        .lines()
        .find(|l| l.contains("kept by php"))
        .unwrap_or_default();
    eprintln!(
        "{} serves the uploaded index.php: {line}",
        enduser.name_any()
    );
    exec(
        cluster,
        &served.ns,
        "web-0",
        "web",
        &["truncate", "-s", BIG_FILE_SIZE, "/srv/www/big.bin"],
    )?;
    Ok((served, ip))
}

/// The containers of a namespace's pods the node's runtime still knows (crictl).
fn node_containers(cluster: &Cluster, ns: &str) -> anyhow::Result<usize> {
    let crictl = crictl_binary()?;
    let out = Command::new(&crictl)
        .arg("--runtime-endpoint")
        .arg(format!("unix://{}", cluster.containerd_socket().display()))
        .args(["ps", "-a", "-o", "json", "--label"])
        .arg(format!("io.kubernetes.pod.namespace={ns}"))
        .stdin(Stdio::null())
        .output()
        .context("running crictl ps")?;
    ensure!(
        out.status.success(),
        "crictl ps: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).context("crictl's JSON")?;
    Ok(listed["containers"].as_array().map_or(0, Vec::len))
}

/// The crictl `build-node.sh` built.
fn crictl_binary() -> anyhow::Result<PathBuf> {
    let cache = std::env::var_os("OEM_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/oem-hosting")))
        .context("no OEM_CACHE or HOME")?;
    let versions = std::fs::read_to_string(repo_root().join("e2e/cluster/versions.env"))?;
    let version = versions
        .lines()
        .find_map(|l| l.strip_prefix("CRI_TOOLS_VERSION="))
        .context("no CRI_TOOLS_VERSION in versions.env")?;
    Ok(cache.join(format!("bin/cri-tools-{}/crictl", version.trim())))
}

/// The volumes bound to claims of `ns`, with their folders on the node.
async fn volumes_of(client: &Client, ns: &str) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let all = Api::<PersistentVolume>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(all
        .items
        .into_iter()
        .filter_map(|pv| {
            let spec = pv.spec.as_ref()?;
            (spec.claim_ref.as_ref()?.namespace.as_deref() == Some(ns)).then(|| {
                let path = spec
                    .host_path
                    .as_ref()
                    .map(|h| h.path.clone())
                    .unwrap_or_default();
                (pv.name_any(), PathBuf::from(path))
            })
        })
        .collect())
}

/// Deletes the end user and waits until its hosting is gone from the API and the node.
/// Returns the volumes it had and the seconds it took.
async fn delete_and_wait(
    cluster: &Cluster,
    client: &Client,
    enduser: &EndUser,
    ns: &str,
) -> anyhow::Result<(Vec<(String, PathBuf)>, f64)> {
    let volumes = volumes_of(client, ns).await?;
    ensure!(!volumes.is_empty(), "{ns} has no bound volume");
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    ensure!(!pods.items.is_empty() && node_containers(cluster, ns)? > 0);
    let started = Instant::now();
    let endusers: Api<EndUser> =
        Api::namespaced(client.clone(), &enduser.namespace().unwrap_or_default());
    endusers
        .delete(&enduser.name_any(), &DeleteParams::default())
        .await?;
    wait::gone(&endusers, &enduser.name_any(), LIMIT).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait::gone(&namespaces, ns, LIMIT).await?;
    wait::until(
        &format!("the containers of {ns} gone from the node"),
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            match node_containers(cluster, ns) {
                Ok(0) => Ok(()),
                Ok(n) => Err(format!("{n} left")),
                Err(e) => Err(format!("{e:#}")),
            }
        },
    )
    .await?;
    Ok((volumes, started.elapsed().as_secs_f64()))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_course_bandwidth_caps_downloads_and_deletion_removes_or_retains_the_hosting()
-> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(Cluster::real_node).await??;
    let guard = DownOnDrop(Some(cluster));
    let cluster = guard.0.as_ref().context("cluster")?;
    eprintln!(
        "real-node cluster up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    import_images(cluster, &[])?;
    let dir = tempfile::tempdir()?;
    let config = real_node_config(dir.path(), "")?;
    let _operator = Operator::start(cluster, OperatorOptions::with_config(&config)).await?;
    let client = cluster.client().await?;
    let ns = hosting::reseller_with_namespace(&client, "lifecycle", json!([])).await?;
    let (slow_limit, fast_limit) = ("8M", "80M");
    apply_course(&client, site_course(&ns, "slow", slow_limit)).await?;
    apply_course(&client, site_course(&ns, "fast", fast_limit)).await?;
    let keep = apply_enduser(
        &client,
        hosting::enduser(
            &ns,
            "keep",
            "slow",
            "2025-01-01",
            json!({"deletionPolicy": "Retain"}),
        ),
    )
    .await?;
    let drop_ = apply_enduser(
        &client,
        hosting::enduser(&ns, "gone", "fast", "2025-01-01", json!({})),
    )
    .await?;
    let (kept, kept_ip) = site(cluster, &client, &keep).await?;
    let (gone, gone_ip) = site(cluster, &client, &drop_).await?;

    // 1. Bandwidth, measured on the web Service.
    let mut measured = Vec::new();
    for (ip, limit) in [(&kept_ip, slow_limit), (&gone_ip, fast_limit)] {
        let bps = bits_per_second(limit)?;
        let download = measure_download(
            &format!("http://{ip}:80/big.bin"),
            bps,
            Duration::from_secs(6),
        )
        .await?;
        eprintln!(
            "bandwidth {limit}: {:.0} MiB at {:.0} Mbit/s before shaping (the token bucket), then \
             {:.2} Mbit/s = {:.0} % of the limit",
            download.burst_bytes as f64 / 1048576.0,
            download.burst_rate / 1e6,
            download.steady_rate / 1e6,
            100.0 * download.steady_rate / bps
        );
        ensure!(
            download.steady_rate > 0.5 * bps && download.steady_rate < 1.2 * bps,
            "a download on a {limit} course ran at {:.2} Mbit/s",
            download.steady_rate / 1e6
        );
        measured.push(download.steady_rate);
    }
    ensure!(
        measured[1] > 4.0 * measured[0],
        "the {fast_limit} course is not clearly faster: {:.2} vs {:.2} Mbit/s",
        measured[1] / 1e6,
        measured[0] / 1e6
    );

    // 2. Deletion with the default policy (Delete): everything goes, volumes and files too.
    let (volumes, took) = delete_and_wait(cluster, &client, &drop_, &gone.ns).await?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    for (name, path) in &volumes {
        wait::gone(&pvs, name, Duration::from_secs(60)).await?;
        wait::until(
            &format!("{} removed", path.display()),
            Duration::from_secs(30),
            Duration::from_millis(500),
            || async {
                if path.exists() {
                    Err("still there".to_owned())
                } else {
                    Ok(())
                }
            },
        )
        .await?;
    }
    eprintln!(
        "deleted gone (Delete) in {took:.1} s: namespace, pods, containers on the node, {} volume(s) and their folders",
        volumes.len()
    );

    // 3. Deletion with Retain: the hosting goes, the volume stays with the site's files.
    let (volumes, took) = delete_and_wait(cluster, &client, &keep, &kept.ns).await?;
    for (name, path) in &volumes {
        let pv = pvs
            .get(name)
            .await
            .with_context(|| format!("the retained volume {name}"))?;
        let spec = pv.spec.as_ref().context("volume without spec")?;
        ensure!(
            spec.persistent_volume_reclaim_policy.as_deref() == Some("Retain"),
            "{name}: reclaim policy {:?}",
            spec.persistent_volume_reclaim_policy
        );
        ensure!(
            pv.labels()
                .get("hosting.oem.dev/retained")
                .map(String::as_str)
                == Some("true"),
            "{name} is labelled for recovery: {:?}",
            pv.labels()
        );
        let index = path.join("www/index.php");
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("the site's file {} on the node", index.display()))?;
        ensure!(text == INDEX_PHP, "{} changed: {text}", index.display());
        eprintln!("retained {name}: {} kept on the node", index.display());
    }
    eprintln!(
        "deleted keep (Retain) in {took:.1} s: namespace, pods, containers gone; volumes kept"
    );
    eprintln!(
        "bandwidth and deletion on the real node: {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn bandwidth_quantities_are_decimal_bits_per_second() {
    assert_eq!(bits_per_second("8M").unwrap(), 8e6);
    assert_eq!(bits_per_second("100M").unwrap(), 1e8);
    assert_eq!(bits_per_second("1G").unwrap(), 1e9);
    assert!(bits_per_second("fast").is_err());
}
