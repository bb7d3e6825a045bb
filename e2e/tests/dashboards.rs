//! The chart's Grafana dashboards: their datasource is the `${datasource}` variable
//! everywhere (never a fixed uid), and every panel query returns data from a Prometheus that
//! scrapes the real operator — running under the chart's role, monitoring a reseller's end
//! users and reporting their usage from a second Prometheus holding backfilled kubelet and
//! cAdvisor series. Panels on incident metrics have data only once incidents exist: they are
//! listed as pending here, and the incidents test runs `oem_e2e::dashboards::run_all` too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use oem_e2e::dashboards::{self, PanelQuery};
use oem_e2e::hosting::{self, apply_course, apply_enduser, apply_reseller};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::prometheus::{Prometheus, PrometheusOptions, ScrapeTarget};
use oem_e2e::{Cluster, wait};
use oem_operator::alerting::rules;
use oem_operator::naming::hosting_namespace;
use serde_json::json;

#[test]
fn every_dashboard_takes_its_datasource_from_a_variable() -> anyhow::Result<()> {
    let all = dashboards::load_all()?;
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["operator-health.json", "reseller.json", "sre-overview.json"]
    );
    for (name, d) in &all {
        let vars = d["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let datasource = vars
            .iter()
            .find(|v| v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{name}: no datasource variable"));
        assert_eq!(datasource["type"], "datasource", "{name}");
        assert_eq!(datasource["query"], "prometheus", "{name}");
        let mut ids = BTreeSet::new();
        for panel in dashboards::panels(d) {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(
                ids.insert(panel["id"].to_string()),
                "{name}: duplicate panel id at {title}"
            );
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{name} / {title}"
            );
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{name} / {title}: no query");
            for t in targets {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{name} / {title}");
            }
        }
        // No datasource uid other than the variable anywhere in the file.
        let text = serde_json::to_string(d)?;
        let uids = text.matches("\"uid\":\"").count();
        let variable_uids = text.matches("\"uid\":\"${datasource}\"").count();
        assert_eq!(
            uids - variable_uids,
            1,
            "{name}: only the dashboard's own uid is fixed"
        );
    }
    let reseller = &all[1].1;
    let var = reseller["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == "reseller");
    assert!(
        var.is_some(),
        "the reseller dashboard has a reseller variable"
    );
    Ok(())
}

/// Kubelet and cAdvisor series for the end users' namespaces: a minute apart over the last
/// half hour, up to a minute ago.
fn usage_series(namespaces: &[String]) -> String {
    let now = Timestamp::now().as_second();
    let mut text = String::new();
    let mut family = |name: &str, kind: &str, sample: &dyn Fn(&str, i64) -> String| {
        let _ = writeln!(text, "# TYPE {name} {kind}");
        for ns in namespaces {
            for i in 0..30 {
                let ts = now - 1800 + i * 60;
                let _ = writeln!(text, "{} {ts}", sample(ns, i));
            }
        }
    };
    family("kubelet_volume_stats_used_bytes", "gauge", &|ns, _| {
        format!(
            "kubelet_volume_stats_used_bytes{{namespace=\"{ns}\",persistentvolumeclaim=\"data-web-0\"}} 1073741824"
        )
    });
    family("container_memory_working_set_bytes", "gauge", &|ns, _| {
        format!(
            "container_memory_working_set_bytes{{namespace=\"{ns}\",pod=\"web-0\",container=\"php\"}} 268435456"
        )
    });
    family("container_network_receive_bytes", "counter", &|ns, i| {
        format!(
            "container_network_receive_bytes_total{{namespace=\"{ns}\",pod=\"web-0\",interface=\"eth0\"}} {}",
            i * 1000
        )
    });
    family("container_network_transmit_bytes", "counter", &|ns, i| {
        format!(
            "container_network_transmit_bytes_total{{namespace=\"{ns}\",pod=\"web-0\",interface=\"eth0\"}} {}",
            i * 3000
        )
    });
    text.push_str("# EOF\n");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_panel_returns_data_from_the_operator() -> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = Cluster::shared().await?;
    let client = cluster.client().await?;
    let reseller = format!("dash{}", std::process::id() % 100_000);
    let endusers = ["alice", "bob"];
    let namespaces: Vec<String> = endusers
        .iter()
        .map(|e| hosting_namespace(&reseller, e))
        .collect();

    // The usage source: kubelet and cAdvisor series the operator reads.
    let source = Prometheus::start(PrometheusOptions {
        backfill_openmetrics: Some(usage_series(&namespaces)),
        ..PrometheusOptions::default()
    })
    .await?;
    let env = [
        ("OEM_PROMETHEUS_URL", source.url()),
        // Usage from that Prometheus; alerts from the monitor's history.
        ("OEM_ALERT_SOURCE", "embedded".into()),
        ("OEM_USAGE_INTERVAL", "5s".into()),
        ("OEM_USAGE_REFRESH_INTERVAL", "1s".into()),
        ("OEM_PROBE_INTERVAL", "2s".into()),
        ("OEM_PROBE_RETRY_INTERVAL", "1s".into()),
        ("OEM_PROBE_TIMEOUT", "1s".into()),
        ("OEM_PROBE_ALLOW", "127.0.0.0/8".into()),
        ("OEM_RESYNC_INTERVAL", "5s".into()),
    ];
    let operator = Operator::start(
        cluster,
        OperatorOptions {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Default::default()
        },
    )
    .await?;
    // The dashboards' datasource: scrapes the operator every second and evaluates the chart's
    // rules file (its availability recording rules every second too).
    let rules_dir = tempfile::tempdir()?;
    let rules_file = rules_dir.path().join("alert-rules.yaml");
    let values = [("availabilityInterval".to_owned(), "1s".to_owned())].into();
    std::fs::write(
        &rules_file,
        rules::render(rules::DEFAULT_RULES, &values).map_err(anyhow::Error::msg)?,
    )?;
    let prometheus = Prometheus::start(PrometheusOptions {
        scrape: vec![ScrapeTarget::new("oem-operator", &operator.http_addr)],
        rule_files: vec![rules_file],
        ..PrometheusOptions::default()
    })
    .await?;

    let ns = apply_reseller(&client, hosting::reseller(&reseller, json!([]))).await?;
    apply_course(
        &client,
        hosting::course(&ns, "basic", "1Gi", hosting::web_and_db()),
    )
    .await?;
    for name in endusers {
        apply_enduser(
            &client,
            hosting::enduser(&ns, name, "basic", "2025-01-01", json!({})),
        )
        .await?;
    }

    // The reseller variable's query finds the reseller.
    let variable = wait::until(
        "the reseller variable to list the reseller",
        Duration::from_secs(90),
        Duration::from_secs(1),
        || async {
            let samples = prometheus
                .query("oem_reseller_usage_disk_bytes")
                .await
                .map_err(|e| e.to_string())?;
            let found: BTreeSet<String> = samples
                .iter()
                .filter_map(|s| s.labels.get("reseller").cloned())
                .collect();
            if found.contains(&reseller) {
                Ok(found)
            } else {
                Err(format!("label_values: {found:?}"))
            }
        },
    )
    .await
    .map_err(|e| e.context(format!("operator log:\n{}", operator.log_tail(20))))?;

    let mut vars = dashboards::builtin_variables();
    vars.insert("reseller".into(), reseller.clone());
    vars.insert("datasource".into(), "prometheus".into());
    // Incidents and certificates have data only once they exist (kwok's pods serve no TLS):
    // incidents.rs and https_real.rs read those panels with data.
    let pending = |r: &PanelQuery| r.on_incident_metrics() || r.on_certificate_metrics();
    let results = wait::until(
        "every non-incident panel to return data",
        Duration::from_secs(120),
        Duration::from_secs(2),
        || async {
            let results = dashboards::run_all(&prometheus, &vars)
                .await
                .map_err(|e| e.to_string())?;
            let missing: Vec<&PanelQuery> = results
                .iter()
                .filter(|r| !pending(r) && !r.has_data())
                .collect();
            if missing.is_empty() {
                Ok(results)
            } else {
                Err(dashboards::report(
                    &missing.into_iter().cloned().collect::<Vec<_>>(),
                ))
            }
        },
    )
    .await?;

    // Incident panels: the queries must still be valid PromQL.
    let broken: Vec<&PanelQuery> = results.iter().filter(|r| r.error.is_some()).collect();
    assert!(broken.is_empty(), "{}", dashboards::report(&results));
    let (incident, other): (Vec<&PanelQuery>, Vec<&PanelQuery>) =
        results.iter().partition(|r| pending(r));
    println!("{}", dashboards::report(&results));
    let mut per_dashboard: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &results {
        *per_dashboard.entry(r.dashboard.as_str()).or_default() += 1;
    }
    println!(
        "dashboards e2e: {} queries with data, {} on incident or certificate metrics pending (none in this test): {}; \
         queries per dashboard {per_dashboard:?}; reseller variable {variable:?}; {:.1}s",
        other.len(),
        incident.len(),
        incident
            .iter()
            .map(|r| format!("{} / {}", r.dashboard, r.panel))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed().as_secs_f64()
    );
    assert!(
        other.len() >= 30,
        "only {} non-incident queries",
        other.len()
    );
    Ok(())
}
