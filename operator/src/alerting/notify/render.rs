//! The text of a notice, in Japanese or English, under the reseller's brand only: the
//! reseller forwards or quotes it to its own customers, so no name of ours appears in it.
//! The same text goes by e-mail and to the fax gateway.

use std::fmt::Write;

use jiff::{SignedDuration, Timestamp};
use oem_crds::incident::{IncidentKind, NotificationEvent, event};
use oem_crds::reseller::Language;

use super::{Notice, Rendered};

/// The words of one language.
struct Words {
    subject: fn(NotificationEvent) -> &'static str,
    intro: fn(NotificationEvent) -> &'static str,
    kind: fn(IncidentKind) -> &'static str,
    timeline_event: fn(&str) -> Option<&'static str>,
    duration: fn(SignedDuration) -> String,
    greeting: &'static str,
    contract: &'static str,
    customer_number: &'static str,
    end_user: &'static str,
    service: &'static str,
    incident_kind: &'static str,
    started: &'static str,
    notified: &'static str,
    resolved: &'static str,
    not_resolved: &'static str,
    downtime: &'static str,
    downtime_so_far: &'static str,
    report_due: &'static str,
    timeline: &'static str,
    actions: &'static str,
    cause: &'static str,
    cause_unknown: &'static str,
    deferral: &'static str,
    reference: &'static str,
    closing: &'static str,
}

const JA: Words = Words {
    subject: |e| match e {
        NotificationEvent::Outage => "障害発生のお知らせ",
        NotificationEvent::Recovered => "障害復旧のお知らせ",
        NotificationEvent::Report => "障害報告書",
        NotificationEvent::Deferral => "障害報告書の提出延期のお知らせ",
        NotificationEvent::MailLock => "メール送信停止のお知らせ",
    },
    intro: |e| match e {
        NotificationEvent::Outage => {
            "下記のサービスが10分以上ご利用いただけない状態となっております。現在、復旧に向けて対応中です。"
        }
        NotificationEvent::Recovered => "下記のサービスは復旧し、正常に動作しております。",
        NotificationEvent::Report => "下記の障害につきまして、ご報告いたします。",
        NotificationEvent::Deferral => {
            "下記の障害の原因調査に時間を要しているため、障害報告書の提出が遅れます。調査が終わり次第、ご報告いたします。"
        }
        NotificationEvent::MailLock => {
            "下記のアカウントから大量のメール送信が検出されたため、メールの送信を一時的に停止しました。"
        }
    },
    kind: |k| match k {
        IncidentKind::ServiceDown => "サービス停止",
        IncidentKind::HostDown => "サーバー応答なし",
        IncidentKind::MassMail => "大量メール送信",
    },
    timeline_event: |e| {
        Some(match e {
            event::DOWN => "障害発生",
            event::DETECTED => "障害検知",
            event::RESTARTED => "サービス再起動",
            event::RECREATED => "サーバー再作成",
            event::CORDONED => "基盤の切り離し",
            event::MAIL_LOCKED => "メール送信停止",
            event::NOTIFIED => "ご担当者様へ通知",
            event::RECOVERED => "復旧",
            event::REPORT_DEFERRED => "報告書提出の延期",
            event::REPORTED => "障害報告",
            _ => return None,
        })
    },
    duration: |d| {
        let minutes = u64::try_from(d.as_secs()).unwrap_or(0).div_ceil(60);
        match (minutes / 60, minutes % 60) {
            (0, m) => format!("{m}分"),
            (h, 0) => format!("{h}時間"),
            (h, m) => format!("{h}時間{m}分"),
        }
    },
    greeting: "ご担当者様",
    contract: "契約名",
    customer_number: "顧客番号",
    end_user: "ユーザーID",
    service: "サービス",
    incident_kind: "障害の種類",
    started: "発生日時",
    notified: "通知日時",
    resolved: "復旧日時",
    not_resolved: "未復旧",
    downtime: "停止時間",
    downtime_so_far: "停止時間（通知時点）",
    report_due: "報告期限",
    timeline: "経過",
    actions: "対応内容",
    cause: "原因",
    cause_unknown: "調査中",
    deferral: "延期の理由",
    reference: "障害管理番号",
    closing: "ご迷惑をおかけし、誠に申し訳ございません。",
};

const EN: Words = Words {
    subject: |e| match e {
        NotificationEvent::Outage => "Service outage",
        NotificationEvent::Recovered => "Service restored",
        NotificationEvent::Report => "Incident report",
        NotificationEvent::Deferral => "Incident report postponed",
        NotificationEvent::MailLock => "Outbound mail locked",
    },
    intro: |e| match e {
        NotificationEvent::Outage => {
            "The service below has been unavailable for 10 minutes or more. We are working to restore it."
        }
        NotificationEvent::Recovered => "The service below has been restored and works normally.",
        NotificationEvent::Report => "This is our report on the incident below.",
        NotificationEvent::Deferral => {
            "Investigating the cause of the incident below takes longer than planned, so the incident report is postponed. It will follow once the investigation ends."
        }
        NotificationEvent::MailLock => {
            "The account below sent mail in bulk, so its outbound mail has been locked for now."
        }
    },
    kind: |k| match k {
        IncidentKind::ServiceDown => "service down",
        IncidentKind::HostDown => "server unreachable",
        IncidentKind::MassMail => "mass mailing",
    },
    timeline_event: |e| {
        Some(match e {
            event::DOWN => "outage began",
            event::DETECTED => "outage detected",
            event::RESTARTED => "service restarted",
            event::RECREATED => "server recreated",
            event::CORDONED => "host taken out of service",
            event::MAIL_LOCKED => "outbound mail locked",
            event::NOTIFIED => "contacts notified",
            event::RECOVERED => "service restored",
            event::REPORT_DEFERRED => "report postponed",
            event::REPORTED => "report sent",
            _ => return None,
        })
    },
    duration: |d| {
        let minutes = u64::try_from(d.as_secs()).unwrap_or(0).div_ceil(60);
        match (minutes / 60, minutes % 60) {
            (0, m) => format!("{m} min"),
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        }
    },
    greeting: "Dear",
    contract: "Contract",
    customer_number: "Customer number",
    end_user: "User ID",
    service: "Service",
    incident_kind: "Kind",
    started: "Began",
    notified: "Notified",
    resolved: "Restored",
    not_resolved: "not yet",
    downtime: "Downtime",
    downtime_so_far: "Downtime (at notice)",
    report_due: "Report due",
    timeline: "Timeline",
    actions: "Actions taken",
    cause: "Cause",
    cause_unknown: "under investigation",
    deferral: "Reason for the delay",
    reference: "Incident reference",
    closing: "We apologise for the inconvenience.",
};

