use jiff::Timestamp;
use jiff::tz::TimeZone;
use oem_crds::incident::{IncidentKind, NotificationEvent, event};
use oem_crds::reseller::Language;

use super::render;
use crate::alerting::notify::{Affected, Notice};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// An http outage of 1 h 23 min, recovered after a restart, as the incident controller fills it.
fn notice(event: NotificationEvent) -> Notice {
    Notice {
        event,
        incident: "taro-http-20260305".into(),
        kind: IncidentKind::ServiceDown,
        brand: "さくらウェブ".into(),
        affected: vec![Affected {
            end_user: "taro".into(),
            contract_name: "山田商店".into(),
            customer_number: Some("C-0042".into()),
            services: vec!["http".into()],
        }],
        started_at: ts("2026-03-05T01:00:00Z"),
        notified_at: Some(ts("2026-03-05T01:10:00Z")),
        resolved_at: Some(ts("2026-03-05T02:23:00Z")),
        report_due_by: Some(ts("2026-03-06T08:00:00Z")),
        timeline: vec![
            (ts("2026-03-05T01:00:00Z"), event::DOWN.into(), None),
            (
                ts("2026-03-05T01:02:00Z"),
                event::RESTARTED.into(),
                Some("web".into()),
            ),
            (ts("2026-03-05T02:23:00Z"), event::RECOVERED.into(), None),
        ],
        actions: vec!["Webサーバーを再起動しました".into()],
        cause: Some("設定ファイルの誤り".into()),
        deferral_reason: Some("ログの解析中".into()),
        time_zone: TimeZone::get("Asia/Tokyo").unwrap(),
    }
}

const EVENTS: [NotificationEvent; 5] = [
    NotificationEvent::Outage,
    NotificationEvent::Recovered,
    NotificationEvent::Report,
    NotificationEvent::Deferral,
    NotificationEvent::MailLock,
];

#[test]
fn every_notice_carries_the_resellers_brand_and_never_ours() {
    for language in [Language::Ja, Language::En] {
        for event in EVENTS {
            let r = render(&notice(event), language);
            assert!(r.subject.contains("さくらウェブ"), "{event:?} {language:?}");
            assert!(r.text.contains("さくらウェブ"), "{event:?} {language:?}");
            for text in [&r.subject, &r.text] {
                let lower = text.to_lowercase();
                assert!(!lower.contains("oem-hosting"), "{text}");
                assert!(!lower.contains("oem hosting"), "{text}");
            }
        }
    }
}

#[test]
fn japanese_outage_notice_names_contract_service_and_tokyo_times() {
    let r = render(&notice(NotificationEvent::Outage), Language::Ja);
    assert_eq!(
        r.subject,
        "【さくらウェブ】障害発生のお知らせ: 山田商店 (http)"
    );
    assert!(r.text.contains("契約名: 山田商店"), "{}", r.text);
    assert!(r.text.contains("顧客番号: C-0042"), "{}", r.text);
    assert!(r.text.contains("ユーザーID: taro"), "{}", r.text);
    assert!(r.text.contains("サービス: http"), "{}", r.text);
    // 01:00 UTC is 10:00 in Tokyo.
    assert!(
        r.text.contains("発生日時: 2026-03-05 10:00 JST"),
        "{}",
        r.text
    );
    assert!(r.text.contains("障害管理番号: taro-http-20260305"));
}

#[test]
fn english_report_has_timeline_downtime_actions_and_cause() {
    let r = render(&notice(NotificationEvent::Report), Language::En);
    assert_eq!(r.subject, "[さくらウェブ] Incident report: 山田商店 (http)");
    assert!(r.text.contains("Downtime: 1 h 23 min"), "{}", r.text);
    assert!(
        r.text.contains("Restored: 2026-03-05 11:23 JST"),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("2026-03-05 10:02 JST  service restarted — web"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("  - Webサーバーを再起動しました"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("Cause:\n  設定ファイルの誤り"),
        "{}",
        r.text
    );
}

#[test]
fn japanese_report_without_a_cause_says_it_is_under_investigation() {
    let mut n = notice(NotificationEvent::Report);
    n.cause = None;
    let r = render(&n, Language::Ja);
    assert!(r.text.contains("停止時間: 1時間23分"), "{}", r.text);
    assert!(r.text.contains("原因:\n  調査中"), "{}", r.text);
    assert!(r.text.contains("サービス再起動 — web"), "{}", r.text);
}

#[test]
fn deferral_gives_the_reason_and_the_deadline() {
    let r = render(&notice(NotificationEvent::Deferral), Language::Ja);
    assert!(r.text.contains("延期の理由:\n  ログの解析中"), "{}", r.text);
    assert!(
        r.text.contains("報告期限: 2026-03-06 17:00 JST"),
        "{}",
        r.text
    );
}

#[test]
fn outage_notice_before_recovery_shows_downtime_so_far() {
    let mut n = notice(NotificationEvent::Outage);
    n.resolved_at = None;
    let r = render(&n, Language::En);
    assert!(r.text.contains("Restored: not yet"), "{}", r.text);
    assert!(
        r.text.contains("Downtime (at notice): 10 min"),
        "{}",
        r.text
    );
}

#[test]
fn times_follow_the_resellers_time_zone() {
    let mut n = notice(NotificationEvent::Recovered);
    n.time_zone = TimeZone::get("Europe/Berlin").unwrap();
    let r = render(&n, Language::En);
    assert!(r.text.contains("Began: 2026-03-05 02:00 CET"), "{}", r.text);
    assert!(
        r.text.contains("Report due: 2026-03-06 09:00 CET"),
        "{}",
        r.text
    );
}

#[test]
fn a_node_notice_names_each_end_user_and_its_services() {
    let mut n = notice(NotificationEvent::Outage);
    for (login, contract) in [
        ("hanako", "花子書店"),
        ("jiro", "次郎商店"),
        ("saburo", "三郎食堂"),
    ] {
        n.affected.push(Affected {
            end_user: login.into(),
            contract_name: contract.into(),
            customer_number: None,
            services: vec!["http".into(), "https".into()],
        });
    }
    let r = render(&n, Language::En);
    assert_eq!(
        r.subject,
        "[さくらウェブ] Service outage: 山田商店 (http), 花子書店 (http, https), 次郎商店 (http, https), +1"
    );
    for line in [
        "User ID: taro",
        "User ID: hanako",
        "User ID: saburo",
        "Contract: 三郎食堂",
        "Service: http, https",
        "Customer number: C-0042",
    ] {
        assert!(r.text.contains(line), "{line}: {}", r.text);
    }
}

#[test]
fn the_webhook_body_lists_each_affected_end_user() {
    let mut n = notice(NotificationEvent::Recovered);
    n.affected.push(Affected {
        end_user: "hanako".into(),
        contract_name: "花子書店".into(),
        customer_number: None,
        services: vec!["imap".into()],
    });
    let body = crate::alerting::notify::webhook_body(&n, "key-1");
    assert_eq!(
        body["affected"],
        serde_json::json!([
            {"endUser": "taro", "contractName": "山田商店", "customerNumber": "C-0042", "services": ["http"]},
            {"endUser": "hanako", "contractName": "花子書店", "customerNumber": null, "services": ["imap"]},
        ])
    );
    assert_eq!(body["resolvedAt"], "2026-03-05T02:23:00Z");
    assert_eq!(body["idempotencyKey"], "key-1");
}
