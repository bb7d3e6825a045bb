//! Usage reporting (SPEC §2 "server usage", DESIGN "Usage reporting"): disk, memory and network
//! traffic of every end user, summed per reseller, measured every `usage.interval` and written
//! to `EndUser.status.usage` and `Reseller.status.usage` (server-side apply of `status.usage`
//! only, field manager `oem-hosting-usage`, and only when a figure changed), and exported as
//! metrics for Grafana.
//!
//! Sources: Prometheus (`prometheus.rs`) when a URL is configured, else the metrics API, and
//! the kubelet stats summary when `usage.kubeletStats` grants the node proxy (`cluster.rs`). The figures themselves are values (`figures.rs`).
//! Network traffic covers the current calendar month in the reseller's time zone.

mod cluster;
pub mod config;
pub mod figures;
pub mod metrics;
pub mod prometheus;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::Api;
use kube::{Resource, ResourceExt};
use oem_crds::{EndUser, Reseller, Usage};
use serde_json::json;

pub use cluster::{parse_pod_metrics, parse_summary};
pub use config::UsageConfig;
use figures::{Figures, Snapshot, measurement_instant, sum_by_reseller};
pub use metrics::UsageMetrics;
use prometheus::PrometheusSource;

use crate::context::Context;
use crate::naming;
use crate::status::owners;

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("building the HTTP client for Prometheus: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("usage query {query:?} failed: {message}")]
    Query { query: String, message: String },
    #[error("reading {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing status.usage of {kind} {name}: {source}")]
    Write {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Where figures come from.
enum Source {
    Prometheus(PrometheusSource),
    /// The metrics API, and the kubelets' stats summaries when `kubelet_stats` is on.
    Cluster {
        client: kube::Client,
        kubelet_stats: bool,
        /// The hosting pods, for the nodes whose kubelets are asked.
        pods: crate::view::Pods,
    },
}

impl Source {
    fn label(&self) -> &'static str {
        match self {
            Source::Prometheus(_) => "prometheus",
            Source::Cluster { .. } => "cluster",
        }
    }

    async fn snapshot(&self, at: Timestamp, time_zones: &BTreeSet<String>) -> Snapshot {
        match self {
            Source::Prometheus(p) => p.snapshot(at, time_zones).await,
            Source::Cluster {
                client,
                kubelet_stats,
                pods,
            } => cluster::snapshot(client, *kubelet_stats, pods, time_zones).await,
        }
    }
}

/// Measures and reports every interval until `stop`. Fails when the Prometheus it is told to
/// read cannot be used.
pub async fn run(
    ctx: Arc<Context>,
    view: crate::view::View,
    stop: oem_supervisor::Stop,
) -> Result<(), String> {
    let config = &ctx.config.usage;
    // The operator's Prometheus (`prometheusUrl`) holds the kubelet's volume statistics and
    // cAdvisor's container series; without one usage comes from the metrics API (memory), and
    // disk and traffic from the kubelet stats summary when `usage.kubeletStats` is on.
    let source = match &ctx.config.prometheus_url {
        Some(url) => match PrometheusSource::new(url, config.timeout) {
            Ok(p) => Source::Prometheus(p),
            Err(error) => {
                return Err(format!("prometheusUrl (usage): {error}"));
            }
        },
        None => Source::Cluster {
            client: ctx.client.clone(),
            kubelet_stats: config.kubelet_stats,
            pods: view.pods.clone(),
        },
    };
    tracing::info!(source = source.label(), interval = ?config.interval, "usage reporter started");
    if !view.wait_ready(&stop, "usage reporter").await {
        return Ok(());
    }
    let mut reporter = Reporter {
        ctx: ctx.clone(),
        view,
        source,
        endusers: BTreeSet::new(),
        resellers: BTreeSet::new(),
    };
    tokio::select! {
        _ = reporter.run() => {}
        _ = stop.requested() => tracing::info!("usage reporter stopped"),
    }
    Ok(())
}

/// An end user whose hosting exists, with what its figures need.
struct Tenant {
    reseller: String,
    namespace: String,
    name: String,
    hosting_namespace: String,
    usage: Option<Usage>,
}

struct Reporter {
    ctx: Arc<Context>,
    /// The resellers and end users to report on (`view.rs`).
    view: crate::view::View,
    source: Source,
    /// Label sets exported last time, so the series of deleted objects go away.
    endusers: BTreeSet<(String, String)>,
    resellers: BTreeSet<String>,
}

impl Reporter {
    /// Measures at every aligned instant; between instants, lists the objects every
    /// `usage.refreshInterval` so a new end user (or reseller) gets its first figures at once
    /// instead of at the next instant. Re-measuring an instant writes only what is new.
    async fn run(&mut self) {
        let config = &self.ctx.config.usage;
        let (interval, refresh) = (config.interval, config.refresh_interval);
        // The instant last measured in full, and what it covered.
        let mut done: Option<(Timestamp, BTreeSet<String>)> = None;
        loop {
            let now = self.ctx.clock.now();
            let at = measurement_instant(now, interval);
            let mut wait = until_next(now, at, interval).min(refresh);
            let (resellers, endusers) = self.list();
            let covers = objects(&resellers, &endusers);
            let fresh = match &done {
                Some((instant, covered)) => *instant != at || !covers.is_subset(covered),
                None => true,
            };
            if fresh {
                match self.report(at, &resellers, &endusers).await {
                    // A query that failed kept its last figures; the next instant
                    // measures again (no retry loop against a source that is down).
                    Ok(complete) => {
                        if !complete {
                            tracing::warn!(%at, "usage measurement incomplete; last figures kept");
                        }
                        done = Some((at, covers));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "usage report failed; retrying");
                        wait = wait.min(self.ctx.config.transient_retry);
                    }
                }
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// The resellers and end users as the view holds them now.
    fn list(&self) -> (Vec<Arc<Reseller>>, Vec<Arc<EndUser>>) {
        use crate::view::View;
        (
            View::all(&self.view.resellers),
            View::all(&self.view.endusers),
        )
    }

    /// One measurement at `at`, its writes and metrics; whether every query answered.
    async fn report(
        &mut self,
        at: Timestamp,
        resellers: &[Arc<Reseller>],
        endusers: &[Arc<EndUser>],
    ) -> Result<bool, UsageError> {
        let client = &self.ctx.client;
        let metrics = &self.ctx.metrics.usage;
        let source = self.source.label();
        let time_zone: BTreeMap<String, String> = resellers
            .iter()
            .map(|r| (r.name_any(), r.spec.business_calendar.time_zone.clone()))
            .collect();
        let tenants: Vec<Tenant> = endusers.iter().filter_map(|e| tenant(e)).collect();
        let zones: BTreeSet<String> = tenants
            .iter()
            .filter_map(|t| time_zone.get(&t.reseller).cloned())
            .collect();
        let snapshot = self.source.snapshot(at, &zones).await;
        let complete = snapshot.disk.is_some()
            && snapshot.memory.is_some()
            && snapshot.network_in.values().all(Option::is_some)
            && snapshot.network_out.values().all(Option::is_some);
        metrics
            .reports
            .with_label_values(&[source, if complete { "ok" } else { "partial" }])
            .inc();
        metrics.last_measurement.set(at.as_second());

        let mut failed = None;
        let mut per_enduser = Vec::new();
        let mut exported = BTreeSet::new();
        for t in &tenants {
            let tz = time_zone.get(&t.reseller).map(String::as_str).unwrap_or("");
            let figures = snapshot
                .figures_of(&t.hosting_namespace, tz)
                .or(Figures::from_usage(t.usage.as_ref()));
            metrics.set_enduser(&t.reseller, &t.name, &figures);
            exported.insert((t.reseller.clone(), t.name.clone()));
            per_enduser.push((t.reseller.as_str(), figures));
            let api: Api<EndUser> = Api::namespaced(client.clone(), &t.namespace);
            if let Err(error) = self
                .write(&api, &t.name, t.usage.as_ref(), figures, at)
                .await
            {
                tracing::warn!(%error, "usage write failed");
                failed = Some(error);
            }
        }
        for gone in self.endusers.difference(&exported) {
            metrics.remove_enduser(&gone.0, &gone.1);
        }
        self.endusers = exported;

        let names: Vec<String> = resellers.iter().map(|r| r.name_any()).collect();
        let base = if complete {
            figures::ZERO
        } else {
            Figures::default()
        };
        let sums = sum_by_reseller(names.iter().map(String::as_str), per_enduser, base);
        let api: Api<Reseller> = Api::all(client.clone());
        for reseller in resellers {
            let name = reseller.name_any();
            let Some(figures) = sums.get(&name) else {
                continue;
            };
            metrics.set_reseller(&name, figures);
            let current = reseller.status.as_ref().and_then(|s| s.usage.as_ref());
            if let Err(error) = self.write(&api, &name, current, *figures, at).await {
                tracing::warn!(%error, "usage write failed");
                failed = Some(error);
            }
        }
        let exported: BTreeSet<String> = names.into_iter().collect();
        for gone in self.resellers.difference(&exported) {
            metrics.remove_reseller(gone);
        }
        self.resellers = exported;
        failed.map_or(Ok(complete), Err)
    }

    /// Applies `status.usage` when the figures differ from what `current` reports.
    async fn write<K>(
        &self,
        api: &Api<K>,
        name: &str,
        current: Option<&Usage>,
        figures: Figures,
        at: Timestamp,
    ) -> Result<(), UsageError>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let measured = figures.disk.is_some()
            || figures.memory.is_some()
            || figures.network_in.is_some()
            || figures.network_out.is_some();
        if !measured || figures.reported_by(current) {
            return Ok(());
        }
        let (kind_label, owner) = if K::kind(&()) == "Reseller" {
            ("Reseller", owners::RESELLER_USAGE)
        } else {
            ("EndUser", owners::ENDUSER_USAGE)
        };
        let writes = &self.ctx.metrics.usage.status_writes;
        // Compared with what is stored above (figures within their rounding are the same).
        let usage = json!({"usage": figures.to_usage(at)});
        match owner.write(api, name, None, &usage).await {
            Ok(_) => {
                writes.with_label_values(&[kind_label, "ok"]).inc();
                Ok(())
            }
            // Deleted since it was listed: nothing to report on.
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(source) => {
                writes.with_label_values(&[kind_label, "error"]).inc();
                Err(UsageError::Write {
                    kind: kind_label,
                    name: name.to_owned(),
                    source,
                })
            }
        }
    }
}

/// What a measurement covers: every reseller and every end user whose hosting exists.
fn objects(resellers: &[Arc<Reseller>], endusers: &[Arc<EndUser>]) -> BTreeSet<String> {
    resellers
        .iter()
        .map(|r| r.name_any())
        .chain(
            endusers
                .iter()
                .filter_map(|e| tenant(e))
                .map(|t| format!("{}/{}", t.namespace, t.name)),
        )
        .collect()
}

/// The end user's reseller and hosting namespace, once its hosting exists.
fn tenant(enduser: &EndUser) -> Option<Tenant> {
    let namespace = enduser.namespace()?;
    let reseller = naming::reseller_of_namespace(&namespace)?.to_owned();
    let status = enduser.status.as_ref()?;
    let hosting_namespace = status.hosting_namespace.clone()?;
    Some(Tenant {
        reseller,
        name: enduser.name_any(),
        namespace,
        hosting_namespace,
        usage: status.usage.clone(),
    })
}

/// How long from `now` until the measurement after `at`.
fn until_next(now: Timestamp, at: Timestamp, interval: Duration) -> Duration {
    let next = at.as_millisecond() + interval.as_millis() as i64;
    let left = next - now.as_millisecond();
    Duration::from_millis(left.clamp(1, interval.as_millis() as i64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_measurement_is_at_the_next_aligned_instant() {
        let now: Timestamp = "2026-11-26T01:43:14Z".parse().unwrap();
        let five = Duration::from_secs(300);
        let at = measurement_instant(now, five);
        assert_eq!(until_next(now, at, five), Duration::from_secs(106));
    }

    #[test]
    fn an_end_user_without_hosting_has_nothing_to_measure() {
        let mut enduser: EndUser = serde_json::from_value(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "EndUser",
            "metadata": {"name": "alice", "namespace": "reseller-acme"},
            "spec": {
                "loginId": "alice", "contractName": "Alice", "contactEmail": "a@example.jp",
                "courseRef": {"name": "basic"}, "domains": [],
                "contractDate": "2025-01-01", "startDate": "2099-01-01"
            }
        }))
        .unwrap();
        assert!(tenant(&enduser).is_none());
        enduser.status =
            Some(serde_json::from_value(json!({"hostingNamespace": "h-acme-alice-1"})).unwrap());
        let t = tenant(&enduser).unwrap();
        assert_eq!(
            (t.reseller.as_str(), t.hosting_namespace.as_str()),
            ("acme", "h-acme-alice-1")
        );
    }
}
