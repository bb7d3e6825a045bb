//! The webhook channel: a JSON body describing the notice, POSTed with its idempotency key and,
//! when the contact has an HMAC key, a signature.
//!
//! Signature scheme (header `X-OEM-Signature`): `t=<unix seconds>,v1=<hex>` where `<hex>` is
//! the lower-case hex HMAC-SHA256, keyed with the contact's secret, of the ASCII decimal
//! timestamp, a full stop, and the exact request body bytes (`"<t>.<body>"`). A receiver
//! recomputes it over the raw body, compares in constant time and rejects timestamps too far
//! from its clock (replay). Re-deliveries of one notice carry the same `Idempotency-Key`.

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::Sha256;

use super::error::{NotifyError, redact_url};
use super::{Notice, event_name, hex};

/// The JSON a webhook receives: every field of the notice, times in RFC 3339 UTC, plus the
/// reseller's zone so the receiver can show local times.
pub fn webhook_body(notice: &Notice, idempotency_key: &str) -> Value {
    let time = |t: Timestamp| t.to_string();
    let timeline: Vec<Value> = notice
        .timeline
        .iter()
        .map(|(at, event, message)| json!({"time": time(*at), "event": event, "message": message}))
        .collect();
    let affected: Vec<Value> = notice
        .affected
        .iter()
        .map(|a| {
            json!({"endUser": a.end_user, "contractName": a.contract_name,
                "customerNumber": a.customer_number, "services": a.services})
        })
        .collect();
    json!({
        "idempotencyKey": idempotency_key,
        "event": event_name(notice.event),
        "incident": notice.incident,
        "kind": notice.kind,
        "brand": notice.brand,
        "affected": affected,
        "startedAt": time(notice.started_at),
        "notifiedAt": notice.notified_at.map(time),
        "resolvedAt": notice.resolved_at.map(time),
        "reportDueBy": notice.report_due_by.map(time),
        "downtimeSeconds": notice.downtime().map(|d| d.as_secs()),
        "timeline": timeline,
        "actions": notice.actions,
        "cause": notice.cause,
        "deferralReason": notice.deferral_reason,
        "timeZone": notice.time_zone.iana_name(),
    })
}

/// Header value `t=<unix seconds>,v1=<hex hmac-sha256 of "<t>.<body>">` (see the module docs).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this never fails; were it to, the header carries no
    // signature and the receiver rejects the notice rather than trusting it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return format!("t={timestamp}");
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex(&mac.finalize().into_bytes()))
}

/// One POST of the notice; Ok on a 2xx answer. Redirects are not followed (a receiver that
/// moved is a configuration to fix, not something to chase with a signed body). A plain
/// `http` URL is refused unless `plain_http` (configuration `notify.plainHttpWebhooks`).
pub(super) async fn post(
    client: &reqwest::Client,
    plain_http: bool,
    url: &str,
    secret: Option<&[u8]>,
    body: &[u8],
    idempotency_key: &str,
    now: Timestamp,
) -> Result<(), NotifyError> {
    let shown = redact_url(url);
    let parsed =
        reqwest::Url::parse(url).map_err(|_| NotifyError::WebhookUrl { url: shown.clone() })?;
    match parsed.scheme() {
        "https" => {}
        "http" if plain_http => {}
        "http" => return Err(NotifyError::WebhookPlainHttp { url: shown }),
        _ => return Err(NotifyError::WebhookUrl { url: shown }),
    }
    let mut request = client
        .post(parsed)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(super::IDEMPOTENCY_HEADER, idempotency_key);
    if let Some(secret) = secret {
        request = request.header(super::SIGNATURE_HEADER, sign(secret, now.as_second(), body));
    }
    let response =
        request
            .body(body.to_vec())
            .send()
            .await
            .map_err(|source| NotifyError::WebhookSend {
                url: shown.clone(),
                // Only a malformed request is hopeless; connect errors, timeouts and broken
                // bodies may pass next time.
                retryable: !source.is_builder(),
                source: source.without_url(),
            })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(NotifyError::WebhookStatus {
            url: shown,
            status: status.as_u16(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_hmac() {
        // Expected values computed with
        // `echo -n '<t>.<body>' | openssl dgst -sha256 -hmac '<key>'`.
        assert_eq!(
            sign(b"whsec_test_key", 1_767_225_600, br#"{"hello":"world"}"#),
            "t=1767225600,v1=1a87770456fab111b3f453f7e76a48cd0ce3d1bc8f97702bec18540e07512e80"
        );
        assert_eq!(
            sign(b"k", 1_700_000_000, b""),
            "t=1700000000,v1=5c2999a43333a6877f49c8003f235c4f6de40f85b1b7414b70bd470a8db53d97"
        );
    }

    #[tokio::test]
    async fn a_plain_http_webhook_is_refused_unless_configured() {
        let refused = post(
            &reqwest::Client::new(),
            false,
            "http://127.0.0.1:9/hook",
            None,
            b"{}",
            "key",
            Timestamp::UNIX_EPOCH,
        )
        .await;
        match refused {
            Err(error @ NotifyError::WebhookPlainHttp { .. }) => assert!(!error.is_retryable()),
            other => panic!("expected a refusal of plain http, got {other:?}"),
        }
        // Allowed, it is tried (and here fails to connect: nothing listens on port 9).
        let tried = post(
            &reqwest::Client::new(),
            true,
            "http://127.0.0.1:9/hook",
            None,
            b"{}",
            "key",
            Timestamp::UNIX_EPOCH,
        )
        .await;
        assert!(
            matches!(tried, Err(NotifyError::WebhookSend { .. })),
            "{tried:?}"
        );
    }

    #[test]
    fn signature_changes_with_key_time_and_body() {
        let v1 = |s: String| s.split_once(",v1=").unwrap().1.to_owned();
        let base = v1(sign(b"key", 1, b"body"));
        assert_ne!(base, v1(sign(b"key2", 1, b"body")));
        assert_ne!(base, v1(sign(b"key", 2, b"body")));
        assert_ne!(base, v1(sign(b"key", 1, b"body ")));
    }
}
