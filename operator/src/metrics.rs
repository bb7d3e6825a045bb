//! Reconcile metrics: how many, how long, how many failed and why (by error class).

use std::time::Instant;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// The controllers' metrics, registered once and shared through the context.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: IntCounterVec,
    pub failures: IntCounterVec,
    pub duration: HistogramVec,
    pub writes: IntCounterVec,
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
