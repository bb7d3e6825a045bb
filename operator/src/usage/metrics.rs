//! The usage figures as Prometheus metrics, for Grafana: per end user and per reseller, plus
//! how the reporter itself fares. Labels are names only, never anything secret.

use prometheus::{GaugeVec, IntCounterVec, IntGauge, Opts, Registry};

use super::figures::Figures;

/// Which figure of the four a gauge pair exports.
type Pick = fn(&Figures) -> Option<f64>;

/// One figure's gauge per end user and per reseller.
#[derive(Clone)]
struct Pair {
    enduser: GaugeVec,
    reseller: GaugeVec,
}

#[derive(Clone)]
pub struct UsageMetrics {
    disk: Pair,
    memory: Pair,
    network_in: Pair,
    network_out: Pair,
    /// Measurements, by source (`prometheus`, `cluster`) and result (`ok`, `partial`, `error`).
    pub reports: IntCounterVec,
    /// `status.usage` writes, by kind and result.
    pub status_writes: IntCounterVec,
    /// The instant the last measurement stood for (Unix seconds).
    pub last_measurement: IntGauge,
}

impl UsageMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let pair = |what: &str, help: &str| -> prometheus::Result<Pair> {
            let enduser = GaugeVec::new(
                Opts::new(format!("oem_usage_{what}"), format!("{help}, per end user")),
                &["reseller", "enduser"],
            )?;
            let reseller = GaugeVec::new(
                Opts::new(
                    format!("oem_reseller_usage_{what}"),
                    format!("{help}, summed per reseller"),
                ),
                &["reseller"],
            )?;
            registry.register(Box::new(enduser.clone()))?;
            registry.register(Box::new(reseller.clone()))?;
            Ok(Pair { enduser, reseller })
        };
        let reports = IntCounterVec::new(
            Opts::new(
                "oem_usage_reports_total",
                "Usage measurements, by source and result",
            ),
            &["source", "result"],
        )?;
        let status_writes = IntCounterVec::new(
            Opts::new(
                "oem_usage_status_writes_total",
                "status.usage writes by the usage reporter, by kind and result",
            ),
            &["kind", "result"],
        )?;
        let last_measurement = IntGauge::new(
            "oem_usage_last_measurement_timestamp_seconds",
            "The instant the last usage measurement stands for",
        )?;
        registry.register(Box::new(reports.clone()))?;
        registry.register(Box::new(status_writes.clone()))?;
        registry.register(Box::new(last_measurement.clone()))?;
        Ok(Self {
            disk: pair("disk_bytes", "Bytes used on the hosting's volumes")?,
            memory: pair(
                "memory_bytes",
                "Working-set bytes of the hosting's containers",
            )?,
            network_in: pair(
                "network_receive_bytes",
                "Bytes received in the current accounting period",
            )?,
            network_out: pair(
                "network_transmit_bytes",
                "Bytes sent in the current accounting period",
            )?,
            reports,
            status_writes,
            last_measurement,
        })
    }

    fn each(&self) -> [(&Pair, Pick); 4] {
        [
            (&self.disk, |f| f.disk),
            (&self.memory, |f| f.memory),
            (&self.network_in, |f| f.network_in),
            (&self.network_out, |f| f.network_out),
        ]
    }

    pub fn set_enduser(&self, reseller: &str, enduser: &str, figures: &Figures) {
        for (pair, pick) in self.each() {
            match pick(figures) {
                Some(v) => pair.enduser.with_label_values(&[reseller, enduser]).set(v),
                None => {
                    let _ = pair.enduser.remove_label_values(&[reseller, enduser]);
                }
            }
        }
    }

    pub fn remove_enduser(&self, reseller: &str, enduser: &str) {
        for (pair, _) in self.each() {
            let _ = pair.enduser.remove_label_values(&[reseller, enduser]);
        }
    }

    pub fn set_reseller(&self, reseller: &str, figures: &Figures) {
        for (pair, pick) in self.each() {
            match pick(figures) {
                Some(v) => pair.reseller.with_label_values(&[reseller]).set(v),
                None => {
                    let _ = pair.reseller.remove_label_values(&[reseller]);
                }
            }
        }
    }

    pub fn remove_reseller(&self, reseller: &str) {
        for (pair, _) in self.each() {
            let _ = pair.reseller.remove_label_values(&[reseller]);
        }
    }
}
