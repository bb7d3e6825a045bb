//! The monitor at work: lists what to probe (end users with their courses, hosting pods and
//! their nodes) every refresh interval, runs the probes the schedule says are due with bounded
//! concurrency, exports each result as metrics, and writes `EndUser.status.services` when a
//! service changes state (server-side apply of `status.services` only, field manager
//! `oem-hosting-monitor`, so it never fights the EndUser controller over the rest).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kube::ResourceExt;
use kube::api::Api;
use oem_crds::course::Course;
use oem_crds::enduser::{EndUser, ServiceName};
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::health::{self, EndUserId, HealthBook};
use super::probes::{ProbeOutcome, Prober, Target};
use super::scheduler::{Retry, Schedule};
use super::targets::{self, MonitoredTarget, TargetKey};
use crate::context::Context;
use crate::metrics::ProbeMetrics;
use crate::status::owners;

/// How long a changed end user waits before its status is written, so the results of its
/// services probed together go out in one write.
const FLUSH_DELAY: Duration = Duration::from_millis(500);

/// Runs the monitor until `stop`. Fails when the probes' TLS roots cannot be loaded:
/// monitoring with a wrong trust store would report every TLS service down.
pub async fn run(
    ctx: Arc<Context>,
    view: crate::view::View,
    stop: oem_supervisor::Stop,
) -> Result<(), String> {
    if !ctx.config.monitor.enabled {
        tracing::warn!("the monitor is disabled (monitor.enabled: false): no service is probed");
        stop.requested().await;
        return Ok(());
    }
    let prober = match Prober::new(ctx.config.probes.clone()) {
        Ok(prober) => Arc::new(prober),
        Err(error) => {
            return Err(format!(
                "the monitor cannot load its TLS roots (probes.caFile): {error}"
            ));
        }
    };
    tracing::info!(
        interval = ?ctx.config.monitor.interval,
        retry = ?ctx.config.monitor.retry_interval,
        timeout = ?ctx.config.probes.timeout,
        concurrency = ctx.config.monitor.concurrency,
        "monitor started"
    );
    if !view.wait_ready(&stop, "monitor").await {
        return Ok(());
    }
    let mut engine = Engine::new(ctx, view, prober);
    tokio::select! {
        _ = engine.run() => {}
        _ = stop.requested() => tracing::info!("monitor stopped"),
    }
    Ok(())
}

struct Engine {
    ctx: Arc<Context>,
    /// What there is to probe (`view.rs`).
    view: crate::view::View,
    prober: Arc<Prober>,
    metrics: ProbeMetrics,
    /// Ordered, like the schedule's slots, for the room a hash table keeps empty.
    targets: BTreeMap<Key, Target>,
    schedule: Schedule<Key>,
    book: HealthBook,
    /// End users whose status must be written, since when.
    dirty: HashMap<EndUserId, Instant>,
    running: JoinSet<(Key, ProbeOutcome)>,
    /// The target of each running probe task, so one that panics is still rescheduled (and
    /// its reseller's share of the slots released).
    probing: HashMap<tokio::task::Id, Key>,
}

/// A target's key as the engine's tables hold it: one allocation shared by the targets, the
/// schedule's slot and its owner's queue (three copies of an 80-byte key each were 3.4 MB
/// at 2,000 end users, 14,032 targets).
type Key = Arc<TargetKey>;

impl Engine {
    fn new(ctx: Arc<Context>, view: crate::view::View, prober: Arc<Prober>) -> Self {
        let monitor = &ctx.config.monitor;
        let retry = Retry {
            every: monitor.retry_interval,
            backoff_after: Some(ctx.config.alerting.notify_after),
            max: monitor.max_retry(),
        };
        let schedule = Schedule::new(monitor.interval, retry, Instant::now());
        Self {
            metrics: ctx.metrics.probes.clone(),
            ctx,
            view,
            prober,
            targets: BTreeMap::new(),
            schedule,
            book: HealthBook::default(),
            dirty: HashMap::new(),
            running: JoinSet::new(),
            probing: HashMap::new(),
        }
    }

