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
        let out = Command::new("bash")
            .arg(script())
            .arg("up")
            .stdin(Stdio::null())
            .output()
            .context("running e2e/cluster/cluster.sh up")?;
        if !out.status.success() {
            bail!(
                "the local control plane did not start ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let env = Command::new("bash")
            .arg(script())
            .arg("env")
            .output()
            .context("running e2e/cluster/cluster.sh env")?;
        let text = String::from_utf8_lossy(&env.stdout).into_owned();
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
