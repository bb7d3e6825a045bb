//! Real Prometheus, Alertmanager and an SMTP server (Debian packages, see
//! `e2e/daemons/install.sh`) started by the tests on loopback, each with its state in a
//! temporary folder and stopped when dropped.
//!
//! - [`Prometheus`]: scrapes the given targets, loads rule files, sends to Alertmanagers, and
//!   can start from series backfilled with `promtool tsdb create-blocks-from openmetrics`.
//! - [`Alertmanager`]: with the given configuration, clustering off.
//! - [`SmtpSink`]: `e2e/daemons/smtp_sink.py` (aiosmtpd) with optional STARTTLS and AUTH,
//!   keeping every message as a file.
//!
//! A missing binary is an error, never a skip.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::cluster::repo_root;
use crate::free_port;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
/// Debian's interpreter: python3-aiosmtpd is installed for it, not for other pythons.
const PYTHON: &str = "/usr/bin/python3";

/// How long a daemon may take to become ready.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// One scrape job with one target.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    pub job: String,
    /// `host:port`.
    pub address: String,
    pub metrics_path: String,
    /// A whole `scrape_configs` item (for example the chart's Kubernetes discovery of the
    /// tenants' mail pods), written as is instead of the static target above.
    pub scrape_config: Option<serde_yaml::Value>,
}

impl ScrapeTarget {
    /// A target serving `/metrics`.
    pub fn new(job: &str, address: &str) -> Self {
        Self {
            job: job.to_owned(),
            address: address.to_owned(),
            metrics_path: "/metrics".to_owned(),
            scrape_config: None,
        }
    }

    /// A job given as a whole `scrape_configs` item (a mapping with its `job_name`).
    pub fn config(item: serde_yaml::Value) -> anyhow::Result<Self> {
        let job = item
            .get("job_name")
            .and_then(|j| j.as_str())
            .context("a scrape config item needs a job_name")?
            .to_owned();
        Ok(Self {
            job,
            address: String::new(),
            metrics_path: String::new(),
            scrape_config: Some(item),
        })
    }
}

/// How to run one Prometheus.
#[derive(Debug, Clone)]
pub struct PrometheusOptions {
    pub scrape: Vec<ScrapeTarget>,
    pub scrape_interval: Duration,
    pub evaluation_interval: Duration,
    pub rule_files: Vec<PathBuf>,
    /// `host:port` of Alertmanagers to send alerts to.
    pub alertmanagers: Vec<String>,
    /// OpenMetrics text (ending with `# EOF`) written into the TSDB before start.
    pub backfill_openmetrics: Option<String>,
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        Self {
            scrape: Vec::new(),
            scrape_interval: Duration::from_secs(1),
            evaluation_interval: Duration::from_secs(1),
            rule_files: Vec::new(),
            alertmanagers: Vec::new(),
            backfill_openmetrics: None,
        }
    }
}

/// One sample of a query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// An alert as `/api/v1/alerts` lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// `pending` or `firing`.
    pub state: String,
    #[serde(default)]
    pub active_at: Option<String>,
}

/// A child process killed (and reaped) on drop, with its log in its state folder.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
    // Kept last: removed after the process is gone.
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn spawn(
        name: &'static str,
        mut command: Command,
        dir: tempfile::TempDir,
    ) -> anyhow::Result<Self> {
        let log = dir.path().join(format!("{name}.log"));
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| {
                format!("starting {name} (is it installed? run e2e/daemons/install.sh)")
            })?;
        Ok(Self {
            name,
            child,
            log,
            _dir: dir,
        })
    }

    fn signal(&self, signal: i32) -> anyhow::Result<()> {
        crate::process::signal(&self.child, signal).with_context(|| self.name)
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Polls `url` until it answers 200, or fails with the daemon's log.
    async fn wait_ready(&mut self, url: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + READY_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited ({status}):\n{}", self.name, self.log_tail(30));
            }
            if let Ok((200, _)) = crate::http_get(url).await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} not ready after {READY_LIMIT:?}:\n{}",
                    self.name,
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A paused daemon is continued first, so it can die and be reaped.
        let _ = self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require(binary: &str) -> anyhow::Result<()> {
    if !Path::new(binary).exists() {
        bail!("{binary} is missing: run e2e/daemons/install.sh (as root)");
    }
    Ok(())
}

