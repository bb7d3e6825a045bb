//! Usage from Prometheus: the kubelet's volume statistics (disk), cAdvisor's working set
//! (memory) and network counters (traffic), each summed by hosting namespace in PromQL and
//! evaluated at the measurement instant. The queries are built here as plain strings, so they
//! are tested without a Prometheus and documented in one place.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;

use super::UsageError;
use super::figures::{Reading, Snapshot, period_start};
use crate::naming::HOSTING_NAMESPACE_PREFIX;

/// The series selector every query uses: only hosting namespaces.
fn hosting_namespaces() -> String {
    format!("namespace=~\"{HOSTING_NAMESPACE_PREFIX}.+\"")
}

/// Bytes used on the volumes of each hosting namespace. The inner `max` counts a claim once
/// even when two jobs scrape the same kubelet.
pub fn disk_query() -> String {
    format!(
        "sum by (namespace) (max by (namespace, persistentvolumeclaim) \
         (kubelet_volume_stats_used_bytes{{{}}}))",
        hosting_namespaces()
    )
}

/// Working-set bytes of the containers of each hosting namespace; `container!=""` leaves out
/// the pod-level cgroup series that would count every container twice.
pub fn memory_query() -> String {
    format!(
        "sum by (namespace) (max by (namespace, pod, container) \
         (container_memory_working_set_bytes{{{},container!=\"\",container!=\"POD\"}}))",
        hosting_namespaces()
    )
}

/// Which way traffic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Receive,
    Transmit,
}

impl Direction {
    fn metric(self) -> &'static str {
        match self {
            Direction::Receive => "container_network_receive_bytes_total",
            Direction::Transmit => "container_network_transmit_bytes_total",
        }
    }
}

/// Bytes received (or sent) by each hosting namespace's pods over `period` ending at the
/// measurement instant: `increase` copes with counter resets (restarted pods); the `max`
/// counts each pod's interface once whatever cgroup level cAdvisor reports it on; loopback
/// traffic is not the end user's line.
pub fn network_query(direction: Direction, period: Duration) -> String {
    format!(
        "sum by (namespace) (max by (namespace, pod, interface) \
         (increase({}{{{},interface!=\"lo\"}}[{}s])))",
        direction.metric(),
        hosting_namespaces(),
        period.as_secs().max(1)
    )
}

#[derive(Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// The `namespace` → value map of an instant-query answer (`/api/v1/query`). Non-finite
/// values (NaN, ±Inf) are left out.
pub fn parse_vector(body: &str) -> Result<BTreeMap<String, f64>, String> {
    let response: Response =
        serde_json::from_str(body).map_err(|e| format!("not a Prometheus API answer: {e}"))?;
    if response.status != "success" {
        return Err(response
            .error
            .unwrap_or_else(|| format!("status {}", response.status)));
    }
    let data = response.data.ok_or("answer without data")?;
    if data.result_type != "vector" {
        return Err(format!("expected a vector, got a {}", data.result_type));
    }
    let mut by_namespace = BTreeMap::new();
    for sample in data.result {
        let Some(namespace) = sample.metric.get("namespace") else {
            continue;
        };
        let value: f64 = sample
            .value
            .1
            .parse()
            .map_err(|_| format!("value {:?} is not a number", sample.value.1))?;
        if value.is_finite() {
            *by_namespace.entry(namespace.clone()).or_insert(0.0) += value;
        }
    }
    Ok(by_namespace)
}

/// A Prometheus HTTP API endpoint.
pub struct PrometheusSource {
    http: reqwest::Client,
    base: String,
}

