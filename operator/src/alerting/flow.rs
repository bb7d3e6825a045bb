//! The incident state machine (pure): from an incident's status and what is observed now, the
//! next status and the remediation to carry out. Everything it decides on is in the status
//! (timeline, notification records), so a restarted operator takes up where it stopped.
//!
//! Open on the first confirmed failure → level 1 restarts (at most `max_restarts`, backoff
//! doubling) and level 2 (recreate the pod when it is not Ready or the host is down; cordon a
//! NotReady node where allowed) → the outage notice once it has lasted `notify_after` from the
//! first failure → Resolved when the service answers → the report when a cause is recorded or
//! `report_lead_time` before the deadline (a recovery notice with the deadline first); a deferral is told as soon as it is recorded and the
//! report follows the cause. Mass mail: lock, tell, resolved when the reseller lifts the lock.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use oem_crds::conditions::{Condition, ConditionStatus, merge};
use oem_crds::incident::{
    Channel, DeliveryState, Incident, IncidentKind, IncidentPhase, IncidentStatus,
    NotificationEvent, NotificationRecord, TimelineEntry, event,
};

/// The schema's limits.
const MAX_TIMELINE: usize = 256;
const MAX_NOTIFICATIONS: usize = 128;
const MAX_MESSAGE: usize = 1024;

/// The durations the flow decides by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowConfig {
    pub notify_after: SignedDuration,
    pub max_restarts: u32,
    pub restart_backoff: SignedDuration,
    pub report_lead_time: SignedDuration,
    pub allow_node_cordon: bool,
}

/// One channel of one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub channel: Channel,
    /// The e-mail address, fax gateway address or webhook URL.
    pub target: String,
}

/// What is observed of the outage now.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub now: Timestamp,
    /// The source still reports the failure.
    pub failing: bool,
    /// When the service answered again, when the source knows (else `now`).
    pub recovered_at: Option<Timestamp>,
    /// The failing workload's pod exists and is not Ready.
    pub pod_not_ready: bool,
    /// A NotReady node the end user's pods run on.
    pub node_not_ready: Option<String>,
    /// Mass mail: the reseller asked to lift the lock.
    pub unlock_requested: bool,
    /// The reseller's contacts, each channel.
    pub recipients: Vec<Recipient>,
    /// Another incident of the end user's outage reached the notice threshold: this one's
    /// outage notice goes with it (`outage.rs`).
    pub joins_outage: bool,
    /// Another incident of the end user's outage, one that was told, still fails: this one's
    /// recovery notice and report wait for it (`outage.rs`).
    pub outage_continues: bool,
}

/// Remediation the flow asks for; each done is recorded on the timeline by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// Level 1: rollout-restart the failing service's workload.
    Restart,
    /// Level 2: force-delete the pod(s) so they are recreated.
    Recreate,
    /// Level 2: cordon the NotReady node and move the tenant pods.
    Cordon(String),
    /// Close the account's SMTP egress (`status.mailLocked`).
    LockMail,
    /// Open it again: the reseller lifted the lock.
    UnlockMail,
}

impl Remedy {
    /// The timeline event recording it.
    pub fn event(&self) -> &'static str {
        match self {
            Remedy::Restart => event::RESTARTED,
            Remedy::Recreate => event::RECREATED,
            Remedy::Cordon(_) => event::CORDONED,
            Remedy::LockMail => event::MAIL_LOCKED,
            Remedy::UnlockMail => MAIL_UNLOCKED,
        }
    }

    /// `level` and `action` labels of `oem_remediations_total`.
    pub fn labels(&self) -> (&'static str, &'static str) {
        match self {
            Remedy::Restart => ("1", "restart"),
            Remedy::Recreate => ("2", "recreate"),
            Remedy::Cordon(_) => ("2", "cordon"),
            Remedy::LockMail => ("1", "lock-mail"),
            Remedy::UnlockMail => ("1", "unlock-mail"),
        }
    }
}

