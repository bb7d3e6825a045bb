//! Notices delivered to real servers on loopback (see `notify_support`): e-mail over STARTTLS
//! with AUTH, English and fax, the errors a real relay gives (refused password, 451, no
//! STARTTLS, server down), and signed webhooks checked with openssl. Needs Debian's
//! python3-aiosmtpd and openssl; fails without them.

mod notify_support;

use std::sync::atomic::Ordering;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use notify_support::{
    FROM, SinkOptions, USER, free_port, openssl_hmac, start_receiver, start_sink, text,
};
use oem_crds::incident::{Channel, IncidentKind, NotificationEvent, event};
use oem_crds::reseller::Language;
use oem_operator::alerting::notify::{
    Affected, IDEMPOTENCY_HEADER, IDEMPOTENCY_MAIL_HEADER, Notice, Notifier, NotifyConfig,
    NotifyError, SIGNATURE_HEADER, StartTls, Target, idempotency_key, render,
};

const TO: &str = "ops@reseller.example";
const UID: &str = "0b7e4a52-1c9d-4f7e-9a51-2f0d6c3b8e11";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A one-hour http outage of end user taro, as the incident controller would fill it.
fn notice(event: NotificationEvent) -> Notice {
    Notice {
        event,
        incident: "taro-http-20260305".into(),
        kind: IncidentKind::ServiceDown,
        brand: "さくらウェブ".into(),
        affected: vec![Affected {
            end_user: "taro".into(),
            contract_name: "山田商店".into(),
            customer_number: None,
            services: vec!["http".into()],
        }],
        started_at: ts("2026-03-05T01:00:00Z"),
        notified_at: Some(ts("2026-03-05T01:10:00Z")),
        resolved_at: Some(ts("2026-03-05T02:00:00Z")),
        report_due_by: Some(ts("2026-03-06T08:00:00Z")),
        timeline: vec![
            (ts("2026-03-05T01:00:00Z"), event::DOWN.into(), None),
            (ts("2026-03-05T02:00:00Z"), event::RECOVERED.into(), None),
        ],
        actions: vec!["restarted the web server".into()],
        cause: None,
        deferral_reason: None,
        time_zone: TimeZone::get("Asia/Tokyo").unwrap(),
    }
}

fn email_key(event: NotificationEvent, channel: Channel, to: &str) -> String {
    idempotency_key(UID, event, channel, to)
}

#[tokio::test]
async fn email_goes_over_starttls_with_auth_from_the_brand_with_an_id_from_the_key() {
    let sink = start_sink(SinkOptions {
        tls: true,
        require_tls: true,
        auth: true,
        ..SinkOptions::default()
    })
    .await;
    let notifier = Notifier::new(sink.config(StartTls::Required, true)).unwrap();
    let notice = notice(NotificationEvent::Outage);
    let key = email_key(NotificationEvent::Outage, Channel::Email, TO);
    let target = Target::Email { to: TO.into() };
    notifier.deliver(&target, &notice, &key).await.unwrap();

    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let mail = &mails[0];
    assert_eq!(mail.header("X-Sink-TLS"), "yes");
    assert_eq!(mail.header("X-Sink-Auth-User"), USER);
    assert_eq!(mail.header("X-Sink-Mail-From"), FROM);
    assert_eq!(mail.header("X-Sink-Rcpt-To"), TO);
    assert_eq!(mail.header("From"), format!("さくらウェブ <{FROM}>"));
    assert_eq!(mail.header("To"), TO);
    assert_eq!(
        mail.header("Subject"),
        "【さくらウェブ】障害発生のお知らせ: 山田商店 (http)"
    );
    assert_eq!(
        mail.header("Message-ID"),
        format!("<{key}@mail.example.jp>")
    );
    assert_eq!(mail.header(IDEMPOTENCY_MAIL_HEADER), key);
    assert!(mail.header("Content-Type").starts_with("text/plain"));
    assert_eq!(text(&mail.body), text(&render(&notice, Language::Ja).text));
    assert!(
        mail.body.contains("発生日時: 2026-03-05 10:00 JST"),
        "{}",
        mail.body
    );
    for (name, value) in &mail.headers {
        assert!(
            !value.to_lowercase().contains("oem-hosting"),
            "{name}: {value}"
        );
    }
    assert!(!mail.body.to_lowercase().contains("oem-hosting"));
}

