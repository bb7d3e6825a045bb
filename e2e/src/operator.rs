//! The operator as the end-to-end tests run it: a separate process, built by cargo, running
//! under its own ServiceAccount bound to the chart's least-privilege ClusterRole (so a missing
//! permission fails a test), against the local control plane.
//!
//! Test binaries run one after another; each starts its own operator and stops the one a
//! previous binary left behind (its PID is recorded in the cluster's state folder, where
//! `cluster.sh down` finds it too).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cluster::{Cluster, repo_root};
use crate::free_port;

/// The operator's namespace and ServiceAccount.
pub const OPERATOR_NAMESPACE: &str = "oem-hosting-system";
pub const OPERATOR_ACCOUNT: &str = "oem-operator";

/// A running operator process.
pub struct Operator {
    child: Child,
    /// Its `/metrics`, `/healthz`, `/readyz` address.
    pub http_addr: String,
    /// The file that shifts its clock (`clock.rs`): write `+86400s` to move a day ahead.
    pub clock_file: PathBuf,
    pid_file: PathBuf,
    log_file: PathBuf,
}

/// Profiles the operator's heap with heaptrack (`OEM_OPERATOR_HEAPTRACK=<dir>`, for the
/// benchmark): its allocations go through a pipe to heaptrack's interpreter, which writes
/// `<dir>/operator<suffix>-<unix seconds>.zst` once the operator ends (even by SIGKILL), for
/// `heaptrack_print`. The operator stays this process's child, so stopping it works as ever.
fn heaptrack(command: &mut Command, dir: &Path, suffix: &str) -> anyhow::Result<()> {
    const LIB: &str = "/usr/lib/heaptrack";
    std::fs::create_dir_all(dir)?;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let base = dir.join(format!("operator{suffix}-{started}"));
    let pipe = base.with_extension("pipe");
    let _ = std::fs::remove_file(&pipe);
    let made = Command::new("mkfifo").arg(&pipe).status()?;
    if !made.success() {
        bail!("mkfifo {} failed", pipe.display());
    }
    Command::new("sh")
        .args(["-c", "\"$0\" < \"$1\" | zstd -q > \"$2\"; rm -f \"$1\""])
        .arg(format!("{LIB}/libexec/heaptrack_interpret"))
        .arg(&pipe)
        .arg(base.with_extension("zst"))
        .stdin(Stdio::null())
        .spawn()
        .context("starting heaptrack_interpret")?;
    command
        .env("LD_PRELOAD", format!("{LIB}/libheaptrack_preload.so"))
        .env("DUMP_HEAPTRACK_OUTPUT", &pipe);
    Ok(())
}

/// The value of the sample of `name` whose labels include all of `labels`, in a Prometheus
/// text exposition (an operator's `/metrics`, a mail pod's exporter).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Settings of one operator run.
#[derive(Debug, Clone, Default)]
pub struct OperatorOptions {
    /// Extra environment, e.g. `OEM_RESYNC_INTERVAL`. An `OEM_HTTP_ADDR` here is where the
    /// operator serves (a Prometheus started before it scrapes it there); else a free port.
    pub env: Vec<(String, String)>,
    /// One of several replicas electing a leader: its name (the Lease's holder, `POD_NAME`),
    /// which also names its pid file and log. `None`: the one operator of a test, named
    /// [`SINGLE_REPLICA`]; starting it stops the one before it and clears the Lease.
    pub replica: Option<String>,
    /// The API server's address for this replica (`https://127.0.0.1:PORT`), e.g. a
    /// [`crate::relay::Relay`] a test cuts; `None`: the cluster's own.
    pub server: Option<String>,
    /// Another build of the operator to run (a benchmark compares builds); `None`: the one
    /// beside this executable.
    pub binary: Option<PathBuf>,
}

impl OperatorOptions {
    /// The one operator of a test, with `env` (e.g. `OEM_RESYNC_INTERVAL`) set.
    pub fn with_env(env: Vec<(String, String)>) -> Self {
        OperatorOptions {
            env,
            ..Default::default()
        }
    }

    /// A real-node test's operator: the configuration file `config` (see
    /// [`real_node_config`]), the monitor off, a resync every 10 s and spec errors retried
    /// every 3 s.
    pub fn with_config(config: &Path) -> Self {
        Self::with_env(vec![
            ("OEM_CONFIG".into(), config.to_string_lossy().into_owned()),
            ("OEM_MONITOR_ENABLED".into(), "false".into()),
            ("OEM_RESYNC_INTERVAL".into(), "10s".into()),
            ("OEM_SPEC_RETRY".into(), "3s".into()),
        ])
    }

