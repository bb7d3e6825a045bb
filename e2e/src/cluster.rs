//! The local control plane as tests see it: started once per state folder (concurrent starts
//! are serialised by the script's lock), then shared by every test of the process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::OnceCell;

/// A running local control plane.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The admin kubeconfig the script wrote.
    pub kubeconfig: PathBuf,
    /// Folder holding kubectl and the other Kubernetes binaries.
    pub bin_dir: PathBuf,
    /// The cluster's state folder (pki, logs, pids).
    pub state_dir: PathBuf,
    /// The helm binary `build.sh` built.
    pub helm: PathBuf,
}

static SHARED: OnceCell<Cluster> = OnceCell::const_new();

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn script() -> PathBuf {
    repo_root().join("e2e/cluster/cluster.sh")
}

impl Cluster {
    /// Starts the control plane unless it already runs, and returns it. Fails (never skips)
    /// when it cannot start, with the script's output.
    pub async fn shared() -> anyhow::Result<&'static Cluster> {
        SHARED
            .get_or_try_init(|| async {
                tokio::task::spawn_blocking(Self::ensure_up)
                    .await
                    .context("cluster start-up task panicked")?
            })
            .await
    }

    fn ensure_up() -> anyhow::Result<Cluster> {
        Self::up_with(&[])
    }

    /// Starts (or finds running) the cluster that `cluster.sh` makes with `env` added to this
    /// process's environment (`OEM_CLUSTER_DIR`, `OEM_CLUSTER_PORT_BASE`, ...). Blocking.
    pub fn up_with(env: &[(&str, String)]) -> anyhow::Result<Cluster> {
        Self::script_ok("up", env).context("the local control plane did not start")?;
        let text = Self::script_ok("env", env)?;
        let field = |key: &str| -> anyhow::Result<String> {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .map(str::to_owned)
                .with_context(|| format!("cluster.sh env printed no {key}: {text}"))
        };
        let kubeconfig = PathBuf::from(field("KUBECONFIG=")?);
        let path = field("PATH=")?;
        let bin_dir = PathBuf::from(
            path.split(':')
                .next()
                .context("empty PATH from cluster.sh env")?,
        );
        let helm = path
            .split(':')
            .map(|dir| Path::new(dir).join("helm"))
            .find(|helm| helm.exists())
            .with_context(|| format!("no helm in the PATH cluster.sh env printed: {path}"))?;
        let state_dir = kubeconfig
            .parent()
            .map(Path::to_path_buf)
            .context("kubeconfig has no parent folder")?;
        Ok(Cluster {
            kubeconfig,
            bin_dir,
            state_dir,
            helm,
        })
    }

    /// The API server's address as the admin kubeconfig names it (`https://127.0.0.1:PORT`).
    pub fn api_server(&self) -> anyhow::Result<String> {
        let text = std::fs::read_to_string(&self.kubeconfig)?;
        text.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("server:")
                    .map(|v| v.trim().to_owned())
            })
            .context("the admin kubeconfig names no server")
    }

    /// A client authenticated as the cluster admin.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .context("building a client config from the admin kubeconfig")?;
        kube::Client::try_from(config).context("building the admin client")
    }

    /// Runs kubectl as admin; `stdin` is piped in when given.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
        use std::io::Write;
        let mut child = Command::new(self.bin_dir.join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting kubectl")?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .context("writing to kubectl's stdin")?;
        }
        child.wait_with_output().context("waiting for kubectl")
    }

    /// Runs kubectl and fails with its stderr unless it succeeds; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let out = self.kubectl(args, stdin)?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Stops the cluster it holds when dropped (`cluster.sh down`), so that a test that ends,
/// early or not, leaves no node behind.
pub struct DownOnDrop(pub Option<Cluster>);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if let Some(cluster) = self.0.take()
            && let Err(e) = cluster.down()
        {
            eprintln!("cluster.sh down: {e:#}");
        }
    }
}

/// The real node's name (`e2e/cluster/node.sh`).
pub const REAL_NODE: &str = "real-node-1";

impl Cluster {
    /// The environment of the real-node test cluster: its own folder (`.cluster/real`), its own
    /// ports (base 46000, `OEM_REAL_PORT_BASE` to change), one kwok node and the real node.
    /// Only inside a network and mount namespace of its own (`unshare --net --mount`).
    pub fn real_node_env() -> Vec<(&'static str, String)> {
        let dir = std::env::var("OEM_REAL_CLUSTER_DIR").unwrap_or_else(|_| {
            repo_root()
                .join(".cluster/real")
                .to_string_lossy()
                .into_owned()
        });
        let base = std::env::var("OEM_REAL_PORT_BASE").unwrap_or_else(|_| "46000".into());
        vec![
            ("OEM_CLUSTER_DIR", dir),
            ("OEM_CLUSTER_PORT_BASE", base),
            ("OEM_CLUSTER_NODES", "1".into()),
            ("OEM_CLUSTER_REAL_NODES", "1".into()),
        ]
    }

