//! The alert controller: every poll interval it looks at the alert source, opens one Incident
//! per failing end user, service and kind, steps each unfinished incident through the flow
//! (`flow.rs`), carries out the remediation the flow asks for (`remediation.rs`), writes the
//! status (server-side apply, field manager `oem-hosting-alerting`, only when it changed) and
//! delivers the notices the status holds as Pending (`deliver.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use oem_crds::enduser::EndUser;
use oem_crds::incident::{Incident, IncidentKind, IncidentSpec, IncidentStatus};
use oem_crds::reseller::{BusinessCalendar, Reseller};

use super::calendar::Calendar;
use super::config::SourceMode;
use super::flow::{self, Facts, FlowConfig, Remedy};
use super::incidents::{Admit, World, admit, is_open, key_of, kind_text, service_text};
use super::maintenance::Admission;
use super::notify::{Notifier, NotifyConfig};
use super::outage;
use super::remediation;
use super::source::{self, AlertInbox, AlertKey, Observation};
use super::{embedded, mail, windows};
use crate::context::Context;
use crate::naming;
use crate::status::owners;

/// Incident labels, so `kubectl get inc -l` finds an end user's or a kind's incidents.
pub const LABEL_SERVICE: &str = "hosting.oem.dev/service";
pub const LABEL_KIND: &str = "hosting.oem.dev/incident-kind";

/// The reseller's calendar; the default (Asia/Tokyo) when its spec cannot be used.
pub(super) fn calendar_of(reseller: &Reseller) -> Option<Calendar> {
    Calendar::from_spec(&reseller.spec.business_calendar)
        .or_else(|error| {
            tracing::warn!(reseller = %reseller.name_any(), %error, "business calendar unusable; using the default");
            Calendar::from_spec(&BusinessCalendar::default())
        })
        .ok()
}

/// The alert source's name in metrics and messages.
fn source_label(mode: SourceMode) -> &'static str {
    match mode {
        SourceMode::Prometheus => "prometheus",
        SourceMode::Alertmanager => "alertmanager",
        SourceMode::Embedded | SourceMode::Auto => "embedded",
    }
}

pub struct Alerting {
    pub(super) ctx: Arc<Context>,
    /// What the cluster holds (`view.rs`): each look is a pure function of it.
    view: crate::view::View,
    inbox: AlertInbox,
    http: reqwest::Client,
    pub(super) notifier: Notifier,
    pub(super) notify: NotifyConfig,
    flow: FlowConfig,
    /// A resolved, untold incident of a key takes the key's next fall within this.
    flap_window: SignedDuration,
}

impl Alerting {
    pub fn new(
        ctx: Arc<Context>,
        view: crate::view::View,
        inbox: AlertInbox,
        notify: NotifyConfig,
        notifier: Notifier,
    ) -> Self {
        let cfg = &ctx.config.alerting;
        let signed =
            |d: std::time::Duration| SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
        let flap_window = signed(cfg.flap_window);
        let flow = FlowConfig {
            notify_after: signed(cfg.notify_after),
            max_restarts: cfg.max_restarts,
            restart_backoff: signed(cfg.restart_backoff),
            report_lead_time: signed(cfg.report_lead_time),
            allow_node_cordon: cfg.allow_node_cordon,
        };
        Self {
            ctx,
            view,
            inbox,
            http: reqwest::Client::new(),
            notifier,
            notify,
            flow,
            flap_window,
        }
    }

