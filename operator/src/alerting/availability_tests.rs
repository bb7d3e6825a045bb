use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn tokyo() -> TimeZone {
    TimeZone::get("Asia/Tokyo").unwrap()
}

fn hours(h: i64) -> SignedDuration {
    SignedDuration::from_hours(h)
}

fn outage(start: &str, end: &str) -> Outage {
    Outage {
        start: at(start),
        end: Some(at(end)),
    }
}

/// Long after every month of the tests.
fn later() -> Timestamp {
    at("2030-01-01T00:00:00Z")
}

/// December 2026 in Tokyo: 2026-11-30T15:00Z to 2026-12-31T15:00Z, 744 h.
fn december() -> Span {
    month(2026, 12, &tokyo()).unwrap()
}

#[test]
fn a_month_runs_from_midnight_to_midnight_in_the_resellers_zone() {
    let m = december();
    assert_eq!(m.start, at("2026-11-30T15:00:00Z"));
    assert_eq!(m.end, at("2026-12-31T15:00:00Z"));
    let f = figures(m, &[], &[], later());
    assert_eq!(f.measured, hours(31 * 24));
    assert_eq!(f.availability(), 1.0);
}

#[test]
fn a_month_with_a_daylight_saving_change_is_an_hour_short() {
    let march = month(2026, 3, &TimeZone::get("America/New_York").unwrap()).unwrap();
    assert_eq!(
        figures(march, &[], &[], later()).measured,
        hours(31 * 24 - 1)
    );
}

#[test]
fn outages_at_the_month_edges_count_only_inside_it() {
    // Ends exactly at the month's first instant: nothing; starts at its last: nothing either.
    let f = figures(
        december(),
        &[
            outage("2026-11-30T14:00:00Z", "2026-11-30T15:00:00Z"),
            outage("2026-12-31T15:00:00Z", "2026-12-31T16:00:00Z"),
        ],
        &[],
        later(),
    );
    assert_eq!(f.down, SignedDuration::ZERO);
    // From the first instant, and up to the last: both count.
    let f = figures(
        december(),
        &[
            outage("2026-11-30T15:00:00Z", "2026-11-30T15:30:00Z"),
            outage("2026-12-31T14:30:00Z", "2026-12-31T15:00:00Z"),
        ],
        &[],
        later(),
    );
    assert_eq!(f.down, hours(1));
}

#[test]
fn the_same_outage_falls_in_the_resellers_month_not_in_utcs() {
    // 2026-11-30 16:00–17:00 UTC is 1 December 01:00–02:00 in Tokyo.
    let outages = [outage("2026-11-30T16:00:00Z", "2026-11-30T17:00:00Z")];
    assert_eq!(figures(december(), &outages, &[], later()).down, hours(1));
    let november_tokyo = month(2026, 11, &tokyo()).unwrap();
    assert_eq!(
        figures(november_tokyo, &outages, &[], later()).down,
        SignedDuration::ZERO
    );
    let november_utc = month(2026, 11, &TimeZone::UTC).unwrap();
    assert_eq!(figures(november_utc, &outages, &[], later()).down, hours(1));
}

#[test]
fn an_outage_spanning_the_month_boundary_is_split_between_the_months() {
    // 30 November 23:00 JST to 1 December 02:00 JST.
    let outages = [outage("2026-11-30T14:00:00Z", "2026-11-30T17:00:00Z")];
    let november = month(2026, 11, &tokyo()).unwrap();
    assert_eq!(figures(november, &outages, &[], later()).down, hours(1));
    assert_eq!(figures(december(), &outages, &[], later()).down, hours(2));
}

#[test]
fn maintenance_overlapping_an_outage_counts_neither_as_time_nor_as_downtime() {
    // Down 02:00–04:00 JST on 10 December; the window 01:00–03:00 JST.
    let outages = [outage("2026-12-09T17:00:00Z", "2026-12-09T19:00:00Z")];
    let windows = [Span::new(
        at("2026-12-09T16:00:00Z"),
        at("2026-12-09T18:00:00Z"),
    )];
    let f = figures(december(), &outages, &windows, later());
    assert_eq!(f.down, hours(1), "only 03:00–04:00 counts");
    assert_eq!(f.maintenance, hours(2));
    assert_eq!(f.measured, hours(744 - 2));
    let expected = 1.0 - 1.0 / 742.0;
    assert!((f.availability() - expected).abs() < 1e-12, "{f:?}");
    assert_eq!(f.percent(2), 99.86);
}

#[test]
fn overlapping_outages_and_windows_are_counted_once() {
    let outages = [
        outage("2026-12-01T00:00:00Z", "2026-12-01T02:00:00Z"),
        outage("2026-12-01T01:00:00Z", "2026-12-01T03:00:00Z"),
    ];
    let windows = [
        Span::new(at("2026-12-05T00:00:00Z"), at("2026-12-05T02:00:00Z")),
        Span::new(at("2026-12-05T01:00:00Z"), at("2026-12-05T03:00:00Z")),
    ];
    let f = figures(december(), &outages, &windows, later());
    assert_eq!(f.down, hours(3));
    assert_eq!(f.maintenance, hours(3));
}

#[test]
fn a_running_month_and_an_open_outage_are_measured_up_to_now() {
    let now = at("2026-12-02T15:00:00Z"); // two days into December (Tokyo)
    let open = [Outage {
        start: at("2026-12-02T14:00:00Z"),
        end: None,
    }];
    let f = figures(december(), &open, &[], now);
    assert_eq!(f.measured, hours(48));
    assert_eq!(f.down, hours(1));
    assert_eq!(
        figures(december(), &[], &[], at("2026-11-01T00:00:00Z")),
        Figures::default(),
        "a month not begun has no figures"
    );
}

#[test]
fn a_month_with_downtime_never_rounds_up_to_one_hundred_percent() {
    let outages = [outage("2026-12-01T00:00:00Z", "2026-12-01T00:00:01Z")];
    let f = figures(december(), &outages, &[], later());
    assert!(f.availability() < 1.0);
    assert_eq!(f.percent(2), 99.99);
}

#[test]
fn a_resellers_availability_is_total_downtime_over_total_time() {
    let m = december();
    let a = figures(
        m,
        &[outage("2026-12-01T00:00:00Z", "2026-12-01T07:26:24Z")], // 1 % of 744 h
        &[],
        later(),
    );
    let b = figures(m, &[], &[], later());
    let total = reseller_total([a, b]);
    assert_eq!(total.measured, hours(2 * 744));
    assert!((total.availability() - 0.995).abs() < 1e-12, "{total:?}");
    assert_eq!(reseller_total([]).availability(), 1.0);
}
