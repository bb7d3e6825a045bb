//! `make up` as a newcomer meets it, and `make down` after it: `scripts/up.sh` brings up the
//! cluster with its real node, the operator, the webhooks, the end users' panel and the
//! examples in a named network namespace of its own; the example site answers on the loopback
//! forward with the page PHP renders from the end user's database; kubectl through the
//! forwarded API server works and a manifest of `examples/refused/` is refused by the webhooks;
//! the panel's address and the example logins `make up` prints work: the password read with
//! the printed kubectl command logs in through the panel's forward; a second `make up` keeps what
//! runs (and the site's data); `make down` leaves no process, network namespace, mount or
//! cgroup of the node, no listener and no state folder; and `make up` works again after it.
//!
//! Runs only inside a network and mount namespace of its own (scripts/test.sh does that), with
//! its own namespace name, folder and ports (`.cluster/up-test`, netns `oem-up-test`, port base
//! 36000), so it never meets a developer's `make up`. Whatever it needs and misses, it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use oem_e2e::cluster::repo_root;

const NETNS: &str = "oem-up-test";
const PORT_BASE: u16 = 36000;
const SITE_PORT: u16 = 36081;
const METRICS_PORT: u16 = 36080;
const PANEL_PORT: u16 = 36082;

fn state_dir() -> PathBuf {
    repo_root().join(".cluster/up-test")
}

fn env() -> Vec<(&'static str, String)> {
    vec![
        (
            "OEM_CLUSTER_DIR",
            state_dir().to_string_lossy().into_owned(),
        ),
        ("OEM_UP_NETNS", NETNS.into()),
        ("OEM_CLUSTER_PORT_BASE", PORT_BASE.to_string()),
        ("OEM_SITE_PORT", SITE_PORT.to_string()),
        ("OEM_METRICS_PORT", METRICS_PORT.to_string()),
        ("OEM_PANEL_PORT", PANEL_PORT.to_string()),
        ("OEM_WEBHOOKS_PORT", (PORT_BASE + 444).to_string()),
        // The test namespace reaches no registry: everything is built before it is entered.
        ("CARGO_NET_OFFLINE", "true".into()),
    ]
}

/// Runs `scripts/<script>` with the test's environment; fails with its output's tail.
fn script(name: &str) -> anyhow::Result<(String, f64)> {
    let started = Instant::now();
    let mut command = Command::new("bash");
    // `make up` runs cargo build: the variables cargo test set for this test (CARGO_PKG_*,
    // CARGO_MANIFEST_DIR, OUT_DIR…) would look like a changed build environment to build
    // scripts and rebuild crates in the target folder whose binaries other tests are running.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let cargo_set = (key.starts_with("CARGO_")
            && !matches!(
                key.as_str(),
                "CARGO_HOME" | "CARGO_TARGET_DIR" | "CARGO_TERM_COLOR"
            ))
            || matches!(key.as_str(), "CARGO" | "OUT_DIR");
        if cargo_set {
            command.env_remove(&key);
        }
    }
    let out = command
        .arg(repo_root().join("scripts").join(name))
        .envs(env())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running scripts/{name}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "scripts/{name} failed ({}):\n{}",
            out.status,
            tail.join("\n")
        );
    }
    Ok((text, started.elapsed().as_secs_f64()))
}

/// `make down` when the test ends, whatever happened.
struct DownOnDrop;

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if let Err(e) = script("down.sh") {
            eprintln!("make down: {e:#}");
        }
    }
}

fn curl(url: &str) -> anyhow::Result<String> {
    let out = Command::new("curl")
        // Retried: the monitor restarts the web pod while its TLS services fail (README.md).
        .args("-fsS --max-time 10 --retry 10 --retry-delay 2 --retry-all-errors".split(' '))
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .context("running curl")?;
    ensure!(
        out.status.success(),
        "GET {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn kubectl_bin() -> anyhow::Result<PathBuf> {
    let versions = std::fs::read_to_string(repo_root().join("e2e/cluster/versions.env"))?;
    let version = versions
        .lines()
        .find_map(|l| l.strip_prefix("K8S_VERSION="))
        .context("no K8S_VERSION in versions.env")?;
    let cache = std::env::var_os("OEM_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/oem-hosting")))
        .context("no OEM_CACHE or HOME")?;
    Ok(cache.join(format!("bin/kubernetes-{}/kubectl", version.trim())))
}