/// Timeline event of a lifted mail lock (not among the CRD's well-known ones).
pub const MAIL_UNLOCKED: &str = "MailUnlocked";

/// The status a new incident starts with.
pub fn opened(started_at: Timestamp, now: Timestamp, detail: &str) -> IncidentStatus {
    let mut status = IncidentStatus {
        phase: Some(IncidentPhase::Open),
        started_at: Some(Time(started_at)),
        detected_at: Some(Time(now)),
        ..IncidentStatus::default()
    };
    record(
        &mut status,
        started_at,
        event::DOWN,
        Some(detail.to_owned()),
    );
    record(&mut status, now, event::DETECTED, None);
    status
}

/// Appends a timeline entry, keeping the first and the latest within the schema's limit.
pub fn record(status: &mut IncidentStatus, at: Timestamp, what: &str, message: Option<String>) {
    status.timeline.push(TimelineEntry {
        time: Time(at),
        event: what.to_owned(),
        message: message.map(|m| truncate(&m)),
    });
    while status.timeline.len() > MAX_TIMELINE {
        status.timeline.remove(1);
    }
}

pub fn truncate(text: &str) -> String {
    if text.len() <= MAX_MESSAGE {
        return text.to_owned();
    }
    let mut end = MAX_MESSAGE - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

fn entries<'a>(
    status: &'a IncidentStatus,
    what: &'a str,
) -> impl Iterator<Item = &'a TimelineEntry> {
    status.timeline.iter().filter(move |e| e.event == what)
}

fn has_event(status: &IncidentStatus, what: NotificationEvent) -> bool {
    status.notifications.iter().any(|n| n.event == what)
}

fn sent(status: &IncidentStatus, what: NotificationEvent) -> bool {
    status
        .notifications
        .iter()
        .any(|n| n.event == what && n.state == DeliveryState::Sent)
}

/// Whether the outage reached the notification threshold: it is reported on.
pub fn reportable(incident: &Incident) -> bool {
    incident.spec.kind != IncidentKind::MassMail
        && incident
            .status
            .as_ref()
            .is_some_and(|s| has_event(s, NotificationEvent::Outage))
}

/// A resolved, reportable incident whose report is neither sent nor deferred at its deadline.
pub fn overdue(incident: &Incident, now: Timestamp) -> bool {
    let Some(status) = &incident.status else {
        return false;
    };
    reportable(incident)
        && status.report_sent_at.is_none()
        && !sent(status, NotificationEvent::Deferral)
        && status.report_due_by.as_ref().is_some_and(|due| now > due.0)
}

/// Whether nothing is left to do for the incident: no notice pending, and reported (or
/// resolved with nothing to report).
pub fn finished(incident: &Incident) -> bool {
    let Some(status) = &incident.status else {
        return false;
    };
    if status
        .notifications
        .iter()
        .any(|n| n.state == DeliveryState::Pending)
    {
        return false;
    }
    match status.phase {
        Some(IncidentPhase::Reported) => true,
        Some(IncidentPhase::Resolved) => !reportable(incident),
        _ => false,
    }
}

fn queue(
    status: &mut IncidentStatus,
    uid: &str,
    what: NotificationEvent,
    recipients: &[Recipient],
) {
    for r in recipients {
        if status.notifications.len() >= MAX_NOTIFICATIONS {
            return;
        }
        let key = super::notify::idempotency_key(uid, what, r.channel, &r.target);
        if status
            .notifications
            .iter()
            .any(|n| n.idempotency_key == key)
        {
            continue;
        }
        status.notifications.push(NotificationRecord {
            channel: r.channel,
            target: r.target.clone(),
            event: what,
            state: DeliveryState::Pending,
            attempts: 0,
            last_attempt_at: None,
            idempotency_key: key,
            message: None,
        });
    }
}

