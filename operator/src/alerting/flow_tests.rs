//! The incident flow at the real scale (600 s to the notice), under a paused tokio clock: each
//! second the flow steps, what it asks is done and what it queues is delivered at once.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use oem_crds::enduser::ServiceName;
use oem_crds::incident::{
    Channel, DeliveryState, Incident, IncidentKind, IncidentPhase, IncidentSpec, NotificationEvent,
    ReportDeferral, event,
};

use super::*;

fn cfg() -> FlowConfig {
    FlowConfig {
        notify_after: SignedDuration::from_secs(600),
        max_restarts: 3,
        restart_backoff: SignedDuration::from_secs(60),
        report_lead_time: SignedDuration::from_secs(2 * 3600),
        allow_node_cordon: false,
    }
}

fn t0() -> Timestamp {
    // A Monday, 10:00 in Tokyo.
    "2026-03-02T01:00:00Z".parse().unwrap()
}

fn incident(
    kind: IncidentKind,
    service: ServiceName,
    started: Timestamp,
    now: Timestamp,
) -> Incident {
    let mut i = Incident::new(
        "shop-imap-0000",
        IncidentSpec {
            end_user: "shop".into(),
            service,
            kind,
            cause: None,
            report_deferral: None,
            node: None,
        },
    );
    i.metadata.namespace = Some("reseller-sakura".into());
    i.metadata.uid = Some("uid-1".into());
    i.metadata.generation = Some(1);
    i.status = Some(opened(started, now, "imap: connection refused"));
    i
}

fn facts(now: Timestamp, failing: bool) -> Facts {
    Facts {
        now,
        failing,
        recovered_at: None,
        pod_not_ready: false,
        node_not_ready: None,
        unlock_requested: false,
        recipients: vec![
            Recipient {
                channel: Channel::Email,
                target: "noc@sakura.example.jp".into(),
            },
            Recipient {
                channel: Channel::Webhook,
                target: "https://hooks.example.jp/oem".into(),
            },
        ],
        joins_outage: false,
        outage_continues: false,
    }
}

/// Next business day end in Tokyo, simplified for the tests: the next day 17:00 JST.
fn due(t: Timestamp) -> Timestamp {
    t + SignedDuration::from_hours(24)
}

/// Applies one step as the controller would: remedies done and recorded, Pending delivered.
fn run_step(i: &mut Incident, f: &Facts) -> Vec<Remedy> {
    let (mut status, remedies) = step(i, f, &cfg(), due);
    for r in &remedies {
        record(&mut status, f.now, r.event(), Some("done".into()));
        if *r == Remedy::UnlockMail {
            resolve_mail_lock(&mut status, f.now);
        }
    }
    let pending: Vec<usize> = (0..status.notifications.len())
        .filter(|&n| status.notifications[n].state == DeliveryState::Pending)
        .collect();
    for n in pending {
        let (what, target) = (
            status.notifications[n].event,
            status.notifications[n].target.clone(),
        );
        delivered(&mut status, what, &target, f.now);
        status.notifications[n].state = DeliveryState::Sent;
        status.notifications[n].attempts += 1;
    }
    settle(&mut status, i, f.now);
    i.status = Some(status);
    remedies
}

fn count(i: &Incident, what: &str) -> usize {
    i.status
        .as_ref()
        .unwrap()
        .timeline
        .iter()
        .filter(|e| e.event == what)
        .count()
}

