//! Sending the monthly availability reports (`report.rs` decides and builds them): once a
//! reseller's report of the past month is due, its figures and one Pending delivery per
//! e-mail address of its contacts are written to `Reseller.status.reports` first (field manager
//! `oem-hosting-reporter`), then each delivery is sent like a notice — the attempt recorded
//! before the transport is called, the outcome after, retries with backoff up to `maxAttempts`,
//! the same Message-ID on every attempt. So each address gets each month's report once across
//! restarts. Only the last twelve months are kept.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::{Resource, ResourceExt};
use oem_crds::incident::{Channel, DeliveryState};
use oem_crds::reseller::{MonthlyReport, ReportDelivery, Reseller};
use serde_json::json;

use super::calendar::Calendar;
use super::controller::{Alerting, calendar_of};
use super::delivery;
use super::incidents::World;
use super::maintenance::Cover;
use super::notify::{self, AvailabilityReport};
use super::report::{self, EndUserInput, Month, ReportInput};
use crate::naming;
use crate::status::owners;

/// Months of reports kept in the status.
const KEEP_MONTHS: usize = 12;

impl Alerting {
    /// Makes and delivers every reseller's due monthly report.
    pub(super) async fn report(&self, world: &World) {
        let now = self.ctx.clock.now();
        for reseller in world.resellers.values() {
            let Some(calendar) = calendar_of(reseller) else {
                continue;
            };
            if let Some(month) = report::due_month(now, &calendar) {
                self.report_month(world, reseller, &calendar, month).await;
            }
        }
    }

    async fn report_month(
        &self,
        world: &World,
        reseller: &Reseller,
        calendar: &Calendar,
        month: Month,
    ) {
        let name = reseller.name_any();
        let label = month.label();
        let mut reports = reseller
            .status
            .as_ref()
            .map(|s| s.reports.clone())
            .unwrap_or_default();
        let mut built: Option<AvailabilityReport> = None;
        let index = match reports.iter().position(|r| r.month == label) {
            Some(index) => index,
            None => {
                let addresses = addresses(reseller);
                if addresses.is_empty() {
                    return;
                }
                let Some(input) = self.report_input(world, reseller, calendar, month).await else {
                    return;
                };
                if input.end_users.is_empty() {
                    return; // nothing to report
                }
                let (made, total) = match report::build(&input) {
                    Ok(made) => made,
                    Err(error) => {
                        tracing::warn!(reseller = %name, month = %label, %error,
                            "making the monthly availability report failed");
                        return;
                    }
                };
                let uid = reseller.meta().uid.clone().unwrap_or_default();
                reports.push(MonthlyReport {
                    month: label.clone(),
                    generated_at: Time(input.now),
                    availability_percent: made.availability.clone(),
                    downtime_seconds: total.down.as_secs().max(0),
                    incidents: i32::try_from(made.incidents.len()).unwrap_or(i32::MAX),
                    deliveries: addresses
                        .into_iter()
                        .map(|to| ReportDelivery {
                            idempotency_key: notify::report_key(&uid, &label, &to),
                            to,
                            state: DeliveryState::Pending,
                            attempts: 0,
                            last_attempt_at: None,
                            message: None,
                        })
                        .collect(),
                });
                let excess = reports.len().saturating_sub(KEEP_MONTHS);
                reports.drain(..excess);
                tracing::info!(reseller = %name, month = %label,
                    availability = %made.availability, incidents = made.incidents.len(),
                    "monthly availability report made");
                if !self.record_reports(reseller, &reports).await {
                    return;
                }
                built = Some(made);
                reports.len() - 1
            }
        };
        for slot in 0..reports[index].deliveries.len() {
            let pending = reports[index].deliveries[slot].clone();
            if pending.state != DeliveryState::Pending
                || !self.retry_due(pending.attempts, pending.last_attempt_at.as_ref())
            {
                continue;
            }
            if built.is_none() {
                // Made again for a retry or after a restart: from the same records.
                let Some(input) = self.report_input(world, reseller, calendar, month).await else {
                    return;
                };
                built = report::build(&input).ok().map(|(made, _)| made);
            }
            let Some(made) = built.as_ref() else {
                return;
            };
            let entry = &mut reports[index].deliveries[slot];
            entry.attempts += 1;
            entry.last_attempt_at = Some(Time(self.ctx.clock.now()));
            // The attempt is on record before it is made.
            if !self.record_reports(reseller, &reports).await {
                return;
            }
            let outcome = self.send_report(reseller, made, &pending).await;
            let entry = &mut reports[index].deliveries[slot];
            let settled = delivery::settle(outcome, entry.attempts, self.notify.max_attempts);
            (entry.state, entry.message) = (settled.state, settled.message.clone());
            match &settled.message {
                None => tracing::info!(reseller = %name, month = %label,
                    "monthly availability report delivered"),
                Some(message) => tracing::warn!(reseller = %name, month = %label,
                    attempts = entry.attempts, %message, result = settled.result,
                    "monthly availability report failed"),
            }
            self.ctx
                .metrics
                .alerting
                .notifications
                .with_label_values(&[
                    notify::channel_name(Channel::Email),
                    notify::REPORT_EVENT,
                    settled.result,
                ])
                .inc();
            if !self.record_reports(reseller, &reports).await {
                return;
            }
        }
    }