/// One step: the next status (recovery, notices queued as Pending records, report deadline,
/// phase, Ready) and the remediation to carry out now. `report_due` is the reseller's
/// calendar: the end of the next business day after a recovery time.
pub fn step(
    incident: &Incident,
    facts: &Facts,
    cfg: &FlowConfig,
    report_due: impl Fn(Timestamp) -> Timestamp,
) -> (IncidentStatus, Vec<Remedy>) {
    let mut status = incident.status.clone().unwrap_or_default();
    let uid = incident.metadata.uid.clone().unwrap_or_default();
    let now = facts.now;
    // A reopened incident (a flap) counts its threshold and recovery from its latest fall.
    let started = phase_start(&status).unwrap_or(now);
    let kind = incident.spec.kind;
    let mut remedies = Vec::new();

    if status.resolved_at.is_none() {
        if kind == IncidentKind::MassMail {
            let locked = entries(&status, event::MAIL_LOCKED).next().is_some();
            if !locked {
                remedies.push(Remedy::LockMail);
            } else if facts.unlock_requested {
                remedies.push(Remedy::UnlockMail);
            }
        } else if facts.failing {
            remedies.extend(remediation(&status, facts, cfg, kind));
        } else {
            let at = facts.recovered_at.unwrap_or(now).clamp(started, now);
            status.resolved_at = Some(Time(at));
            record(&mut status, at, event::RECOVERED, None);
        }
    }

    // The outage notice, once, when the outage (to now, or to its recovery) reached the
    // threshold measured from the first failure (of this fall, when the incident reopened).
    let until = status.resolved_at.as_ref().map(|t| t.0).unwrap_or(now);
    if kind != IncidentKind::MassMail
        && !has_event(&status, NotificationEvent::Outage)
        && (until.duration_since(started) >= cfg.notify_after
            || (facts.joins_outage && status.resolved_at.is_none()))
    {
        queue(
            &mut status,
            &uid,
            NotificationEvent::Outage,
            &facts.recipients,
        );
    }
    if kind == IncidentKind::MassMail
        && entries(&status, event::MAIL_LOCKED).next().is_some()
        && !has_event(&status, NotificationEvent::MailLock)
    {
        queue(
            &mut status,
            &uid,
            NotificationEvent::MailLock,
            &facts.recipients,
        );
    }

    // The report, once resolved.
    let reportable =
        kind != IncidentKind::MassMail && has_event(&status, NotificationEvent::Outage);
    if reportable && status.resolved_at.is_some() && status.report_due_by.is_none() {
        status.report_due_by = status.resolved_at.as_ref().map(|t| Time(report_due(t.0)));
    }
    // The rest waits for the whole outage to be over: one recovery notice, one report.
    if reportable && status.resolved_at.is_some() && !facts.outage_continues {
        // Those told of the outage are told it is over, and when the report is due.
        if !has_event(&status, NotificationEvent::Recovered) {
            queue(
                &mut status,
                &uid,
                NotificationEvent::Recovered,
                &facts.recipients,
            );
        }
        let cause = incident.spec.cause.is_some();
        let deferred = incident.spec.report_deferral.is_some();
        let due = status.report_due_by.as_ref().map(|t| t.0);
        let lead_reached = due.is_some_and(|d| now >= d - cfg.report_lead_time);
        if deferred && !cause && !has_event(&status, NotificationEvent::Deferral) {
            queue(
                &mut status,
                &uid,
                NotificationEvent::Deferral,
                &facts.recipients,
            );
        }
        if !has_event(&status, NotificationEvent::Report) && (cause || (lead_reached && !deferred))
        {
            queue(
                &mut status,
                &uid,
                NotificationEvent::Report,
                &facts.recipients,
            );
        }
    }
    settle(&mut status, incident, now);
    (status, remedies)
}

