//! Usage without Prometheus: memory from the metrics API (`metrics.k8s.io` PodMetrics, served
//! by metrics-server), disk and traffic from each node's kubelet stats summary, read through
//! the API server's node proxy, only when `usage.kubeletStats` is on (`nodes/proxy` lets its
//! holder reach every kubelet API, so the chart grants it only then); off, disk and traffic
//! are not measured. The kubelet counts traffic since each pod started, so without Prometheus
//! the network figures cover the life of the current pods, not the calendar month.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::UsageError;
use super::figures::{Reading, Snapshot};
use crate::naming::HOSTING_NAMESPACE_PREFIX;

#[derive(Deserialize)]
struct PodMetricsList {
    #[serde(default)]
    items: Vec<PodMetrics>,
}

#[derive(Deserialize)]
struct PodMetrics {
    metadata: Meta,
    #[serde(default)]
    containers: Vec<ContainerMetrics>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    namespace: String,
}

#[derive(Deserialize)]
struct ContainerMetrics {
    #[serde(default)]
    usage: BTreeMap<String, String>,
}

/// Working-set memory by hosting namespace from a `PodMetricsList`.
pub fn parse_pod_metrics(body: &str) -> Result<BTreeMap<String, f64>, String> {
    let list: PodMetricsList =
        serde_json::from_str(body).map_err(|e| format!("not a PodMetricsList: {e}"))?;
    let mut memory = BTreeMap::new();
    for pod in list.items {
        if !pod.metadata.namespace.starts_with(HOSTING_NAMESPACE_PREFIX) {
            continue;
        }
        let bytes: f64 = pod
            .containers
            .iter()
            .filter_map(|c| c.usage.get("memory"))
            .filter_map(|q| oem_crds::quantity::value(q))
            .sum();
        *memory.entry(pod.metadata.namespace).or_insert(0.0) += bytes;
    }
    Ok(memory)
}