    /// What the report of `month` is made of: the reseller's end users with their services,
    /// incidents and (while a provider's node window touches the month) their pods' nodes;
    /// `None` when a pod list failed.
    async fn report_input<'w>(
        &self,
        world: &'w World,
        reseller: &Reseller,
        calendar: &Calendar,
        month: Month,
    ) -> Option<ReportInput<'w>> {
        let zone = calendar.time_zone().clone();
        let period = month.span(&zone).ok()?;
        let namespace = Reseller::namespace_name(&reseller.name_any());
        let node_windows = world.windows.iter().any(|w| {
            w.start < period.end
                && w.ended_at() > period.start
                && w.covers.iter().any(|c| matches!(c, Cover::Node { .. }))
        });
        let mut end_users = Vec::new();
        for ((ns, name), enduser) in &world.endusers {
            if *ns != namespace {
                continue;
            }
            let created = enduser
                .meta()
                .creation_timestamp
                .as_ref()
                .map_or(period.start, |t| t.0);
            if created >= period.end {
                continue;
            }
            let status = enduser.status.as_ref();
            let services = status
                .map(|s| {
                    s.services
                        .iter()
                        .map(|h| h.service)
                        .collect::<BTreeSet<_>>()
                })
                .unwrap_or_default();
            let nodes = if node_windows {
                let hosting = status
                    .and_then(|s| s.hosting_namespace.clone())
                    .unwrap_or_else(|| naming::hosting_namespace(&reseller.name_any(), name));
                world.nodes_of(&hosting).into_iter().collect()
            } else {
                Vec::new()
            };
            end_users.push(EndUserInput {
                label: Some(enduser.spec.login_id.clone())
                    .filter(|l| !l.is_empty())
                    .unwrap_or_else(|| name.clone()),
                namespace: ns,
                name,
                created,
                services: services.into_iter().collect(),
                nodes,
                incidents: world
                    .incidents
                    .iter()
                    .filter(|i| {
                        i.namespace().as_deref() == Some(ns.as_str()) && i.spec.end_user == *name
                    })
                    .collect(),
            });
        }
        end_users.sort_by(|a, b| a.label.cmp(&b.label));
        Some(ReportInput {
            brand: reseller.spec.display_name.clone(),
            month,
            zone,
            end_users,
            windows: &world.windows,
            now: self.ctx.clock.now(),
        })
    }

    /// One delivery attempt; the error says whether to retry.
    async fn send_report(
        &self,
        reseller: &Reseller,
        made: &AvailabilityReport,
        delivery: &ReportDelivery,
    ) -> Result<(), (bool, String)> {
        let (_, language) =
            delivery::target_of(&self.ctx.client, reseller, Channel::Email, &delivery.to)
                .await
                .map_err(|e| (true, e.to_string()))?;
        self.notifier
            .report_in(&delivery.to, made, language, &delivery.idempotency_key)
            .await
            .map_err(|e| (e.is_retryable(), e.to_string()))
    }

    /// Writes `status.reports`; false (logged) when the write failed.
    async fn record_reports(&self, reseller: &Reseller, reports: &[MonthlyReport]) -> bool {
        let api: Api<Reseller> = Api::all(self.ctx.client.clone());
        let reports = json!({ "reports": reports });
        match owners::RESELLER_REPORTS
            .write(&api, &reseller.name_any(), None, &reports)
            .await
        {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(reseller = %reseller.name_any(), %error,
                    "recording the monthly availability report failed; not sending");
                false
            }
        }
    }
}

/// The e-mail addresses of the reseller's contacts, each once, in their order.
fn addresses(reseller: &Reseller) -> Vec<String> {
    let mut seen = BTreeSet::new();
    reseller
        .spec
        .contacts
        .iter()
        .filter_map(|c| c.email.clone())
        .filter(|a| seen.insert(a.clone()))
        .collect()
}
