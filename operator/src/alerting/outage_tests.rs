//! One end user's web pod goes down: http, https and ftp fail a few seconds apart and come
//! back a few seconds apart. Stepping the three incidents every second as the controller does
//! (facts from `joins_outage` and `outage_continues`, then the Pending records grouped), each
//! contact gets one outage notice and one recovery notice listing the three services; an
//! unrelated end user's outage is its own notice. A node goes down under three end users: one
//! notice per contact lists all three.

use std::collections::{BTreeMap, HashMap};

use jiff::{SignedDuration, Timestamp};
use oem_crds::enduser::ServiceName;
use oem_crds::incident::{DeliveryState, IncidentSpec};

use super::super::flow::{Facts, FlowConfig, Recipient, delivered, opened, step};
use super::super::incidents::key_of;
use super::*;

fn cfg() -> FlowConfig {
    FlowConfig {
        notify_after: SignedDuration::from_secs(600),
        max_restarts: 0,
        restart_backoff: SignedDuration::from_secs(60),
        report_lead_time: SignedDuration::from_secs(2 * 3600),
        allow_node_cordon: false,
    }
}

fn t0() -> Timestamp {
    "2026-03-02T01:00:00Z".parse().unwrap()
}

fn incident(enduser: &str, service: ServiceName, started: Timestamp) -> Incident {
    let name = format!("{enduser}-{service:?}").to_lowercase();
    let mut i = Incident::new(
        &name,
        IncidentSpec {
            end_user: enduser.into(),
            service,
            kind: IncidentKind::ServiceDown,
            cause: None,
            report_deferral: None,
            node: None,
        },
    );
    i.metadata.namespace = Some("reseller-sakura".into());
    i.metadata.uid = Some(format!("uid-{name}"));
    i.status = Some(opened(started, started, "down"));
    i
}

fn recipients() -> Vec<Recipient> {
    vec![
        Recipient {
            channel: Channel::Email,
            target: "noc@sakura.example.jp".into(),
        },
        Recipient {
            channel: Channel::Webhook,
            target: "https://hooks.example.jp/oem".into(),
        },
    ]
}

/// Runs the incidents second by second from `t0` for `seconds`; `down(name, now)` says which
/// fail. Returns the notices sent: (group, the incidents it covered).
fn run(
    incidents: &mut [Incident],
    seconds: i64,
    down: impl Fn(&str, Timestamp) -> bool,
) -> Vec<(GroupKey, Vec<String>)> {
    let mut sent = Vec::new();
    for second in 0..seconds {
        let now = t0() + SignedDuration::from_secs(second);
        let active: HashMap<AlertKey, Timestamp> = incidents
            .iter()
            .filter(|i| down(&i.name_any(), now))
            .map(|i| (key_of(i), t0()))
            .collect();
        let seen = Observation {
            active,
            recovered: HashMap::new(),
            complete: true,
        };
        let world = incidents.to_vec();
        for incident in incidents.iter_mut() {
            let facts = Facts {
                now,
                failing: seen.active.contains_key(&key_of(incident)),
                recovered_at: None,
                pod_not_ready: false,
                node_not_ready: None,
                unlock_requested: false,
                recipients: recipients(),
                joins_outage: joins_outage(incident, &world, now, cfg().notify_after),
                outage_continues: outage_continues(incident, &world, Some(&seen), key_of),
            };
            let (status, _) = step(incident, &facts, &cfg(), |t| {
                t + SignedDuration::from_hours(24)
            });
            incident.status = Some(status);
        }
        // The delivery pass: one notice per group of Pending records.
        let mut groups: BTreeMap<GroupKey, Vec<(usize, usize)>> = BTreeMap::new();
        for (i, incident) in incidents.iter().enumerate() {
            for (n, r) in incident
                .status
                .as_ref()
                .unwrap()
                .notifications
                .iter()
                .enumerate()
            {
                if r.state == DeliveryState::Pending {
                    groups
                        .entry(group_key(incident, r.event, r.channel, &r.target))
                        .or_default()
                        .push((i, n));
                }
            }
        }
        for (key, members) in groups {
            let mut names = Vec::new();
            for (i, n) in members {
                let status = incidents[i].status.as_mut().unwrap();
                let (event, target) = (
                    status.notifications[n].event,
                    status.notifications[n].target.clone(),
                );
                delivered(status, event, &target, now);
                status.notifications[n].state = DeliveryState::Sent;
                names.push(incidents[i].name_any());
            }
            sent.push((key, names));
        }
    }
    sent
}

