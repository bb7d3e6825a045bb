//! The admission webhooks as the end-to-end tests run them: the `oem-webhooks` binary as a
//! process on a free loopback port, under its own ServiceAccount bound to the chart's
//! `files/webhooks-clusterrole.yaml` (so a missing permission fails a test), and webhook
//! configurations pointing at it, scoped by a
//! label to the test's own namespaces and resellers and deleted again when the guard drops
//! (also when a test fails), so no other test's objects are ever judged. The chart's role has
//! no access to webhook configurations (the chart sets their caBundle); the generated-CA mode
//! the tests use gets get/update on the test's two configurations only, by `resourceNames`
//! (a ClusterRole and binding named like them, deleted with them).
//!
//! Their Secret access (`oem-hosting-webhooks-secrets`) is bound per reseller namespace: by the
//! operator when a test runs one (`e2e/src/operator.rs` names the webhooks' ServiceAccount to
//! it), else by the test itself with [`bind_secrets`].

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::Api;
use serde_json::json;

use crate::cluster::{Cluster, repo_root};
use crate::operator::{OPERATOR_NAMESPACE, service_account_kubeconfig, target_bin_dir};

/// The webhooks' ServiceAccount (in the operator's namespace) and ClusterRole.
pub const WEBHOOKS_ACCOUNT: &str = "oem-webhooks";
pub const WEBHOOKS_ROLE: &str = "oem-hosting-webhooks";
/// Their Secret role, bound per reseller namespace.
pub const WEBHOOKS_SECRETS_ROLE: &str = "oem-hosting-webhooks-secrets";

/// Applies the chart's webhooks ClusterRole and returns a kubeconfig of a ServiceAccount
/// bound to it.
pub fn install(cluster: &Cluster) -> anyhow::Result<PathBuf> {
    let role = repo_root().join("charts/oem-hosting/files/webhooks-clusterrole.yaml");
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
    service_account_kubeconfig(
        cluster,
        WEBHOOKS_ACCOUNT,
        WEBHOOKS_ROLE,
        "webhooks.kubeconfig",
    )
}

/// The RoleBinding the operator makes in each reseller namespace (operator/src/hosting/rbac.rs),
/// made by a test that runs the webhooks without an operator: `oem-hosting-webhooks-secrets`
/// bound to the webhooks' ServiceAccount in `namespace`.
pub fn bind_secrets(cluster: &Cluster, namespace: &str) -> anyhow::Result<()> {
    let binding = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
         metadata: {{name: {WEBHOOKS_SECRETS_ROLE}, namespace: {namespace}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {WEBHOOKS_SECRETS_ROLE}}}\n\
         subjects: [{{kind: ServiceAccount, name: {WEBHOOKS_ACCOUNT}, namespace: {OPERATOR_NAMESPACE}}}]\n"
    );
    cluster
        .kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&binding))
        .with_context(|| format!("binding the webhooks' Secret role in {namespace}"))?;
    Ok(())
}

/// The label that selects what the test's webhook configurations judge: namespaces carrying
/// it (Courses, EndUsers) and Resellers carrying it.
pub const SCOPE_LABEL: &str = "e2e.oem.dev/webhooks";

/// A running webhook server. Its PID is recorded in the cluster's `pids/` folder, so that
/// `cluster.sh down` stops it too when its guard is never dropped (a test fixture held in a
/// `static`, which lives until the process exits).
pub struct WebhookServer {
    child: Option<Child>,
    pub port: u16,
    log_file: PathBuf,
    pid_file: PathBuf,
}

impl WebhookServer {
    /// Starts the binary under the webhooks' ServiceAccount with a generated CA, writing it
    /// into `configs` (validating, mutating).
    pub fn start(cluster: &Cluster, configs: &WebhookConfigs) -> anyhow::Result<Self> {
        let kubeconfig = install(cluster)?;
        let binary = target_bin_dir()?.join("oem-webhooks");
        if !binary.exists() {
            bail!(
                "{} is missing: build it with cargo build -p oem-webhooks",
                binary.display()
            );
        }
        let port = configs.port;
        let pid_file = cluster
            .state_dir
            .join(format!("pids/webhooks-{}.pid", configs.name));
        crate::operator::stop_recorded_program(&pid_file, "oem-webhooks");
        let log_file = cluster
            .state_dir
            .join(format!("logs/webhooks-{}.log", configs.name));
        let log = std::fs::File::create(&log_file).context("creating the webhooks log")?;
        let child = Command::new(&binary)
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info,oem_webhooks=debug")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--service-dns", "localhost"])
            .args(["--validating-config", &configs.name])
            .args(["--mutating-config", &configs.name])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting oem-webhooks")?;
        std::fs::write(&pid_file, child.id().to_string())
            .with_context(|| format!("writing {}", pid_file.display()))?;
        Ok(Self {
            child: Some(child),
            port,
            log_file,
            pid_file,
        })
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, as a kubelet stopping the pod sends it; waits at most `limit` for the exit
    /// (see [`crate::process::terminate`]).
    pub fn terminate(
        &mut self,
        limit: std::time::Duration,
    ) -> anyhow::Result<(std::process::ExitStatus, std::time::Duration)> {
        let mut child = self
            .child
            .take()
            .context("the server was stopped already")?;
        let ended = crate::process::terminate(&mut child, limit);
        let _ = std::fs::remove_file(&self.pid_file);
        ended
    }

    /// Stops the server (SIGKILL, as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&self.pid_file);
        }
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Validating and a Mutating webhook configuration of one name, deleted on drop.
pub struct WebhookConfigs {
    cluster: Cluster,
    pub name: String,
    pub port: u16,
    /// The value of [`SCOPE_LABEL`] they select.
    pub scope: String,
}

