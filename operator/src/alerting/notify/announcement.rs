//! The announcement of a maintenance window to a reseller's contacts, ahead of its start: the
//! same brand rules as the incident notices (the reseller's displayName only), in Japanese or
//! English, naming the start, the planned end, the reason and what is affected; times in the
//! reseller's zone. The webhook body is language-neutral, times in RFC 3339 UTC.

use std::fmt::Write;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use oem_crds::reseller::Language;
use serde_json::{Value, json};

use super::{MAINTENANCE_EVENT, Rendered};

/// One end user (or every one) and its services, as told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncedTarget {
    /// The end user's login ID; `None`: every end user of the reseller.
    pub end_user: Option<String>,
    /// e.g. "http"; empty: every service.
    pub services: Vec<String>,
}

/// What an announcement says.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// `namespace/name` of a reseller's window, `name` of the provider's.
    pub window: String,
    /// The reseller's displayName: the ONLY brand that appears.
    pub brand: String,
    pub start: Timestamp,
    pub end: Timestamp,
    /// The work may end earlier, once every target answers again.
    pub end_when_recovered: bool,
    /// A repeated announcement: the start and planned end told before.
    pub rescheduled_from: Option<(Timestamp, Timestamp)>,
    pub reason_ja: Option<String>,
    pub reason_en: Option<String>,
    pub targets: Vec<AnnouncedTarget>,
    pub time_zone: TimeZone,
}

impl Announcement {
    /// The reason in `language`, else in the other one.
    pub fn reason(&self, language: Language) -> &str {
        let (first, second) = match language {
            Language::Ja => (&self.reason_ja, &self.reason_en),
            Language::En => (&self.reason_en, &self.reason_ja),
        };
        first.as_deref().or(second.as_deref()).unwrap_or_default()
    }
}

struct Words {
    subject: &'static str,
    subject_changed: &'static str,
    changed: &'static str,
    intro: &'static str,
    start: &'static str,
    end: &'static str,
    early: &'static str,
    reason: &'static str,
    affected: &'static str,
    every_end_user: &'static str,
    every_service: &'static str,
    reference: &'static str,
    closing: &'static str,
}

const JA: Words = Words {
    subject: "メンテナンスのお知らせ",
    subject_changed: "メンテナンス日時変更のお知らせ",
    changed: "先にお知らせしたメンテナンスの日時が変更になりました。変更前",
    intro: "下記の日時にメンテナンスを実施いたします。作業中は下記のサービスがご利用いただけない場合があります。",
    start: "開始日時",
    end: "終了予定日時",
    early: "作業が終わり次第、終了予定より早く終了することがあります。",
    reason: "作業内容",
    affected: "対象",
    every_end_user: "すべてのお客様",
    every_service: "すべてのサービス",
    reference: "メンテナンス管理番号",
    closing: "ご不便をおかけいたしますが、ご理解とご協力をお願い申し上げます。",
};

const EN: Words = Words {
    subject: "Planned maintenance",
    subject_changed: "Planned maintenance rescheduled",
    changed: "The maintenance announced before has new times. It was announced for",
    intro: "Maintenance work is planned at the times below. The services listed may be unavailable while it runs.",
    start: "Begins",
    end: "Planned end",
    early: "The work may end earlier, as soon as every service answers again.",
    reason: "Work",
    affected: "Affected",
    every_end_user: "every customer",
    every_service: "every service",
    reference: "Maintenance reference",
    closing: "We apologise for the inconvenience and thank you for your understanding.",
};