    /// One look and one step of every unfinished incident.
    pub async fn tick(&mut self) {
        let now = self.ctx.clock.now();
        let mut world = World::of(&self.view);
        let observation = self.observe(&world, now).await;
        self.export_mail(&world);
        let nodes = windows::nodes_of_failing(&world, observation.as_ref(), now);
        windows::write_statuses(&self.ctx.client, &world, observation.as_ref(), &nodes, now).await;
        self.export_maintenance(&world, &nodes, now);
        self.announce(&world).await;
        self.report(&world).await;
        if let Some(seen) = &observation {
            self.open_new(&mut world, seen, &nodes, now).await;
        }
        let unfinished: Vec<Incident> = world
            .incidents
            .iter()
            .filter(|i| !flow::finished(i))
            .cloned()
            .collect();
        let mut stepped = Vec::new();
        for incident in unfinished {
            // An incident open when a window began waits for its end: no remediation, no notice.
            if is_open(&incident)
                && let Admission::Held { window } =
                    windows::holding(&world, &nodes, &key_of(&incident), now, now)
            {
                tracing::debug!(incident = %incident.name_any(), %window, "held by a maintenance window");
                continue;
            }
            let name = incident.name_any();
            stepped.push((incident.namespace(), name.clone()));
            if let Some(updated) = self.advance(incident, &world, observation.as_ref()).await
                && let Some(slot) = world
                    .incidents
                    .iter_mut()
                    .find(|i| i.name_any() == name && i.namespace() == updated.namespace())
            {
                *slot = updated;
            }
        }
        self.deliver_stepped(&mut world, &stepped).await;
        super::retention::collect(&self.ctx, &world.incidents, now).await;
        self.export_incidents(&world, self.ctx.clock.now());
    }

    async fn observe(&self, world: &World, now: Timestamp) -> Option<Observation> {
        let prometheus_url = self.ctx.config.prometheus_url.as_deref();
        let mode = self.ctx.config.alerting.mode(prometheus_url);
        let label = source_label(mode);
        let cfg = &self.ctx.config.alerting;
        let read = match mode {
            SourceMode::Prometheus => {
                let base = prometheus_url.unwrap_or_default();
                source::prometheus(&self.http, base, now).await
            }
            SourceMode::Alertmanager => match &cfg.alertmanager_url {
                Some(base) => source::alertmanager(&self.http, base)
                    .await
                    .map(|listed| self.inbox.sync(&listed, cfg.alert_for, now)),
                None => Ok(self.inbox.observe()),
            },
            SourceMode::Embedded | SourceMode::Auto => {
                let endusers: Vec<_> = world.endusers.values().cloned().collect();
                Ok(embedded::evaluate(&endusers, now))
            }
        };
        let seen = match read {
            Ok(seen) => Some(seen),
            Err(error) => {
                tracing::warn!(%error, "reading alerts failed; open incidents are frozen (no remediation, no notice) until it answers");
                None
            }
        };
        let result = if seen.is_some() { "ok" } else { "error" };
        let metrics = &self.ctx.metrics.alerting;
        metrics
            .source_polls
            .with_label_values(&[label, result])
            .inc();
        metrics
            .source_up
            .with_label_values(&[label])
            .set(if seen.is_some() { 1.0 } else { 0.0 });
        seen
    }

