//! Delivering the notices incidents' statuses hold as Pending, exactly once per event,
//! contact and channel, across restarts, one notice per outage (`outage.rs`: the Pending
//! records of one outage — an end user, or a down node — event and contact go out together,
//! recorded on every member): the attempt is recorded (attempts + 1, lastAttemptAt)
//! before the transport is called, and the outcome after. A record found Pending after a crash
//! is sent again with the same idempotency key (the webhook's Idempotency-Key header, the
//! mail's Message-ID), so a receiver can drop the rare duplicate of a send cut short by the
//! crash itself; a crash anywhere else never sends twice. Retries back off per the transport's
//! `backoff`; after the transport's `maxAttempts` a record is Failed.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use oem_crds::incident::{DeliveryState, Incident, NotificationEvent, NotificationRecord};

use super::controller::{Alerting, calendar_of};
use super::incidents::{World, key_of};
use super::outage::{self, GroupKey};
use super::{delivery, flow, notify};

impl Alerting {
    /// Delivers the due Pending records of the incidents that took a step this look (`stepped`:
    /// namespace and name), one notice per group, and puts the written incidents back into
    /// `world`.
    pub(super) async fn deliver_stepped(
        &self,
        world: &mut World,
        stepped: &[(Option<String>, String)],
    ) {
        let now = self.ctx.clock.now();
        let mut groups: BTreeMap<GroupKey, Vec<(String, usize)>> = BTreeMap::new();
        for incident in world.incidents.iter().filter(|i| {
            stepped
                .iter()
                .any(|(ns, name)| i.namespace() == *ns && i.name_any() == *name)
        }) {
            let Some(status) = &incident.status else {
                continue;
            };
            for (index, record) in status.notifications.iter().enumerate() {
                if record.state == DeliveryState::Pending && self.due(record, now) {
                    let key =
                        outage::group_key(incident, record.event, record.channel, &record.target);
                    groups
                        .entry(key)
                        .or_default()
                        .push((incident.name_any(), index));
                }
            }
        }
        for (key, mut members) in groups {
            members.sort();
            let mut incidents: Vec<(Incident, usize)> = members
                .iter()
                .filter_map(|(name, index)| {
                    world
                        .incidents
                        .iter()
                        .find(|i| {
                            i.namespace().as_deref() == Some(key.namespace.as_str())
                                && i.name_any() == *name
                        })
                        .map(|i| (i.clone(), *index))
                })
                .collect();
            self.deliver_group(world, &mut incidents).await;
            for (written, _) in incidents {
                if let Some(slot) = world.incidents.iter_mut().find(|i| {
                    i.namespace() == written.namespace() && i.name_any() == written.name_any()
                }) {
                    *slot = written;
                }
            }
        }
    }

    /// Whether a Pending record's next attempt is due (the transport's backoff after a failed
    /// attempt).
    fn due(&self, record: &NotificationRecord, now: Timestamp) -> bool {
        if record.attempts == 0 {
            return true;
        }
        let Some(last) = &record.last_attempt_at else {
            return true;
        };
        let next = u32::try_from(record.attempts)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let wait = notify::backoff(&self.notify, next);
        let wait = SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX);
        last.0.checked_add(wait).is_ok_and(|at| now >= at)
    }

    /// Sends one notice for `members` (each incident and the index of its Pending record; the
    /// first by name leads, its record's idempotency key is the notice's): the attempt is
    /// recorded on every member first, the outcome after. `members` ends holding the incidents
    /// as last written.
    async fn deliver_group(&self, world: &World, members: &mut [(Incident, usize)]) {
        let Some((lead, lead_index)) = members.first().cloned() else {
            return;
        };
        let Some(record) = lead
            .status
            .as_ref()
            .and_then(|s| s.notifications.get(lead_index))
            .cloned()
        else {
            return;
        };
        let Some(reseller) = world.resellers.get(key_of(&lead).reseller()) else {
            return;
        };
        let Some(calendar) = calendar_of(reseller) else {
            return;
        };
        // The attempt is on record, on every member, before it is made.
        let now = self.ctx.clock.now();
        for (incident, index) in members.iter_mut() {
            let Some(mut status) = incident.status.clone() else {
                return;
            };
            let Some(entry) = status.notifications.get_mut(*index) else {
                return;
            };
            entry.attempts += 1;
            entry.last_attempt_at = Some(Time(now));
            match self.write(incident, status).await {
                Ok(written) => *incident = written,
                Err(error) => {
                    tracing::warn!(incident = %incident.name_any(), %error, "recording a delivery attempt failed; not sending");
                    return;
                }
            }
        }
        let notices = members
            .iter()
            .map(|(incident, _)| {
                let enduser = world.enduser_of(incident);
                delivery::notice(incident, record.event, reseller, enduser, &calendar)
            })
            .collect();
        let Some(notice) = outage::merge(notices) else {
            return;
        };
        let outcome = match delivery::target(&self.ctx.client, reseller, &record).await {
            Ok((target, language)) => self
                .notifier
                .deliver_in(&target, &notice, language, &record.idempotency_key)
                .await
                .map_err(|e| (e.is_retryable(), e.to_string())),
            Err(error) => Err((true, error.to_string())),
        };
        let now = self.ctx.clock.now();
        let result = match &outcome {
            Ok(()) => "sent",
            Err((retryable, _)) => {
                let attempts = members
                    .first()
                    .and_then(|(i, index)| i.status.as_ref()?.notifications.get(*index))
                    .map_or(0, |r| r.attempts);
                if !retryable
                    || u32::try_from(attempts).unwrap_or(u32::MAX) >= self.notify.max_attempts
                {
                    "failed"
                } else {
                    "retry"
                }
            }
        };
        match &outcome {
            Ok(()) => {
                tracing::info!(incidents = %notice.incident, event = notify::event_name(record.event),
                channel = notify::channel_name(record.channel), "notice delivered")
            }
            Err((_, message)) => {
                tracing::warn!(incidents = %notice.incident, event = notify::event_name(record.event),
                channel = notify::channel_name(record.channel), %message, result, "delivery failed")
            }
        }
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
        for (incident, index) in members.iter_mut() {
            let Some(mut status) = incident.status.clone() else {
                continue;
            };
            let Some(entry) = status.notifications.get(*index).cloned() else {
                continue;
            };
            match &outcome {
                Ok(()) => {
                    let first_outage =
                        entry.event == NotificationEvent::Outage && status.notified_at.is_none();
                    flow::delivered(&mut status, entry.event, &entry.target, now);
                    let slot = &mut status.notifications[*index];
                    slot.state = DeliveryState::Sent;
                    slot.message = None;
                    if first_outage && let Some(started) = &status.started_at {
                        let took = now.duration_since(started.0).as_secs_f64().max(0.0);
                        self.ctx
                            .metrics
                            .alerting
                            .time_to_notify
                            .with_label_values(&[key_of(incident).reseller()])
                            .observe(took);
                    }
                }
                Err((_, message)) => {
                    let slot = &mut status.notifications[*index];
                    slot.state = if result == "failed" {
                        DeliveryState::Failed
                    } else {
                        DeliveryState::Pending
                    };
                    slot.message = Some(flow::truncate(message));
                }
            }
            flow::settle(&mut status, incident, now);
            match self.write(incident, status).await {
                Ok(written) => *incident = written,
                Err(error) => {
                    tracing::warn!(incident = %incident.name_any(), %error, "recording a delivery outcome failed");
                }
            }
        }
    }
}