#[tokio::test]
async fn english_contacts_and_fax_gateways_get_the_english_text() {
    let sink = start_sink(SinkOptions {
        tls: true,
        auth: true,
        ..SinkOptions::default()
    })
    .await;
    let notifier = Notifier::new(sink.config(StartTls::Opportunistic, true)).unwrap();
    let notice = notice(NotificationEvent::Report);
    let fax = "0312345678@fax.example";
    let email = Target::Email { to: TO.into() };
    let gateway = Target::Fax {
        gateway_email: fax.into(),
    };
    let email_id = email_key(NotificationEvent::Report, Channel::Email, TO);
    let fax_id = email_key(NotificationEvent::Report, Channel::Fax, fax);
    notifier
        .deliver_in(&email, &notice, Language::En, &email_id)
        .await
        .unwrap();
    notifier
        .deliver_in(&gateway, &notice, Language::En, &fax_id)
        .await
        .unwrap();

    let mails = sink.messages();
    assert_eq!(mails.len(), 2, "{mails:#?}");
    let expected = render(&notice, Language::En);
    for (mail, to, id) in [(&mails[0], TO, &email_id), (&mails[1], fax, &fax_id)] {
        assert_eq!(mail.header("X-Sink-TLS"), "yes");
        assert_eq!(mail.header("X-Sink-Rcpt-To"), to);
        assert_eq!(
            mail.header("Subject"),
            "[さくらウェブ] Incident report: 山田商店 (http)"
        );
        assert_eq!(mail.header("Message-ID"), format!("<{id}@mail.example.jp>"));
        assert_eq!(text(&mail.body), text(&expected.text));
        assert!(mail.body.contains("Downtime: 1 h"), "{}", mail.body);
        assert!(
            mail.body.contains("Cause:\n  under investigation"),
            "{}",
            mail.body
        );
    }
}

#[tokio::test]
async fn a_refused_password_is_a_permanent_error() {
    let sink = start_sink(SinkOptions {
        tls: true,
        require_tls: true,
        auth: true,
        ..SinkOptions::default()
    })
    .await;
    let wrong = sink.pki.ca.with_file_name("wrong-password");
    std::fs::write(&wrong, "not the password").unwrap();
    let mut config = sink.config(StartTls::Required, true);
    config.password_file = Some(wrong);
    let notifier = Notifier::new(config).unwrap();
    let err = notifier
        .deliver(
            &Target::Email { to: TO.into() },
            &notice(NotificationEvent::Outage),
            "outage-email-refused",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Smtp { .. }), "{err}");
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("535"), "{err}");
    assert!(!err.to_string().contains("not the password"), "{err}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_stopped_smtp_server_is_a_retryable_error() {
    let config = NotifyConfig {
        smtp_host: "127.0.0.1".into(),
        smtp_port: free_port(),
        starttls: StartTls::None,
        from: FROM.into(),
        ..NotifyConfig::default()
    };
    let notifier = Notifier::new(config).unwrap();
    let err = notifier
        .deliver(
            &Target::Email { to: TO.into() },
            &notice(NotificationEvent::Outage),
            "outage-email-down",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Smtp { .. }), "{err}");
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_transient_451_is_retryable_and_the_retry_keeps_the_message_id() {
    // No TLS: AUTH over plain text, as a relay on loopback may be configured.
    let sink = start_sink(SinkOptions {
        auth: true,
        fail_first: 1,
        ..SinkOptions::default()
    })
    .await;
    let notifier = Notifier::new(sink.config(StartTls::None, true)).unwrap();
    let notice = notice(NotificationEvent::Recovered);
    let key = email_key(NotificationEvent::Recovered, Channel::Email, TO);
    let target = Target::Email { to: TO.into() };
    let err = notifier.deliver(&target, &notice, &key).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("451"), "{err}");
    assert!(sink.messages().is_empty());

    notifier.deliver(&target, &notice, &key).await.unwrap();
    let mails = sink.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].header("X-Sink-TLS"), "no");
    assert_eq!(mails[0].header("X-Sink-Auth-User"), USER);
    assert_eq!(
        mails[0].header("Message-ID"),
        format!("<{key}@mail.example.jp>")
    );
}