/// kubectl with the kubeconfig `make up` printed, from this (the "host's") namespace.
fn kubectl(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Command::new(kubectl_bin()?)
        .arg("--kubeconfig")
        .arg(state_dir().join("kubeconfig"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running kubectl")
}

/// Visit number the example site reports (it counts visits in its own database).
fn visits(page: &str) -> anyhow::Result<u64> {
    page.split("visit number ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no visit number in the page: {page}"))
}

/// What `make up` serves and answers, seen from outside its network namespace.
fn check_running() -> anyhow::Result<u64> {
    let page = curl(&format!("http://127.0.0.1:{SITE_PORT}/"))?;
    ensure!(
        page.contains("served by PHP 8.4") && page.contains("mariadb"),
        "the example site should show PHP 8.4 and its MariaDB: {page}"
    );
    // Active, through the forward. A probe that timed out on a loaded machine makes the end
    // user Degraded until the next sweep finds it Up again: wait for that, boundedly.
    let started = Instant::now();
    loop {
        let out = kubectl(&[
            "get",
            "enduser",
            "-n",
            "reseller-sakura-web",
            "tanaka-shoten",
            "-o",
            "jsonpath={.status.phase} {.status.conditions} {.status.services}",
        ])?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && text.starts_with("Active ") {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(180),
            "tanaka-shoten not Active through the forwarded API server after 180 s: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    let refused = repo_root().join("examples/refused/enduser-domain-taken.yaml");
    let out = kubectl(&["apply", "-f", &refused.to_string_lossy()])?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && err.contains("admission webhook")
            && err.contains("tanaka-shoten.example.jp is already used by another end user"),
        "the webhooks should refuse the taken domain: {err}"
    );
    ensure!(
        curl(&format!("http://127.0.0.1:{METRICS_PORT}/metrics"))?.contains("# TYPE"),
        "the operator's metrics through the forward"
    );
    visits(&page)
}

/// The panel's addresses and the example logins `make up` printed: the password read with the
/// printed kubectl command logs `tanaka` in through the panel's forward, and the overview of
/// its hosting answers; the reseller's printed login signs in to its panel, which lists
/// `tanaka-shoten`.
fn check_panel(printed: &str) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{PANEL_PORT}/login/sakura-web");
    ensure!(
        printed.contains(&url),
        "make up should print {url}:\n{printed}"
    );
    let password = printed_password(printed, "login ID tanaka ")?;
    let reseller_url = format!("http://127.0.0.1:{PANEL_PORT}/r/sakura-web/login");
    ensure!(
        printed.contains(&reseller_url),
        "make up should print {reseller_url}:\n{printed}"
    );
    let reseller_password = printed_password(printed, "reseller sakura-web panel:")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = oem_e2e::panel::PanelClient::new(&format!("http://127.0.0.1:{PANEL_PORT}"))?;
        let answer = client.login("sakura-web", "tanaka", &password).await?;
        ensure!(
            answer.status == 303
                && answer
                    .header("location")
                    .ends_with("/u/reseller-sakura-web/tanaka-shoten"),
            "login through the forward: {} {}",
            answer.status,
            answer.header("location")
        );
        let overview = client.get("/u/reseller-sakura-web/tanaka-shoten").await?;
        ensure!(
            overview.status == 200 && overview.body.contains("tanaka-shoten.example.jp"),
            "the overview through the forward: {}",
            overview.status
        );
        // The reseller's panel with the printed login, acting as the reseller.
        let reseller = oem_e2e::panel::PanelClient::new(&format!("http://127.0.0.1:{PANEL_PORT}"))?;
        let answer = reseller
            .reseller_login("sakura-web", "admin", &reseller_password)
            .await?;
        ensure!(
            answer.status == 303 && answer.header("location") == "/r/sakura-web/customers",
            "the reseller's sign-in through the forward: {} {}",
            answer.status,
            answer.header("location")
        );
        let customers = reseller.get("/r/sakura-web/customers").await?;
        ensure!(
            customers.status == 200 && customers.body.contains("tanaka-shoten.example.jp"),
            "the reseller's customers through the forward: {}",
            customers.status
        );
        Ok(())
    })
}

