//! Prometheus mode with Prometheus hung (SIGSTOP) during an outage, before its notice: the
//! operator cannot read alerts, so the open incident is frozen — no restart, no notice at the
//! scaled 10 minutes, not resolved — and says so (`AlertSourceReadable` False,
//! `oem_alert_source_up{mode="prometheus"} 0`). Prometheus continued with the server still
//! down: the notice goes out and the condition turns True; the server back: resolved.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::probes_support::daemons;
use crate::{Mode, SERIAL, TEN_MINUTES, bench, events, text};

fn source_condition(v: &Value) -> String {
    v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "AlertSourceReadable")
        .map(|c| text(c, &["status"]))
        .unwrap_or_default()
}

fn restarts(v: &Value) -> usize {
    events(v).iter().filter(|e| *e == "Restarted").count()
}

#[tokio::test]
async fn prometheus_mode_a_hung_prometheus_freezes_the_outage_until_it_answers()
-> anyhow::Result<()> {
    let _one = SERIAL.lock().await;
    let mut bench = bench(Mode::Prometheus, "f", false, false).await?;
    let prometheus = bench
        .prometheus
        .take()
        .ok_or_else(|| anyhow::anyhow!("Prometheus mode runs a Prometheus"))?;
    bench.wait_db_up().await?;

    let clock = Instant::now();
    bench.hung = Some(daemons::hang_postgres().map_err(anyhow::Error::msg)?);
    bench
        .wait_incident(
            "postgresql",
            "ServiceDown",
            "the incident to open",
            Duration::from_secs(20),
            |_| true,
        )
        .await?;
    prometheus.pause()?;
    eprintln!(
        "[frozen] Prometheus hung {:?} after the outage began",
        clock.elapsed()
    );
    let frozen = bench
        .wait_incident(
            "postgresql",
            "ServiceDown",
            "AlertSourceReadable False",
            Duration::from_secs(30),
            |v| source_condition(v) == "False",
        )
        .await?;
    let frozen = serde_json::to_value(&frozen)?;
    let restarts_frozen = restarts(&frozen);
    let metrics = bench.operator.metrics().await?;
    anyhow::ensure!(
        metrics.contains("oem_alert_source_up{mode=\"prometheus\"} 0"),
        "the metric does not show the unreadable source"
    );
    // Past the scaled 10 minutes from the first failure, with margin.
    let past_notice = (TEN_MINUTES + Duration::from_secs(10)).saturating_sub(clock.elapsed());
    tokio::time::sleep(past_notice).await;
    let held = bench
        .wait_incident(
            "postgresql",
            "ServiceDown",
            "the frozen incident",
            Duration::from_secs(5),
            |_| true,
        )
        .await?;
    let held = serde_json::to_value(&held)?;
    anyhow::ensure!(
        held["status"]["notifiedAt"].is_null()
            && held["status"]["notifications"]
                .as_array()
                .is_none_or(Vec::is_empty),
        "a notice was decided while the source could not be read: {}",
        held["status"]
    );
    anyhow::ensure!(
        restarts(&held) == restarts_frozen && held["status"]["resolvedAt"].is_null(),
        "the frozen incident moved: {}",
        held["status"]
    );
    anyhow::ensure!(
        bench.mails("outage")?.is_empty(),
        "an outage mail went out while frozen"
    );
    eprintln!(
        "[frozen] {:?} after the outage began: no notice, {} restart(s) as before the hang",
        clock.elapsed(),
        restarts_frozen
    );

    prometheus.resume()?;
    let resumed = Instant::now();
    let notified = bench
        .wait_incident(
            "postgresql",
            "ServiceDown",
            "the notice once Prometheus answers",
            Duration::from_secs(40),
            |v| !v["status"]["notifiedAt"].is_null() && source_condition(v) == "True",
        )
        .await?;
    eprintln!(
        "[frozen] notified {:?} after Prometheus answered again",
        resumed.elapsed()
    );
    let notified = serde_json::to_value(&notified)?;
    anyhow::ensure!(
        notified["status"]["resolvedAt"].is_null(),
        "the outage went on while Prometheus was hung: {}",
        notified["status"]
    );
    if let Some(hung) = bench.hung.take() {
        hung.resume().map_err(anyhow::Error::msg)?;
    }
    bench
        .wait_incident(
            "postgresql",
            "ServiceDown",
            "Resolved",
            Duration::from_secs(30),
            |v| text(v, &["status", "phase"]) == "Resolved",
        )
        .await?;
    bench.retire().await
}
