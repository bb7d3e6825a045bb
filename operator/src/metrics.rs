//! Reconcile metrics: how many, how long, how many failed and why (by error class); and the
//! monitor's: each target's last probe result, duration and certificate expiry, and how many
//! probes the engine runs.

use std::sync::Arc;
use std::time::Instant;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::gauges::Families;
use crate::monitor::results::ProbeResults;

/// The controllers' metrics, registered once and shared through the context.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: IntCounterVec,
    pub failures: IntCounterVec,
    pub duration: HistogramVec,
    pub writes: IntCounterVec,
    /// Reconciles running now, by controller: how busy each controller's queue is.
    pub in_flight: IntGaugeVec,
    pub probes: ProbeMetrics,
    pub usage: crate::usage::metrics::UsageMetrics,
    pub alerting: crate::alerting::metrics::AlertingMetrics,
    /// The families with a series per tenant, written beside the registry's (`gauges.rs`).
    pub families: Families,
}

/// The controllers whose reconciles are counted.
pub const CONTROLLERS: [&str; 3] = ["reseller", "course", "enduser"];

/// The monitor's metrics (DESIGN "Monitoring").
#[derive(Clone)]
pub struct ProbeMetrics {
    /// Each target's last result: whether it succeeded, how long it took, and the time left
    /// on its TLS certificate (`oem_probe_success`, `oem_probe_duration_seconds`,
    /// `oem_tls_cert_expiry_seconds`).
    pub results: ProbeResults,
    /// Probes run, by service and result (`up` or the failure kind): the engine's load.
    pub run: IntCounterVec,
    /// Targets currently scheduled.
    pub targets: IntGauge,
    /// `EndUser.status.services` writes by the monitor.
    pub status_writes: IntCounterVec,
}

impl ProbeMetrics {
    fn register(registry: &Registry, families: &Families) -> prometheus::Result<Self> {
        let results = ProbeResults::default();
        families
            .expose(Arc::new(results.clone()))
            .map_err(prometheus::Error::Msg)?;
        let run = IntCounterVec::new(
            Opts::new(
                "oem_probes_total",
                "Probes run, by service and result (up, or the failure kind)",
            ),
            &["service", "result"],
        )?;
        let targets = IntGauge::new("oem_probe_targets", "Targets the monitor schedules")?;
        let status_writes = IntCounterVec::new(
            Opts::new(
                "oem_monitor_status_writes_total",
                "EndUser status.services writes by the monitor, by result",
            ),
            &["result"],
        )?;
        registry.register(Box::new(run.clone()))?;
        registry.register(Box::new(targets.clone()))?;
        registry.register(Box::new(status_writes.clone()))?;
        Ok(Self {
            results,
            run,
            targets,
            status_writes,
        })
    }
}

impl Metrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let reconciles = IntCounterVec::new(
            Opts::new("oem_reconcile_total", "Reconciles run, by controller"),
            &["controller"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "oem_reconcile_errors_total",
                "Reconciles that failed, by controller and error class",
            ),
            &["controller", "class"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "oem_reconcile_duration_seconds",
                "Time spent in one reconcile, by controller",
            )
            .buckets(vec![0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["controller"],
        )?;
        let writes = IntCounterVec::new(
            Opts::new(
                "oem_object_writes_total",
                "Objects created or changed by server-side apply, by kind",
            ),
            &["kind"],
        )?;
        let in_flight = IntGaugeVec::new(
            Opts::new(
                "oem_reconciles_in_flight",
                "Reconciles running now, by controller",
            ),
            &["controller"],
        )?;
        // Every controller's series exist from the start (at 0), so rates and error panels
        // show 0 instead of nothing before the first reconcile or failure.
        for controller in CONTROLLERS {
            reconciles.with_label_values(&[controller]);
            in_flight.with_label_values(&[controller]);
            for class in ["spec", "transient"] {
                failures.with_label_values(&[controller, class]);
            }
        }
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        let families = Families::default();
        Ok(Self {
            reconciles,
            failures,
            duration,
            writes,
            in_flight,
            probes: ProbeMetrics::register(registry, &families)?,
            usage: crate::usage::metrics::UsageMetrics::register(registry, &families)?,
            alerting: crate::alerting::metrics::AlertingMetrics::register(registry, &families)?,
            families,
        })
    }

    /// Starts timing a reconcile of `controller`; the time is recorded when the guard drops.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer {
        self.reconciles.with_label_values(&[controller]).inc();
        let in_flight = self.in_flight.with_label_values(&[controller]);
        in_flight.inc();
        ReconcileTimer {
            histogram: self.duration.with_label_values(&[controller]),
            in_flight,
            start: Instant::now(),
        }
    }

    pub fn failed(&self, controller: &'static str, class: &'static str) {
        self.failures.with_label_values(&[controller, class]).inc();
    }
}

pub struct ReconcileTimer {
    histogram: prometheus::Histogram,
    in_flight: prometheus::IntGauge,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.in_flight.dec();
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconcile_is_in_flight_until_its_timer_drops() {
        let metrics = Metrics::register(&Registry::new()).unwrap();
        let in_flight = || metrics.in_flight.with_label_values(&["enduser"]).get();
        let timer = metrics.reconcile("enduser");
        assert_eq!(in_flight(), 1);
        drop(timer);
        assert_eq!(in_flight(), 0);
        assert_eq!(metrics.reconciles.with_label_values(&["enduser"]).get(), 1);
    }

    #[test]
    fn error_series_exist_at_zero_before_any_failure() {
        let registry = Registry::new();
        Metrics::register(&registry).unwrap();
        let errors = registry
            .gather()
            .into_iter()
            .find(|f| f.name() == "oem_reconcile_errors_total")
            .unwrap();
        assert_eq!(errors.get_metric().len(), CONTROLLERS.len() * 2);
    }
}