fn outage_notices(i: &Incident) -> usize {
    i.status
        .as_ref()
        .unwrap()
        .notifications
        .iter()
        .filter(|n| n.event == NotificationEvent::Outage)
        .count()
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_restarted_notified_at_ten_minutes_from_the_first_failure_and_resolved() {
    // Detected 30 s after the first failure (the monitor's re-check confirmed it).
    let started = t0();
    let clock = tokio::time::Instant::now();
    let now = || {
        t0() + SignedDuration::from_secs(30) + SignedDuration::try_from(clock.elapsed()).unwrap()
    };
    let mut i = incident(IncidentKind::ServiceDown, ServiceName::Imap, started, now());
    let mut restarts_at = Vec::new();
    let mut notified_at = None;
    // Down for 15 minutes of wall time from detection.
    while clock.elapsed() < Duration::from_secs(900) {
        let remedies = run_step(&mut i, &facts(now(), true));
        if remedies.contains(&Remedy::Restart) {
            restarts_at.push(now().duration_since(started).as_secs());
        }
        if notified_at.is_none() && outage_notices(&i) > 0 {
            notified_at = Some(now().duration_since(started).as_secs());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Level 1 at detection, then after 60 s and 120 s more: three restarts, no more.
    assert_eq!(restarts_at, vec![30, 90, 210]);
    assert_eq!(count(&i, event::RESTARTED), 3);
    // The notice at exactly 600 s after the first failure (570 s after detection), once per
    // recipient, and never again.
    assert_eq!(notified_at, Some(600));
    assert_eq!(outage_notices(&i), 2);
    assert_eq!(count(&i, event::NOTIFIED), 1);
    let status = i.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(IncidentPhase::Notified));
    assert_eq!(
        status
            .notified_at
            .as_ref()
            .unwrap()
            .0
            .duration_since(started)
            .as_secs(),
        600
    );

    // The service answers again.
    let back = now();
    run_step(
        &mut i,
        &Facts {
            recovered_at: Some(back),
            ..facts(back, false)
        },
    );
    let status = i.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(IncidentPhase::Resolved));
    assert_eq!(status.resolved_at.as_ref().unwrap().0, back);
    assert_eq!(status.report_due_by.as_ref().unwrap().0, due(back));
    assert!(
        status.report_sent_at.is_none(),
        "the report waits for a cause"
    );
    assert!(!overdue(&i, back));

    // An SRE records the cause an hour later: the report goes out at once.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    i.spec.cause = Some("mailbox volume full".into());
    run_step(&mut i, &facts(now(), false));
    let status = i.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(IncidentPhase::Reported));
    assert!(status.report_sent_at.is_some());
    assert!(finished(&i));
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason, "Reported");
}

