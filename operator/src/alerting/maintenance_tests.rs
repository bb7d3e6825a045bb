//! Maintenance windows at their edges: the start and end instants, early end on recovery, and
//! the outage start of a target still down at the end. Instants are UTC timestamps, so nothing
//! depends on the machine's time zone.

use jiff::{SignedDuration, Timestamp};
use oem_crds::enduser::ServiceName;
use oem_crds::incident::IncidentKind;
use oem_crds::maintenance::{MaintenanceEndReason, MaintenancePhase};

use super::*;

/// 2026-12-10 02:00 JST.
fn start() -> Timestamp {
    "2026-12-09T17:00:00Z".parse().unwrap()
}

fn end() -> Timestamp {
    start() + SignedDuration::from_hours(2)
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

/// Sakura's window for shop's web service.
fn window(services: Vec<ServiceName>) -> Window {
    Window {
        name: "reseller-sakura/shop-php-upgrade".into(),
        covers: vec![Cover::EndUser {
            namespace: "reseller-sakura".into(),
            end_user: "shop".into(),
            services,
        }],
        start: start(),
        end: end(),
        end_when_recovered: false,
        first_down_at: None,
        recovered_at: None,
    }
}

fn shop(service: ServiceName) -> Target<'static> {
    Target {
        namespace: "reseller-sakura",
        end_user: "shop",
        service,
        nodes: &[],
    }
}

#[test]
fn a_window_is_scheduled_until_its_start_instant_and_open_from_it() {
    let w = window(vec![]);
    assert_eq!(w.phase(start() - secs(1)), Phase::Scheduled);
    assert_eq!(w.phase(start()), Phase::Open);
    assert!(!w.covers(&shop(ServiceName::Http), start() - secs(1)));
    assert!(w.covers(&shop(ServiceName::Http), start()));
}

#[test]
fn a_window_ends_at_its_planned_end_instant() {
    let w = window(vec![]);
    assert_eq!(w.phase(end() - secs(1)), Phase::Open);
    assert_eq!(
        w.phase(end()),
        Phase::Ended(MaintenanceEndReason::PlannedEnd)
    );
    assert!(w.covers(&shop(ServiceName::Http), end() - secs(1)));
    assert!(!w.covers(&shop(ServiceName::Http), end()));
}

#[test]
fn a_window_covers_only_the_services_it_names() {
    let w = window(vec![ServiceName::Http, ServiceName::Https]);
    let now = start() + secs(60);
    assert!(w.covers(&shop(ServiceName::Https), now));
    assert!(!w.covers(&shop(ServiceName::Imap), now));
    assert!(window(vec![]).covers(&shop(ServiceName::Ping), now));
}

#[test]
fn a_resellers_window_covers_only_its_own_namespace_and_end_user() {
    let w = window(vec![]);
    let now = start() + secs(60);
    let other_reseller = Target {
        namespace: "reseller-ume",
        ..shop(ServiceName::Http)
    };
    let other_user = Target {
        end_user: "blog",
        ..shop(ServiceName::Http)
    };
    assert!(!w.covers(&other_reseller, now));
    assert!(!w.covers(&other_user, now));
}

#[test]
fn a_node_window_covers_the_end_users_with_a_pod_on_the_node() {
    let mut w = window(vec![]);
    w.covers = vec![Cover::Node {
        node: "node-a".into(),
        services: vec![],
    }];
    let now = start() + secs(60);
    let on_a = ["node-a".to_owned()];
    let on_b = ["node-b".to_owned()];
    assert!(w.covers(
        &Target {
            nodes: &on_a,
            ..shop(ServiceName::Smtp)
        },
        now
    ));
    assert!(!w.covers(
        &Target {
            nodes: &on_b,
            ..shop(ServiceName::Smtp)
        },
        now
    ));
}

#[test]
fn a_platform_window_covers_every_end_user() {
    let mut w = window(vec![]);
    w.covers = vec![Cover::AllEndUsers { services: vec![] }];
    let now = start() + secs(60);
    let elsewhere = Target {
        namespace: "reseller-ume",
        end_user: "cafe",
        ..shop(ServiceName::Mysql)
    };
    assert!(w.covers(&elsewhere, now));
}

#[test]
fn a_failure_under_an_open_window_opens_no_incident() {
    let windows = [window(vec![])];
    let now = start() + secs(600);
    let admitted = admission(
        &windows,
        IncidentKind::ServiceDown,
        &shop(ServiceName::Http),
        start() + secs(30),
        now,
    );
    assert_eq!(
        admitted,
        Admission::Held {
            window: "reseller-sakura/shop-php-upgrade".into()
        }
    );
}

#[test]
fn a_target_still_down_at_the_planned_end_opens_an_incident_from_the_end() {
    let windows = [window(vec![])];
    let admitted = admission(
        &windows,
        IncidentKind::ServiceDown,
        &shop(ServiceName::Http),
        start() + secs(30),
        end(),
    );
    assert_eq!(admitted, Admission::Open { since: end() });
    assert_eq!(outage_start(end(), start() + secs(30)), end());
}

