//! Leader election on a Lease. Of the operator's replicas only the leader runs the parts that
//! write (controllers, monitor, usage reporter, alert controller, orphan sweep); every replica
//! serves `/healthz`, `/readyz` and `/metrics` (`oem_operator_leader` says which one leads).
//!
//! The rules, the ones client-go's leader election keeps:
//! - A replica takes the Lease when nobody holds it, or when the holder's record has stayed the
//!   same for the lease's duration by this replica's own clock: it times how long it has seen
//!   one resourceVersion, so the clocks of two machines are never compared.
//! - Every write of the Lease carries the resourceVersion it was based on, so of two replicas
//!   taking it at once, one gets a conflict and keeps following.
//! - The leader renews every `retryPeriod`. When no renewal has succeeded for `renewDeadline`
//!   (counted from the start of the last successful request) or another replica holds the
//!   Lease, every leading part is aborted at once and the replica follows again; it starts them
//!   afresh when it leads next. `renewDeadline` is shorter than `leaseDuration`, so a leader
//!   cut off from the API server has stopped writing before any other replica may consider the
//!   lease expired.
//! - On a stop (SIGTERM) the leader lets its parts end, then gives the Lease up, so another
//!   replica takes over at its next try instead of waiting for the lease to expire.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use oem_supervisor::{Stop, Supervisor};
use serde::Deserialize;
use tokio::time::Instant;

/// The field manager of the operator's Lease writes.
const FIELD_MANAGER: &str = "oem-hosting-operator-leader";

