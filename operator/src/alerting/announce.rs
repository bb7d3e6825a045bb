//! Sending the maintenance announcements (`announcements.rs` decides): when a window is due,
//! one Pending record per affected reseller, contact and channel is written to its status
//! first (`announcedAt`, `announcements`), then each record is delivered like an incident's
//! notice (`deliver.rs`): the attempt recorded before the transport is called, the outcome
//! after, retries with the transport's backoff up to its `maxAttempts`, the same idempotency
//! key on every attempt. So each contact gets one announcement per window across restarts.
//! These two status fields have their own field manager (`oem-hosting-announcer`), so the
//! window's phase writes (`windows.rs`) and these never undo each other.

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::{Resource, ResourceExt};
use oem_crds::incident::DeliveryState;
use oem_crds::maintenance::{
    AnnouncementRecord, MaintenanceReason, MaintenanceStatus, WindowTimes,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::announcements::{self, Affected, Tenant};
use super::controller::{Alerting, calendar_of};
use super::delivery;
use super::incidents::World;
use super::maintenance::Window;
use super::notify::{self, AnnouncedTarget, Announcement};
use crate::naming;
use crate::status::owners;

/// A window of either kind with what announcing it needs.
struct Subject<'a, K> {
    api: Api<K>,
    object: &'a K,
    view: Window,
    reason: &'a MaintenanceReason,
    stored: Option<&'a MaintenanceStatus>,
}

impl Alerting {
    /// Queues and delivers the announcements of every window.
    pub(super) async fn announce(&self, world: &World) {
        let tenants = tenants(world);
        for window in &world.maintenances {
            let subject = Subject {
                api: Api::namespaced(
                    self.ctx.client.clone(),
                    &window.namespace().unwrap_or_default(),
                ),
                object: window,
                view: Window::of_maintenance(window),
                reason: &window.spec.reason,
                stored: window.status.as_ref(),
            };
            self.announce_one(world, &tenants, subject).await;
        }
        for window in &world.cluster_maintenances {
            let subject = Subject {
                api: Api::all(self.ctx.client.clone()),
                object: window,
                view: Window::of_cluster_maintenance(window),
                reason: &window.spec.reason,
                stored: window.status.as_ref(),
            };
            self.announce_one(world, &tenants, subject).await;
        }
    }

