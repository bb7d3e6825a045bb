//! Usage (SPEC §2): the reseller's quota against what its courses commit and what is measured,
//! each end user's figures, and charts over the last seven days from the same Prometheus data
//! as the usage reporting (`oem_reseller_usage_*`, `oem_usage_*`), drawn as inline SVG on the
//! server (the pages carry no script).

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use kube::ResourceExt;
use oem_crds::quantity;

use super::ResellerRequest;
use crate::app::App;
use crate::html::{esc, url_segment};
use crate::web::Reply;

/// The charted series: metric suffix and label.
fn series(t: &super::texts::ResellerTexts) -> [(&'static str, &'static str); 4] {
    [
        ("disk_bytes", t.disk),
        ("memory_bytes", t.memory),
        ("network_receive_bytes", t.traffic_in),
        ("network_transmit_bytes", t.traffic_out),
    ]
}

/// `1.5 GiB`.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn q(text: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> f64 {
    text.and_then(|q| quantity::value(&q.0)).unwrap_or(0.0)
}

/// The page.
pub async fn page(app: &App, r: &ResellerRequest<'_>) -> Reply {
    let t = r.texts();
    let endusers = app.caches.endusers_in(&r.namespace);
    let quota = &r.reseller.spec.quota;
    // What the end users' courses commit.
    let (mut cpu, mut memory, mut storage) = (0.0, 0.0, 0.0);
    for eu in &endusers {
        if let Some(course) = app.caches.course(&r.namespace, &eu.spec.course_ref.name) {
            cpu += q(Some(&course.spec.resources.cpu));
            memory += q(Some(&course.spec.resources.memory));
            storage += q(Some(&course.spec.resources.storage));
        }
    }
    let measured = r.reseller.status.as_ref().and_then(|s| s.usage.as_ref());
    let mut body = format!(
        "<section aria-labelledby=\"h-quota\"><h2 id=\"h-quota\">{quota_t}</h2><table><thead><tr>\
         <th scope=\"col\"></th><th scope=\"col\">{quota_t}</th><th scope=\"col\">{committed}</th>\
         <th scope=\"col\">{measured_t}</th></tr></thead><tbody>\
         <tr><th scope=\"row\">{users_t}</th><td>{max_users}</td><td>{users}</td><td>-</td></tr>\
         <tr><th scope=\"row\">{cpu_t}</th><td>{total_cpu}</td><td>{cpu:.2}</td><td>-</td></tr>\
         <tr><th scope=\"row\">{memory_t}</th><td>{total_memory}</td><td>{memory}</td><td>{m_memory}</td></tr>\
         <tr><th scope=\"row\">{storage_t}</th><td>{total_storage}</td><td>{storage}</td><td>{m_disk}</td></tr>\
         <tr><th scope=\"row\">{in_t}</th><td>-</td><td>-</td><td>{m_in}</td></tr>\
         <tr><th scope=\"row\">{out_t}</th><td>-</td><td>-</td><td>{m_out}</td></tr>\
         </tbody></table></section>",
        quota_t = esc(t.quota),
        committed = esc(t.committed),
        measured_t = esc(t.measured),
        users_t = esc(t.end_users),
        max_users = quota.max_end_users,
        users = endusers.len(),
        cpu_t = esc(t.cpu),
        total_cpu = esc(&quota.total_cpu.0),
        memory_t = esc(t.memory),
        total_memory = esc(&quota.total_memory.0),
        memory = human_bytes(memory),
        m_memory = measured
            .map(|u| human_bytes(q(u.memory.as_ref())))
            .unwrap_or_else(|| "-".into()),
        storage_t = esc(t.storage),
        total_storage = esc(&quota.total_storage.0),
        storage = human_bytes(storage),
        m_disk = measured
            .map(|u| human_bytes(q(u.disk.as_ref())))
            .unwrap_or_else(|| "-".into()),
        in_t = esc(t.traffic_in),
        m_in = measured
            .map(|u| human_bytes(q(u.network_in.as_ref())))
            .unwrap_or_else(|| "-".into()),
        out_t = esc(t.traffic_out),
        m_out = measured
            .map(|u| human_bytes(q(u.network_out.as_ref())))
            .unwrap_or_else(|| "-".into()),
    );
    // The charts: the reseller's total, or one end user's (`?enduser=`, of this reseller only).
    let chosen = r
        .req
        .query_param("enduser")
        .filter(|name| endusers.iter().any(|eu| eu.name_any() == *name));
    let subject = match &chosen {
        Some(name) => name.clone(),
        None => t.total.to_owned(),
    };
    let _ = write!(
        body,
        "<section aria-labelledby=\"h-charts\"><h2 id=\"h-charts\">{} — {}</h2>",
        esc(t.charts),
        esc(&subject)
    );
    match &app.config.resellers.prometheus_url {
        None => {
            let _ = write!(body, "<p>{}</p>", esc(t.charts_off));
        }
        Some(url) => {
            let end = jiff::Timestamp::now().as_second();
            let start = end - 7 * 24 * 3600;
            // The four series at once: the page waits for the slowest, not for their sum.
            let queries = series(t).map(|(metric, label)| {
                let promql = match &chosen {
                    Some(eu) => format!(
                        "oem_usage_{metric}{{reseller=\"{}\",enduser=\"{eu}\"}}",
                        r.name
                    ),
                    None => format!("oem_reseller_usage_{metric}{{reseller=\"{}\"}}", r.name),
                };
                async move {
                    let points = query_range(url, &promql, start, end, 3600).await;
                    (label, promql, points)
                }
            });
            for (label, promql, points) in futures::future::join_all(queries).await {
                match points {
                    Ok(points) => body.push_str(&chart(label, &points, start, end)),
                    Err(error) => {
                        tracing::warn!(%error, %promql, "reading Prometheus for a usage chart failed");
                        let _ = write!(
                            body,
                            "<p class=\"error\">{}: {}</p>",
                            esc(label),
                            esc(t.charts_failed)
                        );
                    }
                }
            }
        }
    }
    body.push_str("</section>");
    // Each end user.
    let _ = write!(
        body,
        "<section aria-labelledby=\"h-each\"><h2 id=\"h-each\">{}</h2><div class=\"scroll\"><table><thead><tr>\
         <th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
         <th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        esc(t.customers),
        esc(t.login_id),
        esc(t.disk),
        esc(t.memory),
        esc(t.traffic_in),
        esc(t.traffic_out),
        esc(t.chart_of),
    );
    for eu in &endusers {
        let usage = eu.status.as_ref().and_then(|s| s.usage.as_ref());
        let cell = |v: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>| match v {
            Some(v) => human_bytes(q(Some(v))),
            None => t.not_measured.to_owned(),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"{}?enduser={}\">{}</a></td></tr>",
            esc(&eu.spec.login_id),
            esc(&cell(usage.and_then(|u| u.disk.as_ref()))),
            esc(&cell(usage.and_then(|u| u.memory.as_ref()))),
            esc(&cell(usage.and_then(|u| u.network_in.as_ref()))),
            esc(&cell(usage.and_then(|u| u.network_out.as_ref()))),
            r.path("usage"),
            url_segment(&eu.name_any()),
            esc(t.chart_of),
        );
    }
    body.push_str("</tbody></table></div></section>");
    super::page(r, StatusCode::OK, t.usage, &body)
}

