//! One outage, one notice. Incidents stay per service (the record, remediation, availability),
//! but a reseller reads outages: when several services of one end user go down together — its
//! web pod down takes http, https, ftp and ftps with it — each contact gets one outage notice
//! that lists them, one recovery notice once all of them answer again, and one report.
//!
//! The rules (pure; the controller applies them):
//! - An outage is the end user's unresolved service incidents (mass mail is its own notice).
//! - When one of them reaches the notice threshold, the others join it: their outage notice is
//!   queued at the same moment instead of at their own threshold ([`joins_outage`]).
//! - A resolved incident's recovery notice and report wait while another incident of the same
//!   outage that was told still fails ([`outage_continues`]), so the last recovery releases all.
//! - Notices queued for one end user, event and contact at the same look go out as one
//!   ([`group_key`], [`merge`]): the first incident by name sends it, with its record's
//!   idempotency key, and every member records the attempt and its outcome.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use oem_crds::incident::{Channel, Incident, IncidentKind, NotificationEvent};

use super::flow;
use super::notify::Notice;
use super::source::{AlertKey, Observation};

/// Two incidents belong to one outage: the same end user's service incidents.
fn same_outage(a: &Incident, b: &Incident) -> bool {
    a.spec.kind != IncidentKind::MassMail
        && b.spec.kind != IncidentKind::MassMail
        && a.spec.end_user == b.spec.end_user
        && a.namespace() == b.namespace()
        && a.name_any() != b.name_any()
}

fn unresolved(incident: &Incident) -> bool {
    incident
        .status
        .as_ref()
        .is_none_or(|s| s.resolved_at.is_none())
}

fn told(incident: &Incident) -> bool {
    incident.status.as_ref().is_some_and(|s| {
        s.notifications
            .iter()
            .any(|n| n.event == NotificationEvent::Outage)
    })
}

/// Whether `incident` (unresolved) joins an outage of its end user that reached the notice
/// threshold: another unresolved incident of it was told, or has failed for `notify_after`.
pub fn joins_outage(
    incident: &Incident,
    all: &[Incident],
    now: Timestamp,
    notify_after: SignedDuration,
) -> bool {
    unresolved(incident)
        && all
            .iter()
            .filter(|other| same_outage(incident, other) && unresolved(other))
            .any(|other| {
                told(other)
                    || other
                        .status
                        .as_ref()
                        .and_then(flow::phase_start)
                        .is_some_and(|start| now.duration_since(start) >= notify_after)
            })
}

/// Whether another incident of `incident`'s outage, one that was told, still fails by what
/// the source sees: `incident`'s recovery notice and report wait for it.
pub fn outage_continues(
    incident: &Incident,
    all: &[Incident],
    seen: Option<&Observation>,
    key_of: impl Fn(&Incident) -> AlertKey,
) -> bool {
    let Some(seen) = seen else {
        return false;
    };
    all.iter()
        .filter(|other| same_outage(incident, other) && told(other))
        .any(|other| seen.active.contains_key(&key_of(other)))
}

/// What one notice goes to: the end user (or, for mass mail, the incident itself), the event
/// and the contact's channel and target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    pub namespace: String,
    /// The end user; a mass-mail incident's own name (never grouped).
    pub subject: String,
    pub event: NotificationEvent,
    pub channel: Channel,
    pub target: String,
}

/// The group of `incident`'s notification record.
pub fn group_key(
    incident: &Incident,
    event: NotificationEvent,
    channel: Channel,
    target: &str,
) -> GroupKey {
    GroupKey {
        namespace: incident.namespace().unwrap_or_default(),
        subject: if incident.spec.kind == IncidentKind::MassMail {
            format!("incident/{}", incident.name_any())
        } else {
            incident.spec.end_user.clone()
        },
        event,
        channel,
        target: target.to_owned(),
    }
}

/// One notice for several incidents' notices of one event: the first one's, listing every
/// service and incident, from the earliest start to the latest recovery, with every action.
pub fn merge(mut notices: Vec<Notice>) -> Option<Notice> {
    notices.sort_by(|a, b| a.incident.cmp(&b.incident));
    let mut merged = notices.first()?.clone();
    if notices.len() == 1 {
        return Some(merged);
    }
    let services: BTreeSet<&str> = notices.iter().map(|n| n.service.as_str()).collect();
    merged.service = services.into_iter().collect::<Vec<_>>().join(", ");
    merged.incident = notices
        .iter()
        .map(|n| n.incident.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    merged.started_at = notices.iter().map(|n| n.started_at).min()?;
    merged.notified_at = notices.iter().filter_map(|n| n.notified_at).min();
    merged.resolved_at = if notices.iter().all(|n| n.resolved_at.is_some()) {
        notices.iter().filter_map(|n| n.resolved_at).max()
    } else {
        None
    };
    merged.report_due_by = notices.iter().filter_map(|n| n.report_due_by).max();
    merged.timeline = notices
        .iter()
        .flat_map(|n| {
            n.timeline.iter().map(|(at, what, message)| {
                (
                    *at,
                    what.clone(),
                    Some(match message {
                        Some(m) => format!("{}: {m}", n.service),
                        None => n.service.clone(),
                    }),
                )
            })
        })
        .collect();
    merged.timeline.sort_by_key(|(at, _, _)| *at);
    merged.actions = notices.iter().flat_map(|n| n.actions.clone()).collect();
    let causes: BTreeSet<&str> = notices.iter().filter_map(|n| n.cause.as_deref()).collect();
    merged.cause = (!causes.is_empty()).then(|| causes.into_iter().collect::<Vec<_>>().join("\n"));
    Some(merged)
}

#[cfg(test)]
#[path = "outage_tests.rs"]
mod tests;
