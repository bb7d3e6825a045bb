//! Maintenance windows (pure): whether an open window covers a target at an instant, each
//! window's phase, the status the operator writes for it, and whether a failing target may open
//! an incident — and with which outage start. A window is `[start, end)`: open from its start
//! instant, ended at its planned end instant (or earlier once its targets recovered, when it
//! says `endWhenRecovered`). Only outages are held: a mass-mail lock is not planned work.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use oem_crds::conditions::{Condition, ConditionStatus, merge};
use oem_crds::enduser::ServiceName;
use oem_crds::incident::IncidentKind;
use oem_crds::maintenance::{
    ClusterMaintenance, Maintenance, MaintenanceEndReason, MaintenancePhase, MaintenanceStatus,
};

use super::source::AlertKey;

/// What a window covers, with the services (empty: every service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cover {
    /// One end user of the window's namespace (a reseller's window).
    EndUser {
        namespace: String,
        end_user: String,
        services: Vec<ServiceName>,
    },
    /// Every end user with a pod on the node (the provider's window).
    Node {
        node: String,
        services: Vec<ServiceName>,
    },
    /// Every end user of every reseller (the provider's window).
    AllEndUsers { services: Vec<ServiceName> },
}

/// One window as the decisions see it: its spec and what its status recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// `namespace/name` for a reseller's window, `name` for the provider's.
    pub name: String,
    pub covers: Vec<Cover>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub end_when_recovered: bool,
    /// A target was seen down while open (status `firstDownAt`).
    pub first_down_at: Option<Timestamp>,
    /// It ended before its planned end because its targets recovered (status), and when.
    pub recovered_at: Option<Timestamp>,
}

/// A window's phase at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Scheduled,
    Open,
    Ended(MaintenanceEndReason),
}

/// One outage's target: an end user's service, and the nodes its pods run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    pub namespace: &'a str,
    pub end_user: &'a str,
    pub service: ServiceName,
    pub nodes: &'a [String],
}

impl<'a> Target<'a> {
    /// The target of an alert key, with the nodes its end user's pods run on.
    pub fn of(key: &'a AlertKey, nodes: &'a [String]) -> Self {
        Self {
            namespace: &key.namespace,
            end_user: &key.enduser,
            service: key.service,
            nodes,
        }
    }
}

/// May a failing target open an incident now, and from when does its outage count?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// An open window covers it: no incident, no remediation, no notice.
    Held { window: String },
    /// Open an incident whose outage starts at `since`: the first failure, or the end of the
    /// window it was down through.
    Open { since: Timestamp },
}

fn status_time(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

fn recovered_at(status: Option<&MaintenanceStatus>) -> Option<Timestamp> {
    status
        .filter(|s| s.end_reason == Some(MaintenanceEndReason::Recovered))
        .and_then(|s| status_time(&s.ended_at))
}

impl Window {
    pub fn of_maintenance(window: &Maintenance) -> Self {
        let namespace = window.namespace().unwrap_or_default();
        let status = window.status.as_ref();
        Self {
            name: format!("{namespace}/{}", window.name_any()),
            covers: window
                .spec
                .targets
                .iter()
                .map(|t| Cover::EndUser {
                    namespace: namespace.clone(),
                    end_user: t.end_user.clone(),
                    services: t.services.clone(),
                })
                .collect(),
            start: window.spec.start.0,
            end: window.spec.end.0,
            end_when_recovered: window.spec.end_when_recovered,
            first_down_at: status.and_then(|s| status_time(&s.first_down_at)),
            recovered_at: recovered_at(status),
        }
    }

    pub fn of_cluster_maintenance(window: &ClusterMaintenance) -> Self {
        let status = window.status.as_ref();
        Self {
            name: window.name_any(),
            covers: window
                .spec
                .targets
                .iter()
                .map(|t| match &t.node {
                    Some(node) => Cover::Node {
                        node: node.clone(),
                        services: t.services.clone(),
                    },
                    None => Cover::AllEndUsers {
                        services: t.services.clone(),
                    },
                })
                .collect(),
            start: window.spec.start.0,
            end: window.spec.end.0,
            end_when_recovered: window.spec.end_when_recovered,
            first_down_at: status.and_then(|s| status_time(&s.first_down_at)),
            recovered_at: recovered_at(status),
        }
    }

    /// The phase at `now`: Scheduled before the start, Open from the start instant, Ended at the
    /// planned end instant or once recorded recovered.
    pub fn phase(&self, now: Timestamp) -> Phase {
        if now < self.start {
            Phase::Scheduled
        } else if self.recovered_at.is_some_and(|t| t <= now && t < self.end) {
            Phase::Ended(MaintenanceEndReason::Recovered)
        } else if now >= self.end {
            Phase::Ended(MaintenanceEndReason::PlannedEnd)
        } else {
            Phase::Open
        }
    }

    /// When it ended (or will end as planned): the recorded recovery, else the planned end.
    pub fn ended_at(&self) -> Timestamp {
        match self.recovered_at {
            Some(t) if t < self.end => t,
            _ => self.end,
        }
    }

    /// Whether its targets include this one, whatever the time.
    pub fn names(&self, target: &Target) -> bool {
        let service_in =
            |services: &[ServiceName]| services.is_empty() || services.contains(&target.service);
        self.covers.iter().any(|cover| match cover {
            Cover::EndUser {
                namespace,
                end_user,
                services,
            } => {
                namespace == target.namespace && end_user == target.end_user && service_in(services)
            }
            Cover::Node { node, services } => target.nodes.contains(node) && service_in(services),
            Cover::AllEndUsers { services } => service_in(services),
        })
    }

    /// Whether it is open at `now` and names the target.
    pub fn covers(&self, target: &Target, now: Timestamp) -> bool {
        self.phase(now) == Phase::Open && self.names(target)
    }
}

/// The open window covering the target at `now`, if any.
pub fn covering<'w>(windows: &'w [Window], target: &Target, now: Timestamp) -> Option<&'w Window> {
    windows.iter().find(|w| w.covers(target, now))
}

