//! Notices to a reseller's contacts about an incident (SPEC §8): what a notice says
//! (`Notice`, rendered in Japanese or English under the reseller's brand), where it goes
//! (`Target`: e-mail, fax gateway, signed webhook) and one delivery attempt (`Notifier`).
//! Retries, and recording each delivery so it happens once, belong to the incident controller;
//! this module gives it the idempotency key, the backoff and whether an error is retryable.

mod announcement;
mod config;
mod email;
mod error;
mod notifier;
mod render;
mod report;
mod webhook;

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use oem_crds::incident::{Channel, IncidentKind, NotificationEvent};
use sha2::{Digest, Sha256};

pub use announcement::{AnnouncedTarget, Announcement, announcement_body, render_announcement};
pub use config::{NotifyConfig, StartTls};
pub use email::IDEMPOTENCY_MAIL_HEADER;
pub use error::{NotifyError, http_status_is_retryable, redact_url};
pub use notifier::Notifier;
pub use render::render;
pub use report::{
    AvailabilityReport, ReportIncident, ReportLine, escape, render_report_html, render_report_mail,
};
pub use webhook::{sign, webhook_body};

/// The webhook header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256>` (see [`sign`]).
pub const SIGNATURE_HEADER: &str = "X-OEM-Signature";
/// The webhook header carrying the notice's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// What a notice is about: filled by the incident controller from the Incident, EndUser and Reseller.
#[derive(Debug, Clone)]
pub struct Notice {
    pub event: NotificationEvent,
    /// Incident name.
    pub incident: String,
    pub kind: IncidentKind,
    /// The reseller's displayName: the ONLY brand that appears.
    pub brand: String,
    /// The end users the outage befell and their services: one, or every end user of the
    /// reseller on a node that went down. Never empty.
    pub affected: Vec<Affected>,
    pub started_at: Timestamp,
    pub notified_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub report_due_by: Option<Timestamp>,
    /// time, event, message
    pub timeline: Vec<(Timestamp, String, Option<String>)>,
    pub actions: Vec<String>,
    pub cause: Option<String>,
    pub deferral_reason: Option<String>,
    /// Times are rendered in the reseller's zone.
    pub time_zone: TimeZone,
}

/// One end user an outage befell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affected {
    /// The end user's login ID.
    pub end_user: String,
    pub contract_name: String,
    pub customer_number: Option<String>,
    /// e.g. `["http", "https"]`, sorted.
    pub services: Vec<String>,
}

impl Affected {
    /// The services as one line: `http, https`.
    pub fn services_text(&self) -> String {
        self.services.join(", ")
    }
}

impl Notice {
    /// How long the service was down: to recovery when resolved, else to the notice (the
    /// outage notice goes out at 10 minutes), else unknown.
    pub fn downtime(&self) -> Option<jiff::SignedDuration> {
        let end = self.resolved_at.or(self.notified_at)?;
        Some(end.duration_since(self.started_at))
    }
}

