//! Prometheus scraping the tenants' mail pods as the chart configures it
//! (`charts/oem-hosting/files/tenant-mail-scrape.yaml`), for tests with a real node.

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::cluster::repo_root;
use crate::prometheus::ScrapeTarget;

/// The chart's scrape configuration of the tenants' mail pods with its relabelling as is.
/// Debian's Prometheus is built without Kubernetes discovery, so its `kubernetes_sd_configs`
/// becomes a `file_sd_configs` file that [`discover_pods`] fills with what Kubernetes
/// discovery would give for the pods its selector matches (the same `__meta_kubernetes_*`
/// labels). Returns the job and the chart's label selector.
pub fn tenant_mail_scrape(targets: &std::path::Path) -> anyhow::Result<(ScrapeTarget, String)> {
    let path = repo_root().join("charts/oem-hosting/files/tenant-mail-scrape.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut items: Vec<serde_yaml::Value> = serde_yaml::from_str(&text)?;
    ensure!(items.len() == 1, "{}: one scrape job", path.display());
    let mut item = items.remove(0);
    let job = item
        .as_mapping_mut()
        .context("the scrape job is no mapping")?;
    let sd = job
        .remove("kubernetes_sd_configs")
        .context("the scrape job has no kubernetes_sd_configs")?;
    ensure!(sd[0]["role"] == "pod", "pod discovery: {sd:?}");
    let selector = sd[0]["selectors"][0]["label"]
        .as_str()
        .context("the pod discovery has no label selector")?
        .to_owned();
    std::fs::write(targets, "[]")?;
    let files: serde_yaml::Value =
        serde_yaml::from_str(&format!("- files: [{:?}]", targets.display().to_string()))?;
    job.insert("file_sd_configs".into(), files);
    Ok((ScrapeTarget::config(item)?, selector))
}

/// Writes the target groups Prometheus's Kubernetes pod discovery makes of the pods matching
/// `selector`: one per container port, with the pod's metadata as `__meta_kubernetes_*`.
pub async fn discover_pods(
    client: &Client,
    selector: &str,
    targets: &std::path::Path,
) -> anyhow::Result<usize> {
    let sanitize = |name: &str| -> String {
        name.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    };
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().labels(selector))
        .await?;
    let mut groups = Vec::new();
    for pod in &pods.items {
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        let mut meta = serde_json::Map::new();
        meta.insert(
            "__meta_kubernetes_namespace".into(),
            json!(pod.namespace().unwrap_or_default()),
        );
        meta.insert("__meta_kubernetes_pod_name".into(), json!(pod.name_any()));
        meta.insert("__meta_kubernetes_pod_phase".into(), json!(phase));
        meta.insert("__meta_kubernetes_pod_ip".into(), json!(ip));
        for (k, v) in pod.labels() {
            meta.insert(
                format!("__meta_kubernetes_pod_label_{}", sanitize(k)),
                json!(v),
            );
        }
        for c in pod.spec.iter().flat_map(|s| &s.containers) {
            for port in c.ports.iter().flatten() {
                let mut labels = meta.clone();
                labels.insert("__meta_kubernetes_pod_container_name".into(), json!(c.name));
                labels.insert(
                    "__meta_kubernetes_pod_container_port_name".into(),
                    json!(port.name.clone().unwrap_or_default()),
                );
                labels.insert(
                    "__meta_kubernetes_pod_container_port_number".into(),
                    json!(port.container_port.to_string()),
                );
                groups.push(json!({
                    "targets": [format!("{ip}:{}", port.container_port)],
                    "labels": labels
                }));
            }
        }
    }
    let tmp = targets.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&groups)?)?;
    std::fs::rename(&tmp, targets)?;
    Ok(pods.items.len())
}