/// Whom the subject line names: `山田商店 (http, https)`; of several end users the first three
/// and how many more.
fn who(notice: &Notice) -> String {
    const NAMED: usize = 3;
    let mut parts: Vec<String> = notice
        .affected
        .iter()
        .take(NAMED)
        .map(|a| format!("{} ({})", a.contract_name, a.services_text()))
        .collect();
    if notice.affected.len() > NAMED {
        parts.push(format!("+{}", notice.affected.len() - NAMED));
    }
    parts.join(", ")
}

/// The notice as a subject and a plain-text body, in `language`, times in the notice's zone.
pub fn render(notice: &Notice, language: Language) -> Rendered {
    let (w, subject) = match language {
        Language::Ja => (
            &JA,
            format!(
                "【{}】{}: {}",
                notice.brand,
                (JA.subject)(notice.event),
                who(notice)
            ),
        ),
        Language::En => (
            &EN,
            format!(
                "[{}] {}: {}",
                notice.brand,
                (EN.subject)(notice.event),
                who(notice)
            ),
        ),
    };
    let time = |t: Timestamp| {
        t.to_zoned(notice.time_zone.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string()
    };
    let mut text = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = match language {
        Language::Ja => writeln!(text, "{} {}\n", notice.brand, w.greeting),
        Language::En => writeln!(text, "{} {} contact,\n", w.greeting, notice.brand),
    };
    let _ = writeln!(text, "{}\n", (w.intro)(notice.event));

    // Each end user the outage befell (several when their node went down), then the outage.
    let mut fields: Vec<(&str, String)> = Vec::new();
    for affected in &notice.affected {
        fields.push((w.contract, affected.contract_name.clone()));
        if let Some(number) = &affected.customer_number {
            fields.push((w.customer_number, number.clone()));
        }
        fields.push((w.end_user, affected.end_user.clone()));
        fields.push((w.service, affected.services_text()));
    }
    fields.push((w.incident_kind, (w.kind)(notice.kind).to_owned()));
    fields.push((w.started, time(notice.started_at)));
    if let Some(at) = notice.notified_at {
        fields.push((w.notified, time(at)));
    }
    if notice.event != NotificationEvent::MailLock {
        let resolved = notice
            .resolved_at
            .map_or_else(|| w.not_resolved.to_owned(), time);
        fields.push((w.resolved, resolved));
    }
    if let Some(downtime) = notice.downtime() {
        let label = if notice.resolved_at.is_some() {
            w.downtime
        } else {
            w.downtime_so_far
        };
        fields.push((label, (w.duration)(downtime)));
    }
    if let Some(due) = notice.report_due_by
        && matches!(
            notice.event,
            NotificationEvent::Recovered | NotificationEvent::Deferral
        )
    {
        fields.push((w.report_due, time(due)));
    }
    for (label, value) in &fields {
        let _ = writeln!(text, "  {label}: {value}");
    }

    if notice.event == NotificationEvent::Deferral
        && let Some(reason) = &notice.deferral_reason
    {
        let _ = writeln!(text, "\n{}:\n  {reason}", w.deferral);
    }
    if matches!(
        notice.event,
        NotificationEvent::Report | NotificationEvent::Recovered
    ) && !notice.timeline.is_empty()
    {
        let _ = writeln!(text, "\n{}:", w.timeline);
        for (at, what, message) in &notice.timeline {
            let what = (w.timeline_event)(what).unwrap_or(what);
            let _ = match message {
                Some(m) => writeln!(text, "  {}  {what} — {m}", time(*at)),
                None => writeln!(text, "  {}  {what}", time(*at)),
            };
        }
    }
    if !notice.actions.is_empty() {
        let _ = writeln!(text, "\n{}:", w.actions);
        for action in &notice.actions {
            let _ = writeln!(text, "  - {action}");
        }
    }
    if notice.event == NotificationEvent::Report {
        let cause = notice.cause.as_deref().unwrap_or(w.cause_unknown);
        let _ = writeln!(text, "\n{}:\n  {cause}", w.cause);
    }
    let _ = writeln!(text, "\n{}: {}", w.reference, notice.incident);
    if matches!(
        notice.event,
        NotificationEvent::Outage | NotificationEvent::Report | NotificationEvent::Deferral
    ) {
        let _ = writeln!(text, "\n{}", w.closing);
    }
    let _ = writeln!(text, "\n{}", notice.brand);
    Rendered { subject, text }
}

#[cfg(test)]
mod tests;
