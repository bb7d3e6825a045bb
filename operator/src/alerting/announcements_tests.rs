use super::*;
use oem_crds::incident::Channel;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const LEAD: SignedDuration = SignedDuration::from_hours(72);

fn start() -> Timestamp {
    at("2026-12-09T17:00:00Z")
}

fn window(covers: Vec<Cover>) -> Window {
    Window {
        name: "upgrade".into(),
        covers,
        start: at("2026-12-09T17:00:00Z"),
        end: at("2026-12-09T19:00:00Z"),
        end_when_recovered: false,
        first_down_at: None,
        recovered_at: None,
    }
}

fn shop_window() -> Window {
    window(vec![Cover::EndUser {
        namespace: "reseller-sakura".into(),
        end_user: "shop".into(),
        services: vec![ServiceName::Http],
    }])
}

fn tenant(reseller: &str, end_user: &str) -> Tenant {
    Tenant {
        reseller: reseller.into(),
        end_user: end_user.into(),
        label: format!("{end_user}01"),
        hosting_namespace: format!("h-{reseller}-{end_user}"),
    }
}

fn tenants() -> Vec<Tenant> {
    vec![
        tenant("sakura", "shop"),
        tenant("sakura", "blog"),
        tenant("momiji", "cafe"),
    ]
}

#[test]
fn a_window_is_announced_once_the_lead_time_before_its_start() {
    let w = shop_window();
    assert!(
        !due(&w, None, LEAD, at("2026-12-06T16:59:59Z")),
        "too early"
    );
    assert!(
        due(&w, None, LEAD, at("2026-12-06T17:00:00Z")),
        "at the lead time"
    );
    assert!(due(&w, None, LEAD, at("2026-12-08T00:00:00Z")));
    assert!(
        !due(&w, Some(None), LEAD, at("2026-12-08T00:00:00Z")),
        "already announced: never twice"
    );
}

#[test]
fn a_window_moved_or_lengthened_after_its_announcement_is_announced_again_at_once() {
    let w = shop_window();
    let now = at("2026-12-08T00:00:00Z");
    assert!(
        !due(&w, Some(Some((w.start, w.end))), LEAD, now),
        "told as it is"
    );
    let mut fraction = shop_window();
    fraction.start += SignedDuration::from_millis(250);
    assert!(
        !due(&fraction, Some(Some((w.start, w.end))), LEAD, now),
        "status times are whole seconds: a spec's fraction is no change"
    );
    let earlier_start = w.start - SignedDuration::from_hours(1);
    assert!(
        due(&w, Some(Some((earlier_start, w.end))), LEAD, now),
        "moved"
    );
    let shorter_end = w.end - SignedDuration::from_mins(30);
    assert!(
        due(&w, Some(Some((w.start, shorter_end))), LEAD, now),
        "lengthened"
    );
    assert!(
        !due(&w, Some(Some((earlier_start, w.end))), LEAD, w.start),
        "never once started"
    );
    // Moved from earlier to far ahead, beyond the lead time: told at once all the same.
    let mut far = shop_window();
    far.start += SignedDuration::from_hours(24 * 30);
    far.end += SignedDuration::from_hours(24 * 30);
    assert!(due(&far, Some(Some((w.start, w.end))), LEAD, now));
}

#[test]
fn a_repeated_announcement_has_keys_of_its_own() {
    let told = vec![(
        "sakura".to_owned(),
        vec![Recipient {
            channel: Channel::Email,
            target: "noc@sakura.example.jp".into(),
        }],
    )];
    let first = records("uid-1", start(), &told);
    let again = records("uid-1", start() + SignedDuration::from_hours(1), &told);
    assert_ne!(first[0].idempotency_key, again[0].idempotency_key);
}

#[test]
fn a_window_created_inside_the_lead_time_is_announced_at_once() {
    let w = shop_window();
    assert!(due(&w, None, LEAD, at("2026-12-09T16:59:59Z")));
}

