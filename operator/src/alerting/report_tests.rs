use super::*;
use jiff::civil::date;
use oem_crds::incident::{IncidentSpec, IncidentStatus, TimelineEntry};
use oem_crds::reseller::BusinessCalendar;

use crate::alerting::maintenance::Cover;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn tokyo() -> Calendar {
    Calendar::from_spec(&BusinessCalendar::default()).unwrap()
}

fn zone() -> TimeZone {
    TimeZone::get("Asia/Tokyo").unwrap()
}

fn mins(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

fn entry(time: &str, what: &str) -> TimelineEntry {
    TimelineEntry {
        time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(time)),
        event: what.into(),
        message: None,
    }
}

fn incident(
    name: &str,
    service: ServiceName,
    kind: IncidentKind,
    timeline: &[(&str, &str)],
    resolved: Option<&str>,
) -> Incident {
    let mut i = Incident::new(
        name,
        IncidentSpec {
            end_user: "shop".into(),
            service,
            kind,
            cause: Some("ディスク障害 <raid>".into()),
            report_deferral: None,
            node: None,
        },
    );
    i.metadata.namespace = Some("reseller-sakura".into());
    i.status = Some(IncidentStatus {
        started_at: timeline
            .first()
            .map(|(t, _)| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(t))),
        resolved_at: resolved.map(|t| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(t))),
        timeline: timeline.iter().map(|(t, e)| entry(t, e)).collect(),
        ..IncidentStatus::default()
    });
    i
}

#[test]
fn the_past_months_report_is_due_when_business_opens_on_the_first_business_day() {
    let cal = tokyo();
    // 2026-12-01 is a Tuesday; business opens at 10:00 in Tokyo.
    let november = Month {
        year: 2026,
        month: 11,
    };
    assert_eq!(due_at(november, &cal).unwrap(), at("2026-12-01T01:00:00Z"));
    assert_eq!(due_month(at("2026-12-01T00:59:59Z"), &cal), None);
    assert_eq!(due_month(at("2026-12-01T01:00:00Z"), &cal), Some(november));
    assert_eq!(due_month(at("2026-12-24T05:00:00Z"), &cal), Some(november));
}

#[test]
fn new_year_holiday_and_weekend_push_the_report_to_the_fourth_of_january() {
    let cal = tokyo();
    let december = Month {
        year: 2026,
        month: 12,
    };
    // 1 January 2027 (a Friday) is a public holiday, the 2nd and 3rd a weekend.
    assert_eq!(due_at(december, &cal).unwrap(), at("2027-01-04T01:00:00Z"));
    assert_eq!(due_month(at("2027-01-03T12:00:00Z"), &cal), None);
    assert_eq!(due_month(at("2027-01-04T01:00:00Z"), &cal), Some(december));
}

#[test]
fn a_company_holiday_and_other_hours_move_the_due_time() {
    let spec = BusinessCalendar {
        company_holidays: vec![date(2026, 12, 1)],
        business_hours: vec![oem_crds::reseller::BusinessHours {
            start: "08:30".into(),
            end: "17:30".into(),
        }],
        ..BusinessCalendar::default()
    };
    let cal = Calendar::from_spec(&spec).unwrap();
    let november = Month {
        year: 2026,
        month: 11,
    };
    assert_eq!(due_at(november, &cal).unwrap(), at("2026-12-01T23:30:00Z"));
}

#[test]
fn only_the_past_month_is_due_never_an_older_one() {
    let cal = tokyo();
    assert_eq!(
        due_month(at("2027-02-10T03:00:00Z"), &cal),
        Some(Month {
            year: 2027,
            month: 1
        })
    );
}

#[test]
fn months_step_over_the_year_and_label_as_year_dash_month() {
    let jan = Month {
        year: 2027,
        month: 1,
    };
    assert_eq!(jan.previous().unwrap().label(), "2026-12");
    assert_eq!(jan.previous().unwrap().next().unwrap(), jan);
    // 2026-11-30T15:00Z is already December in Tokyo.
    assert_eq!(
        Month::of(at("2026-11-30T15:00:00Z"), &zone()).label(),
        "2026-12"
    );
}

#[test]
fn a_reopened_incident_records_each_fall_and_an_open_one_runs_on() {
    let reopened = incident(
        "shop-http-1",
        ServiceName::Http,
        IncidentKind::ServiceDown,
        &[
            ("2026-11-10T01:00:00Z", "Down"),
            ("2026-11-10T01:00:30Z", "Detected"),
            ("2026-11-10T01:05:00Z", "Recovered"),
            ("2026-11-10T01:20:00Z", "Down"),
            ("2026-11-10T01:21:00Z", "Restarted"),
            ("2026-11-10T01:30:00Z", "Recovered"),
        ],
        Some("2026-11-10T01:30:00Z"),
    );
    assert_eq!(
        outages(&reopened),
        vec![
            Outage {
                start: at("2026-11-10T01:00:00Z"),
                end: Some(at("2026-11-10T01:05:00Z"))
            },
            Outage {
                start: at("2026-11-10T01:20:00Z"),
                end: Some(at("2026-11-10T01:30:00Z"))
            },
        ]
    );
    let open = incident(
        "shop-http-2",
        ServiceName::Http,
        IncidentKind::ServiceDown,
        &[("2026-11-20T01:00:00Z", "Down")],
        None,
    );
    assert_eq!(
        outages(&open),
        vec![Outage {
            start: at("2026-11-20T01:00:00Z"),
            end: None
        }]
    );
}

