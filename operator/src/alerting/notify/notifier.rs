//! One delivery attempt of one notice to one target, with the clients built once at start.

use std::sync::Arc;

use lettre::Address;
use lettre::transport::smtp::client::TlsParameters;
use oem_crds::reseller::Language;

use super::config::NotifyConfig;
use super::error::NotifyError;
use super::{
    Announcement, AvailabilityReport, Notice, Rendered, Target, announcement_body, email, render,
    render_announcement, render_report_html, render_report_mail, webhook, webhook_body,
};
use crate::clock::{SharedClock, SystemClock};

/// What goes to a target: text for mail and fax, JSON for a webhook.
enum Message {
    Text(Rendered),
    Json(serde_json::Value),
}

pub struct Notifier {
    config: NotifyConfig,
    from: Address,
    tls: Option<TlsParameters>,
    http: reqwest::Client,
    clock: SharedClock,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("smtp_host", &self.config.smtp_host)
            .field("smtp_port", &self.config.smtp_port)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Checks the configuration (sender address, CA file, that the password file is readable)
    /// and builds the HTTP client.
    pub fn new(config: NotifyConfig) -> Result<Self, NotifyError> {
        config.validate().map_err(NotifyError::Config)?;
        let from: Address = config.from.parse().map_err(|source| NotifyError::Address {
            address: config.from.clone(),
            source,
        })?;
        if let Some(path) = &config.password_file {
            std::fs::metadata(path).map_err(|source| NotifyError::PasswordFile {
                path: path.clone(),
                source,
            })?;
        }
        let tls = email::tls_parameters(&config)?;
        let http = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .connect_timeout(config.webhook_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(NotifyError::HttpClient)?;
        Ok(Self {
            config,
            from,
            tls,
            http,
            clock: Arc::new(SystemClock),
        })
    }

    /// The clock that timestamps webhook signatures (the operator's injected clock).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.config
    }

    /// One delivery attempt. Email sets Message-ID derived from the idempotency key (so a
    /// receiver can de-duplicate) and an `X-OEM-Idempotency-Key` header. Text goes in
    /// Japanese, the contacts' default language; see [`Notifier::deliver_in`].
    pub async fn deliver(
        &self,
        target: &Target,
        notice: &Notice,
        idempotency_key: &str,
    ) -> Result<(), NotifyError> {
        self.deliver_in(target, notice, Language::default(), idempotency_key)
            .await
    }

    /// One delivery attempt, the text in the contact's `language` (e-mail and fax; a webhook
    /// body is language-neutral).
    pub async fn deliver_in(
        &self,
        target: &Target,
        notice: &Notice,
        language: Language,
        idempotency_key: &str,
    ) -> Result<(), NotifyError> {
        let message = match target {
            Target::Email { .. } | Target::Fax { .. } => Message::Text(render(notice, language)),
            Target::Webhook { .. } => Message::Json(webhook_body(notice, idempotency_key)),
        };
        self.transmit(target, &notice.brand, message, idempotency_key)
            .await
    }

    /// One delivery attempt of a maintenance announcement, like [`Notifier::deliver_in`].
    pub async fn announce_in(
        &self,
        target: &Target,
        announcement: &Announcement,
        language: Language,
        idempotency_key: &str,
    ) -> Result<(), NotifyError> {
        let message = match target {
            Target::Email { .. } | Target::Fax { .. } => {
                Message::Text(render_announcement(announcement, language))
            }
            Target::Webhook { .. } => {
                Message::Json(announcement_body(announcement, idempotency_key))
            }
        };
        self.transmit(target, &announcement.brand, message, idempotency_key)
            .await
    }

    /// One delivery attempt of a monthly availability report by e-mail: the summary as text,
    /// the report as an attached HTML file, in the contact's `language`.
    pub async fn report_in(
        &self,
        to: &str,
        report: &AvailabilityReport,
        language: Language,
        idempotency_key: &str,
    ) -> Result<(), NotifyError> {
        let rendered = render_report_mail(report, language);
        let attachment = email::HtmlAttachment {
            file_name: report.file_name(),
            html: render_report_html(report, language),
        };
        let message = email::message_with_html(
            &self.from,
            &report.brand,
            to,
            &rendered,
            &attachment,
            idempotency_key,
        )?;
        let password = self.password().await?;
        email::send(&self.config, self.tls.as_ref(), password, message, to).await
    }

    async fn transmit(
        &self,
        target: &Target,
        brand: &str,
        message: Message,
        idempotency_key: &str,
    ) -> Result<(), NotifyError> {
        match (target, message) {
            (Target::Email { to } | Target::Fax { gateway_email: to }, Message::Text(rendered)) => {
                let message = email::message(&self.from, brand, to, &rendered, idempotency_key)?;
                let password = self.password().await?;
                email::send(&self.config, self.tls.as_ref(), password, message, to).await
            }
            (Target::Webhook { url, secret }, Message::Json(body)) => {
                let body = serde_json::to_vec(&body).map_err(NotifyError::Encode)?;
                webhook::post(
                    &self.http,
                    self.config.plain_http_webhooks,
                    url,
                    secret.as_deref(),
                    &body,
                    idempotency_key,
                    self.clock.now(),
                )
                .await
            }
            _ => Err(NotifyError::Config(
                "a message was built for another channel than its target's".into(),
            )),
        }
    }

    /// The SMTP password, read afresh so a rotated Secret is used without a restart.
    async fn password(&self) -> Result<Option<String>, NotifyError> {
        let Some(path) = &self.config.password_file else {
            return Ok(None);
        };
        let text =
            tokio::fs::read_to_string(path)
                .await
                .map_err(|source| NotifyError::PasswordFile {
                    path: path.clone(),
                    source,
                })?;
        Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
    }
}