/// The announcement as a subject and a plain-text body, in `language`.
pub fn render_announcement(announcement: &Announcement, language: Language) -> Rendered {
    let w = match language {
        Language::Ja => &JA,
        Language::En => &EN,
    };
    let time = |t: Timestamp| {
        t.to_zoned(announcement.time_zone.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string()
    };
    let title = if announcement.rescheduled_from.is_some() {
        w.subject_changed
    } else {
        w.subject
    };
    let subject = match language {
        Language::Ja => format!(
            "【{}】{}: {}",
            announcement.brand,
            title,
            time(announcement.start)
        ),
        Language::En => format!(
            "[{}] {}: {}",
            announcement.brand,
            title,
            time(announcement.start)
        ),
    };
    let mut text = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = match language {
        Language::Ja => writeln!(text, "{} ご担当者様\n", announcement.brand),
        Language::En => writeln!(text, "Dear {} contact,\n", announcement.brand),
    };
    if let Some((start, end)) = announcement.rescheduled_from {
        let _ = writeln!(text, "{}: {} – {}\n", w.changed, time(start), time(end));
    }
    let _ = writeln!(text, "{}\n", w.intro);
    let _ = writeln!(text, "  {}: {}", w.start, time(announcement.start));
    let _ = writeln!(text, "  {}: {}", w.end, time(announcement.end));
    let _ = writeln!(text, "  {}: {}", w.reason, announcement.reason(language));
    let _ = writeln!(text, "\n{}:", w.affected);
    for target in &announcement.targets {
        let who = target.end_user.as_deref().unwrap_or(w.every_end_user);
        let what = if target.services.is_empty() {
            w.every_service.to_owned()
        } else {
            target.services.join(", ")
        };
        let _ = writeln!(text, "  - {who}: {what}");
    }
    if announcement.end_when_recovered {
        let _ = writeln!(text, "\n{}", w.early);
    }
    let _ = writeln!(text, "\n{}: {}", w.reference, announcement.window);
    let _ = writeln!(text, "\n{}", w.closing);
    let _ = writeln!(text, "\n{}", announcement.brand);
    Rendered { subject, text }
}

/// The JSON a webhook receives for an announcement.
pub fn announcement_body(announcement: &Announcement, idempotency_key: &str) -> Value {
    let targets: Vec<Value> = announcement
        .targets
        .iter()
        .map(|t| json!({"endUser": t.end_user, "services": t.services}))
        .collect();
    json!({
        "idempotencyKey": idempotency_key,
        "event": MAINTENANCE_EVENT,
        "maintenance": announcement.window,
        "brand": announcement.brand,
        "start": announcement.start.to_string(),
        "end": announcement.end.to_string(),
        "endWhenRecovered": announcement.end_when_recovered,
        "rescheduledFrom": announcement.rescheduled_from.map(|(start, end)| {
            json!({"start": start.to_string(), "end": end.to_string()})
        }),
        "reason": {"ja": announcement.reason_ja, "en": announcement.reason_en},
        "targets": targets,
        "timeZone": announcement.time_zone.iana_name(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announcement() -> Announcement {
        Announcement {
            window: "reseller-sakura/db-upgrade".into(),
            brand: "さくらウェブ".into(),
            start: "2026-12-09T17:00:00Z".parse().unwrap(),
            end: "2026-12-09T19:00:00Z".parse().unwrap(),
            end_when_recovered: true,
            rescheduled_from: None,
            reason_ja: Some("データベースの更新".into()),
            reason_en: None,
            targets: vec![
                AnnouncedTarget {
                    end_user: Some("shop01".into()),
                    services: vec!["postgresql".into()],
                },
                AnnouncedTarget {
                    end_user: None,
                    services: vec![],
                },
            ],
            time_zone: TimeZone::get("Asia/Tokyo").unwrap(),
        }
    }

    #[test]
    fn japanese_text_names_start_end_reason_and_targets_in_the_resellers_zone() {
        let r = render_announcement(&announcement(), Language::Ja);
        assert_eq!(
            r.subject,
            "【さくらウェブ】メンテナンスのお知らせ: 2026-12-10 02:00 JST"
        );
        for part in [
            "開始日時: 2026-12-10 02:00 JST",
            "終了予定日時: 2026-12-10 04:00 JST",
            "作業内容: データベースの更新",
            "  - shop01: postgresql",
            "  - すべてのお客様: すべてのサービス",
            "メンテナンス管理番号: reseller-sakura/db-upgrade",
            "早く終了する",
        ] {
            assert!(r.text.contains(part), "{part} in\n{}", r.text);
        }
    }

    #[test]
    fn english_text_falls_back_to_the_japanese_reason_and_names_no_brand_but_the_resellers() {
        let r = render_announcement(&announcement(), Language::En);
        assert!(r.subject.starts_with("[さくらウェブ] Planned maintenance"));
        assert!(r.text.contains("Work: データベースの更新"), "{}", r.text);
        assert!(r.text.contains("Planned end: 2026-12-10 04:00 JST"));
        assert!(!r.text.to_lowercase().contains("oem"), "{}", r.text);
    }

    #[test]
    fn a_rescheduled_window_says_so_with_the_times_told_before() {
        let mut moved = announcement();
        moved.rescheduled_from = Some((
            "2026-12-08T17:00:00Z".parse().unwrap(),
            "2026-12-08T19:00:00Z".parse().unwrap(),
        ));
        let ja = render_announcement(&moved, Language::Ja);
        assert_eq!(
            ja.subject,
            "【さくらウェブ】メンテナンス日時変更のお知らせ: 2026-12-10 02:00 JST"
        );
        assert!(
            ja.text
                .contains("変更前: 2026-12-09 02:00 JST – 2026-12-09 04:00 JST"),
            "{}",
            ja.text
        );
        let en = render_announcement(&moved, Language::En);
        assert!(
            en.subject.contains("Planned maintenance rescheduled"),
            "{}",
            en.subject
        );
        let body = announcement_body(&moved, "k");
        assert_eq!(body["rescheduledFrom"]["start"], "2026-12-08T17:00:00Z");
        assert!(announcement_body(&announcement(), "k")["rescheduledFrom"].is_null());
    }

    #[test]
    fn the_webhook_body_carries_times_in_utc_and_the_key() {
        let body = announcement_body(&announcement(), "maintenance-webhook-00");
        assert_eq!(body["event"], "maintenance");
        assert_eq!(body["start"], "2026-12-09T17:00:00Z");
        assert_eq!(body["idempotencyKey"], "maintenance-webhook-00");
        assert_eq!(body["targets"][0]["endUser"], "shop01");
        assert_eq!(body["timeZone"], "Asia/Tokyo");
    }
}