#[derive(Deserialize)]
struct Summary {
    #[serde(default)]
    pods: Vec<PodStats>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStats {
    pod_ref: Meta,
    #[serde(default)]
    network: Option<NetworkStats>,
    #[serde(default)]
    volume: Vec<VolumeStats>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkStats {
    #[serde(default)]
    rx_bytes: Option<f64>,
    #[serde(default)]
    tx_bytes: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeStats {
    #[serde(default)]
    used_bytes: Option<f64>,
    #[serde(default)]
    pvc_ref: Option<serde_json::Value>,
}

/// Per hosting namespace from one node's stats summary: (disk on claims, received, sent).
#[derive(Debug, Default, PartialEq)]
pub struct NodeFigures {
    pub disk: BTreeMap<String, f64>,
    pub received: BTreeMap<String, f64>,
    pub sent: BTreeMap<String, f64>,
}

/// Disk (volumes backed by a claim only: the end user's data) and traffic by hosting
/// namespace from a kubelet `/stats/summary`.
pub fn parse_summary(body: &str) -> Result<NodeFigures, String> {
    let summary: Summary =
        serde_json::from_str(body).map_err(|e| format!("not a stats summary: {e}"))?;
    let mut figures = NodeFigures::default();
    for pod in summary.pods {
        let ns = pod.pod_ref.namespace;
        if !ns.starts_with(HOSTING_NAMESPACE_PREFIX) {
            continue;
        }
        let claims: f64 = pod
            .volume
            .iter()
            .filter(|v| v.pvc_ref.is_some())
            .filter_map(|v| v.used_bytes)
            .sum();
        *figures.disk.entry(ns.clone()).or_insert(0.0) += claims;
        if let Some(net) = pod.network {
            *figures.received.entry(ns.clone()).or_insert(0.0) += net.rx_bytes.unwrap_or(0.0);
            *figures.sent.entry(ns).or_insert(0.0) += net.tx_bytes.unwrap_or(0.0);
        }
    }
    Ok(figures)
}

async fn get(client: &kube::Client, path: &str) -> Result<String, UsageError> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| UsageError::Query {
            query: path.to_owned(),
            message: e.to_string(),
        })?;
    client
        .request_text(request)
        .await
        .map_err(|source| UsageError::Kube {
            what: path.to_owned(),
            source,
        })
}

/// Memory from the metrics API; with `kubelet_stats`, disk and traffic from the stats summary
/// of every node that runs a hosting pod (without it, they are not measured). A node that does
/// not answer makes disk and traffic unmeasured this time (a partial sum would under-report).
pub async fn snapshot(
    client: &kube::Client,
    kubelet_stats: bool,
    pods: &crate::view::Pods,
    time_zones: &BTreeSet<String>,
) -> Snapshot {
    let memory = match get(client, "/apis/metrics.k8s.io/v1beta1/pods").await {
        Ok(body) => parse_pod_metrics(&body)
            .map_err(|message| tracing::warn!(%message, "reading the metrics API"))
            .ok(),
        Err(error) => {
            tracing::debug!(%error, "the metrics API did not answer; memory not measured");
            None
        }
    };
    let nodes = kubelet_stats.then(|| hosting_nodes(pods));
    let mut node_figures = Vec::new();
    let mut complete = nodes.is_some();
    for node in nodes.into_iter().flatten() {
        let path = format!("/api/v1/nodes/{node}/proxy/stats/summary");
        match get(client, &path).await.map(|body| parse_summary(&body)) {
            Ok(Ok(figures)) => node_figures.push(figures),
            Ok(Err(message)) => {
                tracing::debug!(%node, %message, "reading the kubelet stats summary");
                complete = false;
            }
            Err(error) => {
                tracing::debug!(%node, %error, "the kubelet stats summary did not answer");
                complete = false;
            }
        }
    }
    let merged = |pick: fn(&NodeFigures) -> &BTreeMap<String, f64>| -> Reading {
        complete.then(|| {
            let mut sum = BTreeMap::new();
            for figures in &node_figures {
                for (ns, v) in pick(figures) {
                    *sum.entry(ns.clone()).or_insert(0.0) += v;
                }
            }
            sum
        })
    };
    let received = merged(|f| &f.received);
    let sent = merged(|f| &f.sent);
    Snapshot {
        disk: merged(|f| &f.disk),
        memory,
        network_in: time_zones
            .iter()
            .map(|tz| (tz.clone(), received.clone()))
            .collect(),
        network_out: time_zones
            .iter()
            .map(|tz| (tz.clone(), sent.clone()))
            .collect(),
    }
}

/// The nodes the operator's hosting pods run on.
fn hosting_nodes(pods: &crate::view::Pods) -> BTreeSet<String> {
    pods.values()
        .iter()
        .filter_map(|p| p.node.as_deref().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_metrics_sum_the_containers_of_hosting_namespaces() {
        let body = r#"{"kind":"PodMetricsList","items":[
          {"metadata":{"name":"web-0","namespace":"h-acme-alice-1a2b3c4d"},"containers":[
            {"name":"php","usage":{"cpu":"5m","memory":"200Mi"}},
            {"name":"ftp","usage":{"cpu":"1m","memory":"56Mi"}}]},
          {"metadata":{"name":"db-0","namespace":"h-acme-alice-1a2b3c4d"},"containers":[
            {"name":"mariadb","usage":{"memory":"256Mi"}}]},
          {"metadata":{"name":"x","namespace":"kube-system"},"containers":[
            {"name":"x","usage":{"memory":"1Gi"}}]}]}"#;
        let memory = parse_pod_metrics(body).unwrap();
        assert_eq!(memory.len(), 1);
        assert_eq!(memory["h-acme-alice-1a2b3c4d"], 512.0 * 1024.0 * 1024.0);
    }

    #[test]
    fn the_summary_counts_claims_and_pod_traffic() {
        let body = r#"{"node":{"nodeName":"n1"},"pods":[
          {"podRef":{"name":"web-0","namespace":"h-a"},
           "network":{"rxBytes":1000,"txBytes":2000},
           "volume":[{"name":"data","usedBytes":4096,"pvcRef":{"name":"data-web-0","namespace":"h-a"}},
                     {"name":"kube-api-access","usedBytes":12}]},
          {"podRef":{"name":"db-0","namespace":"h-a"},
           "network":{"rxBytes":10,"txBytes":20},
           "volume":[{"name":"data","usedBytes":1024,"pvcRef":{"name":"data-db-0","namespace":"h-a"}}]},
          {"podRef":{"name":"coredns","namespace":"kube-system"},"network":{"rxBytes":5,"txBytes":5}}]}"#;
        let f = parse_summary(body).unwrap();
        assert_eq!(f.disk["h-a"], 5120.0);
        assert_eq!(f.received["h-a"], 1010.0);
        assert_eq!(f.sent["h-a"], 2020.0);
        assert!(!f.disk.contains_key("kube-system"));
        assert!(parse_summary("404 page not found").is_err());
    }
}
