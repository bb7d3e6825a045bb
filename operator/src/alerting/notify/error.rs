//! Why a delivery failed, and whether trying again can help: the incident controller retries
//! a retryable error with backoff and records a permanent one as Failed at once.

use std::path::PathBuf;

use lettre::transport::smtp;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notify configuration: {0}")]
    Config(String),
    #[error("reading the SMTP password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the SMTP CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS settings for SMTP relay {host}: {source}")]
    Tls {
        host: String,
        #[source]
        source: smtp::Error,
    },
    #[error("e-mail address {address:?}: {source}")]
    Address {
        address: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("building the message to {to}: {source}")]
    Message {
        to: String,
        #[source]
        source: lettre::error::Error,
    },
    #[error("SMTP relay {relay}, message to {to}: {source}")]
    Smtp {
        relay: String,
        to: String,
        retryable: bool,
        #[source]
        source: smtp::Error,
    },
    #[error("building the webhook client: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("webhook {url}: not an http(s) URL")]
    WebhookUrl { url: String },
    #[error("webhook {url}: plain http is refused (contact webhooks use https)")]
    WebhookPlainHttp { url: String },
    #[error("webhook {url}: {source}")]
    WebhookSend {
        url: String,
        retryable: bool,
        #[source]
        source: reqwest::Error,
    },
    #[error("webhook {url}: answered HTTP {status}")]
    WebhookStatus { url: String, status: u16 },
    #[error("encoding the webhook body: {0}")]
    Encode(#[source] serde_json::Error),
}

impl NotifyError {
    /// Whether a later attempt may succeed: connection failures, timeouts, SMTP 4xx, HTTP 5xx,
    /// 408, 425 and 429. SMTP 5xx, other HTTP 4xx, bad addresses and TLS set-up are permanent.
    /// An unreadable password file is retryable: the Secret may not be mounted yet.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::PasswordFile { .. } => true,
            Self::Smtp { retryable, .. } | Self::WebhookSend { retryable, .. } => *retryable,
            Self::WebhookStatus { status, .. } => http_status_is_retryable(*status),
            Self::Config(_)
            | Self::CaFile { .. }
            | Self::Tls { .. }
            | Self::Address { .. }
            | Self::Message { .. }
            | Self::HttpClient(_)
            | Self::WebhookUrl { .. }
            | Self::WebhookPlainHttp { .. }
            | Self::Encode(_) => false,
        }
    }

    /// A low-cardinality name for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Config(_) | Self::CaFile { .. } | Self::Tls { .. } | Self::HttpClient(_) => {
                "config"
            }
            Self::PasswordFile { .. } => "password_file",
            Self::Address { .. } | Self::Message { .. } | Self::Encode(_) => "message",
            Self::Smtp { .. } => "smtp",
            Self::WebhookUrl { .. }
            | Self::WebhookPlainHttp { .. }
            | Self::WebhookSend { .. }
            | Self::WebhookStatus { .. } => "webhook",
        }
    }
}

/// HTTP statuses worth retrying: the receiver is overloaded or briefly failing.
pub fn http_status_is_retryable(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 500..=599)
}

/// SMTP 4xx and any failure to reach or talk to the relay are worth retrying; a 5xx reply, a
/// client-side refusal (e.g. no common AUTH mechanism) or a failed TLS handshake are not.
pub(super) fn smtp_is_retryable(error: &smtp::Error) -> bool {
    if error.is_transient() {
        return true;
    }
    if error.is_permanent() || error.is_client() || error.is_tls() || error.is_response() {
        return false;
    }
    // Connection refused, network errors, timeouts, a closed transport.
    true
}

/// A webhook URL as it may appear in errors, records, logs and events (the one rule, shared
/// with the admission webhooks): scheme, host and port, and a digest of path and query.
pub use oem_crds::redact::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> NotifyError {
        NotifyError::WebhookStatus {
            url: "https://hooks.example/x".into(),
            status,
        }
    }

    #[test]
    fn http_server_errors_and_throttling_are_retryable() {
        for code in [500, 502, 503, 504, 429, 408] {
            assert!(status(code).is_retryable(), "{code}");
        }
    }

    #[test]
    fn http_client_errors_are_permanent() {
        for code in [400, 401, 403, 404, 410, 422, 301] {
            assert!(!status(code).is_retryable(), "{code}");
        }
    }

    #[test]
    fn configuration_and_address_errors_are_permanent_but_a_missing_password_is_not() {
        assert!(!NotifyError::Config("x".into()).is_retryable());
        let address = "not an address".parse::<lettre::Address>().unwrap_err();
        let bad = NotifyError::Address {
            address: "not an address".into(),
            source: address,
        };
        assert!(!bad.is_retryable());
        let missing = NotifyError::PasswordFile {
            path: "/nope".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(missing.is_retryable());
        assert_eq!(missing.metric_label(), "password_file");
    }

    #[test]
    fn webhook_errors_show_the_host_and_a_digest_of_the_path_only() {
        let url = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX";
        let error = NotifyError::WebhookStatus {
            url: redact_url(url),
            status: 500,
        };
        let text = error.to_string();
        assert!(text.contains("hooks.slack.com"), "{text}");
        assert!(!text.contains("XXXXsecretXXXX"), "{text}");
    }
}