    /// Opens an incident for every failing key without an open one, unless a maintenance window
    /// holds it; one still down at a window's end counts from that end.
    async fn open_new(
        &self,
        world: &mut World,
        seen: &Observation,
        nodes: &HashMap<AlertKey, Vec<String>>,
        now: Timestamp,
    ) {
        let grace = SignedDuration::try_from(self.ctx.config.alerting.mail_unlock_grace)
            .unwrap_or(SignedDuration::ZERO);
        for (key, first_failure) in &seen.active {
            let since = &match windows::holding(world, nodes, key, *first_failure, now) {
                Admission::Held { window } => {
                    tracing::debug!(namespace = %key.namespace, enduser = %key.enduser,
                        service = %service_text(key.service), %window, "outage held by a maintenance window");
                    continue;
                }
                Admission::Open { since } => since,
            };
            let Some(enduser) = world
                .endusers
                .get(&(key.namespace.clone(), key.enduser.clone()))
            else {
                continue;
            };
            if world
                .incidents
                .iter()
                .any(|i| key_of(i) == *key && is_open(i))
            {
                continue;
            }
            if key.kind == IncidentKind::MassMail {
                if enduser.status.as_ref().is_some_and(|s| s.mail_locked) {
                    continue;
                }
                let lifted_lately = world.incidents.iter().any(|i| {
                    key_of(i) == *key
                        && i.status
                            .as_ref()
                            .and_then(|s| s.resolved_at.as_ref())
                            .is_some_and(|t| now < t.0 + grace)
                });
                if lifted_lately {
                    continue;
                }
            }
            let name = match admit(&world.incidents, key, *since, now, self.flap_window) {
                Admit::Known => continue, // this outage was already resolved
                Admit::New(name) => name,
                Admit::Reopen(incident) => {
                    let incident = incident.clone();
                    self.reopen(world, incident, *since, now).await;
                    continue;
                }
            };
            let detail = enduser
                .status
                .as_ref()
                .and_then(|s| s.services.iter().find(|h| h.service == key.service))
                .and_then(|h| h.message.clone())
                .filter(|_| key.kind != IncidentKind::MassMail)
                .unwrap_or_else(|| match key.kind {
                    IncidentKind::MassMail => "mail sent above the course's rate".to_owned(),
                    _ => format!("{} failing", service_text(key.service)),
                });
            // An end user whose hosting sits on a down node fell with it: the incidents of
            // every end user there are one outage (`outage.rs`).
            let node = (key.kind != IncidentKind::MassMail)
                .then(|| world.down_node(&world.hosting_namespace(key)))
                .flatten();
            let detail = match &node {
                Some(node) => format!("{detail} (node {node} down)"),
                None => detail,
            };
            match self.create(key, &name, node, *since, now, &detail).await {
                Ok(incident) => {
                    tracing::info!(namespace = %key.namespace, incident = %name, enduser = %key.enduser,
                        service = %service_text(key.service), kind = kind_text(key.kind), "incident opened");
                    self.ctx
                        .metrics
                        .alerting
                        .incidents_total
                        .with_label_values(&[key.reseller(), kind_text(key.kind)])
                        .inc();
                    self.ctx
                        .event(
                            &incident.object_ref(&()),
                            true,
                            "IncidentOpened",
                            "Detect",
                            detail,
                        )
                        .await;
                    world.incidents.push(incident);
                }
                Err(error) => {
                    tracing::warn!(incident = %name, %error, "opening the incident failed")
                }
            }
        }
    }

    /// A flap: the resolved incident takes the new fall (`flow::reopen`).
    async fn reopen(
        &self,
        world: &mut World,
        incident: Incident,
        since: Timestamp,
        now: Timestamp,
    ) {
        let mut status = incident.status.clone().unwrap_or_default();
        flow::reopen(&mut status, since.min(now), now);
        flow::settle(&mut status, &incident, now);
        let name = incident.name_any();
        match self.write(&incident, status).await {
            Ok(updated) => {
                tracing::info!(namespace = ?incident.namespace(), incident = %name,
                    "incident reopened: the service fell again within the flap window");
                if let Some(slot) = world
                    .incidents
                    .iter_mut()
                    .find(|i| i.name_any() == name && i.namespace() == updated.namespace())
                {
                    *slot = updated;
                }
            }
            Err(error) => {
                tracing::warn!(incident = %name, %error, "reopening the incident failed")
            }
        }
    }