#[test]
fn one_outage_of_three_services_is_one_notice_and_one_recovery_notice_per_contact() {
    let s = SignedDuration::from_secs;
    let mut incidents = vec![
        incident("shop", ServiceName::Http, t0()),
        incident("shop", ServiceName::Https, t0() + s(5)),
        incident("shop", ServiceName::Ftp, t0() + s(30)),
        // Another end user, down at the same time: its own notices.
        incident("blog", ServiceName::Imap, t0() + s(2)),
    ];
    let back = |name: &str| match name {
        "shop-http" => t0() + s(900),
        "shop-https" => t0() + s(920),
        "shop-ftp" => t0() + s(940),
        _ => t0() + s(950),
    };
    let sent = run(&mut incidents, 1000, |name, now| now < back(name));
    let of = |event: NotificationEvent, subject: &str| -> Vec<Vec<String>> {
        sent.iter()
            .filter(|(k, _)| k.event == event && k.subject == subject)
            .map(|(_, names)| names.clone())
            .collect()
    };
    let shop = vec![
        "shop-ftp".to_owned(),
        "shop-http".into(),
        "shop-https".into(),
    ];
    let mut outage = of(NotificationEvent::Outage, "enduser/shop");
    outage.iter_mut().for_each(|n| n.sort());
    assert_eq!(
        outage,
        vec![shop.clone(), shop.clone()],
        "one outage notice per contact (2)"
    );
    let mut recovered = of(NotificationEvent::Recovered, "enduser/shop");
    recovered.iter_mut().for_each(|n| n.sort());
    assert_eq!(
        recovered,
        vec![shop.clone(), shop],
        "one recovery notice per contact, at the last recovery"
    );
    assert_eq!(of(NotificationEvent::Outage, "enduser/blog").len(), 2);
    // The recovery notice went when the last service came back, not before.
    for incident in &incidents[..3] {
        let told = incident
            .status
            .as_ref()
            .unwrap()
            .notifications
            .iter()
            .filter(|n| n.event == NotificationEvent::Recovered)
            .count();
        assert_eq!(told, 2, "{}", incident.name_any());
    }
    // The notice went at the first service's threshold, for all three.
    for incident in &incidents[..3] {
        let notified = incident
            .status
            .as_ref()
            .unwrap()
            .notified_at
            .as_ref()
            .unwrap()
            .0;
        assert_eq!(notified, t0() + s(600), "{}", incident.name_any());
    }
}

#[test]
fn a_merged_notice_lists_every_service_from_the_first_fall_to_the_last_recovery() {
    let s = SignedDuration::from_secs;
    let notice = |incident: &str, service: &str, start: i64, resolved: Option<i64>| Notice {
        event: NotificationEvent::Recovered,
        incident: incident.into(),
        kind: IncidentKind::ServiceDown,
        brand: "Sakura".into(),
        affected: vec![Affected {
            end_user: "shop".into(),
            contract_name: "Shop".into(),
            customer_number: None,
            services: vec![service.into()],
        }],
        started_at: t0() + s(start),
        notified_at: Some(t0() + s(600)),
        resolved_at: resolved.map(|r| t0() + s(r)),
        report_due_by: None,
        timeline: vec![(t0() + s(start), "Opened".into(), None)],
        actions: vec![format!("restarted {service}")],
        cause: None,
        deferral_reason: None,
        time_zone: jiff::tz::TimeZone::UTC,
    };
    let merged = merge(vec![
        notice("shop-https", "https", 5, Some(920)),
        notice("shop-http", "http", 0, Some(900)),
    ])
    .unwrap();
    assert_eq!(merged.incident, "shop-http, shop-https");
    assert_eq!(merged.affected.len(), 1);
    assert_eq!(merged.affected[0].services, ["http", "https"]);
    assert_eq!(merged.started_at, t0());
    assert_eq!(merged.resolved_at, Some(t0() + s(920)));
    assert_eq!(merged.actions.len(), 2);
    assert_eq!(merged.timeline.len(), 2);
    let open = merge(vec![
        notice("shop-http", "http", 0, Some(900)),
        notice("shop-ftp", "ftp", 30, None),
    ])
    .unwrap();
    assert_eq!(open.resolved_at, None, "not over while one service is down");
    assert!(merge(Vec::new()).is_none());
}