/// The outage start of a target still down when a window that covered it ended: the window's
/// end, unless the target went down only afterwards.
pub fn outage_start(window_end: Timestamp, first_failure: Timestamp) -> Timestamp {
    window_end.max(first_failure)
}

/// Whether a failing outage (kind, target, first failure) may open an incident at `now`.
pub fn admission(
    windows: &[Window],
    kind: IncidentKind,
    target: &Target,
    first_failure: Timestamp,
    now: Timestamp,
) -> Admission {
    if kind == IncidentKind::MassMail {
        return Admission::Open {
            since: first_failure,
        };
    }
    if let Some(window) = covering(windows, target, now) {
        return Admission::Held {
            window: window.name.clone(),
        };
    }
    // Down through a window that has ended: the outage counts from its end.
    let since = windows
        .iter()
        .filter(|w| matches!(w.phase(now), Phase::Ended(_)) && w.names(target))
        .map(Window::ended_at)
        .filter(|end| first_failure < *end)
        .fold(first_failure, outage_start);
    Admission::Open { since }
}

/// The window's status at `now`, from the stored one and whether a target it names is down
/// now. Ready is True with the phase (or the end reason) as its reason.
pub fn next_status(
    window: &Window,
    stored: Option<&MaintenanceStatus>,
    generation: Option<i64>,
    any_target_down: bool,
    now: Timestamp,
) -> MaintenanceStatus {
    let mut window = window.clone();
    if window.phase(now) == Phase::Open {
        if any_target_down && window.first_down_at.is_none() {
            window.first_down_at = Some(now);
        }
        if window.end_when_recovered && window.first_down_at.is_some() && !any_target_down {
            window.recovered_at = Some(now);
        }
    }
    let phase = window.phase(now);
    let (phase_out, end_reason, ended_at) = match phase {
        Phase::Scheduled => (MaintenancePhase::Scheduled, None, None),
        Phase::Open => (MaintenancePhase::Open, None, None),
        Phase::Ended(reason) => (
            MaintenancePhase::Ended,
            Some(reason),
            Some(window.ended_at()),
        ),
    };
    let reason = match phase {
        Phase::Scheduled => "Scheduled",
        Phase::Open => "Open",
        Phase::Ended(MaintenanceEndReason::PlannedEnd) => "PlannedEnd",
        Phase::Ended(MaintenanceEndReason::Recovered) => "Recovered",
    };
    let message = match phase {
        Phase::Scheduled => "the window has not started",
        Phase::Open => "the window is open: its targets open no incident",
        Phase::Ended(MaintenanceEndReason::PlannedEnd) => "the window reached its planned end",
        Phase::Ended(MaintenanceEndReason::Recovered) => {
            "the window ended early: every target's probes pass again"
        }
    };
    let previous = stored.map(|s| s.conditions.as_slice()).unwrap_or_default();
    MaintenanceStatus {
        phase: Some(phase_out),
        end_reason,
        first_down_at: window.first_down_at.map(Time),
        ended_at: ended_at.map(Time),
        conditions: merge(
            previous,
            Condition::ready(ConditionStatus::True, reason, message, generation, now),
        ),
        observed_generation: generation,
        // The announcer's fields (its own field manager), carried so a comparison with the
        // stored status sees only what changed here.
        announced_at: stored.and_then(|s| s.announced_at.clone()),
        announcements: stored.map(|s| s.announcements.clone()).unwrap_or_default(),
        announced_times: stored.and_then(|s| s.announced_times.clone()),
        rescheduled_from: stored.and_then(|s| s.rescheduled_from.clone()),
    }
}

#[cfg(test)]
#[path = "maintenance_tests.rs"]
mod tests;
