//! Reconcile metrics: how many, how long, how many failed and why (by error class); and the
//! monitor's: each target's last probe result, duration and certificate expiry, and how many
//! probes the engine runs.

use std::time::Instant;

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

/// The controllers' metrics, registered once and shared through the context.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: IntCounterVec,
    pub failures: IntCounterVec,
    pub duration: HistogramVec,
    pub writes: IntCounterVec,
    pub probes: ProbeMetrics,
    pub alerting: crate::alerting::metrics::AlertingMetrics,
}

/// Labels of the per-target probe series: never anything secret.
pub const PROBE_LABELS: [&str; 4] = ["reseller", "enduser", "service", "host"];

/// The monitor's metrics (DESIGN "Monitoring").
#[derive(Clone)]
pub struct ProbeMetrics {
    /// 1 when the target's last probe succeeded, else 0.
    pub success: GaugeVec,
    /// How long the target's last probe took.
    pub duration: GaugeVec,
    /// Seconds until the target's TLS certificate expires (negative once expired).
    pub tls_cert_expiry: GaugeVec,
    /// Probes run, by service and result (`up` or the failure kind): the engine's load.
    pub run: IntCounterVec,
    /// Targets currently scheduled.
    pub targets: IntGauge,
    /// `EndUser.status.services` writes by the monitor.
    pub status_writes: IntCounterVec,
}

impl ProbeMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| GaugeVec::new(Opts::new(name, help), &PROBE_LABELS);
        let success = gauge(
            "oem_probe_success",
            "1 when the last probe of the target succeeded, else 0",
        )?;
        let duration = gauge(
            "oem_probe_duration_seconds",
            "Duration of the last probe of the target",
        )?;
        let tls_cert_expiry = gauge(
            "oem_tls_cert_expiry_seconds",
            "Seconds until the target's TLS certificate expires (negative once expired)",
        )?;
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
        registry.register(Box::new(success.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(tls_cert_expiry.clone()))?;
        registry.register(Box::new(run.clone()))?;
        registry.register(Box::new(targets.clone()))?;
        registry.register(Box::new(status_writes.clone()))?;
        Ok(Self {
            success,
            duration,
            tls_cert_expiry,
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
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        Ok(Self {
            reconciles,
            failures,
            duration,
            writes,
            probes: ProbeMetrics::register(registry)?,
            alerting: crate::alerting::metrics::AlertingMetrics::register(registry)?,
        })
    }

    /// Starts timing a reconcile of `controller`; the time is recorded when the guard drops.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer {
        self.reconciles.with_label_values(&[controller]).inc();
        ReconcileTimer {
            histogram: self.duration.with_label_values(&[controller]),
            start: Instant::now(),
        }
    }

    pub fn failed(&self, controller: &'static str, class: &'static str) {
        self.failures.with_label_values(&[controller, class]).inc();
    }
}

pub struct ReconcileTimer {
    histogram: prometheus::Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}