/// The password that the command printed on the line containing `needle` reads
/// (`... password: kubectl -n NS get secret NAME -o jsonpath={.data.KEY} | base64 -d`).
fn printed_password(printed: &str, needle: &str) -> anyhow::Result<String> {
    let line = printed
        .lines()
        .find(|l| l.contains(needle))
        .with_context(|| format!("make up should print {needle:?}:\n{printed}"))?;
    let command = line
        .split("password: ")
        .nth(1)
        .context("no password command")?;
    let words: Vec<&str> = command.split_whitespace().collect();
    ensure!(
        words.len() >= 8 && words[0] == "kubectl" && words.ends_with(&["|", "base64", "-d"]),
        "unexpected password command: {command}"
    );
    let out = kubectl(&words[1..words.len() - 3])?;
    ensure!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoded = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .map(|mut stdin| stdin.write_all(&out.stdout))
                .transpose()?;
            child.wait_with_output()
        })
        .context("running base64 -d")?;
    let password = String::from_utf8(decoded.stdout)?;
    ensure!(password.len() >= 12, "the printed command gave no password");
    Ok(password)
}

/// The IDs of the node's containers (for the cgroup check after `make down`).
fn container_ids() -> anyhow::Result<Vec<String>> {
    let dir = state_dir();
    let ctr = oem_e2e::Cluster {
        kubeconfig: dir.join("kubeconfig"),
        bin_dir: PathBuf::new(),
        state_dir: dir.clone(),
        helm: PathBuf::new(),
    }
    .ctr_binary()?;
    let out = Command::new(ctr)
        .arg("--address")
        .arg(dir.join("node/containerd.sock"))
        .args(["-n", "k8s.io", "containers", "ls", "-q"])
        .stdin(Stdio::null())
        .output()
        .context("running ctr containers ls")?;
    ensure!(out.status.success(), "ctr containers ls failed");
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    ensure!(ids.len() >= 4, "the node should run containers: {ids:?}");
    Ok(ids)
}

/// Nothing of `make up` is left: process, network namespace, mount, cgroup, listener, folder.
fn check_nothing_left(containers: &[String]) -> anyhow::Result<()> {
    let dir = state_dir();
    let marker = dir.to_string_lossy().into_owned();
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        for file in ["cmdline", "environ"] {
            let bytes = std::fs::read(entry.path().join(file)).unwrap_or_default();
            if String::from_utf8_lossy(&bytes).contains(&marker) {
                processes.push(name.clone());
            }
        }
    }
    ensure!(processes.is_empty(), "processes left: {processes:?}");
    ensure!(
        !Path::new("/run/netns").join(NETNS).exists(),
        "network namespace {NETNS} left"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    ensure!(
        !mounts.contains(&marker) && !mounts.contains(&format!("/run/netns/{NETNS} ")),
        "mounts left"
    );
    for id in containers {
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")?.flatten() {
            let cgroup = hierarchy.path().join("k8s.io").join(id);
            ensure!(!cgroup.exists(), "cgroup left: {}", cgroup.display());
        }
    }
    for port in [PORT_BASE + 443, SITE_PORT, METRICS_PORT, PANEL_PORT] {
        ensure!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "something still listens on 127.0.0.1:{port}"
        );
    }
    ensure!(!dir.exists(), "{} left", dir.display());
    Ok(())
}

#[test]
fn make_up_serves_the_example_site_refuses_bad_yaml_and_make_down_leaves_nothing()
-> anyhow::Result<()> {
    // A previous run's leftovers (in another namespace) would make the checks meaningless.
    script("down.sh")?;
    let _down = DownOnDrop;
    let (printed, first) = script("up.sh")?;
    let before = check_running()?;
    check_panel(&printed)?;
    let (second, again) = script("up.sh")?;
    let after = check_running()?;
    ensure!(
        after > before,
        "a second make up keeps the site's database: visits {before} then {after}; the second \
         make up said about its namespace:\n{}\n… and ended with:\n{}",
        second
            .lines()
            .filter(|l| l.contains("network namespace") || l.contains("holder"))
            .collect::<Vec<_>>()
            .join("\n"),
        second
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let containers = container_ids()?;
    let (_, down) = script("down.sh")?;
    check_nothing_left(&containers)?;
    let (_, after_down) = script("up.sh")?;
    check_running()?;
    let containers = container_ids()?;
    let (_, down_again) = script("down.sh")?;
    check_nothing_left(&containers)?;
    eprintln!(
        "make up {first:.0} s, again {again:.0} s, make down {down:.0} s, \
         make up after down {after_down:.0} s, make down {down_again:.0} s"
    );
    Ok(())
}