    /// Provisioning alone, resyncing every 10 s and retrying spec errors every 5 s: the
    /// monitor would probe Service names that do not resolve in the test's network namespace
    /// and mark every end user Degraded.
    pub fn provisioning_only() -> Self {
        OperatorOptions {
            env: vec![
                ("OEM_MONITOR_ENABLED".into(), "false".into()),
                ("OEM_RESYNC_INTERVAL".into(), "10s".into()),
                ("OEM_SPEC_RETRY".into(), "5s".into()),
            ],
            ..Default::default()
        }
    }
}

/// Writes `operator.yaml` in `dir`: hosting pods on the real node, then `extra` (YAML lines of
/// the test's own settings). Returns its path, for `OEM_CONFIG`.
pub fn real_node_config(dir: &Path, extra: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join("operator.yaml");
    std::fs::write(
        &path,
        format!("placement:\n  nodeSelector: {{type: real}}\n{extra}"),
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The name (`POD_NAME`) of the one operator most tests run.
pub const SINGLE_REPLICA: &str = "oem-operator-0";

/// The folder of the cargo-built binaries next to the running executable: a test runs from
/// `target/<profile>/deps/`, a benchmark binary from `target/<profile>/` itself.
pub fn target_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running executable")?;
    let dir = exe
        .parent()
        .context("the running executable has no folder")?;
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent()
            .map(Path::to_path_buf)
            .context("test executable has no target folder")
    } else {
        Ok(dir.to_path_buf())
    }
}

/// Installs (or updates) the CRDs from `crds/yaml/` and waits until they are served.
pub fn install_crds(cluster: &Cluster) -> anyhow::Result<()> {
    let crds = repo_root().join("crds/yaml");
    let crds = crds.to_string_lossy();
    cluster.kubectl_ok(
        &["apply", "--server-side", "--force-conflicts", "-f", &crds],
        None,
    )?;
    cluster.kubectl_ok(
        &[
            "wait",
            "--for",
            "condition=Established",
            "--timeout",
            "60s",
            "-f",
            &crds,
        ],
        None,
    )?;
    Ok(())
}

/// Installs the CRDs, the RBAC of the chart and the operator's ServiceAccount, and returns a
/// kubeconfig that authenticates as that ServiceAccount.
pub fn install(cluster: &Cluster) -> anyhow::Result<PathBuf> {
    let root = repo_root();
    install_crds(cluster)?;
    let rbac = root.join("charts/oem-hosting/files");
    // The webhooks' roles too: the operator binds oem-hosting-webhooks-secrets to them.
    for file in [
        "operator-clusterrole.yaml",
        "reseller-clusterroles.yaml",
        "webhooks-clusterrole.yaml",
    ] {
        cluster.kubectl_ok(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                &rbac.join(file).to_string_lossy(),
            ],
            None,
        )?;
    }
    // What the operator may write of cluster-wide RBAC, as the chart installs it.
    let guard = std::fs::read_to_string(rbac.join("operator-rbac-guard.yaml"))
        .context("reading operator-rbac-guard.yaml")?
        .replace(
            "OPERATOR_USERNAME",
            &format!("system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"),
        );
    cluster.kubectl_ok(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&guard),
    )?;
    let kubeconfig = service_account_kubeconfig(
        cluster,
        OPERATOR_ACCOUNT,
        "oem-hosting-operator",
        "operator.kubeconfig",
    )?;
    // The Lease Role, in the operator's namespace, as templates/rbac.yaml binds it.
    cluster.kubectl_ok(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-n",
            OPERATOR_NAMESPACE,
            "-f",
            &rbac.join("operator-lease-role.yaml").to_string_lossy(),
        ],
        None,
    )?;
    let binding = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
         metadata: {{name: oem-hosting-operator-lease, namespace: {OPERATOR_NAMESPACE}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: oem-hosting-operator-lease}}\n\
         subjects: [{{kind: ServiceAccount, name: {OPERATOR_ACCOUNT}, namespace: {OPERATOR_NAMESPACE}}}]\n"
    );
    cluster.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&binding))?;
    Ok(kubeconfig)
}