fn on_node(mut incident: Incident, node: &str) -> Incident {
    incident.spec.node = Some(node.into());
    incident
}

#[test]
fn end_users_on_a_down_node_are_one_notice_per_contact_and_others_keep_theirs() {
    let s = SignedDuration::from_secs;
    let mut incidents = vec![
        on_node(incident("shop", ServiceName::Http, t0()), "node-1"),
        on_node(incident("shop", ServiceName::Https, t0() + s(1)), "node-1"),
        on_node(incident("blog", ServiceName::Imap, t0() + s(3)), "node-1"),
        on_node(incident("cafe", ServiceName::Ftp, t0() + s(4)), "node-1"),
        // Down at the same time on a healthy node: its own notice.
        incident("shop2", ServiceName::Http, t0() + s(2)),
    ];
    let back = |name: &str| match name {
        "cafe-ftp" => t0() + s(960),
        _ => t0() + s(900),
    };
    let sent = run(&mut incidents, 1000, |name, now| now < back(name));
    let of = |event: NotificationEvent, subject: &str| -> Vec<Vec<String>> {
        sent.iter()
            .filter(|(k, _)| k.event == event && k.subject == subject)
            .map(|(_, names)| {
                let mut names = names.clone();
                names.sort();
                names
            })
            .collect()
    };
    let node = vec![
        "blog-imap".to_owned(),
        "cafe-ftp".into(),
        "shop-http".into(),
        "shop-https".into(),
    ];
    assert_eq!(
        of(NotificationEvent::Outage, "node/node-1"),
        vec![node.clone(), node.clone()],
        "one outage notice per contact for the node's three end users"
    );
    assert_eq!(
        of(NotificationEvent::Recovered, "node/node-1"),
        vec![node.clone(), node],
        "one recovery notice per contact, when the last of them is back"
    );
    assert_eq!(of(NotificationEvent::Outage, "enduser/shop2").len(), 2);
    assert_eq!(
        sent.len(),
        8,
        "an outage and a recovery notice per contact (2) for the node and for shop2: {sent:?}"
    );
}

#[test]
fn a_merged_notice_of_a_node_lists_each_end_user_with_its_services() {
    let notice = |incident: &str, end_user: &str, service: &str| Notice {
        event: NotificationEvent::Outage,
        incident: incident.into(),
        kind: IncidentKind::ServiceDown,
        brand: "Sakura".into(),
        affected: vec![Affected {
            end_user: end_user.into(),
            contract_name: format!("{end_user} Ltd"),
            customer_number: Some(format!("C-{end_user}")),
            services: vec![service.into()],
        }],
        started_at: t0(),
        notified_at: Some(t0() + SignedDuration::from_secs(600)),
        resolved_at: None,
        report_due_by: None,
        timeline: vec![(t0(), "Down".into(), Some("node node-1 down".into()))],
        actions: Vec::new(),
        cause: None,
        deferral_reason: None,
        time_zone: jiff::tz::TimeZone::UTC,
    };
    let merged = merge(vec![
        notice("shop-https", "shop", "https"),
        notice("blog-imap", "blog", "imap"),
        notice("shop-http", "shop", "http"),
    ])
    .unwrap();
    let listed: Vec<(&str, Vec<String>)> = merged
        .affected
        .iter()
        .map(|a| (a.end_user.as_str(), a.services.clone()))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("blog", vec!["imap".to_owned()]),
            ("shop", vec!["http".to_owned(), "https".to_owned()])
        ]
    );
    assert_eq!(
        merged.affected[1].customer_number.as_deref(),
        Some("C-shop")
    );
    assert_eq!(merged.incident, "blog-imap, shop-http, shop-https");
    // Each timeline line says whose service it was.
    assert!(
        merged
            .timeline
            .iter()
            .any(|(_, _, m)| m.as_deref() == Some("blog imap: node node-1 down")),
        "{:?}",
        merged.timeline
    );
}