#[tokio::test]
async fn required_starttls_refuses_a_server_without_it() {
    let sink = start_sink(SinkOptions::default()).await;
    let notifier = Notifier::new(sink.config(StartTls::Required, false)).unwrap();
    let err = notifier
        .deliver(
            &Target::Email { to: TO.into() },
            &notice(NotificationEvent::Outage),
            "outage-email-plain",
        )
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn webhook_notice_is_signed_and_carries_the_idempotency_key() {
    let receiver = start_receiver().await;
    let notifier = Notifier::new(NotifyConfig {
        // The test's receivers are plain HTTP on loopback.
        plain_http_webhooks: true,
        ..NotifyConfig::default()
    })
    .unwrap();
    let secret = "reseller-hmac-key";
    let target = Target::Webhook {
        url: receiver.url(),
        secret: Some(secret.as_bytes().to_vec()),
    };
    let key = idempotency_key(
        UID,
        NotificationEvent::Outage,
        Channel::Webhook,
        &target.address(),
    );
    let before = Timestamp::now().as_second();
    notifier
        .deliver(&target, &notice(NotificationEvent::Outage), &key)
        .await
        .unwrap();

    let requests = receiver.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (headers, body) = &requests[0];
    assert_eq!(headers[IDEMPOTENCY_HEADER], key.as_str());
    assert_eq!(headers["content-type"], "application/json");
    let signature = headers[SIGNATURE_HEADER].to_str().unwrap().to_owned();
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature header {signature}"));
    let t: i64 = t.parse().unwrap();
    assert!((before..=Timestamp::now().as_second()).contains(&t), "{t}");
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    assert_eq!(v1, openssl_hmac(secret, &signed).await);
    assert_ne!(v1, openssl_hmac("another-key", &signed).await);

    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(json["idempotencyKey"], key.as_str());
    assert_eq!(json["event"], "outage");
    assert_eq!(json["brand"], "さくらウェブ");
    assert_eq!(json["affected"][0]["contractName"], "山田商店");
    assert_eq!(json["affected"][0]["services"][0], "http");
    assert_eq!(json["startedAt"], "2026-03-05T01:00:00Z");
    assert_eq!(json["timeZone"], "Asia/Tokyo");
    receiver.server.abort();
}

#[tokio::test]
async fn webhook_without_a_key_is_sent_unsigned() {
    let receiver = start_receiver().await;
    let notifier = Notifier::new(NotifyConfig {
        // The test's receivers are plain HTTP on loopback.
        plain_http_webhooks: true,
        ..NotifyConfig::default()
    })
    .unwrap();
    let target = Target::Webhook {
        url: receiver.url(),
        secret: None,
    };
    notifier
        .deliver(
            &target,
            &notice(NotificationEvent::Recovered),
            "recovered-webhook-1",
        )
        .await
        .unwrap();
    let requests = receiver.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].0.get(SIGNATURE_HEADER).is_none());
    assert_eq!(requests[0].0[IDEMPOTENCY_HEADER], "recovered-webhook-1");
    receiver.server.abort();
}

#[tokio::test]
async fn webhook_server_errors_are_retryable_client_errors_permanent() {
    let receiver = start_receiver().await;
    let notifier = Notifier::new(NotifyConfig {
        // The test's receivers are plain HTTP on loopback.
        plain_http_webhooks: true,
        ..NotifyConfig::default()
    })
    .unwrap();
    let target = Target::Webhook {
        url: receiver.url(),
        secret: Some(b"k".to_vec()),
    };
    let notice = notice(NotificationEvent::Outage);
    for (status, retryable) in [
        (503, true),
        (500, true),
        (429, true),
        (400, false),
        (404, false),
    ] {
        receiver.status.store(status, Ordering::SeqCst);
        let err = notifier
            .deliver(&target, &notice, "outage-webhook-x")
            .await
            .unwrap_err();
        assert!(
            matches!(err, NotifyError::WebhookStatus { status: s, .. } if s == status),
            "{err}"
        );
        assert_eq!(err.is_retryable(), retryable, "{status}: {err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
    assert_eq!(receiver.requests.lock().unwrap().len(), 5);

    // The receiver goes away: connection refused is worth retrying. (A fresh notifier, so no
    // kept-alive connection to the old server is reused.)
    receiver.server.abort();
    let _ = receiver.server.await;
    let notifier = Notifier::new(NotifyConfig {
        // The test's receivers are plain HTTP on loopback.
        plain_http_webhooks: true,
        ..NotifyConfig::default()
    })
    .unwrap();
    let err = notifier
        .deliver(&target, &notice, "outage-webhook-x")
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::WebhookSend { .. }), "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}