/// Level 1 and level 2 while the service fails.
fn remediation(
    status: &IncidentStatus,
    facts: &Facts,
    cfg: &FlowConfig,
    kind: IncidentKind,
) -> Vec<Remedy> {
    let now = facts.now;
    let due_again = |what: &str| {
        let done: Vec<&TimelineEntry> = entries(status, what).collect();
        match done.last() {
            None => true,
            Some(_) if done.len() as u32 >= cfg.max_restarts => false,
            Some(last) => {
                let exponent = (done.len() as u32 - 1).min(16);
                let wait = cfg.restart_backoff * (1i32 << exponent);
                now >= last.time.0 + wait
            }
        }
    };
    let mut out = Vec::new();
    if let Some(node) = &facts.node_not_ready
        && cfg.allow_node_cordon
        && entries(status, event::CORDONED).next().is_none()
    {
        out.push(Remedy::Cordon(node.clone()));
        return out;
    }
    let base_unreachable = kind == IncidentKind::HostDown || facts.pod_not_ready;
    // A pod that level 1 restarted (or level 2 recreated) is not Ready, or not answering yet,
    // while it stops and starts again: it gets the backoff to come back before the other level
    // acts on it.
    let within_backoff = |what: &str| {
        entries(status, what)
            .last()
            .is_some_and(|last| now < last.time.0 + cfg.restart_backoff)
    };
    if base_unreachable {
        if !within_backoff(event::RESTARTED) && due_again(event::RECREATED) {
            out.push(Remedy::Recreate);
        }
    } else if !within_backoff(event::RECREATED) && due_again(event::RESTARTED) {
        out.push(Remedy::Restart);
    }
    out
}

/// When the current fall of the outage began: the first failure, or the latest one a flap
/// reopened the incident at.
pub fn phase_start(status: &IncidentStatus) -> Option<Timestamp> {
    let started = status.started_at.as_ref().map(|t| t.0)?;
    let latest = entries(status, event::DOWN).last().map(|e| e.time.0);
    Some(latest.map_or(started, |at| at.max(started)))
}

/// Whether a resolved incident of the same key takes a new fall of the service that began at
/// `since`, instead of a new Incident (flap damping): it is of a service or host outage, it
/// resolved within `window` before `since`, nobody was told of it (no outage notice queued,
/// so no report follows) and this fall is not on it yet.
pub fn takes_flap(incident: &Incident, since: Timestamp, window: SignedDuration) -> bool {
    let Some(status) = &incident.status else {
        return false;
    };
    let Some(resolved) = status.resolved_at.as_ref().map(|t| t.0) else {
        return false;
    };
    incident.spec.kind != IncidentKind::MassMail
        && !window.is_zero()
        && resolved <= since
        && since.duration_since(resolved) < window
        && !has_event(status, NotificationEvent::Outage)
        && !entries(status, event::DOWN).any(|e| e.time.0 >= since)
}

/// A flap: the resolved incident is open again from `since`, its timeline says so, and the
/// flow counts the notice threshold from this fall.
pub fn reopen(status: &mut IncidentStatus, since: Timestamp, now: Timestamp) {
    status.resolved_at = None;
    status.report_due_by = None;
    record(
        status,
        since,
        event::DOWN,
        Some("down again within the flap window".to_owned()),
    );
    record(status, now, event::DETECTED, None);
}

/// The mass-mail incident once its lock is lifted: resolved, nothing to report.
pub fn resolve_mail_lock(status: &mut IncidentStatus, now: Timestamp) {
    if status.resolved_at.is_none() {
        status.resolved_at = Some(Time(now));
        record(
            status,
            now,
            event::RECOVERED,
            Some("the reseller lifted the mail lock".into()),
        );
    }
}