    async fn announce_one<K>(&self, world: &World, tenants: &[Tenant], subject: Subject<'_, K>)
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    {
        let now = self.ctx.clock.now();
        let lead = SignedDuration::try_from(self.ctx.config.alerting.announce_lead_time)
            .unwrap_or(SignedDuration::MAX);
        let mut current = subject.stored.cloned().unwrap_or_default();
        let told = current.announced_at.as_ref().map(|_| {
            current
                .announced_times
                .as_ref()
                .map(|t| (t.start.0, t.end.0))
        });
        if announcements::due(&subject.view, told, lead, now) {
            let on_node = world.namespaces_on(&announcements::nodes(&subject.view.covers));
            let audience = announcements::audience(&subject.view.covers, tenants, &on_node);
            let told: Vec<_> = audience
                .keys()
                .filter_map(|r| world.resellers.get(r))
                .map(|r| (r.name_any(), delivery::recipients(r)))
                .collect();
            let uid = subject.object.meta().uid.clone().unwrap_or_default();
            current.announced_at = Some(Time(now));
            current.rescheduled_from = current.announced_times.take();
            current.announced_times = Some(WindowTimes {
                start: Time(subject.view.start),
                end: Time(subject.view.end),
            });
            current.announcements = announcements::records(&uid, subject.view.start, &told);
            tracing::info!(window = %subject.view.name, resellers = told.len(),
                records = current.announcements.len(), "maintenance window announced");
            if !self.record(&subject, &current).await {
                return;
            }
        }
        for index in 0..current.announcements.len() {
            let record = current.announcements[index].clone();
            if record.state != DeliveryState::Pending
                || !self.retry_due(record.attempts, record.last_attempt_at.as_ref())
            {
                continue;
            }
            let now = self.ctx.clock.now();
            current.announcements[index].attempts += 1;
            current.announcements[index].last_attempt_at = Some(Time(now));
            // The attempt is on record before it is made.
            if !self.record(&subject, &current).await {
                return;
            }
            let rescheduled_from = current
                .rescheduled_from
                .as_ref()
                .map(|t| (t.start.0, t.end.0));
            let outcome = self
                .send(world, tenants, &subject, &record, rescheduled_from)
                .await;
            let entry = &mut current.announcements[index];
            let settled = delivery::settle(outcome, entry.attempts, self.notify.max_attempts);
            (entry.state, entry.message) = (settled.state, settled.message.clone());
            let channel = notify::channel_name(record.channel);
            match &settled.message {
                None => tracing::info!(window = %subject.view.name, reseller = %record.reseller,
                    channel, "maintenance announcement delivered"),
                Some(message) => tracing::warn!(window = %subject.view.name,
                    reseller = %record.reseller, channel, attempts = entry.attempts, %message,
                    result = settled.result, "maintenance announcement failed"),
            }
            let result = settled.result;
            self.ctx
                .metrics
                .alerting
                .notifications
                .with_label_values(&[
                    notify::channel_name(record.channel),
                    notify::MAINTENANCE_EVENT,
                    result,
                ])
                .inc();
            if !self.record(&subject, &current).await {
                return;
            }
        }
    }

    /// Whether a Pending record's backoff has passed, after `attempts` attempts.
    pub(super) fn retry_due(&self, attempts: i32, last_attempt_at: Option<&Time>) -> bool {
        let (true, Some(last)) = (attempts > 0, last_attempt_at) else {
            return true;
        };
        let next = u32::try_from(attempts)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let wait = SignedDuration::try_from(notify::backoff(&self.notify, next))
            .unwrap_or(SignedDuration::MAX);
        last.0
            .checked_add(wait)
            .is_ok_and(|at| self.ctx.clock.now() >= at)
    }

    /// One delivery attempt of one record; the error says whether to retry.
    async fn send<K>(
        &self,
        world: &World,
        tenants: &[Tenant],
        subject: &Subject<'_, K>,
        record: &AnnouncementRecord,
        rescheduled_from: Option<(jiff::Timestamp, jiff::Timestamp)>,
    ) -> Result<(), (bool, String)> {
        let Some(reseller) = world.resellers.get(&record.reseller) else {
            return Err((false, format!("reseller {} is gone", record.reseller)));
        };
        let (target, language) =
            delivery::target_of(&self.ctx.client, reseller, record.channel, &record.target)
                .await
                .map_err(|e| (true, e.to_string()))?;
        let zone = calendar_of(reseller)
            .map(|c| c.time_zone().clone())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        // What this reseller is told is affected, as when it was queued (node pods looked up again).
        let on_node = world.namespaces_on(&announcements::nodes(&subject.view.covers));
        let affected = announcements::audience(&subject.view.covers, tenants, &on_node)
            .remove(&record.reseller)
            .unwrap_or_default();
        let announcement = Announcement {
            window: subject.view.name.clone(),
            brand: reseller.spec.display_name.clone(),
            start: subject.view.start,
            end: subject.view.end,
            end_when_recovered: subject.view.end_when_recovered,
            rescheduled_from,
            reason_ja: subject.reason.ja.clone(),
            reason_en: subject.reason.en.clone(),
            targets: affected.into_iter().map(announced).collect(),
            time_zone: zone,
        };
        self.notifier
            .announce_in(&target, &announcement, language, &record.idempotency_key)
            .await
            .map_err(|e| (e.is_retryable(), e.to_string()))
    }

    /// Writes the announcer's status fields; false (logged) when the write failed.
    async fn record<K>(&self, subject: &Subject<'_, K>, status: &MaintenanceStatus) -> bool
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    {
        match owners::WINDOW_ANNOUNCER
            .write(&subject.api, &subject.object.name_any(), None, status)
            .await
        {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(window = %subject.view.name, %error,
                    "recording a maintenance announcement failed; not sending");
                false
            }
        }
    }
}

/// Every end user of every reseller, as the audience decision sees it.
fn tenants(world: &World) -> Vec<Tenant> {
    world
        .endusers
        .iter()
        .filter_map(|((namespace, name), enduser)| {
            let reseller = naming::reseller_of_namespace(namespace)?;
            Some(Tenant {
                reseller: reseller.to_owned(),
                end_user: name.clone(),
                label: Some(enduser.spec.login_id.clone())
                    .filter(|l| !l.is_empty())
                    .unwrap_or_else(|| name.clone()),
                hosting_namespace: enduser
                    .status
                    .as_ref()
                    .and_then(|s| s.hosting_namespace.clone())
                    .unwrap_or_else(|| naming::hosting_namespace(reseller, name)),
            })
        })
        .collect()
}

fn announced(affected: Affected) -> AnnouncedTarget {
    let names = |services: Vec<oem_crds::enduser::ServiceName>| {
        services
            .into_iter()
            .filter_map(|s| {
                serde_json::to_value(s)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
            })
            .collect()
    };
    match affected {
        Affected::EveryEndUser { services } => AnnouncedTarget {
            end_user: None,
            services: names(services),
        },
        Affected::EndUser { label, services } => AnnouncedTarget {
            end_user: Some(label),
            services: names(services),
        },
    }
}