#[tokio::test(start_paused = true)]
async fn an_outage_shorter_than_ten_minutes_is_resolved_without_notice_or_report() {
    let clock = tokio::time::Instant::now();
    let now = || t0() + SignedDuration::try_from(clock.elapsed()).unwrap();
    let mut i = incident(IncidentKind::ServiceDown, ServiceName::Http, t0(), now());
    while clock.elapsed() < Duration::from_secs(599) {
        run_step(&mut i, &facts(now(), true));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    run_step(&mut i, &facts(now(), false));
    let status = i.status.as_ref().unwrap();
    assert!(
        status.notifications.is_empty(),
        "{:?}",
        status.notifications
    );
    assert_eq!(status.phase, Some(IncidentPhase::Resolved));
    assert!(finished(&i));
}

#[test]
fn without_a_cause_the_report_goes_out_the_lead_time_before_the_deadline() {
    let mut i = incident(IncidentKind::ServiceDown, ServiceName::Imap, t0(), t0());
    run_step(&mut i, &facts(t0() + SignedDuration::from_secs(700), true));
    let back = t0() + SignedDuration::from_secs(800);
    run_step(&mut i, &facts(back, false));
    let deadline = due(back);
    run_step(
        &mut i,
        &facts(deadline - SignedDuration::from_secs(2 * 3600 + 1), false),
    );
    assert!(i.status.as_ref().unwrap().report_sent_at.is_none());
    run_step(
        &mut i,
        &facts(deadline - SignedDuration::from_secs(2 * 3600), false),
    );
    assert!(i.status.as_ref().unwrap().report_sent_at.is_some());
}

#[test]
fn a_deferral_is_told_at_once_and_the_report_follows_the_cause() {
    let mut i = incident(IncidentKind::ServiceDown, ServiceName::Imap, t0(), t0());
    run_step(&mut i, &facts(t0() + SignedDuration::from_secs(700), true));
    let back = t0() + SignedDuration::from_secs(800);
    run_step(&mut i, &facts(back, false));
    i.spec.report_deferral = Some(ReportDeferral {
        reason: "waiting for the storage vendor".into(),
    });
    run_step(&mut i, &facts(back + SignedDuration::from_secs(60), false));
    assert_eq!(count(&i, event::REPORT_DEFERRED), 1);
    // Past the deadline: deferred, so not overdue and no report without the cause.
    let late = due(back) + SignedDuration::from_secs(60);
    run_step(&mut i, &facts(late, false));
    assert!(i.status.as_ref().unwrap().report_sent_at.is_none());
    assert!(!overdue(&i, late));
    i.spec.cause = Some("controller firmware bug".into());
    run_step(&mut i, &facts(late, false));
    assert!(i.status.as_ref().unwrap().report_sent_at.is_some());
    assert_eq!(count(&i, event::REPORT_DEFERRED), 1);
}

#[test]
fn a_report_neither_sent_nor_deferred_by_its_deadline_is_overdue() {
    let mut i = incident(IncidentKind::ServiceDown, ServiceName::Imap, t0(), t0());
    run_step(&mut i, &facts(t0() + SignedDuration::from_secs(700), true));
    let back = t0() + SignedDuration::from_secs(800);
    // Resolved, but the report notice never goes out (the transport keeps failing).
    let (status, _) = step(&i, &facts(back, false), &cfg(), due);
    i.status = Some(status);
    assert!(!overdue(&i, due(back)));
    assert!(overdue(&i, due(back) + SignedDuration::from_secs(1)));
}

#[test]
fn a_host_down_recreates_the_pod_and_a_not_ready_node_is_cordoned_only_when_allowed() {
    let i = incident(IncidentKind::HostDown, ServiceName::Ping, t0(), t0());
    let (_, remedies) = step(&i, &facts(t0(), true), &cfg(), due);
    assert_eq!(remedies, vec![Remedy::Recreate]);
    let node = Facts {
        node_not_ready: Some("kwok-node-1".into()),
        ..facts(t0(), true)
    };
    let (_, remedies) = step(&i, &node, &cfg(), due);
    assert_eq!(remedies, vec![Remedy::Recreate]);
    let allowed = FlowConfig {
        allow_node_cordon: true,
        ..cfg()
    };
    let (_, remedies) = step(&i, &node, &allowed, due);
    assert_eq!(remedies, vec![Remedy::Cordon("kwok-node-1".into())]);
}

#[test]
fn a_service_whose_pod_is_not_ready_gets_its_pod_recreated() {
    let i = incident(IncidentKind::ServiceDown, ServiceName::Mysql, t0(), t0());
    let f = Facts {
        pod_not_ready: true,
        ..facts(t0(), true)
    };
    assert_eq!(step(&i, &f, &cfg(), due).1, vec![Remedy::Recreate]);
}

#[test]
fn a_pod_restarted_by_level_1_gets_the_backoff_to_come_back_before_level_2() {
    let mut i = incident(IncidentKind::ServiceDown, ServiceName::Http, t0(), t0());
    // Ready but not answering: level 1.
    assert_eq!(run_step(&mut i, &facts(t0(), true)), vec![Remedy::Restart]);
    // Restarting, hence not Ready: nothing until the backoff (60 s) is over...
    let at = |s: i64| Facts {
        pod_not_ready: true,
        ..facts(t0() + SignedDuration::from_secs(s), true)
    };
    for s in [1, 30, 59] {
        assert!(run_step(&mut i, &at(s)).is_empty(), "at {s} s");
    }
    // ...then level 2.
    assert_eq!(run_step(&mut i, &at(60)), vec![Remedy::Recreate]);
    // The recreated pod Ready but its service not answering yet: no restart in its backoff.
    let ready = |s: i64| facts(t0() + SignedDuration::from_secs(s), true);
    assert!(run_step(&mut i, &ready(61)).is_empty());
    assert!(run_step(&mut i, &ready(119)).is_empty());
    assert_eq!(run_step(&mut i, &ready(120)), vec![Remedy::Restart]);
}

#[test]
fn mass_mail_locks_tells_once_and_resolves_when_the_reseller_lifts_the_lock() {
    let mut i = incident(IncidentKind::MassMail, ServiceName::Smtp, t0(), t0());
    assert_eq!(run_step(&mut i, &facts(t0(), true)), vec![Remedy::LockMail]);
    assert!(run_step(&mut i, &facts(t0() + SignedDuration::from_secs(1), true)).is_empty());
    let status = i.status.as_ref().unwrap();
    let lock_notices = status
        .notifications
        .iter()
        .filter(|n| n.event == NotificationEvent::MailLock)
        .count();
    assert_eq!(lock_notices, 2);
    assert!(
        status
            .notifications
            .iter()
            .all(|n| n.event != NotificationEvent::Outage)
    );
    let lift = Facts {
        unlock_requested: true,
        ..facts(t0() + SignedDuration::from_secs(3600), true)
    };
    assert_eq!(run_step(&mut i, &lift), vec![Remedy::UnlockMail]);
    let status = i.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(IncidentPhase::Resolved));
    assert!(finished(&i), "nothing to report for a lifted lock");
}

