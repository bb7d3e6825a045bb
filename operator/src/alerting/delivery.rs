//! From an incident to what the notification transport (`notify`) sends: the notice (brand,
//! end user, timeline, actions, cause, deadline in the reseller's time zone) and the target of
//! each record (the webhook's HMAC key read from the reseller's Secret). The recipients the
//! flow queues notices for come from the reseller's contacts.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};
use oem_crds::enduser::EndUser;
use oem_crds::incident::{
    Channel, DeliveryState, Incident, NotificationEvent, NotificationRecord, event,
};
use oem_crds::reseller::{Language, Reseller};

use super::calendar::Calendar;
use super::flow::{MAIL_UNLOCKED, Recipient};
use super::notify::{self, Notice, Target, redact_url};

/// What one delivery attempt made of its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub state: DeliveryState,
    /// The error of a failed attempt (kept short), none once sent.
    pub message: Option<String>,
    /// The notifications metric's result: sent, retry or failed.
    pub result: &'static str,
}

/// A record after an attempt (its `attempts` already counting it): sent, retried later, or
/// given up when the error is permanent or `max_attempts` are used up.
pub fn settle(outcome: Result<(), (bool, String)>, attempts: i32, max_attempts: u32) -> Settled {
    match outcome {
        Ok(()) => Settled {
            state: DeliveryState::Sent,
            message: None,
            result: "sent",
        },
        Err((retryable, message)) => {
            let give_up = !retryable || u32::try_from(attempts).unwrap_or(u32::MAX) >= max_attempts;
            Settled {
                state: if give_up {
                    DeliveryState::Failed
                } else {
                    DeliveryState::Pending
                },
                message: Some(super::flow::truncate(&message)),
                result: if give_up { "failed" } else { "retry" },
            }
        }
    }
}

/// Every channel of every contact of the reseller.
pub fn recipients(reseller: &Reseller) -> Vec<Recipient> {
    let mut out = Vec::new();
    for contact in &reseller.spec.contacts {
        if let Some(email) = &contact.email {
            out.push(Recipient {
                channel: Channel::Email,
                target: email.clone(),
            });
        }
        if let Some(fax) = &contact.fax_gateway_email {
            out.push(Recipient {
                channel: Channel::Fax,
                target: fax.clone(),
            });
        }
        if let Some(webhook) = &contact.webhook {
            out.push(Recipient {
                channel: Channel::Webhook,
                target: redact_url(&webhook.url),
            });
        }
    }
    out
}

/// The notice of `event` about `incident`.
pub fn notice(
    incident: &Incident,
    what: NotificationEvent,
    reseller: &Reseller,
    enduser: Option<&EndUser>,
    calendar: &Calendar,
) -> Notice {
    let status = incident.status.clone().unwrap_or_default();
    let at =
        |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| t.as_ref().map(|t| t.0);
    let actions = status
        .timeline
        .iter()
        .filter(|e| {
            [
                event::RESTARTED,
                event::RECREATED,
                event::CORDONED,
                event::MAIL_LOCKED,
                MAIL_UNLOCKED,
            ]
            .contains(&e.event.as_str())
        })
        .map(|e| e.message.clone().unwrap_or_else(|| e.event.clone()))
        .collect();
    Notice {
        event: what,
        incident: incident.name_any(),
        kind: incident.spec.kind,
        brand: reseller.spec.display_name.clone(),
        affected: vec![notify::Affected {
            end_user: enduser
                .map(|e| e.spec.login_id.clone())
                .unwrap_or_else(|| incident.spec.end_user.clone()),
            contract_name: enduser
                .map(|e| e.spec.contract_name.clone())
                .unwrap_or_default(),
            customer_number: enduser.and_then(|e| e.spec.customer_number.clone()),
            services: vec![service_text(incident)],
        }],
        started_at: at(&status.started_at).unwrap_or_else(Timestamp::now),
        notified_at: at(&status.notified_at),
        resolved_at: at(&status.resolved_at),
        report_due_by: at(&status.report_due_by),
        timeline: status
            .timeline
            .iter()
            .map(|e| (e.time.0, e.event.clone(), e.message.clone()))
            .collect(),
        actions,
        cause: incident.spec.cause.clone(),
        deferral_reason: incident
            .spec
            .report_deferral
            .as_ref()
            .map(|d| d.reason.clone()),
        time_zone: calendar.time_zone().clone(),
    }
}