    async fn run(&mut self) {
        // New end users are picked up within one probe interval at most.
        let monitor = &self.ctx.config.monitor;
        let refresh = monitor.refresh_interval.min(monitor.interval);
        let concurrency = self.ctx.config.monitor.concurrency;
        let mut next_refresh = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_refresh {
                self.refresh().await;
                next_refresh = Instant::now() + refresh;
            }
            self.flush(now).await;
            let free = concurrency.saturating_sub(self.running.len());
            for key in self.schedule.take_due(now, free) {
                self.spawn(key);
            }
            let mut wake = next_refresh;
            if self.running.len() < concurrency
                && let Some(due) = self.schedule.next_due()
            {
                wake = wake.min(due);
            }
            if let Some(first) = self.dirty.values().min() {
                wake = wake.min(*first + FLUSH_DELAY);
            }
            tokio::select! {
                Some(done) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    match done {
                        Ok((id, (key, outcome))) => {
                            self.probing.remove(&id);
                            self.record(key, outcome);
                        }
                        Err(error) => {
                            tracing::error!(%error, "a probe task failed");
                            if let Some(key) = self.probing.remove(&error.id()) {
                                // Re-checked after the retry interval, like a failed probe;
                                // the health book is left as it was.
                                self.schedule.record(&key, false, Instant::now());
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn spawn(&mut self, key: Key) {
        let Some(target) = self.targets.get(&key).cloned() else {
            // Not expected (targets and schedule change together); never leave it taken.
            self.schedule.record(&key, false, Instant::now());
            return;
        };
        let prober = self.prober.clone();
        let task_key = key.clone();
        let handle = self.running.spawn(async move {
            let outcome = prober.probe(&target).await;
            (task_key, outcome)
        });
        self.probing.insert(handle.id(), key);
    }

    /// One finished probe: metrics, the next slot, and the end user's health.
    fn record(&mut self, key: Key, outcome: ProbeOutcome) {
        let now = Instant::now();
        let result = if outcome.up {
            "up"
        } else {
            outcome.failure.unwrap_or("down")
        };
        self.metrics
            .run
            .with_label_values(&[outcome.service.as_str(), result])
            .inc();
        if self.schedule.record(&key, outcome.up, now).is_none() {
            return; // no longer monitored
        }
        self.metrics.results.set(
            &key,
            outcome.up,
            outcome.duration.as_secs_f64(),
            outcome.tls_cert_expiry_seconds(SystemTime::now()),
        );
        if !outcome.up {
            tracing::debug!(target = %key.id(), reason = %outcome.reason, "probe failed");
        }
        if let TargetKey::EndUser {
            namespace,
            enduser,
            service,
            ..
        } = &*key
        {
            let id = (namespace.to_string(), enduser.to_string());
            let at = self.ctx.clock.now();
            if self.book.observe(
                &id,
                *service,
                outcome.up,
                health::status_message(&outcome),
                at,
            ) {
                tracing::info!(
                    namespace = %id.0, enduser = %id.1, %service, up = outcome.up,
                    reason = %outcome.reason, "service changed state"
                );
                self.dirty.entry(id).or_insert(now);
            }
        }
    }

    /// Writes the status of end users that changed at least `FLUSH_DELAY` ago.
    async fn flush(&mut self, now: Instant) {
        let ready: Vec<EndUserId> = self
            .dirty
            .iter()
            .filter(|(_, since)| now >= **since + FLUSH_DELAY)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ready {
            self.dirty.remove(&id);
            let services = self.book.services(&id);
            let api: Api<EndUser> = Api::namespaced(self.ctx.client.clone(), &id.0);
            let services = json!({ "services": services });
            match owners::ENDUSER_SERVICES
                .write(&api, &id.1, None, &services)
                .await
            {
                Ok(_) => self.metrics.status_writes.with_label_values(&["ok"]).inc(),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(error) => {
                    self.metrics
                        .status_writes
                        .with_label_values(&["error"])
                        .inc();
                    tracing::warn!(namespace = %id.0, enduser = %id.1, %error,
                        "writing status.services failed; retrying");
                    self.dirty.insert(id, now);
                }
            }
        }
    }

    /// Makes the schedule hold exactly what the view says there is to probe (no request).
    async fn refresh(&mut self) {
        use crate::view::View;
        let endusers = View::all(&self.view.endusers);
        let courses = View::all(&self.view.courses);
        let pods = self.view.pods.values();
        let nodes = View::all(&self.view.nodes);
        let services = self.view.services.values();
        let api_server = View::all(&self.view.api_server).into_iter().next();
        // Named endpoints are checked against these from now on (before the targets change,
        // so a new end user's first probes already are).
        self.prober.set_owners(targets::address_owners(
            &services,
            &pods,
            api_server.as_deref(),
        ));
        let courses: HashMap<(String, String), Arc<Course>> = courses
            .into_iter()
            .map(|c| ((c.namespace().unwrap_or_default(), c.name_any()), c))
            .collect();
        let mut wanted: Vec<MonitoredTarget> = Vec::new();
        let mut monitored: HashMap<EndUserId, BTreeSet<ServiceName>> = HashMap::new();
        let (now, startup_grace) = (self.ctx.clock.now(), self.ctx.config.monitor.startup_grace);
        for enduser in &endusers {
            let ns = enduser.namespace().unwrap_or_default();
            let Some(course) = courses.get(&(ns.clone(), enduser.spec.course_ref.name.clone()))
            else {
                continue;
            };
            let found = targets::enduser_targets(enduser, course, now, startup_grace);
            if found.is_empty() {
                continue;
            }
            let id = (ns, enduser.name_any());
            self.book.seed(&id, enduser);
            let services = monitored.entry(id.clone()).or_default();
            services.extend(found.iter().map(|t| t.target.service));
            wanted.extend(found);
            if self.book.differs(&id, enduser) && !self.dirty.contains_key(&id) {
                // Another writer put an older list back (or a service left the course).
                self.dirty.insert(id, Instant::now());
            }
        }
        for id in self.book.retain(&monitored) {
            self.dirty.entry(id).or_insert_with(Instant::now);
        }
        wanted.extend(targets::host_targets(
            &pods,
            &nodes,
            self.ctx.config.monitor.node_port,
        ));
        // A target still there keeps its key (shared with the schedule).
        let keep: BTreeMap<Key, Target> = wanted
            .into_iter()
            .map(|t| {
                let key = match self.targets.get_key_value(&t.key) {
                    Some((key, _)) => key.clone(),
                    None => Arc::new(t.key),
                };
                (key, t.target)
            })
            .collect();
        self.metrics.results.retain(|k| keep.contains_key(k));
        let ids: Vec<(Key, String)> = keep.keys().map(|k| (k.clone(), schedule_id(k))).collect();
        self.schedule.sync(
            ids.iter().map(|(k, id)| (k.clone(), id.as_str())),
            Instant::now(),
        );
        self.targets = keep;
        self.metrics.targets.set(self.targets.len() as i64);
    }
}

/// What places a target in the interval: an end user's services share one slot, so they are
/// probed together and a change of several is one status write; hosts each have their own.
fn schedule_id(key: &TargetKey) -> String {
    match key {
        TargetKey::EndUser {
            namespace, enduser, ..
        } => format!("enduser/{namespace}/{enduser}"),
        other => other.id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::probes::ServiceName;

    #[test]
    fn an_end_users_services_share_a_slot_hosts_do_not() {
        let key = |service| TargetKey::EndUser {
            reseller: "acme".into(),
            namespace: "reseller-acme".into(),
            enduser: "alice".into(),
            service,
        };
        assert_eq!(
            schedule_id(&key(ServiceName::Http)),
            schedule_id(&key(ServiceName::Imaps))
        );
        assert_ne!(
            schedule_id(&TargetKey::Node { node: "a".into() }),
            schedule_id(&TargetKey::Node { node: "b".into() })
        );
    }
}
