//! The monthly availability report as the reseller's contacts receive it: a short text mail
//! and an attached HTML document (one file, no script, no remote resource, printable), in
//! Japanese or English, under the reseller's brand only; times in the reseller's zone.

use std::fmt::Write;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use oem_crds::incident::IncidentKind;
use oem_crds::reseller::Language;

use super::Rendered;
use crate::alerting::availability::Span;

/// One end user's service in the month.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportLine {
    /// The end user's login ID (else its name).
    pub end_user: String,
    /// e.g. "http".
    pub service: String,
    /// Percent, rounded down, e.g. "99.987".
    pub availability: String,
    pub down: SignedDuration,
    pub maintenance: SignedDuration,
}

/// One incident of the month.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportIncident {
    /// The Incident's name (its reference for the reseller).
    pub name: String,
    pub end_user: String,
    pub service: String,
    pub kind: IncidentKind,
    pub started: Timestamp,
    pub resolved: Option<Timestamp>,
    /// Its downtime inside the month (zero for a mass-mail lock).
    pub down: SignedDuration,
    pub cause: Option<String>,
}

/// A reseller's report of one month.
#[derive(Debug, Clone)]
pub struct AvailabilityReport {
    /// The reseller's displayName: the ONLY brand that appears.
    pub brand: String,
    pub year: i16,
    pub month: i8,
    pub time_zone: TimeZone,
    pub period: Span,
    /// The reseller's total, percent.
    pub availability: String,
    pub down: SignedDuration,
    pub maintenance: SignedDuration,
    pub lines: Vec<ReportLine>,
    pub incidents: Vec<ReportIncident>,
}

impl AvailabilityReport {
    /// The attachment's file name, e.g. `availability-2026-11.html`.
    pub fn file_name(&self) -> String {
        format!("availability-{:04}-{:02}.html", self.year, self.month)
    }
}

struct Words {
    title: &'static str,
    greeting: fn(&str) -> String,
    intro: &'static str,
    attached: &'static str,
    period: &'static str,
    total: &'static str,
    downtime: &'static str,
    maintenance: &'static str,
    maintenance_column: &'static str,
    outage: &'static str,
    incident_count: &'static str,
    per_service: &'static str,
    end_user: &'static str,
    service: &'static str,
    availability: &'static str,
    incidents: &'static str,
    none: &'static str,
    reference: &'static str,
    kind: &'static str,
    started: &'static str,
    resolved: &'static str,
    not_resolved: &'static str,
    cause: &'static str,
    cause_unknown: &'static str,
    method: &'static str,
    closing: &'static str,
    kind_text: fn(IncidentKind) -> &'static str,
    duration: fn(SignedDuration) -> String,
    month: fn(i16, i8) -> String,
}

const JA: Words = Words {
    title: "稼働率レポート",
    greeting: |brand| format!("{brand} ご担当者様"),
    intro: "先月のサービス稼働状況をご報告いたします。",
    attached: "お客様・サービスごとの稼働率と障害の一覧は、添付の HTML ファイルをご覧ください。",
    period: "対象期間",
    total: "全体の稼働率",
    downtime: "停止時間の合計",
    maintenance: "計画メンテナンス（稼働率の計算から除外）",
    maintenance_column: "計画メンテナンス",
    outage: "停止時間",
    incident_count: "障害件数",
    per_service: "お客様・サービスごとの稼働率",
    end_user: "ユーザーID",
    service: "サービス",
    availability: "稼働率",
    incidents: "障害一覧",
    none: "この月の障害はありません。",
    reference: "管理番号",
    kind: "種類",
    started: "発生日時",
    resolved: "復旧日時",
    not_resolved: "未復旧",
    cause: "原因",
    cause_unknown: "調査中",
    method: "稼働率 = 1 − 停止時間 ÷ 計測時間。監視で記録した停止から復旧までの時間を数え、計画メンテナンスの時間は停止時間と計測時間の両方から除いています。月の途中でご契約が始まったお客様は開始時点から計測します。小数点以下第3位未満は切り捨てです。障害一覧の停止時間は、その障害の当月内の停止時間です（計画メンテナンス中の時間を含みます）。",
    closing: "今後ともよろしくお願い申し上げます。",
    kind_text: |kind| match kind {
        IncidentKind::ServiceDown => "サービス停止",
        IncidentKind::HostDown => "サーバー停止",
        IncidentKind::MassMail => "大量メール送信",
    },
    duration: |d| {
        let (h, m, s) = hms(d);
        match (h, m) {
            (0, 0) => format!("{s}秒"),
            (0, m) => format!("{m}分{s}秒"),
            (h, m) => format!("{h}時間{m}分{s}秒"),
        }
    },
    month: |year, month| format!("{year}年{month}月"),
};