#[test]
fn a_restarted_operator_queues_nothing_twice() {
    let mut i = incident(IncidentKind::ServiceDown, ServiceName::Imap, t0(), t0());
    let late = t0() + SignedDuration::from_secs(601);
    // First operator: queued the notices (Pending) and crashed before delivering.
    let (status, _) = step(&i, &facts(late, true), &cfg(), due);
    i.status = Some(status);
    let keys: Vec<String> = i
        .status
        .as_ref()
        .unwrap()
        .notifications
        .iter()
        .map(|n| n.idempotency_key.clone())
        .collect();
    // Second operator, same facts: the same records, no new ones.
    let (status, _) = step(
        &i,
        &facts(late + SignedDuration::from_secs(5), true),
        &cfg(),
        due,
    );
    let again: Vec<String> = status
        .notifications
        .iter()
        .map(|n| n.idempotency_key.clone())
        .collect();
    assert_eq!(keys, again);
    assert_eq!(keys.len(), 2);
}

#[test]
fn a_reported_incident_with_a_notice_still_pending_is_not_finished() {
    let mut i = incident(IncidentKind::ServiceDown, ServiceName::Imap, t0(), t0());
    run_step(&mut i, &facts(t0() + SignedDuration::from_secs(700), true));
    i.spec.cause = Some("disk full".into());
    run_step(&mut i, &facts(t0() + SignedDuration::from_secs(800), false));
    assert!(finished(&i));
    // The report reached the e-mail contact; the webhook is still to be retried.
    let status = i.status.as_mut().unwrap();
    let hook = status
        .notifications
        .iter_mut()
        .find(|n| n.event == NotificationEvent::Report && n.channel == Channel::Webhook)
        .unwrap();
    hook.state = DeliveryState::Pending;
    assert!(!finished(&i));
}

#[test]
fn the_timeline_keeps_the_first_and_the_latest_entries() {
    let mut status = opened(t0(), t0(), "down");
    for n in 0..300 {
        record(
            &mut status,
            t0() + SignedDuration::from_secs(n),
            event::RESTARTED,
            None,
        );
    }
    assert_eq!(status.timeline.len(), 256);
    assert_eq!(status.timeline[0].event, event::DOWN);
    assert_eq!(
        status.timeline.last().unwrap().time.0,
        t0() + SignedDuration::from_secs(299)
    );
}