/// The Lease the operator's replicas elect their leader on.
pub const LEASE: &str = "oem-hosting-operator";

/// Deletes the operator's Lease: the next replica to try takes a new one at once.
pub fn clear_lease(cluster: &Cluster) -> anyhow::Result<()> {
    cluster.kubectl_ok(
        &[
            "delete",
            "lease",
            LEASE,
            "-n",
            OPERATOR_NAMESPACE,
            "--ignore-not-found",
        ],
        None,
    )?;
    Ok(())
}

/// Who holds the operator's Lease now (`None`: nobody, or no Lease).
pub fn lease_holder(cluster: &Cluster) -> anyhow::Result<Option<String>> {
    let holder = cluster.kubectl_ok(
        &[
            "get",
            "lease",
            LEASE,
            "-n",
            OPERATOR_NAMESPACE,
            "--ignore-not-found",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    )?;
    Ok(Some(holder.trim().to_owned()).filter(|h| !h.is_empty()))
}

/// Creates the ServiceAccount `account` in the operator's namespace, binds it to the
/// ClusterRole `cluster_role` (a binding of the same name), and writes a kubeconfig that
/// authenticates with its token to `file` in the cluster's state folder.
pub fn service_account_kubeconfig(
    cluster: &Cluster,
    account: &str,
    cluster_role: &str,
    file: &str,
) -> anyhow::Result<PathBuf> {
    let objects = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {OPERATOR_NAMESPACE}}}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {account}, namespace: {OPERATOR_NAMESPACE}}}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {cluster_role}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {cluster_role}}}\n\
         subjects: [{{kind: ServiceAccount, name: {account}, namespace: {OPERATOR_NAMESPACE}}}]\n"
    );
    cluster.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&objects))?;
    let token = cluster.kubectl_ok(
        &[
            "create",
            "token",
            account,
            "-n",
            OPERATOR_NAMESPACE,
            "--duration",
            "24h",
        ],
        None,
    )?;
    let admin = std::fs::read_to_string(&cluster.kubeconfig)?;
    let field = |key: &str| {
        admin
            .lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_owned()))
            .with_context(|| format!("admin kubeconfig has no {key}"))
    };
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {}\n    certificate-authority-data: {}\n\
         users:\n- name: {account}\n  user:\n    token: {}\ncontexts:\n- name: local\n  context: {{cluster: local, user: {account}}}\ncurrent-context: local\n",
        field("server:")?,
        field("certificate-authority-data:")?,
        token.trim()
    );
    let path = cluster.state_dir.join(file);
    std::fs::write(&path, kubeconfig)?;
    Ok(path)
}

fn stop_recorded(pid_file: &Path) {
    stop_recorded_program(pid_file, "oem-operator");
}

/// Kills the process a pid file records, if it still runs `program`: a stale file's PID may
/// belong to another process by now (PIDs wrap at 32768 here), which must be left alone.
pub fn stop_recorded_program(pid_file: &Path, program: &str) {
    let Ok(pid) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let pid = pid.trim();
    let runs_it = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .next()
                .is_some_and(|arg0| arg0.ends_with(program.as_bytes()))
        })
        .unwrap_or(false);
    if !pid.is_empty() && runs_it {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    let _ = std::fs::remove_file(pid_file);
}

/// Requests the operator made so far, from the audit log, by "verb resource[/subresource]".
/// Watches are long-running streams, not counted; nor is the leader's renewal of its Lease (a
/// write every retry period, whatever the cluster holds).
pub fn request_counts(cluster: &Cluster) -> anyhow::Result<BTreeMap<String, usize>> {
    let user = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}");
    let log = std::fs::read_to_string(cluster.state_dir.join("logs/audit.log"))?;
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let object = &event["objectRef"];
        if event["stage"] != "ResponseComplete"
            || event["user"]["username"] != user.as_str()
            || object["resource"] == "leases"
            || event["verb"] == "watch"
        {
            continue;
        }
        let mut key = format!(
            "{} {}",
            event["verb"].as_str().unwrap_or_default(),
            object["resource"].as_str().unwrap_or("?")
        );
        if let Some(sub) = object["subresource"].as_str() {
            key = format!("{key}/{sub}");
        }
        *counts.entry(key).or_default() += 1;
    }
    Ok(counts)
}

