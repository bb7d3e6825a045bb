//! The e-mail (and fax-gateway) channel: a plain-text message from the reseller's brand,
//! identified by the notice's idempotency key, sent through the configured SMTP relay.

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, Message, MessageBuilder, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::Rendered;
use super::config::{NotifyConfig, StartTls};
use super::error::{NotifyError, smtp_is_retryable};

/// The mail header carrying the notice's idempotency key, besides the Message-ID built from it.
pub const IDEMPOTENCY_MAIL_HEADER: &str = "X-OEM-Idempotency-Key";

#[derive(Clone)]
struct IdempotencyKeyHeader(String);

impl Header for IdempotencyKeyHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str(IDEMPOTENCY_MAIL_HEADER)
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// The message head: From is the configured address under the brand's name; the Message-ID
/// is `<key@sender domain>`, the same for every attempt, so a receiver can drop a duplicate.
fn head(
    from: &Address,
    brand: &str,
    to: &str,
    subject: &str,
    idempotency_key: &str,
) -> Result<MessageBuilder, NotifyError> {
    let recipient: Mailbox = to.parse().map_err(|source| NotifyError::Address {
        address: to.to_owned(),
        source,
    })?;
    Ok(Message::builder()
        .from(Mailbox::new(Some(brand.to_owned()), from.clone()))
        .to(recipient)
        .subject(subject.to_owned())
        .message_id(Some(format!("<{idempotency_key}@{}>", from.domain())))
        .header(IdempotencyKeyHeader(idempotency_key.to_owned())))
}

/// A plain-text message.
pub(super) fn message(
    from: &Address,
    brand: &str,
    to: &str,
    rendered: &Rendered,
    idempotency_key: &str,
) -> Result<Message, NotifyError> {
    head(from, brand, to, &rendered.subject, idempotency_key)?
        .header(ContentType::TEXT_PLAIN)
        .body(rendered.text.clone())
        .map_err(|source| NotifyError::Message {
            to: to.to_owned(),
            source,
        })
}

/// A text message with one HTML file attached (`multipart/mixed`).
pub(super) fn message_with_html(
    from: &Address,
    brand: &str,
    to: &str,
    rendered: &Rendered,
    attachment: &HtmlAttachment,
    idempotency_key: &str,
) -> Result<Message, NotifyError> {
    let html_type = ContentType::parse("text/html; charset=utf-8").map_err(|e| {
        NotifyError::Config(format!("the attachment's content type is not valid: {e}"))
    })?;
    head(from, brand, to, &rendered.subject, idempotency_key)?
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(rendered.text.clone()))
                .singlepart(
                    Attachment::new(attachment.file_name.clone())
                        .body(attachment.html.clone(), html_type),
                ),
        )
        .map_err(|source| NotifyError::Message {
            to: to.to_owned(),
            source,
        })
}

/// An HTML document sent as a file.
#[derive(Debug, Clone)]
pub struct HtmlAttachment {
    pub file_name: String,
    pub html: String,
}

/// The TLS settings for STARTTLS: system roots plus the configured extra CA.
pub(super) fn tls_parameters(config: &NotifyConfig) -> Result<Option<TlsParameters>, NotifyError> {
    if config.starttls == StartTls::None {
        return Ok(None);
    }
    let mut builder = TlsParameters::builder(config.smtp_host.clone());
    if let Some(path) = &config.smtp_ca_file {
        let pem = std::fs::read(path).map_err(|source| NotifyError::CaFile {
            path: path.clone(),
            source,
        })?;
        let ca =
            lettre::transport::smtp::client::Certificate::from_pem(&pem).map_err(|source| {
                NotifyError::Tls {
                    host: config.smtp_host.clone(),
                    source,
                }
            })?;
        builder = builder.add_root_certificate(ca);
    }
    let parameters = builder.build_rustls().map_err(|source| NotifyError::Tls {
        host: config.smtp_host.clone(),
        source,
    })?;
    Ok(Some(parameters))
}

/// One SMTP session delivering `message`; the password is read by the caller for this session.
pub(super) async fn send(
    config: &NotifyConfig,
    tls: Option<&TlsParameters>,
    password: Option<String>,
    message: Message,
    to: &str,
) -> Result<(), NotifyError> {
    let tls = match (config.starttls, tls) {
        (StartTls::Required, Some(p)) => Tls::Required(p.clone()),
        (StartTls::Opportunistic, Some(p)) => Tls::Opportunistic(p.clone()),
        (StartTls::None, _) => Tls::None,
        (_, None) => {
            return Err(NotifyError::Config(
                "STARTTLS is configured but no TLS settings were prepared".into(),
            ));
        }
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.smtp_host)
        .port(config.smtp_port)
        .timeout(Some(config.timeout))
        .tls(tls);
    if let (Some(user), Some(password)) = (&config.username, password) {
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    let transport: AsyncSmtpTransport<Tokio1Executor> = builder.build();
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|source| NotifyError::Smtp {
            relay: format!("{}:{}", config.smtp_host, config.smtp_port),
            to: to.to_owned(),
            retryable: smtp_is_retryable(&source),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> Rendered {
        Rendered {
            subject: "【さくらウェブ】障害発生のお知らせ".into(),
            text: "本文\n".into(),
        }
    }

    #[test]
    fn message_id_and_header_carry_the_idempotency_key_and_from_carries_the_brand() {
        let from: Address = "notice@mail.example.jp".parse().unwrap();
        let message = message(
            &from,
            "さくらウェブ",
            "ops@reseller.jp",
            &rendered(),
            "outage-email-0123",
        )
        .unwrap();
        let headers = message.headers();
        assert_eq!(
            headers.get_raw("Message-ID"),
            Some("<outage-email-0123@mail.example.jp>")
        );
        assert_eq!(
            headers.get_raw(IDEMPOTENCY_MAIL_HEADER),
            Some("outage-email-0123")
        );
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(raw.contains("<notice@mail.example.jp>"), "{raw}");
        assert!(!raw.to_lowercase().contains("oem-hosting"), "{raw}");
    }

    #[test]
    fn a_report_mail_carries_its_text_and_the_html_file() {
        let from: Address = "notice@mail.example.jp".parse().unwrap();
        let attachment = HtmlAttachment {
            file_name: "availability-2026-11.html".into(),
            html: "<!DOCTYPE html><p>稼働率</p>".into(),
        };
        let message = message_with_html(
            &from,
            "さくらウェブ",
            "ops@reseller.jp",
            &rendered(),
            &attachment,
            "k1",
        )
        .unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(raw.contains("multipart/mixed"), "{raw}");
        assert!(
            raw.contains("attachment; filename=\"availability-2026-11.html\""),
            "{raw}"
        );
        assert!(raw.contains("text/html; charset=utf-8"), "{raw}");
        assert!(raw.contains("Message-ID: <k1@mail.example.jp>"), "{raw}");
    }

    #[test]
    fn a_bad_recipient_is_a_permanent_error() {
        let from: Address = "notice@mail.example.jp".parse().unwrap();
        let err = message(&from, "b", "not an address", &rendered(), "k").unwrap_err();
        assert!(matches!(err, NotifyError::Address { .. }), "{err}");
        assert!(!err.is_retryable());
    }
}