const EN: Words = Words {
    title: "Availability report",
    greeting: |brand| format!("Dear {brand} contact,"),
    intro: "Here is how the services ran last month.",
    attached: "The attached HTML file gives the availability of every customer and service, and the month's incidents.",
    period: "Period",
    total: "Overall availability",
    downtime: "Total downtime",
    maintenance: "Planned maintenance (left out of availability)",
    maintenance_column: "Maintenance",
    outage: "Outage",
    incident_count: "Incidents",
    per_service: "Availability per customer and service",
    end_user: "User ID",
    service: "Service",
    availability: "Availability",
    incidents: "Incidents",
    none: "No incident this month.",
    reference: "Reference",
    kind: "Kind",
    started: "Began",
    resolved: "Restored",
    not_resolved: "not restored",
    cause: "Cause",
    cause_unknown: "under investigation",
    method: "Availability = 1 − downtime ÷ time measured. Downtime runs from the failure the monitor recorded to the recovery it recorded; planned maintenance is left out of both the downtime and the time measured. A customer whose contract began during the month is measured from its start. Figures are rounded down to three decimals. An incident's outage is its downtime within the month, maintenance included.",
    closing: "Thank you for your business.",
    kind_text: |kind| match kind {
        IncidentKind::ServiceDown => "service down",
        IncidentKind::HostDown => "server down",
        IncidentKind::MassMail => "mass mail",
    },
    duration: |d| {
        let (h, m, s) = hms(d);
        match (h, m) {
            (0, 0) => format!("{s} s"),
            (0, m) => format!("{m} min {s} s"),
            (h, m) => format!("{h} h {m} min {s} s"),
        }
    },
    month: |year, month| {
        const NAMES: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let name = usize::try_from(month - 1)
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
            .unwrap_or("?");
        format!("{name} {year}")
    },
};

fn hms(d: SignedDuration) -> (u64, u64, u64) {
    let secs = u64::try_from(d.as_secs()).unwrap_or(0);
    (secs / 3600, secs / 60 % 60, secs % 60)
}

fn words(language: Language) -> &'static Words {
    match language {
        Language::Ja => &JA,
        Language::En => &EN,
    }
}