/// Where one notice goes. Its `Debug` shows a webhook by [`Target::address`] and never its
/// key, so a target logged with `?` leaks neither.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    Email {
        to: String,
    },
    /// The e-mail text, to a gateway that faxes it on.
    Fax {
        gateway_email: String,
    },
    /// A signed JSON POST; unsigned when the contact has no HMAC key.
    Webhook {
        url: String,
        secret: Option<Vec<u8>>,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Email { to } => f.debug_struct("Email").field("to", to).finish(),
            Self::Fax { gateway_email } => f
                .debug_struct("Fax")
                .field("gateway_email", gateway_email)
                .finish(),
            Self::Webhook { secret, .. } => f
                .debug_struct("Webhook")
                .field("url", &self.address())
                .field("secret", &secret.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

impl Target {
    pub fn channel(&self) -> Channel {
        match self {
            Self::Email { .. } => Channel::Email,
            Self::Fax { .. } => Channel::Fax,
            Self::Webhook { .. } => Channel::Webhook,
        }
    }

    /// The address as recorded in the Incident's status: the e-mail address, or the webhook
    /// URL's host and a digest of its path and query (`redact_url`).
    pub fn address(&self) -> String {
        match self {
            Self::Email { to } => to.clone(),
            Self::Fax { gateway_email } => gateway_email.clone(),
            Self::Webhook { url, .. } => redact_url(url),
        }
    }
}

/// A notice as text: the e-mail's subject and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
}

/// Backoff before attempt n (1-based): exponential from base, capped, with no randomness
/// needed (deterministic for tests). The first attempt goes at once; attempt 2 waits
/// `backoffBase`, attempt 3 twice that, and so on up to `backoffMax`.
pub fn backoff(config: &NotifyConfig, attempt: u32) -> Duration {
    if attempt <= 1 {
        return Duration::ZERO;
    }
    let doublings = (attempt - 2).min(32);
    config
        .backoff_base
        .checked_mul(1u32 << doublings.min(31))
        .map_or(config.backoff_max, |d| d.min(config.backoff_max))
}

/// The stable key of one notice to one target: hash of incident name+uid, event, channel, target.
/// The incident's uid is unique for all time, so it stands for name and uid together. The
/// key reads `<event>-<channel>-<32 hex>`, usable as a Message-ID local part.
pub fn idempotency_key(
    incident_uid: &str,
    event: NotificationEvent,
    channel: Channel,
    target: &str,
) -> String {
    let event = event_name(event);
    keyed(
        &event.to_ascii_lowercase(),
        channel,
        &[incident_uid, event, channel_name(channel), target],
    )
}

/// The stable key of one maintenance announcement to one target of one reseller: hash of the
/// window's uid, the reseller, channel and target; it reads `maintenance-<channel>-<32 hex>`.
pub fn announcement_key(
    window_uid: &str,
    reseller: &str,
    channel: Channel,
    target: &str,
) -> String {
    keyed(
        MAINTENANCE_EVENT,
        channel,
        &[
            window_uid,
            MAINTENANCE_EVENT,
            reseller,
            channel_name(channel),
            target,
        ],
    )
}

/// `<prefix>-<channel>-<32 hex of the parts, each ended by a NUL>`.
fn keyed(prefix: &str, channel: Channel, parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    format!("{prefix}-{}-{}", channel_name(channel), hex(&digest[..16]))
}

/// The event name of a maintenance announcement (webhook body, metrics).
pub const MAINTENANCE_EVENT: &str = "maintenance";
/// The notifications metric's event of a monthly availability report.
pub const REPORT_EVENT: &str = "monthlyReport";

/// The key of one reseller's report of one month to one address.
pub fn report_key(reseller_uid: &str, month: &str, to: &str) -> String {
    keyed(
        REPORT_EVENT,
        Channel::Email,
        &[reseller_uid, REPORT_EVENT, month, to],
    )
}

/// The event as it is spelled in the Incident's status and the webhook body.
pub fn event_name(event: NotificationEvent) -> &'static str {
    match event {
        NotificationEvent::Outage => "outage",
        NotificationEvent::Recovered => "recovered",
        NotificationEvent::Report => "report",
        NotificationEvent::Deferral => "deferral",
        NotificationEvent::MailLock => "mailLock",
    }
}

pub fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Webhook => "webhook",
        Channel::Fax => "fax",
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_stable() {
        let a = idempotency_key(
            "9d1c2f6e-uid",
            NotificationEvent::Outage,
            Channel::Email,
            "ops@example.jp",
        );
        let b = idempotency_key(
            "9d1c2f6e-uid",
            NotificationEvent::Outage,
            Channel::Email,
            "ops@example.jp",
        );
        assert_eq!(a, b);
        assert!(a.starts_with("outage-email-"), "{a}");
        assert_eq!(a.len(), "outage-email-".len() + 32);
    }

    #[test]
    fn idempotency_keys_differ_by_incident_event_channel_and_target() {
        let base = ("uid-1", NotificationEvent::Outage, Channel::Email, "a@x.jp");
        let variants = [
            base,
            ("uid-2", base.1, base.2, base.3),
            (base.0, NotificationEvent::Report, base.2, base.3),
            (base.0, base.1, Channel::Fax, base.3),
            (base.0, base.1, base.2, "b@x.jp"),
        ];
        let keys: std::collections::HashSet<String> = variants
            .iter()
            .map(|&(uid, event, channel, target)| idempotency_key(uid, event, channel, target))
            .collect();
        assert_eq!(keys.len(), variants.len());
        // Fields are separated, so moving a character from one to the next changes the key.
        assert_ne!(
            idempotency_key("ab", base.1, base.2, "c"),
            idempotency_key("a", base.1, base.2, "bc")
        );
    }

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let config = NotifyConfig {
            backoff_base: Duration::from_secs(15),
            backoff_max: Duration::from_secs(300),
            ..NotifyConfig::default()
        };
        let waits: Vec<u64> = (1..=8).map(|n| backoff(&config, n).as_secs()).collect();
        assert_eq!(waits, [0, 15, 30, 60, 120, 240, 300, 300]);
        assert_eq!(backoff(&config, 0), Duration::ZERO);
        assert_eq!(backoff(&config, u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn targets_name_their_channel_and_hide_webhook_secrets() {
        let hook = Target::Webhook {
            url: "https://hooks.example/in?token=abc".into(),
            secret: Some(b"k".to_vec()),
        };
        assert_eq!(hook.channel(), Channel::Webhook);
        let address = hook.address();
        assert!(
            address.starts_with("https://hooks.example/<path sha256:"),
            "{address}"
        );
        assert!(
            !address.contains("abc") && !address.contains("/in"),
            "{address}"
        );
        let shown = format!("{hook:?}");
        assert!(
            !shown.contains("abc") && !shown.contains("107"),
            "neither the URL's query nor the key (b\"k\" = 107) in {shown}"
        );
        let fax = Target::Fax {
            gateway_email: "0312345678@fax.example".into(),
        };
        assert_eq!(fax.channel(), Channel::Fax);
    }
}