fn rules(resources: &[&str], scope: &str) -> serde_json::Value {
    json!([{
        "apiGroups": ["hosting.oem.dev"], "apiVersions": ["v1alpha1"],
        "operations": ["CREATE", "UPDATE"], "resources": resources, "scope": scope
    }])
}

impl WebhookConfigs {
    /// Registers both configurations for `https://127.0.0.1:{port}`, failurePolicy Fail, the
    /// caBundle left for the server to write.
    pub async fn register(
        cluster: &Cluster,
        client: &kube::Client,
        name: &str,
        port: u16,
        scope: &str,
    ) -> anyhow::Result<Self> {
        let guard = Self {
            cluster: cluster.clone(),
            name: name.to_owned(),
            port,
            scope: scope.to_owned(),
        };
        let common = |path: &str| {
            json!({
                "clientConfig": {"url": format!("https://127.0.0.1:{port}/{path}")},
                "failurePolicy": "Fail", "matchPolicy": "Equivalent", "sideEffects": "NoneOnDryRun",
                "timeoutSeconds": 5, "admissionReviewVersions": ["v1"]
            })
        };
        let merge = |mut base: serde_json::Value, extra: serde_json::Value| {
            if let (Some(b), serde_json::Value::Object(e)) = (base.as_object_mut(), extra) {
                b.extend(e);
            }
            base
        };
        let selector = json!({"matchLabels": {SCOPE_LABEL: scope}});
        let validating: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [
                merge(common("validate"), json!({"name": "namespaced.validate.hosting.oem.dev",
                    "rules": rules(&["courses", "endusers", "maintenances"], "Namespaced"), "namespaceSelector": selector})),
                merge(common("validate"), json!({"name": "resellers.validate.hosting.oem.dev",
                    "rules": rules(&["resellers", "clustermaintenances"], "Cluster"), "objectSelector": selector})),
            ]
        }))?;
        let mutating: MutatingWebhookConfiguration = serde_json::from_value(json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [merge(common("mutate"), json!({"name": "endusers.mutate.hosting.oem.dev",
                "rules": rules(&["endusers"], "Namespaced"), "namespaceSelector": selector,
                "reinvocationPolicy": "Never"}))]
        }))?;
        cluster.kubectl_ok(
            &["apply", "--server-side", "-f", "-"],
            Some(&ca_writer_rbac(name)),
        )?;
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .create(&Default::default(), &validating)
            .await
            .context("creating the ValidatingWebhookConfiguration")?;
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .create(&Default::default(), &mutating)
            .await
            .context("creating the MutatingWebhookConfiguration")?;
        Ok(guard)
    }

    /// Waits until the server has written its CA into both configurations.
    pub async fn wait_ca_bundle(&self, client: &kube::Client) -> anyhow::Result<()> {
        let v: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let m: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        crate::wait::until(
            "the caBundle in the webhook configurations",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || async {
                let vc = v.get(&self.name).await.map_err(|e| e.to_string())?;
                let mc = m.get(&self.name).await.map_err(|e| e.to_string())?;
                let v_ok = vc
                    .webhooks
                    .iter()
                    .flatten()
                    .all(|w| w.client_config.ca_bundle.is_some());
                let m_ok = mc
                    .webhooks
                    .iter()
                    .flatten()
                    .all(|w| w.client_config.ca_bundle.is_some());
                if v_ok && m_ok {
                    Ok(())
                } else {
                    Err("caBundle not written yet".into())
                }
            },
        )
        .await
    }
}

/// The ClusterRole `oem-e2e-ca-writer-<name>` (get/update of the two configurations named
/// `name`, nothing else) and its binding to the webhooks' ServiceAccount.
fn ca_writer_rbac(name: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: oem-e2e-ca-writer-{name}}}\n\
         rules:\n- apiGroups: [admissionregistration.k8s.io]\n  \
         resources: [validatingwebhookconfigurations, mutatingwebhookconfigurations]\n  \
         verbs: [get, update]\n  resourceNames: [{name}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: oem-e2e-ca-writer-{name}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: oem-e2e-ca-writer-{name}}}\n\
         subjects: [{{kind: ServiceAccount, name: {WEBHOOKS_ACCOUNT}, namespace: {OPERATOR_NAMESPACE}}}]\n"
    )
}

impl Drop for WebhookConfigs {
    fn drop(&mut self) {
        let writer = format!("oem-e2e-ca-writer-{}", self.name);
        for kind in ["clusterrolebinding", "clusterrole"] {
            let _ = self
                .cluster
                .kubectl(&["delete", kind, &writer, "--ignore-not-found"], None);
        }
        for kind in [
            "validatingwebhookconfiguration",
            "mutatingwebhookconfiguration",
        ] {
            let _ = self
                .cluster
                .kubectl(&["delete", kind, &self.name, "--ignore-not-found"], None);
        }
    }
}