    /// Starts the real-node cluster (or finds it running in this network namespace), after
    /// stopping what a previous run in another namespace may have left in its folder. Blocking.
    pub fn real_node() -> anyhow::Result<Cluster> {
        let env = Self::real_node_env();
        let status = Command::new("bash")
            .arg(script())
            .arg("status")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .context("running e2e/cluster/cluster.sh status")?;
        if !status.status.success() {
            Self::script_ok("down", &env)?;
        }
        Self::up_with(&env)
    }

    /// Runs `cluster.sh <command>` with `env`; fails with its output unless it succeeds.
    pub fn script_ok(command: &str, env: &[(&str, String)]) -> anyhow::Result<String> {
        let out = Command::new("bash")
            .arg(script())
            .arg(command)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running e2e/cluster/cluster.sh {command}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!("cluster.sh {command} failed ({}):\n{text}", out.status);
        }
        Ok(text)
    }

    /// Stops this cluster (`cluster.sh down`): every process it started, the real node's
    /// containers, mounts and cgroups, and its folder. Returns the script's output.
    pub fn down(&self) -> anyhow::Result<String> {
        Self::script_ok(
            "down",
            &[(
                "OEM_CLUSTER_DIR",
                self.state_dir.to_string_lossy().into_owned(),
            )],
        )
    }

    /// The real node's containerd socket.
    pub fn containerd_socket(&self) -> PathBuf {
        self.state_dir.join("node/containerd.sock")
    }

    /// The `ctr` binary `build-node.sh` built (next to containerd).
    pub fn ctr_binary(&self) -> anyhow::Result<PathBuf> {
        let cache = std::env::var_os("OEM_CACHE")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME").map(|d| Path::new(&d).join("oem-hosting"))
            })
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/oem-hosting")))
            .context("no OEM_CACHE, XDG_CACHE_HOME or HOME")?;
        let versions = std::fs::read_to_string(repo_root().join("e2e/cluster/versions.env"))
            .context("reading e2e/cluster/versions.env")?;
        let version = versions
            .lines()
            .find_map(|l| l.strip_prefix("CONTAINERD_VERSION="))
            .context("no CONTAINERD_VERSION in versions.env")?;
        Ok(cache.join(format!("bin/containerd-{}/ctr", version.trim())))
    }

    /// Runs the real node's `crictl` (built by `build-node.sh`) against its containerd, as the
    /// node's operator would; returns stdout, or fails with what it said.
    pub fn crictl(&self, args: &[&str]) -> anyhow::Result<String> {
        let ctr = self.ctr_binary()?;
        let cache = ctr
            .parent()
            .and_then(Path::parent)
            .context("no cache folder above ctr")?;
        let versions = std::fs::read_to_string(repo_root().join("e2e/cluster/versions.env"))
            .context("reading e2e/cluster/versions.env")?;
        let version = versions
            .lines()
            .find_map(|l| l.strip_prefix("CRI_TOOLS_VERSION="))
            .context("no CRI_TOOLS_VERSION in versions.env")?;
        let endpoint = format!("unix://{}", self.containerd_socket().display());
        let out = Command::new(cache.join(format!("cri-tools-{}/crictl", version.trim())))
            .args(["--runtime-endpoint", &endpoint, "--timeout", "10s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running crictl")?;
        if !out.status.success() {
            bail!(
                "crictl {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Imports an OCI image archive into the real node's containerd (the CRI's `k8s.io`
    /// namespace), as `ctr images import` does.
    pub fn import_image(&self, archive: &Path) -> anyhow::Result<()> {
        let out = Command::new(self.ctr_binary()?)
            .arg("--address")
            .arg(self.containerd_socket())
            .args(["-n", "k8s.io", "images", "import"])
            .arg(archive)
            .stdin(Stdio::null())
            .output()
            .context("running ctr images import")?;
        if !out.status.success() {
            bail!(
                "ctr images import {} failed: {}{}",
                archive.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Cluster {
    /// Runs helm against the cluster as admin; returns its output, whatever the exit status.
    pub fn helm(&self, args: &[&str]) -> anyhow::Result<Output> {
        Command::new(&self.helm)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running helm")
    }

    /// Runs helm and fails with its output unless it succeeds; returns stdout.
    pub fn helm_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.helm(args)?;
        if !out.status.success() {
            bail!(
                "helm {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A name unique to this test process and call, for namespaces and objects tests create.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}