fn service_text(incident: &Incident) -> String {
    serde_json::to_value(incident.spec.service)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Why a target cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no contact of reseller {reseller} has the webhook {url} any more")]
    WebhookGone { reseller: String, url: String },
    #[error("reading the webhook key Secret {namespace}/{name}: {source}")]
    Secret {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the webhook key Secret {namespace}/{name} has no key {key}")]
    SecretKey {
        namespace: String,
        name: String,
        key: String,
    },
}

/// The transport's target of a record (the webhook's key read from the reseller's Secret) and
/// the language of the contact it belongs to.
pub async fn target(
    client: &Client,
    reseller: &Reseller,
    record: &NotificationRecord,
) -> Result<(Target, Language), TargetError> {
    target_of(client, reseller, record.channel, &record.target).await
}

/// The transport's target of a channel and recorded address of one of the reseller's
/// contacts, and that contact's language.
pub async fn target_of(
    client: &Client,
    reseller: &Reseller,
    channel: Channel,
    address: &str,
) -> Result<(Target, Language), TargetError> {
    let language = reseller
        .spec
        .contacts
        .iter()
        .find(|c| {
            c.email.as_deref() == Some(address)
                || c.fax_gateway_email.as_deref() == Some(address)
                || c.webhook
                    .as_ref()
                    .is_some_and(|w| redact_url(&w.url) == address)
        })
        .map(|c| c.language)
        .unwrap_or_default();
    let target = match channel {
        Channel::Email => Ok(Target::Email {
            to: address.to_owned(),
        }),
        Channel::Fax => Ok(Target::Fax {
            gateway_email: address.to_owned(),
        }),
        Channel::Webhook => {
            let webhook = reseller
                .spec
                .contacts
                .iter()
                .filter_map(|c| c.webhook.as_ref())
                .find(|w| redact_url(&w.url) == address)
                .ok_or_else(|| TargetError::WebhookGone {
                    reseller: reseller.name_any(),
                    url: address.to_owned(),
                })?;
            let secret = match &webhook.secret_ref {
                None => None,
                Some(r) => {
                    let namespace = Reseller::namespace_name(&reseller.name_any());
                    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
                    let found = api
                        .get(&r.name)
                        .await
                        .map_err(|source| TargetError::Secret {
                            namespace: namespace.clone(),
                            name: r.name.clone(),
                            source,
                        })?;
                    let data: BTreeMap<_, _> = found.data.unwrap_or_default();
                    let key = data.get(&r.key).ok_or_else(|| TargetError::SecretKey {
                        namespace,
                        name: r.name.clone(),
                        key: r.key.clone(),
                    })?;
                    Some(key.0.clone())
                }
            };
            Ok(Target::Webhook {
                url: webhook.url.clone(),
                secret,
            })
        }
    }?;
    Ok((target, language))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_attempt_is_sent_retried_or_given_up() {
        assert_eq!(settle(Ok(()), 1, 3).state, DeliveryState::Sent);
        let retry = settle(Err((true, "451 busy".into())), 1, 3);
        assert_eq!(
            (retry.state, retry.result),
            (DeliveryState::Pending, "retry")
        );
        assert_eq!(retry.message.as_deref(), Some("451 busy"));
        let spent = settle(Err((true, "451 busy".into())), 3, 3);
        assert_eq!(
            (spent.state, spent.result),
            (DeliveryState::Failed, "failed")
        );
        let permanent = settle(Err((false, "550 no such user".into())), 1, 3);
        assert_eq!(permanent.state, DeliveryState::Failed);
    }

    #[test]
    fn every_channel_of_every_contact_is_a_recipient() {
        let reseller: Reseller = serde_json::from_value(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Reseller",
            "metadata": {"name": "sakura"},
            "spec": {"displayName": "さくら", "contacts": [
                {"name": "desk", "email": "noc@sakura.example.jp", "faxGatewayEmail": "0312345678@fax.example.jp"},
                {"name": "bot", "webhook": {"url": "https://hooks.example.jp/oem"}}
            ], "quota": {"maxEndUsers": 1, "totalCpu": "1", "totalMemory": "1Gi", "totalStorage": "1Gi"}}
        }))
        .unwrap();
        let found = recipients(&reseller);
        let channels: Vec<Channel> = found.iter().map(|r| r.channel).collect();
        assert_eq!(
            channels,
            vec![Channel::Email, Channel::Fax, Channel::Webhook]
        );
        // Recorded by host and a digest of the path: a chat webhook's path is its secret.
        let target = &found[2].target;
        assert!(
            target.starts_with("https://hooks.example.jp/<path sha256:"),
            "{target}"
        );
        assert!(!target.contains("oem"), "{target}");
    }
}