/// How the replicas elect their leader.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LeaderElectionConfig {
    /// The Lease's name, in the operator's own namespace (`network.monitorNamespace`).
    pub lease_name: String,
    /// How long a holder that stopped renewing keeps the Lease (whole seconds).
    #[serde(with = "humantime_serde")]
    pub lease_duration: Duration,
    /// The leader stops leading when it could not renew for this long.
    #[serde(with = "humantime_serde")]
    pub renew_deadline: Duration,
    /// How often the leader renews and a follower tries to take the Lease.
    #[serde(with = "humantime_serde")]
    pub retry_period: Duration,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        Self {
            lease_name: "oem-hosting-operator".into(),
            // A follower sees a renewal up to one retry period late and checks once per
            // period: it leads at most lease + 2 retry periods (16 s) after the last renewal,
            // within the 20 s the chart promises.
            lease_duration: Duration::from_secs(12),
            renew_deadline: Duration::from_secs(8),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaderElectionConfig {
    /// Refuses timings that would let two leaders overlap, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.lease_name.trim().is_empty() {
            return Err("leaseName: must not be empty".into());
        }
        if self.lease_duration < Duration::from_secs(1) || self.lease_duration.subsec_nanos() != 0 {
            return Err("leaseDuration: must be a whole number of seconds, at least 1s".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(
                "renewDeadline: must be shorter than leaseDuration (a cut-off leader must stop \
                 before another may take over)"
                    .into(),
            );
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err("retryPeriod: must be above 0 and shorter than renewDeadline".into());
        }
        Ok(())
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// What a replica does with the Lease as it found it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// There is none yet.
    Create,
    /// It holds it.
    Renew,
    /// Nobody holds it, or the holder's record is older than the lease's duration.
    Take,
    /// Another replica holds it.
    Wait { holder: String },
}

/// The step for `lease` as found by `me`, whose record this replica has seen unchanged for
/// `seen_for`.
fn step(lease: Option<&Lease>, me: &str, seen_for: Duration, default_seconds: i32) -> Step {
    let Some(lease) = lease else {
        return Step::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder.is_empty() {
        return Step::Take;
    }
    if holder == me {
        return Step::Renew;
    }
    let seconds = spec
        .lease_duration_seconds
        .unwrap_or(default_seconds)
        .max(1);
    if seen_for >= Duration::from_secs(u64::try_from(seconds).unwrap_or(1)) {
        Step::Take
    } else {
        Step::Wait { holder }
    }
}

/// Why the leader stopped leading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    #[error("the Lease {lease} was not renewed within {deadline:?}")]
    Deadline { lease: String, deadline: Duration },
    #[error("the Lease {lease} is held by {holder} now")]
    Taken { lease: String, holder: String },
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    /// `namespace/name`, for messages.
    lease: String,
    name: String,
    identity: String,
    cfg: LeaderElectionConfig,
    /// The resourceVersion last seen and when this replica first saw it.
    seen: Option<(Option<String>, Instant)>,
    /// The Lease as this replica last wrote it (while it leads).
    held: Option<Lease>,
}

impl Elector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        identity: String,
        cfg: LeaderElectionConfig,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            lease: format!("{namespace}/{}", cfg.lease_name),
            name: cfg.lease_name.clone(),
            identity,
            cfg,
            seen: None,
            held: None,
        }
    }

    /// One try to take (or keep) the Lease: whether this replica holds it now.
    async fn try_once(&mut self) -> Result<bool, kube::Error> {
        let now = Instant::now();
        let found = self.api.get_opt(&self.name).await?;
        let seen_for = match &found {
            Some(lease) => {
                let version = lease.metadata.resource_version.clone();
                match &self.seen {
                    Some((seen, at)) if *seen == version => now.duration_since(*at),
                    _ => {
                        self.seen = Some((version, now));
                        Duration::ZERO
                    }
                }
            }
            None => Duration::ZERO,
        };
        let step = step(
            found.as_ref(),
            &self.identity,
            seen_for,
            self.cfg.lease_seconds(),
        );
        let written = match step {
            Step::Wait { holder } => {
                tracing::debug!(lease = %self.lease, %holder, "following");
                return Ok(false);
            }
            Step::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.taken(None)),
                };
                self.api.create(&post_params(), &lease).await
            }
            Step::Renew | Step::Take => {
                let mut lease = found.unwrap_or_default();
                let spec = lease.spec.take();
                lease.spec = Some(if step == Step::Renew {
                    self.renewed(spec.unwrap_or_default())
                } else {
                    self.taken(spec)
                });
                self.api.replace(&self.name, &post_params(), &lease).await
            }
        };
        match written {
            Ok(lease) => {
                self.held = Some(lease);
                Ok(true)
            }
            // Another replica wrote first (a conflict, or a create that lost the race).
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The spec of a Lease this replica takes from `previous` (`None`: a new Lease).
    fn taken(&self, previous: Option<LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(jiff::Timestamp::now());
        let transitions = previous
            .and_then(|p| p.lease_transitions)
            .map_or(0, |t| t.saturating_add(1));
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.cfg.lease_seconds()),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn renewed(&self, mut spec: LeaseSpec) -> LeaseSpec {
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        spec.lease_duration_seconds = Some(self.cfg.lease_seconds());
        spec
    }

    /// One renewal of the Lease this replica holds: `Ok(None)` when renewed, `Ok(Some(holder))`
    /// when another replica holds it now.
    async fn renew(&mut self) -> Result<Option<String>, kube::Error> {
        // A copy: this future may be dropped mid-request (a stop), and the Lease as last
        // written must stay known for giving it up.
        let lease = match &self.held {
            Some(lease) => {
                let mut lease = lease.clone();
                lease.spec = Some(self.renewed(lease.spec.unwrap_or_default()));
                lease
            }
            None => Lease::default(),
        };
        match self.api.replace(&self.name, &post_params(), &lease).await {
            Ok(lease) => {
                self.held = Some(lease);
                Ok(None)
            }
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {
                // Written by someone else since: still ours only if it still names us.
                let found = self.api.get_opt(&self.name).await?;
                let holder = found
                    .as_ref()
                    .and_then(|l| l.spec.as_ref())
                    .and_then(|s| s.holder_identity.clone())
                    .unwrap_or_default();
                if holder == self.identity {
                    self.held = found;
                    Err(kube::Error::Api(status))
                } else {
                    Ok(Some(if holder.is_empty() {
                        "nobody".into()
                    } else {
                        holder
                    }))
                }
            }
            Err(error) => Err(error),
        }
    }

    /// Renews every retry period until the Lease is lost; never returns otherwise.
    async fn keep(&mut self, mut last_ok: Instant) -> Lost {
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            let deadline = last_ok + self.cfg.renew_deadline;
            loop {
                let started = Instant::now();
                match tokio::time::timeout_at(deadline, self.renew()).await {
                    Ok(Ok(None)) => {
                        last_ok = started;
                        break;
                    }
                    Ok(Ok(Some(holder))) => {
                        return Lost::Taken {
                            lease: self.lease.clone(),
                            holder,
                        };
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(lease = %self.lease, %error, "renewing the lease failed; retrying");
                        let pause = (self.cfg.retry_period / 4).max(Duration::from_millis(100));
                        if Instant::now() + pause >= deadline {
                            tokio::time::sleep_until(deadline).await;
                        } else {
                            tokio::time::sleep(pause).await;
                        }
                    }
                    Err(_) => {
                        return Lost::Deadline {
                            lease: self.lease.clone(),
                            deadline: self.cfg.renew_deadline,
                        };
                    }
                }
                if Instant::now() >= deadline {
                    return Lost::Deadline {
                        lease: self.lease.clone(),
                        deadline: self.cfg.renew_deadline,
                    };
                }
            }
        }
    }

    /// Gives the Lease up (a stop): the next replica to try takes it at once. A renewal cut
    /// short by the stop may have landed after all: on a conflict the Lease is read again and
    /// given up if it still names this replica.
    async fn release(&mut self) {
        for _ in 0..2 {
            let Some(mut lease) = self.held.take() else {
                return;
            };
            lease.spec = Some(LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                renew_time: Some(MicroTime(jiff::Timestamp::now())),
                lease_transitions: lease.spec.and_then(|s| s.lease_transitions),
                ..LeaseSpec::default()
            });
            match self.api.replace(&self.name, &post_params(), &lease).await {
                Ok(_) => {
                    tracing::info!(lease = %self.lease, "gave the lease up");
                    return;
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    match self.api.get_opt(&self.name).await {
                        Ok(found) => {
                            self.held = found.filter(|l| {
                                l.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
                                    == Some(self.identity.as_str())
                            });
                        }
                        Err(error) => {
                            tracing::warn!(lease = %self.lease, %error, "giving the lease up failed; it expires by itself");
                            return;
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(lease = %self.lease, %error, "giving the lease up failed; it expires by itself");
                    return;
                }
            }
        }
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    }
}

