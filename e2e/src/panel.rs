//! The panel as the end-to-end tests run it: the `oem-panel` binary as a process on a free
//! loopback port, under its own ServiceAccount bound to the chart's
//! `charts/oem-hosting/files/panel-clusterrole.yaml` (so a missing permission fails a test),
//! plus a small HTTP client that keeps the panel's cookies as a browser would.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cluster::{Cluster, repo_root};
use crate::free_port;
use crate::operator::{OPERATOR_NAMESPACE, service_account_kubeconfig, target_bin_dir};

/// The panel's ServiceAccount (in the operator's namespace) and ClusterRole.
pub const PANEL_ACCOUNT: &str = "oem-panel";
pub const PANEL_ROLE: &str = "oem-hosting-panel";

/// A running panel.
pub struct Panel {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log_file: PathBuf,
    pid_file: PathBuf,
}

impl Panel {
    /// Installs the panel's RBAC, starts the binary with `config` (YAML; `httpAddr` and plain-
    /// http cookies are added) and waits until its caches are filled (`/readyz`).
    pub async fn start(cluster: &Cluster, config: &str) -> anyhow::Result<Panel> {
        let role = repo_root().join("charts/oem-hosting/files/panel-clusterrole.yaml");
        cluster.kubectl_ok(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                &role.to_string_lossy(),
            ],
            None,
        )?;
        let kubeconfig =
            service_account_kubeconfig(cluster, PANEL_ACCOUNT, PANEL_ROLE, "panel.kubeconfig")?;
        let pid_file = cluster.state_dir.join("pids/panel.pid");
        crate::operator::stop_recorded_program(&pid_file, "oem-panel");
        let port = free_port()?;
        let config_file = cluster.state_dir.join("panel.yaml");
        std::fs::write(
            &config_file,
            format!("httpAddr: 127.0.0.1:{port}\n{config}"),
        )?;
        let log_file = cluster.state_dir.join("logs/panel.log");
        let log = std::fs::File::create(&log_file).context("creating the panel log")?;
        let binary = target_bin_dir()?.join("oem-panel");
        if !binary.exists() {
            bail!(
                "{} is missing: build it with cargo build -p oem-panel",
                binary.display()
            );
        }
        let child = Command::new(&binary)
            .arg("--config")
            .arg(&config_file)
            .env("KUBECONFIG", &kubeconfig)
            .env("OEM_PANEL_SECURE_COOKIES", "false")
            .env("RUST_LOG", "info,oem_panel=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the panel")?;
        std::fs::write(&pid_file, child.id().to_string())?;
        let panel = Panel {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log_file,
            pid_file,
        };
        let ready = format!("{}/readyz", panel.url);
        crate::wait::until(
            "the panel's /readyz",
            Duration::from_secs(60),
            Duration::from_millis(250),
            || async {
                match crate::http_get(&ready).await {
                    Ok((200, _)) => Ok(()),
                    Ok((code, body)) => Err(format!("{code} {body}")),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await
        .with_context(|| format!("panel log:\n{}", panel.log_tail(30)))?;
        Ok(panel)
    }

    /// The panel's resident memory in KiB (VmRSS), for the figures a test prints.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The panel's whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// The last lines of the panel's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// An answer of the panel.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The value of the first `<input name="{name}" ... value="...">` of the page.
    pub fn field(&self, name: &str) -> Option<String> {
        let start = self.body.find(&format!("name=\"{name}\" value=\""))?;
        let rest = &self.body[start + name.len() + 15..];
        rest.split('"').next().map(str::to_owned)
    }
}

/// A client that follows no redirects and keeps cookies, one per browser-like user.
pub struct PanelClient {
    http: reqwest::Client,
    base: String,
    cookies: Mutex<HashMap<String, String>>,
}

impl PanelClient {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()?,
            base: base.to_owned(),
            cookies: Mutex::default(),
        })
    }

    fn cookie_header(&self) -> String {
        let cookies = self.cookies.lock().unwrap_or_else(|p| p.into_inner());
        cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn answer(&self, response: reqwest::Response) -> anyhow::Result<Answer> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        {
            let mut cookies = self.cookies.lock().unwrap_or_else(|p| p.into_inner());
            for set in headers.get_all("set-cookie") {
                let text = set.to_str().unwrap_or_default();
                let pair = text.split(';').next().unwrap_or_default();
                if let Some((k, v)) = pair.split_once('=') {
                    if v.is_empty() || text.contains("Max-Age=0") {
                        cookies.remove(k);
                    } else {
                        cookies.insert(k.to_owned(), v.to_owned());
                    }
                }
            }
        }
        let body = response.text().await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        self.answer(response).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Answer> {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        self.answer(response).await
    }

    /// Opens the login page of `reseller`'s end users and submits the form.
    pub async fn login(
        &self,
        reseller: &str,
        login_id: &str,
        password: &str,
    ) -> anyhow::Result<Answer> {
        self.sign_in(&format!("/login/{reseller}"), login_id, password)
            .await
    }

    /// Opens the resellers' sign-in page of `reseller` and submits it.
    pub async fn reseller_login(
        &self,
        reseller: &str,
        login_id: &str,
        password: &str,
    ) -> anyhow::Result<Answer> {
        self.sign_in(&format!("/r/{reseller}/login"), login_id, password)
            .await
    }

    async fn sign_in(&self, path: &str, login_id: &str, password: &str) -> anyhow::Result<Answer> {
        let path = path.to_owned();
        let form = self.get(&path).await?;
        let csrf = form
            .field("csrf")
            .context("the login form has no csrf field")?;
        self.post(
            &path,
            &[
                ("csrf", &csrf),
                ("login_id", login_id),
                ("password", password),
            ],
        )
        .await
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The password the operator issued to `reseller`'s panel login `admin` (the Secret
/// `oem-hosting-panel-<reseller>` beside the panel), once it is there.
pub async fn issued_reseller_password(
    client: &kube::Client,
    reseller: &str,
) -> anyhow::Result<String> {
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let name = format!("oem-hosting-panel-{reseller}");
    crate::wait::until(
        "the reseller's panel login",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            let secret = secrets.get_opt(&name).await.map_err(|e| e.to_string())?;
            secret
                .and_then(|s| s.data)
                .and_then(|d| d.get("admin").cloned())
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} has no admin password yet"))
        },
    )
    .await
}