#[tokio::test(start_paused = true)]
async fn an_outage_through_a_maintenance_window_opens_at_its_end_and_is_notified_ten_minutes_later()
{
    use crate::alerting::maintenance::{Admission, Cover, Target, Window, admission};
    // Sakura's two-hour window for shop; imap fails 30 s into it and stays down.
    let (start, end) = (t0(), t0() + SignedDuration::from_hours(2));
    let window = Window {
        name: "reseller-sakura/shop-mail-upgrade".into(),
        covers: vec![Cover::EndUser {
            namespace: "reseller-sakura".into(),
            end_user: "shop".into(),
            services: vec![],
        }],
        start,
        end,
        end_when_recovered: false,
        first_down_at: None,
        recovered_at: None,
    };
    let target = Target {
        namespace: "reseller-sakura",
        end_user: "shop",
        service: ServiceName::Imap,
        nodes: &[],
    };
    let first_failure = start + SignedDuration::from_secs(30);
    let clock = tokio::time::Instant::now();
    let now = || first_failure + SignedDuration::try_from(clock.elapsed()).unwrap();
    let mut opened_at = None;
    let mut incident_ = None::<Incident>;
    let mut restarts_at = Vec::new();
    let mut notified_at = None;
    while now() < end + SignedDuration::from_secs(900) {
        let t = now();
        match &mut incident_ {
            None => match admission(
                std::slice::from_ref(&window),
                IncidentKind::ServiceDown,
                &target,
                first_failure,
                t,
            ) {
                Admission::Held { .. } => {}
                Admission::Open { since } => {
                    opened_at = Some(t);
                    incident_ = Some(incident(
                        IncidentKind::ServiceDown,
                        ServiceName::Imap,
                        since,
                        t,
                    ));
                }
            },
            Some(i) => {
                let remedies = run_step(i, &facts(t, true));
                if remedies.contains(&Remedy::Restart) {
                    restarts_at.push(t.duration_since(end).as_secs());
                }
                if notified_at.is_none() && outage_notices(i) > 0 {
                    notified_at = Some(t.duration_since(end).as_secs());
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Held for the whole window: no incident, no restart, no notice before its end.
    assert_eq!(opened_at, Some(end));
    let i = incident_.unwrap();
    assert_eq!(
        i.status.as_ref().unwrap().started_at.as_ref().map(|t| t.0),
        Some(end)
    );
    // Remediation and the notice count from the window's end, not from the first failure.
    assert_eq!(restarts_at.first(), Some(&1));
    assert_eq!(notified_at, Some(600));
}

/// The alert source unreadable from minute 2 to minute 30 of an outage: the incident stays
/// as it was (no restart, no notice, not resolved), its condition says why; when the source
/// answers again with the service still down, the flow goes on from where the outage is.
#[test]
fn an_unreadable_source_freezes_the_outage_and_the_flow_resumes_when_it_answers() {
    let now = |s: i64| t0() + SignedDuration::from_secs(s);
    let mut i = incident(IncidentKind::ServiceDown, ServiceName::Imap, t0(), t0());
    run_step(&mut i, &facts(now(60), true));
    let restarts = count(&i, event::RESTARTED);
    for minute in 2..30 {
        let frozen = freeze(&i, "prometheus", now(minute * 60));
        i.status = Some(frozen);
    }
    let status = i.status.as_ref().unwrap();
    assert_eq!(
        count(&i, event::RESTARTED),
        restarts,
        "no remediation while blind"
    );
    assert_eq!(
        outage_notices(&i),
        0,
        "no notice while blind, past the 10 minutes"
    );
    assert!(status.resolved_at.is_none(), "blindness is no recovery");
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == SOURCE_CONDITION)
        .unwrap();
    assert_eq!(condition.status, ConditionStatus::False);
    assert!(
        condition.message.contains("prometheus"),
        "{}",
        condition.message
    );
    assert_eq!(
        condition.last_transition_time.0,
        now(120),
        "frozen since the first look that failed"
    );
    // A second freeze changes nothing, so nothing is written.
    assert_eq!(&freeze(&i, "prometheus", now(1900)), status);

    // The source answers: still down, so the notice the outage is due goes out now.
    let f = facts(now(1800), true);
    let (mut status, _) = step(&i, &f, &cfg(), due);
    thaw(&mut status, i.metadata.generation, f.now);
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == SOURCE_CONDITION)
        .unwrap();
    assert_eq!(condition.status, ConditionStatus::True);
    assert!(
        status
            .notifications
            .iter()
            .any(|n| n.event == NotificationEvent::Outage),
        "the outage notice follows once the source shows the outage"
    );

    // An incident never frozen gets no such condition.
    let fresh = incident(IncidentKind::ServiceDown, ServiceName::Imap, t0(), t0());
    let (mut status, _) = step(&fresh, &facts(now(60), true), &cfg(), due);
    thaw(&mut status, fresh.metadata.generation, now(60));
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.type_ != SOURCE_CONDITION)
    );
}
