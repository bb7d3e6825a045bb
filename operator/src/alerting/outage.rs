//! One outage, one notice. Incidents stay per service (the record, remediation, availability),
//! but a reseller reads outages: when several services of one end user go down together — its
//! web pod down takes http, https, ftp and ftps with it — or every end user of the reseller on
//! one node goes down with the node, each contact gets one outage notice that lists them, one
//! recovery notice once all of them answer again, and one report.
//!
//! The rules (pure; the controller applies them):
//! - An outage is the unresolved service incidents of one subject ([`subject`]): the end user,
//!   or the down node the incident recorded as it opened (`spec.node`). Mass mail is its own
//!   notice.
//! - When one of them reaches the notice threshold, the others join it: their outage notice is
//!   queued at the same moment instead of at their own threshold ([`joins_outage`]).
//! - A resolved incident's recovery notice and report wait while another incident of the same
//!   outage that was told still fails ([`outage_continues`]), so the last recovery releases all.
//! - Notices queued for one subject, event and contact at the same look go out as one
//!   ([`group_key`], [`merge`]): the first incident by name sends it, with its record's
//!   idempotency key, and every member records the attempt and its outcome.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use oem_crds::incident::{Channel, Incident, IncidentKind, NotificationEvent};

use super::flow;
use super::notify::{Affected, Notice};
use super::source::{AlertKey, Observation};

/// Whom an incident's outage befell, within its reseller: every end user on the down node it
/// recorded, else its end user; a mass-mail incident stands alone.
pub fn subject(incident: &Incident) -> String {
    match (&incident.spec.kind, &incident.spec.node) {
        (IncidentKind::MassMail, _) => format!("incident/{}", incident.name_any()),
        (_, Some(node)) => format!("node/{node}"),
        _ => format!("enduser/{}", incident.spec.end_user),
    }
}

/// Two incidents belong to one outage: other incidents of one reseller and one subject.
fn same_outage(a: &Incident, b: &Incident) -> bool {
    a.namespace() == b.namespace() && a.name_any() != b.name_any() && subject(a) == subject(b)
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

/// What one notice goes to: the outage's subject, the event and the contact's channel and
/// target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    pub namespace: String,
    /// [`subject`].
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
        subject: subject(incident),
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
    let mut affected: BTreeMap<String, Affected> = BTreeMap::new();
    for one in notices.iter().flat_map(|n| &n.affected) {
        let entry = affected
            .entry(one.end_user.clone())
            .or_insert_with(|| Affected {
                services: Vec::new(),
                ..one.clone()
            });
        entry.services.extend(one.services.iter().cloned());
    }
    merged.affected = affected
        .into_values()
        .map(|mut one| {
            one.services.sort();
            one.services.dedup();
            one
        })
        .collect();
    let several = merged.affected.len() > 1;
    // What a timeline line or an action is about: the service, and the end user too when the
    // notice names several.
    let about = |n: &Notice| {
        n.affected
            .iter()
            .map(|a| {
                if several {
                    format!("{} {}", a.end_user, a.services_text())
                } else {
                    a.services_text()
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
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
                        Some(m) => format!("{}: {m}", about(n)),
                        None => about(n),
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
