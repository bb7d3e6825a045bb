//! How notices leave the operator: the SMTP relay (address, STARTTLS, credentials from a
//! mounted Secret file), webhook timeout, and the retry policy the incident controller follows.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Whether the SMTP session is upgraded with STARTTLS.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum StartTls {
    /// Refuse to send unless the relay offers STARTTLS and the handshake succeeds.
    #[default]
    Required,
    /// Upgrade when offered, send in clear otherwise.
    Opportunistic,
    /// Never upgrade (a relay on loopback or a trusted network).
    None,
}

/// Meant for the operator's configuration as `notify:` (wired in by the incident controller).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// The SMTP relay's host name (also the name its certificate must carry).
    pub smtp_host: String,
    /// The relay's submission port.
    pub smtp_port: u16,
    pub starttls: StartTls,
    /// The envelope and header sender address; the display name is the reseller's brand.
    pub from: String,
    /// SMTP user name; AUTH is used only when it is set.
    pub username: Option<String>,
    /// File holding the SMTP password (a mounted Secret), read at each delivery so a rotated
    /// Secret is picked up. The password itself is never part of the configuration.
    pub password_file: Option<PathBuf>,
    /// PEM file of an extra CA trusted for the relay's certificate, besides the system roots.
    pub smtp_ca_file: Option<PathBuf>,
    /// Limit of one SMTP command exchange.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Limit of one webhook request, connection included.
    #[serde(with = "humantime_serde")]
    pub webhook_timeout: Duration,
    /// Whether contact webhooks over plain `http` are called (tests with local receivers).
    /// Off by default: a notice over http shows its content and signature to the network.
    pub plain_http_webhooks: bool,
    /// Attempts per notice before it is recorded as Failed.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// The longest wait between two attempts.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            smtp_host: "localhost".to_owned(),
            smtp_port: 587,
            starttls: StartTls::Required,
            from: "noreply@localhost".to_owned(),
            username: None,
            password_file: None,
            smtp_ca_file: None,
            timeout: Duration::from_secs(30),
            webhook_timeout: Duration::from_secs(10),
            plain_http_webhooks: false,
            max_attempts: 10,
            backoff_base: Duration::from_secs(15),
            backoff_max: Duration::from_secs(30 * 60),
        }
    }
}

impl NotifyConfig {
    /// Why the configuration cannot work, for the start-up check.
    pub fn validate(&self) -> Result<(), String> {
        if self.smtp_host.is_empty() {
            return Err("notify.smtpHost must not be empty".into());
        }
        if self.smtp_port == 0 {
            return Err("notify.smtpPort must be above zero".into());
        }
        if self.username.is_some() != self.password_file.is_some() {
            return Err("notify.username and notify.passwordFile go together".into());
        }
        if self.timeout.is_zero() || self.webhook_timeout.is_zero() {
            return Err("notify.timeout and notify.webhookTimeout must be above zero".into());
        }
        if self.max_attempts == 0 {
            return Err("notify.maxAttempts must be at least 1".into());
        }
        if self.backoff_base.is_zero() || self.backoff_base > self.backoff_max {
            return Err(
                "notify.backoffBase must be above zero and at most notify.backoffMax".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_camel_case_with_durations_and_defaults_the_rest() {
        let config: NotifyConfig = serde_yaml::from_str(
            "smtpHost: mail.example.net\nstarttls: opportunistic\nusername: ops\n\
             passwordFile: /etc/oem/smtp/password\nbackoffBase: 2s\nbackoffMax: 1m\n",
        )
        .unwrap();
        assert_eq!(config.smtp_host, "mail.example.net");
        assert_eq!(config.starttls, StartTls::Opportunistic);
        assert_eq!(config.backoff_base, Duration::from_secs(2));
        assert_eq!(config.backoff_max, Duration::from_secs(60));
        assert_eq!(config.smtp_port, 587);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn a_user_without_a_password_file_is_refused() {
        let config = NotifyConfig {
            username: Some("ops".into()),
            ..NotifyConfig::default()
        };
        assert!(config.validate().unwrap_err().contains("passwordFile"));
    }

    #[test]
    fn a_base_above_the_cap_is_refused() {
        let config = NotifyConfig {
            backoff_base: Duration::from_secs(120),
            backoff_max: Duration::from_secs(60),
            ..NotifyConfig::default()
        };
        assert!(config.validate().unwrap_err().contains("backoffBase"));
    }
}
