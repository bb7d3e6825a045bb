//! The reseller's usage charts against a real Prometheus: the operator's usage series
//! (`oem_reseller_usage_*`, `oem_usage_*`, the names `operator/src/usage/metrics.rs` exports)
//! backfilled with promtool a few hours back, the panel configured with that Prometheus, and
//! the usage page read as the reseller: the total's chart over time, one end user's chart, and
//! never another reseller's series, whatever the query string names.

use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use oem_e2e::Cluster;
use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::panel::{Panel, PanelClient, issued_reseller_password};
use oem_e2e::prometheus::{Prometheus, PrometheusOptions};
use serde_json::json;

const GI: f64 = 1024.0 * 1024.0 * 1024.0;
const MI: f64 = 1024.0 * 1024.0;

/// Two hours of samples, one a minute, ending three hours ago (older than Prometheus's head,
/// so promtool may write them as blocks): the reseller's disk is 3 GiB for the first half
/// hour and 1 GiB after, its end user shop's 512 MiB throughout, another reseller's 9 GiB.
fn backfill(mine: &str, other: &str, end: i64) -> String {
    let mut text = String::new();
    let series = [
        (
            "oem_reseller_usage_disk_bytes",
            format!("reseller=\"{mine}\""),
            Box::new(move |ts: i64| if ts <= end - 5400 { 3.0 * GI } else { GI })
                as Box<dyn Fn(i64) -> f64>,
        ),
        (
            "oem_reseller_usage_disk_bytes",
            format!("reseller=\"{other}\""),
            Box::new(|_| 9.0 * GI),
        ),
        (
            "oem_usage_disk_bytes",
            format!("reseller=\"{mine}\",enduser=\"shop\""),
            Box::new(|_| 512.0 * MI),
        ),
    ];
    let mut typed = std::collections::BTreeSet::new();
    for (name, labels, value) in &series {
        if typed.insert(*name) {
            let _ = writeln!(text, "# TYPE {name} gauge");
        }
        for ts in (end - 7200..=end).step_by(60) {
            let _ = writeln!(text, "{name}{{{labels}}} {} {ts}", value(ts));
        }
    }
    text.push_str("# EOF\n");
    text
}

#[tokio::test]
async fn the_usage_page_charts_the_resellers_series_from_prometheus() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let _operator = Operator::start(
        cluster,
        OperatorOptions {
            env: vec![
                ("OEM_MONITOR_ENABLED".into(), "false".into()),
                ("OEM_SPEC_RETRY".into(), "3s".into()),
            ],
            ..Default::default()
        },
    )
    .await?;
    let client = cluster.client().await?;
    let id = std::process::id() % 100000;
    let (mine, other) = (format!("chm{id}"), format!("cho{id}"));
    let namespace = hosting::reseller_with_namespace(&client, &mine, json!([])).await?;
    hosting::reseller_with_namespace(&client, &other, json!([])).await?;
    apply_course(
        &client,
        hosting::course(&namespace, "standard", "1Gi", hosting::web_and_db()),
    )
    .await?;
    apply_enduser(
        &client,
        hosting::enduser(&namespace, "shop", "standard", "2025-01-01", json!({})),
    )
    .await?;

    // The series end three hours ago, on a whole minute.
    let end = (Timestamp::now().as_second() / 60) * 60 - 3 * 3600;
    let prometheus = Prometheus::start(PrometheusOptions {
        scrape_interval: Duration::from_secs(5),
        evaluation_interval: Duration::from_secs(5),
        backfill_openmetrics: Some(backfill(&mine, &other, end)),
        ..PrometheusOptions::default()
    })
    .await?;
    let probe = prometheus
        .query_at("oem_reseller_usage_disk_bytes", end as f64)
        .await?;
    anyhow::ensure!(probe.len() == 2, "the backfill is not queryable: {probe:?}");

    let panel = Panel::start(
        cluster,
        &format!("resellers: {{prometheusUrl: \"{}\"}}\n", prometheus.url()),
    )
    .await?;
    let password = issued_reseller_password(&client, &mine).await?;
    let browser = PanelClient::new(&panel.url)?;
    let signed = browser.reseller_login(&mine, "admin", &password).await?;
    anyhow::ensure!(signed.status == 303, "sign-in: {}", signed.status);

    // The total: 3 GiB early in the window, 1 GiB at its end.
    let total = browser.get(&format!("/r/{mine}/usage")).await?;
    assert_eq!(total.status, 200);
    assert!(
        total.body.contains("max 3.0 GiB, latest 1.0 GiB"),
        "the reseller's disk over time:\n{}\n{}",
        total.body,
        panel.log_tail(20)
    );
    let polyline = total
        .body
        .split("<polyline points=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default();
    assert!(
        polyline.split(' ').count() >= 2,
        "a line of at least two points: {polyline:?}"
    );
    assert!(!total.body.contains("9.0 GiB"), "another reseller's series");
    assert!(!total.body.contains("class=\"error\""), "{}", total.body);

    // One end user's chart; a name that is not this reseller's end user charts the total.
    let shop = browser
        .get(&format!("/r/{mine}/usage?enduser=shop"))
        .await?;
    assert!(
        shop.body.contains("max 512.0 MiB, latest 512.0 MiB"),
        "shop's disk:\n{}",
        shop.body
    );
    let foreign = browser
        .get(&format!(
            "/r/{mine}/usage?enduser=shop%22%2Creseller%3D%22{other}"
        ))
        .await?;
    assert!(foreign.body.contains("max 3.0 GiB, latest 1.0 GiB"));
    assert!(
        !foreign.body.contains("9.0 GiB"),
        "another reseller's series"
    );
    Ok(())
}