/// Whether a request key of [`request_counts`] is a write.
pub fn is_write(key: &str) -> bool {
    [
        "create ",
        "update ",
        "patch ",
        "delete ",
        "deletecollection ",
    ]
    .iter()
    .any(|verb| key.starts_with(verb))
}

/// Requests the operator made so far: (reads, writes), as [`request_counts`] counts them.
pub fn requests(cluster: &Cluster) -> anyhow::Result<(usize, usize)> {
    let counts = request_counts(cluster)?;
    let writes = counts
        .iter()
        .filter(|(k, _)| is_write(k))
        .map(|(_, n)| n)
        .sum();
    let reads = counts
        .iter()
        .filter(|(k, _)| !is_write(k))
        .map(|(_, n)| n)
        .sum();
    Ok((reads, writes))
}

/// What was counted between two [`request_counts`], largest first ("42 get pods, ...").
pub fn requests_between(
    before: &BTreeMap<String, usize>,
    after: &BTreeMap<String, usize>,
) -> Vec<(String, usize)> {
    let mut grown: Vec<(String, usize)> = after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0).min(*n)))
        .filter(|(_, n)| *n > 0)
        .collect();
    grown.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    grown
}

impl Operator {
    /// Installs what the operator needs, then starts it and waits until `/readyz` answers.
    pub async fn start(cluster: &Cluster, options: OperatorOptions) -> anyhow::Result<Operator> {
        let single = options.replica.is_none();
        let operator = Self::spawn(cluster, options)?;
        operator.wait_ready(Duration::from_secs(60)).await?;
        if single {
            // Alone, it takes the (cleared) Lease at once: wait for that, so the test's first
            // step meets a working operator.
            operator.wait_leading(Duration::from_secs(20)).await?;
        }
        Ok(operator)
    }

    /// Installs what the operator needs and starts it, without waiting for anything (a test
    /// of a start that must fail).
    pub fn spawn(cluster: &Cluster, options: OperatorOptions) -> anyhow::Result<Operator> {
        let mut kubeconfig = install(cluster)?;
        let suffix = match &options.replica {
            Some(name) => format!("-{name}"),
            None => String::new(),
        };
        if let Some(server) = &options.server {
            let text = std::fs::read_to_string(&kubeconfig)?;
            let text: Vec<String> = text
                .lines()
                .map(|line| match line.split_once("server:") {
                    Some((indent, _)) if indent.trim().is_empty() => {
                        format!("{indent}server: {server}")
                    }
                    _ => line.to_owned(),
                })
                .collect();
            kubeconfig = cluster
                .state_dir
                .join(format!("operator{suffix}.kubeconfig"));
            std::fs::write(&kubeconfig, text.join("\n") + "\n")?;
        }
        let pid_file = cluster.state_dir.join(format!("pids/operator{suffix}.pid"));
        stop_recorded(&pid_file);
        if options.replica.is_none() {
            // A Lease left by replicas of an earlier test would keep this one following.
            clear_lease(cluster)?;
        }
        let http_addr = match options.env.iter().find(|(k, _)| k == "OEM_HTTP_ADDR") {
            Some((_, addr)) => addr.clone(),
            None => format!("127.0.0.1:{}", free_port()?),
        };
        let clock_file = cluster.state_dir.join("operator.clock");
        let _ = std::fs::remove_file(&clock_file);
        let log_file = cluster.state_dir.join(format!("logs/operator{suffix}.log"));
        let log = std::fs::File::create(&log_file).context("creating the operator log")?;
        let binary = match &options.binary {
            Some(binary) => binary.clone(),
            None => target_bin_dir()?.join("oem-operator"),
        };
        if !binary.exists() {
            bail!(
                "{} is missing: build it with cargo build -p oem-operator",
                binary.display()
            );
        }
        let mut command = Command::new(&binary);
        command
            .env("KUBECONFIG", &kubeconfig)
            .env("OEM_HTTP_ADDR", &http_addr)
            .env("OEM_CLOCK_FILE", &clock_file)
            .env("OEM_MONITOR_NAMESPACE", OPERATOR_NAMESPACE)
            .env("OEM_CLUSTER_DIR", &cluster.state_dir)
            // The webhooks' identity (e2e/src/webhooks.rs): the operator binds their Secret
            // role to it in each reseller namespace, as the chart configures it.
            .env(
                "OEM_WEBHOOKS_SERVICE_ACCOUNT",
                format!("{OPERATOR_NAMESPACE}/{}", crate::webhooks::WEBHOOKS_ACCOUNT),
            )
            // The panel's identity (e2e/src/panel.rs): the operator lets it act as each
            // reseller's panel ServiceAccount and keeps the panel logins beside it.
            .env(
                "OEM_PANEL_SERVICE_ACCOUNT",
                format!("{OPERATOR_NAMESPACE}/{}", crate::panel::PANEL_ACCOUNT),
            )
            .env(
                "POD_NAME",
                options.replica.as_deref().unwrap_or(SINGLE_REPLICA),
            )
            .env("RUST_LOG", "info,oem_operator=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if !cluster.state_dir.join("node").is_dir() {
            // The kwok cluster's loopback ranges (e2e/cluster/cluster.sh), so the monitor may
            // ping its pods; a cluster with a real node uses the defaults, 10.244/16 and 10.96/12.
            command
                .env("OEM_PROBE_POD_CIDRS", "127.100.0.0/16")
                .env("OEM_PROBE_SERVICE_CIDRS", "127.96.0.0/16");
        }
        for (k, v) in &options.env {
            command.env(k, v);
        }
        if let Some(dir) = std::env::var_os("OEM_OPERATOR_HEAPTRACK") {
            heaptrack(&mut command, Path::new(&dir), &suffix)?;
        }
        let child = command.spawn().context("starting the operator")?;
        std::fs::write(&pid_file, child.id().to_string())?;
        Ok(Operator {
            child,
            http_addr,
            clock_file,
            pid_file,
            log_file,
        })
    }