/// Text for people placed in HTML: `&`, `<`, `>`, quotes escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn local(t: Timestamp, zone: &TimeZone) -> String {
    t.to_zoned(zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn period_text(report: &AvailabilityReport) -> String {
    // The period's end is the next month's first midnight; shown as the month's last second.
    let last = report
        .period
        .end
        .checked_sub(SignedDuration::from_secs(1))
        .unwrap_or(report.period.end);
    format!(
        "{} – {}",
        local(report.period.start, &report.time_zone),
        local(last, &report.time_zone)
    )
}

/// The mail's subject and text body.
pub fn render_report_mail(report: &AvailabilityReport, language: Language) -> Rendered {
    let w = words(language);
    let month = (w.month)(report.year, report.month);
    let subject = match language {
        Language::Ja => format!("【{}】{}の{}", report.brand, month, w.title),
        Language::En => format!("[{}] {} for {}", report.brand, w.title, month),
    };
    let mut text = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(text, "{}\n", (w.greeting)(&report.brand));
    let _ = writeln!(text, "{}\n", w.intro);
    let _ = writeln!(text, "  {}: {}", w.period, period_text(report));
    let _ = writeln!(text, "  {}: {} %", w.total, report.availability);
    let _ = writeln!(text, "  {}: {}", w.downtime, (w.duration)(report.down));
    let _ = writeln!(
        text,
        "  {}: {}",
        w.maintenance,
        (w.duration)(report.maintenance)
    );
    let _ = writeln!(text, "  {}: {}", w.incident_count, report.incidents.len());
    let _ = writeln!(text, "\n{}", w.attached);
    let _ = writeln!(text, "\n{}\n\n{}", w.closing, report.brand);
    Rendered { subject, text }
}

/// The attached HTML document.
pub fn render_report_html(report: &AvailabilityReport, language: Language) -> String {
    let w = words(language);
    let zone = &report.time_zone;
    let brand = escape(&report.brand);
    let month = escape(&(w.month)(report.year, report.month));
    let lang = match language {
        Language::Ja => "ja",
        Language::En => "en",
    };
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{brand} — {month} {title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <header><p class=\"brand\">{brand}</p><h1>{month} {title}</h1></header>\n",
        title = escape(w.title),
    );
    let _ = write!(
        html,
        "<section class=\"summary\">\n<dl>\n\
         <dt>{}</dt><dd>{}</dd>\n<dt>{}</dt><dd class=\"total\" id=\"total\">{} %</dd>\n\
         <dt>{}</dt><dd>{}</dd>\n<dt>{}</dt><dd>{}</dd>\n<dt>{}</dt><dd>{}</dd>\n</dl>\n</section>\n",
        escape(w.period),
        escape(&period_text(report)),
        escape(w.total),
        escape(&report.availability),
        escape(w.downtime),
        escape(&(w.duration)(report.down)),
        escape(w.maintenance),
        escape(&(w.duration)(report.maintenance)),
        escape(w.incident_count),
        report.incidents.len(),
    );
    let _ = write!(
        html,
        "<section>\n<h2>{}</h2>\n<table id=\"services\">\n<thead><tr><th scope=\"col\">{}</th>\
         <th scope=\"col\">{}</th><th scope=\"col\" class=\"num\">{}</th><th scope=\"col\" class=\"num\">{}</th>\
         <th scope=\"col\" class=\"num\">{}</th></tr></thead>\n<tbody>\n",
        escape(w.per_service),
        escape(w.end_user),
        escape(w.service),
        escape(w.availability),
        escape(w.downtime),
        escape(w.maintenance_column),
    );
    for line in &report.lines {
        let class = if line.down > SignedDuration::ZERO {
            " class=\"down\""
        } else {
            ""
        };
        let _ = writeln!(
            html,
            "<tr{class}><td>{}</td><td>{}</td><td class=\"num\">{} %</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&line.end_user),
            escape(&line.service),
            escape(&line.availability),
            escape(&(w.duration)(line.down)),
            escape(&(w.duration)(line.maintenance)),
        );
    }
    let _ = write!(
        html,
        "</tbody>\n</table>\n</section>\n<section>\n<h2>{}</h2>\n",
        escape(w.incidents)
    );
    if report.incidents.is_empty() {
        let _ = writeln!(html, "<p>{}</p>", escape(w.none));
    } else {
        let _ = write!(
            html,
            "<table id=\"incidents\">\n<thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
             <th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
             <th scope=\"col\" class=\"num\">{}</th><th scope=\"col\">{}</th></tr></thead>\n<tbody>\n",
            escape(w.reference),
            escape(w.end_user),
            escape(w.service),
            escape(w.kind),
            escape(w.started),
            escape(w.resolved),
            escape(w.outage),
            escape(w.cause),
        );
        for incident in &report.incidents {
            let resolved = incident
                .resolved
                .map_or_else(|| w.not_resolved.to_owned(), |t| local(t, zone));
            let cause = incident.cause.as_deref().unwrap_or(w.cause_unknown);
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                escape(&incident.name),
                escape(&incident.end_user),
                escape(&incident.service),
                escape((w.kind_text)(incident.kind)),
                escape(&local(incident.started, zone)),
                escape(&resolved),
                escape(&(w.duration)(incident.down)),
                escape(cause),
            );
        }
        html.push_str("</tbody>\n</table>\n");
    }
    let _ = write!(
        html,
        "</section>\n<footer><p>{}</p><p>{brand}</p></footer>\n</body>\n</html>\n",
        escape(w.method)
    );
    html
}

const STYLE: &str = "\
body{font-family:system-ui,'Hiragino Sans','Noto Sans CJK JP',sans-serif;color:#1b1f24;margin:2rem auto;max-width:60rem;padding:0 1rem;line-height:1.5}
header{border-bottom:3px solid #1b1f24;margin-bottom:1.5rem}
.brand{font-size:1.1rem;font-weight:600;margin:0}
h1{font-size:1.6rem;margin:.2rem 0 .8rem}
h2{font-size:1.2rem;margin-top:2rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1.5rem;margin:0}
dt{color:#555}
dd{margin:0;font-variant-numeric:tabular-nums}
dd.total{font-size:1.4rem;font-weight:700}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{border-bottom:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.down td{background:#fff4e5}
footer{margin-top:2.5rem;color:#555;font-size:.85rem}
@media print{body{margin:0;max-width:none}tr{break-inside:avoid}}
";

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
