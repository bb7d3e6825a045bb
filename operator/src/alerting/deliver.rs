//! Delivering the notices an incident's status holds as Pending, exactly once per event,
//! contact and channel, across restarts: the attempt is recorded (attempts + 1, lastAttemptAt)
//! before the transport is called, and the outcome after. A record found Pending after a crash
//! is sent again with the same idempotency key (the webhook's Idempotency-Key header, the
//! mail's Message-ID), so a receiver can drop the rare duplicate of a send cut short by the
//! crash itself; a crash anywhere else never sends twice. Retries back off per the transport's
//! `backoff`; after the transport's `maxAttempts` a record is Failed.

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use oem_crds::enduser::EndUser;
use oem_crds::incident::{DeliveryState, Incident, NotificationEvent};
use oem_crds::reseller::Reseller;

use super::calendar::Calendar;
use super::controller::Alerting;
use super::{delivery, flow, notify};

impl Alerting {
    /// Tries every Pending record that is due; returns the incident as last written.
    pub(super) async fn deliver(
        &self,
        incident: Incident,
        reseller: &Reseller,
        enduser: Option<&EndUser>,
        calendar: &Calendar,
    ) -> Incident {
        let mut current = incident;
        let count = current.status.as_ref().map_or(0, |s| s.notifications.len());
        for index in 0..count {
            let now = self.ctx.clock.now();
            let Some(mut status) = current.status.clone() else {
                break;
            };
            let record = status.notifications[index].clone();
            if record.state != DeliveryState::Pending {
                continue;
            }
            if record.attempts > 0
                && let Some(last) = &record.last_attempt_at
            {
                let next = u32::try_from(record.attempts)
                    .unwrap_or(u32::MAX)
                    .saturating_add(1);
                let wait = notify::backoff(&self.notify, next);
                let wait = SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX);
                if last.0.checked_add(wait).is_ok_and(|at| now < at) {
                    continue;
                }
            }
            // The attempt is on record before it is made.
            status.notifications[index].attempts += 1;
            status.notifications[index].last_attempt_at = Some(Time(now));
            current = match self.write(&current, status).await {
                Ok(written) => written,
                Err(error) => {
                    tracing::warn!(incident = %current.name_any(), %error, "recording a delivery attempt failed; not sending");
                    return current;
                }
            };
            let notice = delivery::notice(&current, record.event, reseller, enduser, calendar);
            let outcome = match delivery::target(&self.ctx.client, reseller, &record).await {
                Ok((target, language)) => self
                    .notifier
                    .deliver_in(&target, &notice, language, &record.idempotency_key)
                    .await
                    .map_err(|e| (e.is_retryable(), e.to_string())),
                Err(error) => Err((true, error.to_string())),
            };
            let now = self.ctx.clock.now();
            let Some(mut status) = current.status.clone() else {
                break;
            };
            let attempts = status.notifications[index].attempts;
            let result = match outcome {
                Ok(()) => {
                    let first_outage =
                        record.event == NotificationEvent::Outage && status.notified_at.is_none();
                    flow::delivered(&mut status, record.event, &record.target, now);
                    let entry = &mut status.notifications[index];
                    entry.state = DeliveryState::Sent;
                    entry.message = None;
                    if first_outage && let Some(started) = &status.started_at {
                        let took = now.duration_since(started.0).as_secs_f64().max(0.0);
                        self.ctx
                            .metrics
                            .alerting
                            .time_to_notify
                            .with_label_values(&[current
                                .metadata
                                .namespace
                                .as_deref()
                                .and_then(crate::naming::reseller_of_namespace)
                                .unwrap_or_default()])
                            .observe(took);
                    }
                    tracing::info!(incident = %current.name_any(), event = notify::event_name(record.event),
                        channel = notify::channel_name(record.channel), "notice delivered");
                    "sent"
                }
                Err((retryable, message)) => {
                    let give_up = !retryable
                        || u32::try_from(attempts).unwrap_or(u32::MAX) >= self.notify.max_attempts;
                    let entry = &mut status.notifications[index];
                    entry.state = if give_up {
                        DeliveryState::Failed
                    } else {
                        DeliveryState::Pending
                    };
                    entry.message = Some(flow::truncate(&message));
                    tracing::warn!(incident = %current.name_any(), event = notify::event_name(record.event),
                        channel = notify::channel_name(record.channel), attempts, %message, give_up, "delivery failed");
                    if give_up { "failed" } else { "retry" }
                }
            };
            self.ctx
                .metrics
                .alerting
                .notifications
                .with_label_values(&[
                    notify::channel_name(record.channel),
                    notify::event_name(record.event),
                    result,
                ])
                .inc();
            flow::settle(&mut status, &current, now);
            current = match self.write(&current, status).await {
                Ok(written) => written,
                Err(error) => {
                    tracing::warn!(incident = %current.name_any(), %error, "recording a delivery outcome failed");
                    return current;
                }
            };
        }
        current
    }
}
