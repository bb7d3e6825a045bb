//! The chart's Grafana dashboards as the tests see them: every panel query, with Grafana's
//! variables substituted, run against a given Prometheus, reporting per panel whether data
//! came back. Reusable: the incidents test runs it once incidents exist, to see the incident
//! panels fill too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use crate::cluster::repo_root;
use crate::prometheus::Prometheus;

/// Metrics of the incident controller: panels on them have data only once incidents exist.
pub const INCIDENT_METRICS: [&str; 3] = [
    "oem_incident",
    "oem_notifications_total",
    "oem_remediations_total",
];

/// The folder of the chart's dashboards.
pub fn dashboards_dir() -> PathBuf {
    repo_root().join("charts/oem-hosting/dashboards")
}

/// One query of one panel and what it returned.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub dashboard: String,
    pub panel: String,
    pub ref_id: String,
    /// As written in the dashboard.
    pub expr: String,
    /// As sent, variables substituted.
    pub promql: String,
    /// Series returned (0: no data).
    pub series: usize,
    /// Prometheus's error, when the query failed.
    pub error: Option<String>,
}

/// The monitor's certificate-expiry gauge.
pub const CERTIFICATE_METRIC: &str = "oem_tls_cert_expiry_seconds";

impl PanelQuery {
    pub fn has_data(&self) -> bool {
        self.error.is_none() && self.series > 0
    }

    /// Whether the query reads incident metrics (data only once incidents exist).
    pub fn on_incident_metrics(&self) -> bool {
        INCIDENT_METRICS.iter().any(|m| self.expr.contains(m))
    }

    /// Whether the query reads certificate expiry (data only once a TLS service answers with
    /// a certificate the monitor trusts: on the real node, `https_real`).
    pub fn on_certificate_metrics(&self) -> bool {
        self.expr.contains(CERTIFICATE_METRIC)
    }
}

/// A dashboard file, parsed.
pub fn load(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Every dashboard of the chart: (file name, dashboard).
pub fn load_all() -> anyhow::Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dashboards_dir())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, load(&path)?));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Every panel, rows' nested panels included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            if panel["type"] == "row" {
                walk(&panel["panels"], out);
            } else {
                out.push(panel);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// (panel title, refId, expression) of every query.
pub fn queries(dashboard: &Value) -> Vec<(String, String, String)> {
    panels(dashboard)
        .into_iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |t| {
                    let expr = t["expr"].as_str()?.to_owned();
                    let ref_id = t["refId"].as_str().unwrap_or_default().to_owned();
                    Some((title.clone(), ref_id, expr))
                })
        })
        .collect()
}

/// Grafana's variables as Prometheus would see them: `$name`, `${name}`, `${name:fmt}` and
/// `[[name]]`, longest names first so `$__range_s` is not read as `$__range`.
pub fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = expr.to_owned();
    for name in names {
        let value = &vars[name];
        out = out.replace(&format!("${{{name}}}"), value);
        out = out.replace(&format!("[[{name}]]"), value);
        // `${name:format}`
        while let Some(start) = out.find(&format!("${{{name}:")) {
            let Some(len) = out[start..].find('}') else {
                break;
            };
            out.replace_range(start..start + len + 1, value);
        }
        out = out.replace(&format!("${name}"), value);
    }
    out
}

/// Grafana's built-in variables for a test Prometheus that scrapes every second.
pub fn builtin_variables() -> BTreeMap<String, String> {
    [
        ("__rate_interval", "30s"),
        ("__interval", "5s"),
        ("__range", "1h"),
        ("__range_s", "3600"),
        ("__range_ms", "3600000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Runs every query of every dashboard against `prometheus` with `vars` (the built-ins and,
/// e.g., `reseller`) substituted.
pub async fn run_all(
    prometheus: &Prometheus,
    vars: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<PanelQuery>> {
    let mut results = Vec::new();
    for (file, dashboard) in load_all()? {
        for (panel, ref_id, expr) in queries(&dashboard) {
            let promql = substitute(&expr, vars);
            let (series, error) = match prometheus.query(&promql).await {
                Ok(samples) => (samples.len(), None),
                Err(e) => (0, Some(format!("{e:#}"))),
            };
            results.push(PanelQuery {
                dashboard: file.clone(),
                panel,
                ref_id,
                expr,
                promql,
                series,
                error,
            });
        }
    }
    Ok(results)
}

/// A readable line per query: `ok`/`NO DATA`/`ERROR`, dashboard, panel, series.
pub fn report(results: &[PanelQuery]) -> String {
    results
        .iter()
        .map(|r| {
            let state = match (&r.error, r.series) {
                (Some(_), _) => "ERROR",
                (None, 0) => "NO DATA",
                _ => "ok",
            };
            format!(
                "{state:7} {} / {} [{}]: {} series{}",
                r.dashboard,
                r.panel,
                r.ref_id,
                r.series,
                r.error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_substituted_in_every_form_longest_first() {
        let mut vars = builtin_variables();
        vars.insert("reseller".into(), "acme".into());
        let expr = "rate(x{reseller=\"$reseller\"}[$__rate_interval]) + y{r=\"${reseller}\"} \
                    + z{r=\"${reseller:regex}\"}[[reseller]] offset $__range_s";
        assert_eq!(
            substitute(expr, &vars),
            "rate(x{reseller=\"acme\"}[30s]) + y{r=\"acme\"} + z{r=\"acme\"}acme offset 3600"
        );
    }

    #[test]
    fn queries_are_found_in_rows_too() {
        let dashboard = serde_json::json!({"panels": [
            {"type": "stat", "title": "a", "targets": [{"refId": "A", "expr": "up"}]},
            {"type": "row", "title": "r", "panels": [
                {"type": "timeseries", "title": "b", "targets": [{"refId": "A", "expr": "x"}, {"refId": "B"}]}
            ]}
        ]});
        let found = queries(&dashboard);
        assert_eq!(found.len(), 2);
        assert_eq!(found[1], ("b".into(), "A".into(), "x".into()));
    }
}