fn window(start: &str, end: &str, covers: Vec<Cover>) -> Window {
    Window {
        name: "reseller-sakura/upgrade".into(),
        covers,
        start: at(start),
        end: at(end),
        end_when_recovered: false,
        first_down_at: None,
        recovered_at: None,
    }
}

#[test]
fn a_node_window_counts_for_the_end_users_on_that_node_only() {
    let node = vec![Cover::Node {
        node: "node-1".into(),
        services: vec![],
    }];
    let w = [window("2026-11-05T00:00:00Z", "2026-11-05T01:00:00Z", node)];
    let on = vec!["node-1".to_owned()];
    let off = vec!["node-2".to_owned()];
    let target = |nodes| Target {
        namespace: "reseller-sakura",
        end_user: "shop",
        service: ServiceName::Http,
        nodes,
    };
    assert_eq!(window_spans(&w, &target(&on)).len(), 1);
    assert!(window_spans(&w, &target(&off)).is_empty());
}

/// November 2026 in Tokyo has 720 hours; shop began on the 16th (15 days = 360 h measured).
#[test]
fn the_report_measures_from_the_start_leaves_maintenance_out_and_cuts_at_the_month_end() {
    let across = incident(
        "shop-http-across",
        ServiceName::Http,
        IncidentKind::ServiceDown,
        // 30 minutes in November (Tokyo), 30 in December.
        &[
            ("2026-11-30T14:30:00Z", "Down"),
            ("2026-11-30T15:30:00Z", "Recovered"),
        ],
        Some("2026-11-30T15:30:00Z"),
    );
    let in_window = incident(
        "shop-http-window",
        ServiceName::Http,
        IncidentKind::ServiceDown,
        // 60 minutes down, the last 20 inside the window.
        &[
            ("2026-11-20T00:00:00Z", "Down"),
            ("2026-11-20T01:00:00Z", "Recovered"),
        ],
        Some("2026-11-20T01:00:00Z"),
    );
    let mass_mail = incident(
        "shop-smtp-mail",
        ServiceName::Smtp,
        IncidentKind::MassMail,
        &[
            ("2026-11-21T00:00:00Z", "Down"),
            ("2026-11-21T02:00:00Z", "Recovered"),
        ],
        Some("2026-11-21T02:00:00Z"),
    );
    let october = incident(
        "shop-http-october",
        ServiceName::Http,
        IncidentKind::ServiceDown,
        &[
            ("2026-10-20T00:00:00Z", "Down"),
            ("2026-10-20T01:00:00Z", "Recovered"),
        ],
        Some("2026-10-20T01:00:00Z"),
    );
    let windows = [window(
        "2026-11-20T00:40:00Z",
        "2026-11-20T01:40:00Z",
        vec![Cover::EndUser {
            namespace: "reseller-sakura".into(),
            end_user: "shop".into(),
            services: vec![ServiceName::Http],
        }],
    )];
    let input = ReportInput {
        brand: "さくらウェブ".into(),
        month: Month {
            year: 2026,
            month: 11,
        },
        zone: zone(),
        end_users: vec![EndUserInput {
            label: "shop01".into(),
            namespace: "reseller-sakura",
            name: "shop",
            // 16 November 00:00 in Tokyo.
            created: at("2026-11-15T15:00:00Z"),
            services: vec![ServiceName::Http, ServiceName::Smtp],
            nodes: vec![],
            incidents: vec![&across, &in_window, &mass_mail, &october],
        }],
        windows: &windows,
        now: at("2026-12-01T01:00:00Z"),
    };
    let (report, total) = build(&input).unwrap();
    let http = &report.lines[0];
    assert_eq!(
        (http.end_user.as_str(), http.service.as_str()),
        ("shop01", "http")
    );
    // 30 min at the month's end + 40 min before the window.
    assert_eq!(http.down, mins(70));
    assert_eq!(http.maintenance, mins(60));
    // 1 - 70 / (360 h - 60 min) = 99.67...%
    assert_eq!(http.availability, "99.675");
    let smtp = &report.lines[1];
    assert_eq!(
        smtp.down,
        SignedDuration::ZERO,
        "a mass-mail lock is no outage"
    );
    assert_eq!(smtp.availability, "100.000");
    // The reseller: 70 min over (2 × 360 h − 60 min).
    assert_eq!(total.down, mins(70));
    assert_eq!(total.measured, SignedDuration::from_hours(720) - mins(60));
    assert_eq!(report.availability, "99.837");
    let names: Vec<&str> = report.incidents.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        ["shop-http-window", "shop-smtp-mail", "shop-http-across"],
        "October's incident is not November's"
    );
    assert_eq!(report.incidents[2].down, mins(30), "cut at the month's end");
    assert_eq!(report.incidents[1].down, SignedDuration::ZERO);
    assert_eq!(report.period.start, at("2026-10-31T15:00:00Z"));
}

#[test]
fn an_end_user_without_incidents_is_fully_available() {
    let input = ReportInput {
        brand: "b".into(),
        month: Month {
            year: 2026,
            month: 11,
        },
        zone: zone(),
        end_users: vec![EndUserInput {
            label: "quiet".into(),
            namespace: "reseller-sakura",
            name: "quiet",
            created: at("2025-01-01T00:00:00Z"),
            services: vec![ServiceName::Ping, ServiceName::Http],
            nodes: vec![],
            incidents: vec![],
        }],
        windows: &[],
        now: at("2026-12-01T01:00:00Z"),
    };
    let (report, total) = build(&input).unwrap();
    assert_eq!(report.availability, "100.000");
    assert_eq!(total.measured, SignedDuration::from_hours(2 * 720));
    assert!(report.incidents.is_empty());
}
