//! Flap damping (issue 15 item 4): a day of a service flapping at every probe, the alert
//! controller's decisions (`admit`, `flow::step`) driven by a simulated clock, as the embedded
//! source sees the monitor's history.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use oem_crds::enduser::ServiceName;
use oem_crds::incident::{Incident, IncidentKind, IncidentSpec, NotificationEvent, event};

use super::*;
use crate::alerting::flow::{self, Facts, FlowConfig, Recipient};

const DAY: i64 = 24 * 3600;
/// The monitor's cadence at the defaults: a probe every 600 s, a re-check 60 s after a failure.
const INTERVAL: i64 = 600;
const RETRY: i64 = 60;
/// The alert controller's poll.
const POLL: i64 = 15;

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
    "2026-03-02T01:00:00Z".parse().unwrap()
}

fn key() -> AlertKey {
    AlertKey {
        namespace: "reseller-sakura".into(),
        enduser: "shop".into(),
        service: ServiceName::Imap,
        kind: IncidentKind::ServiceDown,
    }
}

/// The service's state at `t` seconds: (down, since when, in seconds).
type Service = dyn Fn(i64) -> (bool, i64);

/// Runs the alert controller's decisions every poll for `span` seconds; returns the Incident
/// objects made.
fn run(service: &Service, span: i64, flap_window: SignedDuration) -> Vec<Incident> {
    let mut incidents: Vec<Incident> = Vec::new();
    let recipients = vec![Recipient {
        channel: oem_crds::incident::Channel::Email,
        target: "desk@sakura.example.jp".into(),
    }];
    let at = |s: i64| t0() + SignedDuration::from_secs(s);
    for tick in 0..span / POLL {
        let now = at(tick * POLL);
        let (down, since) = service(tick * POLL);
        let k = key();
        if down && !incidents.iter().any(|i| key_of(i) == k && is_open(i)) {
            match admit(&incidents, &k, at(since), now, flap_window) {
                Admit::Known => {}
                Admit::New(name) => {
                    let mut i = Incident::new(
                        &name,
                        IncidentSpec {
                            end_user: k.enduser.clone(),
                            service: k.service,
                            kind: k.kind,
                            cause: None,
                            report_deferral: None,
                            node: None,
                        },
                    );
                    i.metadata.namespace = Some(k.namespace.clone());
                    i.metadata.uid = Some(format!("uid-{name}"));
                    i.metadata.generation = Some(1);
                    let mut status = flow::opened(at(since), now, "imap failing");
                    flow::settle(&mut status, &i, now);
                    i.status = Some(status);
                    incidents.push(i);
                }
                Admit::Reopen(found) => {
                    let name = found.metadata.name.clone();
                    let i = incidents
                        .iter_mut()
                        .find(|i| i.metadata.name == name)
                        .unwrap();
                    let mut status = i.status.clone().unwrap();
                    flow::reopen(&mut status, at(since), now);
                    flow::settle(&mut status, i, now);
                    i.status = Some(status);
                }
            }
        }
        for i in incidents.iter_mut().filter(|i| !flow::finished(i)) {
            let facts = Facts {
                now,
                failing: down,
                recovered_at: (!down).then(|| at(since)),
                pod_not_ready: false,
                node_not_ready: None,
                unlock_requested: false,
                recipients: recipients.clone(),
                joins_outage: false,
                outage_continues: false,
            };
            let (mut status, remedies) =
                flow::step(i, &facts, &cfg(), |t| t + SignedDuration::from_secs(DAY));
            for remedy in remedies {
                flow::record(&mut status, now, remedy.event(), Some("done".into()));
            }
            // Notices are delivered at once.
            for n in &mut status.notifications {
                n.state = oem_crds::incident::DeliveryState::Sent;
            }
            if status
                .notifications
                .iter()
                .any(|n| n.event == NotificationEvent::Outage)
            {
                status.notified_at.get_or_insert(Time(now));
            }
            flow::settle(&mut status, i, now);
            i.status = Some(status);
        }
    }
    incidents
}