/// Records a delivered notice's consequences: `notifiedAt`, `reportSentAt`, timeline.
pub fn delivered(
    status: &mut IncidentStatus,
    what: NotificationEvent,
    target: &str,
    now: Timestamp,
) {
    let first = !sent(status, what);
    match what {
        NotificationEvent::Outage | NotificationEvent::MailLock if first => {
            status.notified_at.get_or_insert(Time(now));
            record(
                status,
                now,
                event::NOTIFIED,
                Some(format!(
                    "{} notice to {target}",
                    super::notify::event_name(what)
                )),
            );
        }
        NotificationEvent::Report if first => {
            status.report_sent_at = Some(Time(now));
            record(
                status,
                now,
                event::REPORTED,
                Some(format!("report to {target}")),
            );
        }
        NotificationEvent::Deferral if first => {
            record(
                status,
                now,
                event::REPORT_DEFERRED,
                Some(format!("deferral told to {target}")),
            );
        }
        _ => {}
    }
}

/// Phase and Ready from what the status records.
pub fn settle(status: &mut IncidentStatus, incident: &Incident, now: Timestamp) {
    let remediated = [
        event::RESTARTED,
        event::RECREATED,
        event::CORDONED,
        event::MAIL_LOCKED,
    ]
    .iter()
    .any(|e| entries(status, e).next().is_some());
    let phase = if status.report_sent_at.is_some() {
        IncidentPhase::Reported
    } else if status.resolved_at.is_some() {
        IncidentPhase::Resolved
    } else if status.notified_at.is_some() {
        IncidentPhase::Notified
    } else if remediated {
        IncidentPhase::Remediating
    } else {
        IncidentPhase::Open
    };
    status.phase = Some(phase);
    let reportable = incident.spec.kind != IncidentKind::MassMail
        && has_event(status, NotificationEvent::Outage);
    let (ready, reason, message) = match phase {
        IncidentPhase::Reported => (true, "Reported", "resolved and reported".to_owned()),
        IncidentPhase::Resolved if !reportable => (
            true,
            "Resolved",
            "resolved; shorter than the notification threshold, or a lifted mail lock: no report"
                .to_owned(),
        ),
        IncidentPhase::Resolved => (
            false,
            "ReportPending",
            "resolved; the report is due".to_owned(),
        ),
        other => (false, "Outage", format!("{other:?}")),
    };
    let condition = Condition::new(
        "Ready",
        if ready {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        reason,
        &message,
        incident.metadata.generation,
        now,
    );
    status.conditions = merge(&status.conditions, condition);
    status.observed_generation = incident.metadata.generation;
}

/// The condition an open incident carries while the alert source cannot be read.
pub const SOURCE_CONDITION: &str = "AlertSourceReadable";

/// An open outage while the alert source cannot be read: nothing is known of it, so it is
/// frozen as it was (no remediation, no new notice, no recovery) and says so in the
/// `AlertSourceReadable` condition. Blindness never counts as "still failing": an outage would
/// otherwise reach its notice or its next restart on no evidence.
pub fn freeze(incident: &Incident, mode: &str, now: Timestamp) -> IncidentStatus {
    let mut status = incident.status.clone().unwrap_or_default();
    let condition = Condition::new(
        SOURCE_CONDITION,
        ConditionStatus::False,
        "AlertSourceUnreadable",
        format!(
            "the alert source ({mode}) cannot be read: remediation and notices wait until it answers"
        ),
        incident.metadata.generation,
        now,
    );
    status.conditions = merge(&status.conditions, condition);
    status
}

/// After a step with the alert source readable: a frozen incident's condition turns True (an
/// incident never frozen gets no such condition).
pub fn thaw(status: &mut IncidentStatus, generation: Option<i64>, now: Timestamp) {
    if status
        .conditions
        .iter()
        .any(|c| c.type_ == SOURCE_CONDITION && c.status != ConditionStatus::True)
    {
        let condition = Condition::new(
            SOURCE_CONDITION,
            ConditionStatus::True,
            "AlertSourceReadable",
            "the alert source answers",
            generation,
            now,
        );
        status.conditions = merge(&status.conditions, condition);
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;