fn seconds(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// The configuration file for `options`.
fn prometheus_config(options: &PrometheusOptions) -> String {
    let mut y = String::new();
    let _ = writeln!(y, "global:");
    let _ = writeln!(y, "  scrape_interval: {}", seconds(options.scrape_interval));
    let _ = writeln!(
        y,
        "  evaluation_interval: {}",
        seconds(options.evaluation_interval)
    );
    if !options.rule_files.is_empty() {
        let _ = writeln!(y, "rule_files:");
        for file in &options.rule_files {
            let _ = writeln!(y, "  - {:?}", file.display().to_string());
        }
    }
    if !options.alertmanagers.is_empty() {
        let _ = writeln!(
            y,
            "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets:"
        );
        for am in &options.alertmanagers {
            let _ = writeln!(y, "            - {am:?}");
        }
    }
    let _ = writeln!(y, "scrape_configs:");
    for target in &options.scrape {
        if let Some(item) = &target.scrape_config {
            let text = serde_yaml::to_string(item).unwrap_or_default();
            for (i, line) in text.lines().enumerate() {
                let _ = writeln!(y, "  {}{line}", if i == 0 { "- " } else { "  " });
            }
            continue;
        }
        let _ = writeln!(y, "  - job_name: {:?}", target.job);
        let _ = writeln!(y, "    metrics_path: {:?}", target.metrics_path);
        let _ = writeln!(
            y,
            "    static_configs:\n      - targets: [{:?}]",
            target.address
        );
    }
    y
}

/// A running Prometheus.
pub struct Prometheus {
    /// `127.0.0.1:port`.
    pub addr: String,
    daemon: Daemon,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ApiResponse<T> {
    status: String,
    data: Option<T>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct AlertsData {
    alerts: Vec<Alert>,
}

impl Prometheus {
    /// Starts Prometheus and waits until it is ready.
    pub async fn start(options: PrometheusOptions) -> anyhow::Result<Self> {
        require(PROMETHEUS)?;
        let dir = tempfile::Builder::new()
            .prefix("oem-prometheus-")
            .tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        if let Some(text) = &options.backfill_openmetrics {
            backfill(&data, text)?;
        }
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, prometheus_config(&options))?;
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut command = Command::new(PROMETHEUS);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={addr}"))
            // Backfilled series may be older than the default 15 days in long-range tests.
            .arg("--storage.tsdb.retention.time=3650d")
            // Alerts go to Alertmanager again after this delay; the default (1m) means an alert
            // that fires before Alertmanager is discovered waits a minute.
            .arg(format!(
                "--rules.alert.resend-delay={}",
                seconds(options.evaluation_interval)
            ))
            .arg("--log.level=warn");
        let mut daemon = Daemon::spawn("prometheus", command, dir)?;
        daemon.wait_ready(&format!("http://{addr}/-/ready")).await?;
        Ok(Self {
            addr,
            daemon,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The last lines of Prometheus's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }

    /// Hangs Prometheus (SIGSTOP): its port still accepts connections, nothing answers, as a
    /// wedged or overloaded server does. [`Prometheus::resume`] continues it with its state.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.daemon.signal(libc::SIGSTOP)
    }

    /// Continues a paused Prometheus (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.daemon.signal(libc::SIGCONT)
    }

    async fn api<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let response: ApiResponse<T> = self
            .http
            .get(format!("{}{path}", self.url()))
            .query(params)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?
            .json()
            .await
            .with_context(|| format!("decoding {path}"))?;
        if response.status != "success" {
            bail!("{path}: {}", response.error.unwrap_or(response.status));
        }
        response.data.context("no data in the response")
    }

    /// An instant query, now.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<Sample>> {
        self.query_params(vec![("query", promql.to_owned())]).await
    }

    /// An instant query at a given time.
    pub async fn query_at(&self, promql: &str, unix_seconds: f64) -> anyhow::Result<Vec<Sample>> {
        self.query_params(vec![
            ("query", promql.to_owned()),
            ("time", format!("{unix_seconds:.3}")),
        ])
        .await
    }

    async fn query_params(&self, params: Vec<(&str, String)>) -> anyhow::Result<Vec<Sample>> {
        let data: QueryData = self.api("/api/v1/query", &params).await?;
        samples(&data.result_type, &data.result)
    }

    /// Pending and firing alerts.
    pub async fn alerts(&self) -> anyhow::Result<Vec<Alert>> {
        let data: AlertsData = self.api("/api/v1/alerts", &[]).await?;
        Ok(data.alerts)
    }
}

/// Decodes a vector or scalar result.
fn samples(result_type: &str, result: &serde_json::Value) -> anyhow::Result<Vec<Sample>> {
    let number = |v: &serde_json::Value| -> anyhow::Result<f64> {
        let text = v
            .get(1)
            .and_then(|s| s.as_str())
            .context("no sample value")?;
        text.parse::<f64>()
            .with_context(|| format!("sample value {text:?}"))
    };
    match result_type {
        "vector" => result
            .as_array()
            .context("vector result is not a list")?
            .iter()
            .map(|item| {
                let labels =
                    serde_json::from_value(item.get("metric").cloned().unwrap_or_default())
                        .context("sample labels")?;
                let value = number(item.get("value").context("no value")?)?;
                Ok(Sample { labels, value })
            })
            .collect(),
        "scalar" => Ok(vec![Sample {
            labels: BTreeMap::new(),
            value: number(result)?,
        }]),
        other => bail!("unsupported result type {other} (query a vector or a scalar)"),
    }
}

/// Writes OpenMetrics `text` as TSDB blocks into `data`.
fn backfill(data: &Path, text: &str) -> anyhow::Result<()> {
    require(PROMTOOL)?;
    let input = data.with_file_name("backfill.om");
    std::fs::write(&input, text)?;
    let output = Command::new(PROMTOOL)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(data)
        .output()
        .context("running promtool")?;
    if !output.status.success() {
        bail!(
            "promtool tsdb create-blocks-from openmetrics failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A running Alertmanager.
pub struct Alertmanager {
    /// `127.0.0.1:port`.
    pub addr: String,
    daemon: Daemon,
}

impl Alertmanager {
    /// Starts Alertmanager with `config_yaml` and waits until it is ready.
    pub async fn start(config_yaml: &str) -> anyhow::Result<Self> {
        require(ALERTMANAGER)?;
        let dir = tempfile::Builder::new()
            .prefix("oem-alertmanager-")
            .tempdir()?;
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, config_yaml)?;
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut command = Command::new(ALERTMANAGER);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            // One instance: no gossip port.
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn");
        let mut daemon = Daemon::spawn("alertmanager", command, dir)?;
        daemon.wait_ready(&format!("http://{addr}/-/ready")).await?;
        Ok(Self { addr, daemon })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The last lines of Alertmanager's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }
}

/// How to run the SMTP sink.
#[derive(Debug, Clone, Default)]
pub struct SmtpSinkOptions {
    /// Offer STARTTLS with a generated certificate for 127.0.0.1 (and require it before MAIL).
    pub tls: bool,
    /// Require AUTH with this user and password.
    pub user: Option<(String, String)>,
    /// Answer the first N messages with a transient 451.
    pub fail_first: u32,
    /// Listen on this address instead of 127.0.0.1, e.g. the real node's, for pods.
    pub host: Option<String>,
}

/// A running SMTP server keeping every message it accepts.
pub struct SmtpSink {
    pub port: u16,
    /// Where the messages land, one `.eml` file each.
    pub dir: PathBuf,
    ca_pem: Option<String>,
    daemon: Daemon,
}

impl SmtpSink {
    pub async fn start(options: SmtpSinkOptions) -> anyhow::Result<Self> {
        require(PYTHON)?;
        let dir = tempfile::Builder::new().prefix("oem-smtp-").tempdir()?;
        let mail = dir.path().join("mail");
        let port = free_port()?;
        let mut command = Command::new(PYTHON);
        command
            .arg(repo_root().join("e2e/daemons/smtp_sink.py"))
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(&mail)
            .args(["--fail-first", &options.fail_first.to_string()])
            .args(["--host", options.host.as_deref().unwrap_or("127.0.0.1")]);
        let mut ca_pem = None;
        if options.tls {
            let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
                .context("generating the SMTP certificate")?;
            let cert = dir.path().join("cert.pem");
            let key = dir.path().join("key.pem");
            std::fs::write(&cert, generated.cert.pem())?;
            std::fs::write(&key, generated.signing_key.serialize_pem())?;
            command
                .arg("--cert")
                .arg(&cert)
                .arg("--key")
                .arg(&key)
                .arg("--require-tls");
            ca_pem = Some(generated.cert.pem());
        }
        if let Some((user, password)) = &options.user {
            let file = dir.path().join("password");
            std::fs::write(&file, password)?;
            command
                .args(["--user", user])
                .arg("--password-file")
                .arg(&file);
        }
        let mut daemon = Daemon::spawn("smtp-sink", command, dir)?;
        let deadline = tokio::time::Instant::now() + READY_LIMIT;
        loop {
            if let Some(status) = daemon.child.try_wait()? {
                bail!("smtp sink exited ({status}):\n{}", daemon.log_tail(30));
            }
            if daemon.log_tail(50).contains(&format!("ready {port}")) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("smtp sink not ready:\n{}", daemon.log_tail(30));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            port,
            dir: mail,
            ca_pem,
            daemon,
        })
    }

    /// The server certificate (PEM) when STARTTLS is on: trust it as a CA.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// The raw messages received so far, oldest first (each starts with `X-Sink-*` headers).
    pub fn messages(&self) -> anyhow::Result<Vec<String>> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).context("reading the SMTP sink folder"),
        };
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display())))
            .collect()
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_names_targets_rules_and_alertmanagers() {
        let options = PrometheusOptions {
            scrape: vec![ScrapeTarget::new("operator", "127.0.0.1:8080")],
            rule_files: vec![PathBuf::from("/x/rules.yaml")],
            alertmanagers: vec!["127.0.0.1:9093".into()],
            ..Default::default()
        };
        let yaml: serde_yaml::Value = serde_yaml::from_str(&prometheus_config(&options)).unwrap();
        assert_eq!(yaml["global"]["scrape_interval"], "1000ms");
        assert_eq!(yaml["rule_files"][0], "/x/rules.yaml");
        assert_eq!(
            yaml["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0],
            "127.0.0.1:9093"
        );
        assert_eq!(yaml["scrape_configs"][0]["job_name"], "operator");
        assert_eq!(
            yaml["scrape_configs"][0]["static_configs"][0]["targets"][0],
            "127.0.0.1:8080"
        );
    }

    #[test]
    fn a_whole_scrape_config_item_is_written_as_is() {
        let item: serde_yaml::Value = serde_yaml::from_str(
            "job_name: mail\nkubernetes_sd_configs:\n- role: pod\nrelabel_configs:\n- target_label: a\n  replacement: b\n",
        )
        .unwrap();
        let options = PrometheusOptions {
            scrape: vec![
                ScrapeTarget::new("operator", "127.0.0.1:8080"),
                ScrapeTarget::config(item).unwrap(),
            ],
            ..Default::default()
        };
        let yaml: serde_yaml::Value = serde_yaml::from_str(&prometheus_config(&options)).unwrap();
        assert_eq!(yaml["scrape_configs"][1]["job_name"], "mail");
        assert_eq!(
            yaml["scrape_configs"][1]["kubernetes_sd_configs"][0]["role"],
            "pod"
        );
        assert_eq!(
            yaml["scrape_configs"][1]["relabel_configs"][0]["replacement"],
            "b"
        );
    }

    #[test]
    fn vector_and_scalar_results_decode() {
        let vector = serde_json::json!([{"metric": {"a": "b"}, "value": [1.0, "2.5"]}]);
        let got = samples("vector", &vector).unwrap();
        assert_eq!(got[0].labels["a"], "b");
        assert_eq!(got[0].value, 2.5);
        let scalar = serde_json::json!([1.0, "7"]);
        assert_eq!(samples("scalar", &scalar).unwrap()[0].value, 7.0);
        assert!(samples("matrix", &vector).is_err());
    }
}