#[test]
fn a_target_down_only_after_the_window_counts_from_its_first_failure() {
    let windows = [window(vec![])];
    let later = end() + secs(120);
    let admitted = admission(
        &windows,
        IncidentKind::ServiceDown,
        &shop(ServiceName::Http),
        later,
        later + secs(15),
    );
    assert_eq!(admitted, Admission::Open { since: later });
}

#[test]
fn a_target_no_window_names_counts_from_its_first_failure() {
    let windows = [window(vec![ServiceName::Http])];
    let failed = start() + secs(30);
    let admitted = admission(
        &windows,
        IncidentKind::ServiceDown,
        &shop(ServiceName::Imap),
        failed,
        start() + secs(60),
    );
    assert_eq!(admitted, Admission::Open { since: failed });
}

#[test]
fn mass_mail_is_not_held_by_a_window() {
    let windows = [window(vec![])];
    let now = start() + secs(60);
    let admitted = admission(
        &windows,
        IncidentKind::MassMail,
        &shop(ServiceName::Smtp),
        now,
        now,
    );
    assert_eq!(admitted, Admission::Open { since: now });
}

#[test]
fn the_status_follows_the_phase_and_keeps_its_transition_time() {
    let w = window(vec![]);
    let before = next_status(&w, None, Some(1), false, start() - secs(60));
    assert_eq!(before.phase, Some(MaintenancePhase::Scheduled));
    assert_eq!(before.observed_generation, Some(1));
    let open = next_status(&w, Some(&before), Some(1), false, start());
    assert_eq!(open.phase, Some(MaintenancePhase::Open));
    let again = next_status(&w, Some(&open), Some(1), false, start() + secs(15));
    assert_eq!(
        again, open,
        "a quiet look changes nothing, so nothing is written"
    );
    let ended = next_status(&w, Some(&open), Some(1), false, end());
    assert_eq!(ended.phase, Some(MaintenancePhase::Ended));
    assert_eq!(ended.end_reason, Some(MaintenanceEndReason::PlannedEnd));
    assert_eq!(ended.ended_at.map(|t| t.0), Some(end()));
}

#[test]
fn a_window_ending_on_recovery_ends_once_its_targets_went_down_and_came_back() {
    let mut w = window(vec![]);
    w.end_when_recovered = true;
    let quiet = next_status(&w, None, Some(1), false, start() + secs(10));
    assert_eq!(
        quiet.phase,
        Some(MaintenancePhase::Open),
        "nothing went down yet: the work has not begun"
    );
    let down_at = start() + secs(20);
    let down = next_status(&w, Some(&quiet), Some(1), true, down_at);
    assert_eq!(down.first_down_at.as_ref().map(|t| t.0), Some(down_at));
    assert_eq!(down.phase, Some(MaintenancePhase::Open));
    w.first_down_at = Some(down_at);
    let back_at = start() + secs(300);
    let back = next_status(&w, Some(&down), Some(1), false, back_at);
    assert_eq!(back.phase, Some(MaintenancePhase::Ended));
    assert_eq!(back.end_reason, Some(MaintenanceEndReason::Recovered));
    assert_eq!(back.ended_at.as_ref().map(|t| t.0), Some(back_at));
    // Read back from the status, the window stays ended and covers nothing.
    w.recovered_at = Some(back_at);
    assert_eq!(
        w.phase(back_at + secs(1)),
        Phase::Ended(MaintenanceEndReason::Recovered)
    );
    assert!(!w.covers(&shop(ServiceName::Http), back_at + secs(1)));
    let again = admission(
        &[w],
        IncidentKind::ServiceDown,
        &shop(ServiceName::Http),
        back_at + secs(60),
        back_at + secs(75),
    );
    assert_eq!(
        again,
        Admission::Open {
            since: back_at + secs(60)
        }
    );
}

#[test]
fn the_announcers_fields_are_carried_so_an_announced_window_is_not_rewritten() {
    let w = window(vec![]);
    let now = start() - secs(60);
    let mut stored = next_status(&w, None, Some(1), false, now);
    stored.announced_at = Some(Time(now - secs(30)));
    stored.announcements = vec![oem_crds::maintenance::AnnouncementRecord {
        reseller: "sakura".into(),
        channel: oem_crds::incident::Channel::Email,
        target: "noc@sakura.example.jp".into(),
        state: oem_crds::incident::DeliveryState::Sent,
        attempts: 1,
        last_attempt_at: Some(Time(now - secs(29))),
        idempotency_key: "maintenance-email-00".into(),
        message: None,
    }];
    let next = next_status(&w, Some(&stored), Some(1), false, now + secs(1));
    assert_eq!(next, stored, "nothing of the phase changed: no write");
}
