//! The usage figures as Prometheus metrics, for Grafana: per end user and per reseller, plus
//! how the reporter itself fares. Labels are names only, never anything secret.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use super::figures::Figures;
use crate::gauges::{Families, Gauges};

/// Which figure of the four a gauge pair exports.
type Pick = fn(&Figures) -> Option<f64>;

/// One figure's gauge per end user and per reseller.
#[derive(Clone)]
struct Pair {
    enduser: Gauges,
    reseller: Gauges,
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
    pub fn register(registry: &Registry, families: &Families) -> prometheus::Result<Self> {
        let pair = |enduser: [&'static str; 2], reseller: [&'static str; 2]| {
            Ok::<_, prometheus::Error>(Pair {
                enduser: families
                    .gauges(enduser[0], enduser[1], &["reseller", "enduser"])
                    .map_err(prometheus::Error::Msg)?,
                reseller: families
                    .gauges(reseller[0], reseller[1], &["reseller"])
                    .map_err(prometheus::Error::Msg)?,
            })
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
            disk: pair(
                [
                    "oem_usage_disk_bytes",
                    "Bytes used on the hosting's volumes, per end user",
                ],
                [
                    "oem_reseller_usage_disk_bytes",
                    "Bytes used on the hosting's volumes, summed per reseller",
                ],
            )?,
            memory: pair(
                [
                    "oem_usage_memory_bytes",
                    "Working-set bytes of the hosting's containers, per end user",
                ],
                [
                    "oem_reseller_usage_memory_bytes",
                    "Working-set bytes of the hosting's containers, summed per reseller",
                ],
            )?,
            network_in: pair(
                [
                    "oem_usage_network_receive_bytes",
                    "Bytes received in the current accounting period, per end user",
                ],
                [
                    "oem_reseller_usage_network_receive_bytes",
                    "Bytes received in the current accounting period, summed per reseller",
                ],
            )?,
            network_out: pair(
                [
                    "oem_usage_network_transmit_bytes",
                    "Bytes sent in the current accounting period, per end user",
                ],
                [
                    "oem_reseller_usage_network_transmit_bytes",
                    "Bytes sent in the current accounting period, summed per reseller",
                ],
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
                Some(v) => pair.enduser.set(&[reseller, enduser], v),
                None => pair.enduser.remove(&[reseller, enduser]),
            }
        }
    }

    pub fn remove_enduser(&self, reseller: &str, enduser: &str) {
        for (pair, _) in self.each() {
            pair.enduser.remove(&[reseller, enduser]);
        }
    }

    pub fn set_reseller(&self, reseller: &str, figures: &Figures) {
        for (pair, pick) in self.each() {
            match pick(figures) {
                Some(v) => pair.reseller.set(&[reseller], v),
                None => pair.reseller.remove(&[reseller]),
            }
        }
    }

    pub fn remove_reseller(&self, reseller: &str) {
        for (pair, _) in self.each() {
            pair.reseller.remove(&[reseller]);
        }
    }
}
