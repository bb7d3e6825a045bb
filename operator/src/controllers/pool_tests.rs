//! The pool decision: oldest first, grants never taken back, raises held beyond the pool.

use super::*;

fn res(cpu: &str, memory: &str, storage: &str) -> Resources {
    Resources {
        cpu: cpu.into(),
        memory: memory.into(),
        storage: storage.into(),
    }
}

/// acme: 3 end users, 4 cpu, 8Gi, 30Gi.
fn pool() -> Pool {
    Pool {
        reseller: "acme".into(),
        max_end_users: 3,
        total: res("4", "8Gi", "30Gi"),
    }
}

fn member(
    name: &str,
    second: i64,
    granted: Option<Resources>,
    wanted: Option<Resources>,
) -> Member {
    Member {
        name: name.into(),
        created: Some(Timestamp::from_second(1_700_000_000 + second).unwrap()),
        granted,
        wanted,
    }
}

fn small() -> Resources {
    res("1", "2Gi", "10Gi")
}

fn huge() -> Resources {
    res("64", "256Gi", "10Ti")
}

fn held(share: &Share) -> Option<(&Option<Resources>, &str)> {
    match share {
        Share::Held { keep, why } => Some((keep, why.as_str())),
        Share::Full => None,
    }
}

#[test]
fn new_end_users_fit_oldest_first_and_the_excess_is_not_provisioned() {
    let members = [
        member("d", 4, None, Some(small())),
        member("a", 1, None, Some(small())),
        member("c", 3, None, Some(small())),
        member("b", 2, None, Some(small())),
    ];
    for name in ["a", "b", "c"] {
        assert_eq!(share(&pool(), &members, name), Share::Full, "{name}");
    }
    let d = share(&pool(), &members, "d");
    let (keep, why) = held(&d).expect("d is held");
    assert_eq!(keep, &None);
    assert_eq!(
        why,
        "reseller acme's pool is exhausted: storage 10Gi would bring the reseller's committed storage from 30Gi to 40Gi, over quota.totalStorage 30Gi; the reseller already has 3 end users provisioned or admitted before this one, its quota.maxEndUsers is 3; this end user is not provisioned until the pool has room (earlier end users come first)"
    );
}

#[test]
fn a_course_raised_past_the_pool_keeps_what_was_granted() {
    let members = [
        member("a", 1, Some(small()), Some(huge())),
        member("b", 2, Some(small()), Some(huge())),
    ];
    for name in ["a", "b"] {
        let s = share(&pool(), &members, name);
        let (keep, why) = held(&s).expect("held");
        assert_eq!(keep, &Some(small()));
        assert!(why.contains("cpu 64 would bring the reseller's committed cpu from 2 to 65, over quota.totalCpu 4"), "{why}");
        assert!(
            why.contains("keeps cpu 1, memory 2Gi, storage 10Gi"),
            "{why}"
        );
    }
}

#[test]
fn a_raise_that_fits_is_granted_to_the_oldest_first() {
    // 1 + 1 granted; both want 2.5 cpu: only the older fits (2.5 + 1 <= 4).
    let bigger = res("2500m", "2Gi", "10Gi");
    let members = [
        member("b", 2, Some(small()), Some(bigger.clone())),
        member("a", 1, Some(small()), Some(bigger)),
    ];
    assert_eq!(share(&pool(), &members, "a"), Share::Full);
    assert!(held(&share(&pool(), &members, "b")).is_some());
}

#[test]
fn running_end_users_are_never_taken_back_by_a_later_over_commit() {
    // The quota was lowered below what is granted: nobody loses anything, a lower course
    // still applies, nobody new gets in.
    let mut p = pool();
    p.total = res("1", "2Gi", "10Gi");
    let members = [
        member("a", 1, Some(small()), Some(small())),
        member("b", 2, Some(small()), Some(res("500m", "2Gi", "10Gi"))),
        member("c", 3, None, Some(small())),
    ];
    assert_eq!(share(&p, &members, "a"), Share::Full);
    assert_eq!(share(&p, &members, "b"), Share::Full);
    assert_eq!(held(&share(&p, &members, "c")).unwrap().0, &None);
}

#[test]
fn a_held_raise_keeps_per_resource_the_lower_of_grant_and_course() {
    let members = [member(
        "a",
        1,
        Some(small()),
        Some(res("64", "1Gi", "10Gi")),
    )];
    let s = share(&pool(), &members, "a");
    assert_eq!(held(&s).unwrap().0, &Some(res("1", "1Gi", "10Gi")));
}

#[test]
fn a_deleted_end_user_makes_room_for_the_next_one() {
    let mut members = vec![
        member("a", 1, Some(small()), Some(small())),
        member("b", 2, Some(small()), Some(small())),
        member("c", 3, Some(small()), Some(small())),
        member("d", 4, None, Some(small())),
    ];
    assert!(held(&share(&pool(), &members, "d")).is_some());
    members.remove(1);
    assert_eq!(share(&pool(), &members, "d"), Share::Full);
}

#[test]
fn decisions_do_not_depend_on_grants_recorded_in_between() {
    // a admitted from nothing, then its grant recorded: b's decision is the same either way.
    let before = [
        member("a", 1, None, Some(res("3", "2Gi", "10Gi"))),
        member("b", 2, None, Some(res("2", "2Gi", "10Gi"))),
    ];
    let mut after = before.clone();
    after[0].granted = after[0].wanted.clone();
    assert_eq!(share(&pool(), &before, "a"), Share::Full);
    assert_eq!(share(&pool(), &after, "a"), Share::Full);
    assert_eq!(share(&pool(), &before, "b"), share(&pool(), &after, "b"));
    assert!(held(&share(&pool(), &after, "b")).is_some());
}

#[test]
fn the_grant_annotation_round_trips_and_foreign_values_are_ignored() {
    let r = res("1500m", "2Gi", "10Gi");
    assert_eq!(Resources::parse_annotation(&r.annotation()), Some(r));
    assert_eq!(Resources::parse_annotation("cpu=1,memory=2Gi"), None);
    assert_eq!(
        Resources::parse_annotation("cpu=lots,memory=2Gi,storage=1Gi"),
        None
    );
    assert_eq!(Resources::parse_annotation(""), None);
}