impl PrometheusSource {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, UsageError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| UsageError::HttpClient(e.without_url()))?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
        })
    }

    /// One instant query evaluated at `at`.
    pub async fn query(
        &self,
        promql: &str,
        at: Timestamp,
    ) -> Result<BTreeMap<String, f64>, UsageError> {
        let failed = |message: String| UsageError::Query {
            query: promql.to_owned(),
            message,
        };
        let response = self
            .http
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", promql), ("time", &at.as_second().to_string())])
            .send()
            .await
            // The URL may carry credentials: never in a message.
            .map_err(|e| failed(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        // Prometheus answers errors (bad query, timeout) with a JSON body too.
        parse_vector(&body).map_err(|message| {
            failed(if status.is_success() {
                message
            } else {
                format!("HTTP {status}: {message}")
            })
        })
    }

    async fn reading(&self, promql: &str, at: Timestamp) -> Reading {
        match self.query(promql, at).await {
            Ok(values) => Some(values),
            Err(error) => {
                tracing::warn!(%error, "usage query failed");
                None
            }
        }
    }

    /// Everything at `at`: disk and memory once, traffic once per time zone (each zone's
    /// month began at another instant).
    pub async fn snapshot(&self, at: Timestamp, time_zones: &BTreeSet<String>) -> Snapshot {
        let mut snapshot = Snapshot {
            disk: self.reading(&disk_query(), at).await,
            memory: self.reading(&memory_query(), at).await,
            ..Snapshot::default()
        };
        for tz in time_zones {
            let secs = at.as_second() - period_start(at, tz).as_second();
            let (received, sent) = if secs <= 0 {
                // The period begins at this very instant: nothing sent in it yet.
                (Some(BTreeMap::new()), Some(BTreeMap::new()))
            } else {
                let period = Duration::from_secs(secs.unsigned_abs());
                (
                    self.reading(&network_query(Direction::Receive, period), at)
                        .await,
                    self.reading(&network_query(Direction::Transmit, period), at)
                        .await,
                )
            };
            snapshot.network_in.insert(tz.clone(), received);
            snapshot.network_out.insert(tz.clone(), sent);
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_counts_each_claim_of_each_hosting_namespace_once() {
        assert_eq!(
            disk_query(),
            "sum by (namespace) (max by (namespace, persistentvolumeclaim) \
             (kubelet_volume_stats_used_bytes{namespace=~\"h-.+\"}))"
        );
    }

    #[test]
    fn memory_leaves_out_pod_level_series() {
        let q = memory_query();
        assert!(q.contains("container_memory_working_set_bytes{namespace=~\"h-.+\",container!=\"\",container!=\"POD\"}"), "{q}");
        assert!(
            q.starts_with("sum by (namespace) (max by (namespace, pod, container)"),
            "{q}"
        );
    }

    #[test]
    fn traffic_is_the_increase_over_the_accounting_period() {
        let q = network_query(Direction::Transmit, Duration::from_secs(2_160_000));
        assert_eq!(
            q,
            "sum by (namespace) (max by (namespace, pod, interface) \
             (increase(container_network_transmit_bytes_total{namespace=~\"h-.+\",interface!=\"lo\"}[2160000s])))"
        );
        let q = network_query(Direction::Receive, Duration::ZERO);
        assert!(q.contains("container_network_receive_bytes_total"), "{q}");
        assert!(q.ends_with("[1s])))"), "{q}");
    }

    #[test]
    fn a_vector_answer_gives_bytes_by_namespace() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"namespace":"h-a"},"value":[1764121200,"3221225472"]},
            {"metric":{"namespace":"h-b"},"value":[1764121200,"1.5e3"]},
            {"metric":{"namespace":"h-c"},"value":[1764121200,"NaN"]},
            {"metric":{},"value":[1764121200,"1"]}]}}"#;
        let got = parse_vector(body).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got["h-a"], 3_221_225_472.0);
        assert_eq!(got["h-b"], 1500.0);
    }

    #[test]
    fn an_error_answer_names_prometheus_reason() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#;
        assert_eq!(parse_vector(body).unwrap_err(), "parse error at char 4");
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse_vector(matrix).unwrap_err().contains("matrix"));
        assert!(
            parse_vector("<html>")
                .unwrap_err()
                .contains("not a Prometheus")
        );
    }
}