    async fn create(
        &self,
        key: &AlertKey,
        name: &str,
        node: Option<String>,
        since: Timestamp,
        now: Timestamp,
        detail: &str,
    ) -> Result<Incident, kube::Error> {
        let api: Api<Incident> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let mut incident = Incident::new(
            name,
            IncidentSpec {
                end_user: key.enduser.clone(),
                service: key.service,
                kind: key.kind,
                cause: None,
                report_deferral: None,
                node,
            },
        );
        incident.metadata.namespace = Some(key.namespace.clone());
        incident.metadata.labels = Some(
            [
                (naming::LABEL_MANAGED_BY, naming::MANAGED_BY.to_owned()),
                (naming::LABEL_RESELLER, key.reseller().to_owned()),
                (naming::LABEL_ENDUSER, key.enduser.clone()),
                (LABEL_SERVICE, service_text(key.service)),
                (LABEL_KIND, kind_text(key.kind).to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        );
        let created = match api.create(&PostParams::default(), &incident).await {
            Ok(created) => created,
            Err(kube::Error::Api(e)) if e.code == 409 => api.get(name).await?,
            Err(error) => return Err(error),
        };
        if created
            .status
            .as_ref()
            .is_some_and(|s| s.started_at.is_some())
        {
            return Ok(created);
        }
        let mut status = flow::opened(since.min(now), now, detail);
        flow::settle(&mut status, &created, now);
        self.write(&created, status).await
    }

    /// Writes the incident's status when it differs from the stored one; returns the incident
    /// as stored afterwards.
    pub(super) async fn write(
        &self,
        incident: &Incident,
        status: IncidentStatus,
    ) -> Result<Incident, kube::Error> {
        let api: Api<Incident> = Api::namespaced(
            self.ctx.client.clone(),
            &incident.namespace().unwrap_or_default(),
        );
        let written = owners::INCIDENT
            .write(
                &api,
                &incident.name_any(),
                incident.status.as_ref(),
                &status,
            )
            .await?;
        Ok(written.unwrap_or_else(|| incident.clone()))
    }

    /// One step of one incident: facts, flow, remediation, status, deliveries.
    async fn advance(
        &self,
        incident: Incident,
        world: &World,
        seen: Option<&Observation>,
    ) -> Option<Incident> {
        let now = self.ctx.clock.now();
        let key = key_of(&incident);
        let Some(reseller) = world.resellers.get(key.reseller()) else {
            tracing::warn!(incident = %incident.name_any(), "the incident's reseller is gone");
            return None;
        };
        let calendar = calendar_of(reseller)?;
        let enduser = world.enduser_of(&incident);
        let (failing, recovered_at) = match (enduser, seen) {
            (None, _) => (false, None),
            (Some(_), None) => (true, None),
            (Some(_), Some(seen)) => match seen.active.get(&key) {
                Some(_) => (true, None),
                None if seen.complete => (false, seen.recovered.get(&key).copied()),
                None => match seen.recovered.get(&key) {
                    Some(at) => (false, Some(*at)),
                    None => (true, None),
                },
            },
        };
        let unresolved = is_open(&incident);
        if seen.is_none() && unresolved && key.kind != IncidentKind::MassMail && enduser.is_some() {
            let mode = source_label(
                self.ctx
                    .config
                    .alerting
                    .mode(self.ctx.config.prometheus_url.as_deref()),
            );
            let status = flow::freeze(&incident, mode, now);
            return self.write_step(&incident, status).await;
        }
        let hosting_ns = enduser.map(|_| world.hosting_namespace(&key));
        let group = crate::hosting::ServiceGroup::serving(key.service);
        let mut facts = Facts {
            now,
            failing,
            recovered_at,
            pod_not_ready: false,
            node_not_ready: None,
            unlock_requested: enduser.is_some_and(mail::unlock_requested),
            recipients: super::delivery::recipients(reseller),
            joins_outage: outage::joins_outage(
                &incident,
                &world.incidents,
                now,
                self.flow.notify_after,
            ),
            outage_continues: outage::outage_continues(&incident, &world.incidents, seen, key_of),
        };
        if unresolved
            && failing
            && key.kind != IncidentKind::MassMail
            && let Some(ns) = &hosting_ns
        {
            let pods = world.pods_in(ns, group);
            facts.pod_not_ready =
                key.kind == IncidentKind::ServiceDown && remediation::any_not_ready(&pods);
            if self.flow.allow_node_cordon {
                facts.node_not_ready = world.not_ready_node(&pods);
            }
        }
        let (mut status, remedies) =
            flow::step(&incident, &facts, &self.flow, |t| calendar.report_due(t));
        for remedy in remedies {
            let (level, action) = remedy.labels();
            let done = self
                .remedy(
                    &remedy,
                    &incident,
                    enduser,
                    hosting_ns.as_deref(),
                    group,
                    now,
                )
                .await;
            let result = if done.is_ok() { "ok" } else { "error" };
            self.ctx
                .metrics
                .alerting
                .remediations
                .with_label_values(&[level, action, result])
                .inc();
            match done {
                Ok(message) => {
                    tracing::info!(incident = %incident.name_any(), %message, "remediation done");
                    flow::record(&mut status, now, remedy.event(), Some(message));
                    if remedy == Remedy::UnlockMail {
                        flow::resolve_mail_lock(&mut status, now);
                    }
                }
                Err(error) => {
                    tracing::warn!(incident = %incident.name_any(), %error, "remediation failed")
                }
            }
        }
        flow::settle(&mut status, &incident, now);
        if seen.is_some() {
            flow::thaw(&mut status, incident.metadata.generation, now);
        }
        if unresolved
            && let (Some(resolved), Some(started)) =
                (&status.resolved_at, flow::phase_start(&status))
        {
            let took = resolved.0.duration_since(started).as_secs_f64().max(0.0);
            self.ctx
                .metrics
                .alerting
                .time_to_recover
                .with_label_values(&[key.reseller()])
                .observe(took);
            tracing::info!(incident = %incident.name_any(), seconds = took, "incident resolved");
        }
        self.write_step(&incident, status).await
    }

    /// Writes the incident's next status (if it changed); `None` when the write failed (the
    /// next look tries again). Its Pending notices go out after every incident took its step
    /// (`deliver.rs`), so the notices of one outage go as one.
    async fn write_step(&self, incident: &Incident, status: IncidentStatus) -> Option<Incident> {
        match self.write(incident, status).await {
            Ok(written) => Some(written),
            Err(error) => {
                tracing::warn!(incident = %incident.name_any(), %error, "writing the incident status failed");
                None
            }
        }
    }

    async fn remedy(
        &self,
        remedy: &Remedy,
        incident: &Incident,
        enduser: Option<&EndUser>,
        hosting_ns: Option<&str>,
        group: Option<crate::hosting::ServiceGroup>,
        now: Timestamp,
    ) -> Result<String, String> {
        let client = &self.ctx.client;
        let ns = hosting_ns.ok_or_else(|| "the end user is gone".to_owned());
        // Several services of one workload fail together (http, https, ftp, ftps of the web
        // pod), each its own incident, and some only while the workload restarts: one restart
        // or recreation within the backoff serves them all, instead of each interrupting the
        // one before.
        let fresh_since = now.checked_sub(self.flow.restart_backoff).unwrap_or(now);
        match remedy {
            Remedy::Restart => match group {
                Some(group) => remediation::restart(client, ns?, group, now, fresh_since)
                    .await
                    .map_err(|e| e.to_string()),
                None => remediation::recreate(client, ns?, None, now, fresh_since)
                    .await
                    .map_err(|e| e.to_string()),
            },
            Remedy::Recreate => remediation::recreate(client, ns?, group, now, fresh_since)
                .await
                .map_err(|e| e.to_string()),
            Remedy::Cordon(node) => remediation::cordon(client, node)
                .await
                .map_err(|e| e.to_string()),
            Remedy::LockMail | Remedy::UnlockMail => {
                let Some(enduser) = enduser else {
                    return Err("the end user is gone".into());
                };
                mail::set_lock(client, enduser, *remedy == Remedy::LockMail)
                    .await
                    .map_err(|e| e.to_string())
                    .map(|m| format!("{m} ({})", incident.name_any()))
            }
        }
    }
}