    async fn wait_ready(&self, limit: Duration) -> anyhow::Result<()> {
        let url = format!("http://{}/readyz", self.http_addr);
        crate::wait::until(
            "the operator's /readyz",
            limit,
            Duration::from_millis(250),
            || async {
                match crate::http_get(&url).await {
                    Ok((200, _)) => Ok(()),
                    Ok((code, body)) => Err(format!("{code} {body}")),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await
        .with_context(|| format!("operator log:\n{}", self.log_tail(30)))
    }

    /// Whether this replica says it leads (`oem_operator_leader` on its `/metrics`).
    pub async fn leads(&self) -> anyhow::Result<bool> {
        let metrics = self.metrics().await?;
        let value = metrics
            .lines()
            .find_map(|l| l.strip_prefix("oem_operator_leader "))
            .context("no oem_operator_leader in /metrics")?;
        Ok(value.trim() == "1")
    }

    /// Waits until this replica says it leads.
    pub async fn wait_leading(&self, limit: Duration) -> anyhow::Result<()> {
        crate::wait::until(
            "the operator leading",
            limit,
            Duration::from_millis(100),
            || async {
                match self.leads().await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err("oem_operator_leader is not 1".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await
        .with_context(|| format!("operator log:\n{}", self.log_tail(30)))
    }

    /// The operator's `/metrics` text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let (code, body) = crate::http_get(&format!("http://{}/metrics", self.http_addr)).await?;
        if code != 200 {
            bail!("/metrics answered {code}");
        }
        Ok(body)
    }

    /// Moves the operator's clock: `+86400s` is one day ahead.
    pub fn shift_clock(&self, shift: &str) -> anyhow::Result<()> {
        std::fs::write(&self.clock_file, shift).context("writing the clock file")
    }

    /// The last lines of the operator's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, as a kubelet stopping the pod sends it; waits at most `limit` for the exit
    /// (see [`crate::process::terminate`]).
    pub fn terminate(
        &mut self,
        limit: Duration,
    ) -> anyhow::Result<(std::process::ExitStatus, Duration)> {
        let outcome = crate::process::terminate(&mut self.child, limit);
        let _ = std::fs::remove_file(&self.pid_file);
        outcome
    }

    /// Waits at most `limit` for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> anyhow::Result<std::process::ExitStatus> {
        crate::process::wait_exit(&mut self.child, limit)?
            .with_context(|| format!("the operator still runs after {limit:?}"))
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("killing the operator")?;
        self.child.wait().context("reaping the operator")?;
        let _ = std::fs::remove_file(&self.pid_file);
        Ok(())
    }

    /// Its exit status if it has exited, without waiting.
    pub fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        self.child
            .try_wait()
            .context("asking whether the operator exited")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pid_file);
    }
}