#[test]
fn a_window_already_started_or_ended_is_not_announced() {
    let w = shop_window();
    assert!(
        !due(&w, None, LEAD, at("2026-12-09T17:00:00Z")),
        "at its start"
    );
    assert!(!due(&w, None, LEAD, at("2026-12-09T18:00:00Z")), "open");
    assert!(!due(&w, None, LEAD, at("2026-12-10T00:00:00Z")), "ended");
}

#[test]
fn a_lead_time_reaching_before_the_epoch_means_at_once() {
    let w = shop_window();
    assert!(due(
        &w,
        None,
        SignedDuration::MAX,
        at("2000-01-01T00:00:00Z")
    ));
}

#[test]
fn a_resellers_window_tells_that_reseller_about_its_end_user_by_login() {
    let found = audience(&shop_window().covers, &tenants(), &BTreeMap::new());
    assert_eq!(found.len(), 1);
    assert_eq!(
        found["sakura"],
        BTreeSet::from([Affected::EndUser {
            label: "shop01".into(),
            services: vec![ServiceName::Http],
        }])
    );
}

#[test]
fn a_window_for_every_end_user_tells_every_reseller_with_end_users() {
    let w = window(vec![Cover::AllEndUsers { services: vec![] }]);
    let found = audience(&w.covers, &tenants(), &BTreeMap::new());
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["momiji", "sakura"],
        "each reseller once"
    );
    assert_eq!(
        found["sakura"],
        BTreeSet::from([Affected::EveryEndUser { services: vec![] }])
    );
    assert!(audience(&w.covers, &[], &BTreeMap::new()).is_empty());
}

#[test]
fn a_node_window_tells_only_the_resellers_with_end_users_on_the_node() {
    let w = window(vec![Cover::Node {
        node: "node-a".into(),
        services: vec![],
    }]);
    let on_node = BTreeMap::from([(
        "node-a".to_owned(),
        BTreeSet::from(["h-sakura-blog".to_owned(), "kube-system".to_owned()]),
    )]);
    let found = audience(&w.covers, &tenants(), &on_node);
    assert_eq!(found.keys().collect::<Vec<_>>(), ["sakura"]);
    assert_eq!(
        found["sakura"],
        BTreeSet::from([Affected::EndUser {
            label: "blog01".into(),
            services: vec![],
        }])
    );
    assert_eq!(nodes(&w.covers), BTreeSet::from(["node-a".to_owned()]));
    assert!(
        audience(&w.covers, &tenants(), &BTreeMap::new()).is_empty(),
        "no pod on the node: no one is told"
    );
}

#[test]
fn one_pending_record_per_reseller_contact_and_channel_with_distinct_stable_keys() {
    let email = |t: &str| Recipient {
        channel: Channel::Email,
        target: t.into(),
    };
    let told = vec![
        (
            "momiji".to_owned(),
            vec![
                email("noc@momiji.example"),
                Recipient {
                    channel: Channel::Webhook,
                    target: "https://hooks.momiji.example/<path sha256:00>".into(),
                },
            ],
        ),
        ("sakura".to_owned(), vec![email("noc@momiji.example")]),
    ];
    let first = records("uid-1", start(), &told);
    assert_eq!(first.len(), 3);
    assert!(
        first
            .iter()
            .all(|r| r.state == DeliveryState::Pending && r.attempts == 0)
    );
    let keys: BTreeSet<_> = first.iter().map(|r| r.idempotency_key.clone()).collect();
    assert_eq!(
        keys.len(),
        3,
        "the same address at two resellers is two records"
    );
    assert!(first[0].idempotency_key.starts_with("maintenance-email-"));
    assert_eq!(records("uid-1", start(), &told), first, "stable");
    assert_ne!(
        records("uid-2", start(), &told)[0].idempotency_key,
        first[0].idempotency_key
    );
}