/// This replica's name in the Lease: the pod's name (`POD_NAME`), else host name and process.
pub fn identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "operator".into());
    format!("{host}-{}", std::process::id())
}

/// Follows until this replica takes the Lease, then runs the parts `add_parts` adds (each
/// stopping within `grace` when a stop is asked) while it keeps the Lease. When the Lease is
/// lost the leading parts are aborted at once and the replica follows again, starting them
/// afresh when it leads next (after an API server outage longer than `renewDeadline`, say).
/// Ends `Ok` on a stop (giving the Lease up), an error when a leading part ended by itself.
pub async fn lead(
    mut elector: Elector,
    leader: prometheus::IntGauge,
    stop: Stop,
    grace: Duration,
    add_parts: impl Fn(&mut Supervisor),
) -> Result<(), String> {
    loop {
        leader.set(0);
        tracing::info!(lease = %elector.lease, identity = %elector.identity, "waiting to lead");
        let acquired = loop {
            let started = Instant::now();
            // Bounded: a server whose etcd is gone may hold a request for a minute.
            let deadline = elector.cfg.renew_deadline;
            let outcome = tokio::select! {
                _ = stop.requested() => return Ok(()),
                outcome = tokio::time::timeout(deadline, elector.try_once()) => outcome,
            };
            match outcome {
                Ok(Ok(true)) => break started,
                Ok(Ok(false)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(lease = %elector.lease, %error, "reading the lease failed")
                }
                Err(_) => {
                    tracing::warn!(lease = %elector.lease, ?deadline, "the API server did not answer about the lease")
                }
            }
            tokio::select! {
                _ = stop.requested() => return Ok(()),
                _ = tokio::time::sleep(elector.cfg.retry_period) => {}
            }
        };
        leader.set(1);
        tracing::info!(lease = %elector.lease, identity = %elector.identity, "leading");
        let mut parts = Supervisor::new(grace);
        add_parts(&mut parts);
        let running = parts.run(stop.requested());
        let lost = {
            let keep = elector.keep(acquired);
            tokio::select! {
                ended = running => {
                    leader.set(0);
                    elector.release().await;
                    return ended.map_err(|e| e.to_string());
                }
                // Dropping `running` aborts every leading part now (tokio's JoinSet).
                lost = keep => lost,
            }
        };
        elector.held = None;
        tracing::error!(%lost, "stopped leading: every leading part was stopped at once");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, seconds: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(seconds),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_replica_takes_a_lease_only_when_it_is_free_or_stale_by_its_own_clock() {
        let secs = Duration::from_secs;
        assert_eq!(step(None, "a", secs(0), 15), Step::Create);
        assert_eq!(
            step(Some(&lease(Some("a"), 15)), "a", secs(0), 15),
            Step::Renew
        );
        assert_eq!(step(Some(&lease(None, 15)), "b", secs(0), 15), Step::Take);
        assert_eq!(
            step(Some(&lease(Some(""), 15)), "b", secs(0), 15),
            Step::Take
        );
        assert_eq!(
            step(Some(&lease(Some("a"), 15)), "b", secs(14), 15),
            Step::Wait { holder: "a".into() }
        );
        assert_eq!(
            step(Some(&lease(Some("a"), 15)), "b", secs(15), 15),
            Step::Take
        );
        // A given-up lease (1 s) passes after one second unchanged.
        assert_eq!(
            step(Some(&lease(Some("a"), 1)), "b", secs(1), 15),
            Step::Take
        );
    }

    #[test]
    fn timings_that_let_two_leaders_overlap_are_refused_by_name() {
        let ok = LeaderElectionConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let late = LeaderElectionConfig {
            renew_deadline: Duration::from_secs(12),
            ..ok.clone()
        };
        assert!(
            late.validate()
                .is_err_and(|e| e.starts_with("renewDeadline"))
        );
        let fraction = LeaderElectionConfig {
            lease_duration: Duration::from_millis(12_500),
            ..ok.clone()
        };
        assert!(
            fraction
                .validate()
                .is_err_and(|e| e.starts_with("leaseDuration"))
        );
        let slow = LeaderElectionConfig {
            retry_period: Duration::from_secs(8),
            ..ok
        };
        assert!(slow.validate().is_err_and(|e| e.starts_with("retryPeriod")));
    }
}