/// Flapping at every probe: down at each slot of the interval, answering at the re-check a
/// minute later, down again at the next slot.
fn flapping(t: i64) -> (bool, i64) {
    let slot = t - t.rem_euclid(INTERVAL);
    if t - slot < RETRY {
        (true, slot)
    } else {
        (false, slot + RETRY)
    }
}

fn falls(incident: &Incident) -> usize {
    let status = incident.status.as_ref().unwrap();
    status
        .timeline
        .iter()
        .filter(|e| e.event == event::DOWN)
        .count()
}

/// Issue 15 item 4. The bound: a service whose falls are each shorter than the notice
/// threshold (nobody is told) and whose rises are shorter than the flap window keeps one
/// Incident, however long it flaps; in general at most one per notified fall plus one per rise
/// longer than the window. Without damping (a window of 0, what the controller did before:
/// every fall its own Incident) the same day made 144.
#[test]
fn a_service_flapping_at_every_probe_for_a_day_makes_one_incident() {
    let day = run(&flapping, DAY, SignedDuration::from_secs(3600));
    assert_eq!(day.len(), 1, "{} incidents", day.len());
    let status = day[0].status.as_ref().unwrap();
    // The falls are on its timeline, the latest ones where it is longer than the schema's limit.
    assert!(status.timeline.len() <= 256);
    assert!(falls(&day[0]) > 50, "{} falls", falls(&day[0]));
    let last = status
        .timeline
        .iter()
        .rev()
        .find(|e| e.event == event::DOWN);
    let last = last.map(|e| e.time.0);
    assert_eq!(last, Some(t0() + SignedDuration::from_secs(DAY - INTERVAL)));
    // No fall reached the notice threshold: nobody was told, nothing to report.
    assert!(status.notifications.is_empty());
    assert!(status.resolved_at.is_some());

    let undamped = run(&flapping, DAY, SignedDuration::ZERO);
    assert_eq!(undamped.len(), 144);
}

/// A fall the reseller was told of is an incident of its own, with its report: the next fall
/// opens a new Incident, and one that lasts the threshold is told again.
#[test]
fn a_notified_outage_is_not_reopened_by_the_next_fall() {
    // Down 0–900 s (told at 600 s), up for 10 minutes, down 1500–2200 s, up after.
    let service = |t: i64| match t {
        0..900 => (true, 0),
        900..1500 => (false, 900),
        1500..2200 => (true, 1500),
        _ => (false, 2200),
    };
    let incidents = run(&service, 3 * 3600, SignedDuration::from_secs(3600));
    assert_eq!(incidents.len(), 2);
    for i in &incidents {
        let status = i.status.as_ref().unwrap();
        assert!(
            status
                .notifications
                .iter()
                .any(|n| n.event == NotificationEvent::Outage),
            "{:?}",
            i.metadata.name
        );
        assert_eq!(falls(i), 1);
    }
}

/// A reopened incident counts the notice threshold from its latest fall: short falls add up to
/// no notice, a long one after them is told at its own ten minutes.
#[test]
fn a_long_fall_after_flaps_is_told_at_its_own_threshold() {
    // Two one-minute falls, then one from 1200 s that lasts.
    let service = |t: i64| match t {
        0..60 => (true, 0),
        60..600 => (false, 60),
        600..660 => (true, 600),
        660..1200 => (false, 660),
        _ => (true, 1200),
    };
    let early = run(&service, 1200 + 590, SignedDuration::from_secs(3600));
    assert_eq!(early.len(), 1);
    assert!(early[0].status.as_ref().unwrap().notifications.is_empty());
    let later = run(&service, 1200 + 615, SignedDuration::from_secs(3600));
    assert_eq!(later.len(), 1);
    assert_eq!(falls(&later[0]), 3);
    assert!(
        later[0]
            .status
            .as_ref()
            .unwrap()
            .notifications
            .iter()
            .any(|n| n.event == NotificationEvent::Outage)
    );
}