/// `(unix seconds, value)` points of the first series Prometheus returns for `promql`.
pub async fn query_range(
    url: &str,
    promql: &str,
    start: i64,
    end: i64,
    step: i64,
) -> Result<Vec<(i64, f64)>, String> {
    // One client for every chart (its connections are kept), made on first use.
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    let client = CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)?;
    let reply: serde_json::Value = client
        .get(format!("{}/api/v1/query_range", url.trim_end_matches('/')))
        .query(&[
            ("query", promql.to_owned()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step.to_string()),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .error_for_status()
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let values = reply
        .pointer("/data/result/0/values")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    Ok(values
        .iter()
        .filter_map(|pair| {
            let time = pair.get(0)?.as_f64()? as i64;
            let value = pair.get(1)?.as_str()?.parse::<f64>().ok()?;
            Some((time, value))
        })
        .collect())
}

/// A line chart of `points` between `start` and `end`, as inline SVG with a text alternative.
pub fn chart(label: &str, points: &[(i64, f64)], start: i64, end: i64) -> String {
    const W: f64 = 600.0;
    const H: f64 = 140.0;
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let last = points.last().map(|p| p.1);
    let span = (end - start).max(1) as f64;
    let top = if max > 0.0 { max } else { 1.0 };
    let mut line = String::new();
    for (time, value) in points {
        let x = ((*time - start) as f64 / span * W).clamp(0.0, W);
        let y = H - value / top * (H - 10.0);
        let _ = write!(line, "{x:.1},{y:.1} ");
    }
    let summary = format!(
        "{label}: max {}, latest {}",
        human_bytes(max),
        last.map(human_bytes).unwrap_or_else(|| "-".into())
    );
    format!(
        "<figure class=\"chart\"><figcaption>{caption}</figcaption>\
         <svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{caption}\" preserveAspectRatio=\"none\">\
         <line x1=\"0\" y1=\"{H}\" x2=\"{W}\" y2=\"{H}\" stroke=\"#888\" stroke-width=\"1\"/>\
         <polyline points=\"{line}\" fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"2\"/></svg></figure>",
        caption = esc(&summary),
        line = line.trim_end(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_read_them() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(1536.0 * 1024.0 * 1024.0), "1.5 GiB");
    }

    #[test]
    fn a_chart_spans_its_window_and_says_its_figures() {
        let svg = chart("Disk", &[(0, 0.0), (50, 1024.0), (100, 512.0)], 0, 100);
        assert!(
            svg.contains("points=\"0.0,140.0 300.0,10.0 600.0,75.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("aria-label=\"Disk: max 1.0 KiB, latest 512 B\""),
            "{svg}"
        );
        assert!(!svg.contains("style="));
    }
}
