use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn report() -> AvailabilityReport {
    AvailabilityReport {
        brand: "さくら<ウェブ>".into(),
        year: 2026,
        month: 11,
        time_zone: TimeZone::get("Asia/Tokyo").unwrap(),
        period: Span::new(at("2026-10-31T15:00:00Z"), at("2026-11-30T15:00:00Z")),
        availability: "99.837".into(),
        down: SignedDuration::from_mins(70),
        maintenance: SignedDuration::from_mins(60),
        lines: vec![
            ReportLine {
                end_user: "shop01".into(),
                service: "http".into(),
                availability: "99.675".into(),
                down: SignedDuration::from_mins(70),
                maintenance: SignedDuration::from_mins(60),
            },
            ReportLine {
                end_user: "shop01".into(),
                service: "smtp".into(),
                availability: "100.000".into(),
                down: SignedDuration::ZERO,
                maintenance: SignedDuration::ZERO,
            },
        ],
        incidents: vec![ReportIncident {
            name: "shop-http-1a2b".into(),
            end_user: "shop01".into(),
            service: "http".into(),
            kind: IncidentKind::ServiceDown,
            started: at("2026-11-30T14:30:00Z"),
            resolved: Some(at("2026-11-30T15:30:45Z")),
            down: SignedDuration::from_secs(30 * 60 + 45),
            cause: Some("<script>alert(1)</script> disk".into()),
        }],
    }
}

#[test]
fn the_japanese_mail_names_the_month_the_total_and_the_attachment() {
    let r = render_report_mail(&report(), Language::Ja);
    assert_eq!(r.subject, "【さくら<ウェブ>】2026年11月の稼働率レポート");
    for part in [
        "さくら<ウェブ> ご担当者様",
        "対象期間: 2026-11-01 00:00:00 JST – 2026-11-30 23:59:59 JST",
        "全体の稼働率: 99.837 %",
        "停止時間の合計: 1時間10分0秒",
        "障害件数: 1",
        "添付の HTML",
    ] {
        assert!(r.text.contains(part), "{part} in\n{}", r.text);
    }
}

#[test]
fn the_english_mail_and_file_name() {
    let report = report();
    let r = render_report_mail(&report, Language::En);
    assert_eq!(
        r.subject,
        "[さくら<ウェブ>] Availability report for November 2026"
    );
    assert!(
        r.text.contains("Overall availability: 99.837 %"),
        "{}",
        r.text
    );
    assert_eq!(report.file_name(), "availability-2026-11.html");
}

#[test]
fn the_html_holds_every_line_and_incident_escaped_and_no_script_or_remote_resource() {
    let html = render_report_html(&report(), Language::Ja);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<html lang=\"ja\">"));
    assert!(
        html.contains("<p class=\"brand\">さくら&lt;ウェブ&gt;</p>"),
        "{html}"
    );
    assert!(
        html.contains("<dd class=\"total\" id=\"total\">99.837 %</dd>"),
        "{html}"
    );
    assert!(html.contains(
        "<tr class=\"down\"><td>shop01</td><td>http</td><td class=\"num\">99.675 %</td><td class=\"num\">1時間10分0秒</td><td class=\"num\">1時間0分0秒</td></tr>"
    ), "{html}");
    assert!(html.contains("<td>2026-11-30 23:30:00 JST</td><td>2026-12-01 00:30:45 JST</td><td class=\"num\">30分45秒</td>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; disk"),
        "{html}"
    );
    assert!(!html.contains("<script"), "no script");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing remote"
    );
    assert!(!html.to_lowercase().contains("oem"), "no provider name");
}

#[test]
fn a_month_without_incidents_says_so_and_an_open_one_is_not_restored() {
    let mut quiet = report();
    quiet.incidents.clear();
    let html = render_report_html(&quiet, Language::En);
    assert!(html.contains("No incident this month."), "{html}");
    assert!(!html.contains("id=\"incidents\""));
    let mut open = report();
    open.incidents[0].resolved = None;
    open.incidents[0].cause = None;
    let html = render_report_html(&open, Language::En);
    assert!(html.contains("<td>not restored</td>"), "{html}");
    assert!(html.contains("<td>under investigation</td>"), "{html}");
}
