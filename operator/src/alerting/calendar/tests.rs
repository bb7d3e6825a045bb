//! The calendar against the Cabinet Office's published holidays (内閣府「国民の祝日について」,
//! as announced for 2025, 2026 and 2027 once the National Astronomical Observatory fixed the
//! equinoxes) and report deadlines across weekends, holidays, year end and time zones.

use jiff::civil::{Date, date};
use oem_crds::reseller::{BusinessCalendar, BusinessHours};

use super::*;

fn official(year: i16, table: &[(i8, i8, &'static str)]) -> Vec<(Date, &'static str)> {
    table
        .iter()
        .map(|&(m, d, name)| (date(year, m, d), name))
        .collect()
}

#[test]
fn holidays_2025_match_the_cabinet_office_list() {
    let expected = official(
        2025,
        &[
            (1, 1, "元日"),
            (1, 13, "成人の日"),
            (2, 11, "建国記念の日"),
            (2, 23, "天皇誕生日"),
            (2, 24, "振替休日"),
            (3, 20, "春分の日"),
            (4, 29, "昭和の日"),
            (5, 3, "憲法記念日"),
            (5, 4, "みどりの日"),
            (5, 5, "こどもの日"),
            (5, 6, "振替休日"),
            (7, 21, "海の日"),
            (8, 11, "山の日"),
            (9, 15, "敬老の日"),
            (9, 23, "秋分の日"),
            (10, 13, "スポーツの日"),
            (11, 3, "文化の日"),
            (11, 23, "勤労感謝の日"),
            (11, 24, "振替休日"),
        ],
    );
    assert_eq!(japanese_holidays(2025), expected);
}

#[test]
fn holidays_2026_match_the_cabinet_office_list() {
    let expected = official(
        2026,
        &[
            (1, 1, "元日"),
            (1, 12, "成人の日"),
            (2, 11, "建国記念の日"),
            (2, 23, "天皇誕生日"),
            (3, 20, "春分の日"),
            (4, 29, "昭和の日"),
            (5, 3, "憲法記念日"),
            (5, 4, "みどりの日"),
            (5, 5, "こどもの日"),
            (5, 6, "振替休日"),
            (7, 20, "海の日"),
            (8, 11, "山の日"),
            (9, 21, "敬老の日"),
            (9, 22, "国民の休日"),
            (9, 23, "秋分の日"),
            (10, 12, "スポーツの日"),
            (11, 3, "文化の日"),
            (11, 23, "勤労感謝の日"),
        ],
    );
    assert_eq!(japanese_holidays(2026), expected);
}

#[test]
fn holidays_2027_match_the_cabinet_office_list() {
    let expected = official(
        2027,
        &[
            (1, 1, "元日"),
            (1, 11, "成人の日"),
            (2, 11, "建国記念の日"),
            (2, 23, "天皇誕生日"),
            (3, 21, "春分の日"),
            (3, 22, "振替休日"),
            (4, 29, "昭和の日"),
            (5, 3, "憲法記念日"),
            (5, 4, "みどりの日"),
            (5, 5, "こどもの日"),
            (7, 19, "海の日"),
            (8, 11, "山の日"),
            (9, 20, "敬老の日"),
            (9, 23, "秋分の日"),
            (10, 11, "スポーツの日"),
            (11, 3, "文化の日"),
            (11, 23, "勤労感謝の日"),
        ],
    );
    assert_eq!(japanese_holidays(2027), expected);
}

#[test]
fn equinoxes_of_recent_years_match_the_published_dates() {
    // (year, 春分の日 in March, 秋分の日 in September), as published for 2020–2024.
    for (year, vernal, autumnal) in [
        (2020, 20, 22),
        (2021, 20, 23),
        (2022, 21, 23),
        (2023, 21, 23),
        (2024, 20, 22),
    ] {
        let days = japanese_holidays(year);
        assert!(
            days.contains(&(date(year, 3, vernal), "春分の日")),
            "{year}"
        );
        assert!(
            days.contains(&(date(year, 9, autumnal), "秋分の日")),
            "{year}"
        );
    }
    // 2024: the autumnal equinox fell on a Sunday, so Monday was a substitute holiday.
    assert_eq!(
        japanese_holiday(date(2024, 9, 23)),
        Some(SUBSTITUTE_HOLIDAY)
    );
}

#[test]
fn olympic_years_moved_marine_sports_and_mountain_day() {
    let y2021 = japanese_holidays(2021);
    assert!(y2021.contains(&(date(2021, 7, 22), "海の日")));
    assert!(y2021.contains(&(date(2021, 7, 23), "スポーツの日")));
    assert!(y2021.contains(&(date(2021, 8, 8), "山の日")));
    assert!(y2021.contains(&(date(2021, 8, 9), SUBSTITUTE_HOLIDAY)));
    assert!(!y2021.iter().any(|(d, _)| *d == date(2021, 10, 11)));
}

fn tokyo() -> Calendar {
    Calendar::from_spec(&BusinessCalendar::default()).unwrap()
}

fn with_company_holidays(days: &[Date]) -> Calendar {
    let spec = BusinessCalendar {
        company_holidays: days.to_vec(),
        ..BusinessCalendar::default()
    };
    Calendar::from_spec(&spec).unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The report deadline for a recovery at `recovered` (RFC 3339 with offset), as RFC 3339 UTC.
fn due(calendar: &Calendar, recovered: &str) -> String {
    calendar.report_due(ts(recovered)).to_string()
}

#[test]
fn default_calendar_is_tokyo_with_business_hours_ending_at_17() {
    let cal = tokyo();
    assert_eq!(cal.time_zone().iana_name(), Some("Asia/Tokyo"));
    assert_eq!(
        cal.close_of_business(date(2026, 3, 5)),
        ts("2026-03-05T17:00:00+09:00")
    );
    assert!(cal.is_business_hours(ts("2026-03-05T10:00:00+09:00")));
    assert!(!cal.is_business_hours(ts("2026-03-05T12:30:00+09:00")));
    assert!(!cal.is_business_hours(ts("2026-03-05T17:00:00+09:00")));
}

#[test]
fn weekends_and_public_holidays_are_not_business_days() {
    let cal = tokyo();
    assert!(cal.is_business_day(date(2026, 3, 5))); // Thursday
    assert!(!cal.is_business_day(date(2026, 3, 7))); // Saturday
    assert!(!cal.is_business_day(date(2026, 3, 8))); // Sunday
    assert!(!cal.is_business_day(date(2026, 3, 20))); // 春分の日 (Friday)
    assert!(!cal.is_business_day(date(2025, 11, 24))); // 振替休日 (Monday)
    assert!(!cal.is_business_day(date(2026, 9, 22))); // 国民の休日 (Tuesday)
}

#[test]
fn report_is_due_at_close_of_the_next_business_day() {
    // Wednesday morning → Thursday 17:00.
    assert_eq!(
        due(&tokyo(), "2026-03-04T10:00:00+09:00"),
        "2026-03-05T08:00:00Z"
    );
    // Even a recovery after hours counts from its own date, not the next one.
    assert_eq!(
        due(&tokyo(), "2026-03-04T23:59:00+09:00"),
        "2026-03-05T08:00:00Z"
    );
}

#[test]
fn a_recovery_on_friday_or_the_weekend_is_due_on_monday() {
    for recovered in [
        "2026-06-05T20:00:00+09:00", // Friday evening
        "2026-06-06T09:00:00+09:00", // Saturday
        "2026-06-07T23:00:00+09:00", // Sunday
    ] {
        assert_eq!(
            due(&tokyo(), recovered),
            "2026-06-08T08:00:00Z",
            "{recovered}"
        );
    }
}

#[test]
fn golden_week_pushes_the_deadline_past_the_substitute_holiday() {
    // Thursday 30 April 2026: Friday 1 May is a business day.
    assert_eq!(
        due(&tokyo(), "2026-04-30T15:00:00+09:00"),
        "2026-05-01T08:00:00Z"
    );
    // Friday 1 May: 2–3 weekend, 4–5 holidays, 6 振替休日 → Thursday 7 May.
    assert_eq!(
        due(&tokyo(), "2026-05-01T15:00:00+09:00"),
        "2026-05-07T08:00:00Z"
    );
}

#[test]
fn a_recovery_on_a_holiday_is_due_on_the_next_business_day() {
    // 勤労感謝の日, Monday 23 November 2026 → Tuesday.
    assert_eq!(
        due(&tokyo(), "2026-11-23T11:00:00+09:00"),
        "2026-11-24T08:00:00Z"
    );
    // 国民の休日 22 September 2026, then 秋分の日 → Thursday 24 September.
    assert_eq!(
        due(&tokyo(), "2026-09-22T11:00:00+09:00"),
        "2026-09-24T08:00:00Z"
    );
    // 振替休日 24 February 2025 → Tuesday.
    assert_eq!(
        due(&tokyo(), "2025-02-24T11:00:00+09:00"),
        "2025-02-25T08:00:00Z"
    );
    // 春分の日 21 March 2027 is a Sunday; Monday 22 is its substitute → Tuesday 23.
    assert_eq!(
        due(&tokyo(), "2027-03-20T11:00:00+09:00"),
        "2027-03-23T08:00:00Z"
    );
}

#[test]
fn year_end_without_company_holidays_follows_only_the_law() {
    // Friday 25 December 2026 evening → Monday 28 December.
    assert_eq!(
        due(&tokyo(), "2026-12-25T21:00:00+09:00"),
        "2026-12-28T08:00:00Z"
    );
    // Thursday 31 December 2026: 1 January is 元日, 2–3 January 2027 a weekend → Monday 4.
    assert_eq!(
        due(&tokyo(), "2026-12-31T12:00:00+09:00"),
        "2027-01-04T08:00:00Z"
    );
    // Wednesday 31 December 2025: 2 January 2026 is a Friday and no public holiday.
    assert_eq!(
        due(&tokyo(), "2025-12-31T12:00:00+09:00"),
        "2026-01-02T08:00:00Z"
    );
}

#[test]
fn company_holidays_over_new_year_are_skipped() {
    let days: Vec<Date> = [
        date(2025, 12, 29),
        date(2025, 12, 30),
        date(2025, 12, 31),
        date(2026, 1, 1),
        date(2026, 1, 2),
        date(2026, 1, 3),
    ]
    .into();
    let cal = with_company_holidays(&days);
    assert!(!cal.is_business_day(date(2026, 1, 2)));
    // Friday 26 December 2025 → the first business day is Monday 5 January 2026.
    assert_eq!(
        due(&cal, "2025-12-26T19:00:00+09:00"),
        "2026-01-05T08:00:00Z"
    );
    assert_eq!(
        due(&cal, "2025-12-31T12:00:00+09:00"),
        "2026-01-05T08:00:00Z"
    );
}

#[test]
fn the_local_date_in_tokyo_decides_not_the_utc_date() {
    // 23:30 UTC on Thursday is 08:30 on Friday in Tokyo → due Monday, not Friday.
    assert_eq!(
        due(&tokyo(), "2026-03-05T23:30:00Z"),
        "2026-03-09T08:00:00Z"
    );
    // 14:59 UTC on Thursday is still Thursday in Tokyo → due Friday.
    assert_eq!(
        due(&tokyo(), "2026-03-05T14:59:00Z"),
        "2026-03-06T08:00:00Z"
    );
}

#[test]
fn another_time_zone_and_hours_are_honoured_across_daylight_saving() {
    let spec = BusinessCalendar {
        time_zone: "America/New_York".into(),
        business_hours: vec![BusinessHours {
            start: "09:00".into(),
            end: "18:30".into(),
        }],
        company_holidays: Vec::new(),
    };
    let cal = Calendar::from_spec(&spec).unwrap();
    // Friday 6 March 2026 15:00 EST → Monday 9 March 18:30, now EDT (UTC-4).
    assert_eq!(
        due(&cal, "2026-03-06T15:00:00-05:00"),
        "2026-03-09T22:30:00Z"
    );
    // Japanese public holidays still count: Monday 23 November 2026 is 勤労感謝の日.
    assert_eq!(
        due(&cal, "2026-11-20T10:00:00-05:00"),
        "2026-11-24T23:30:00Z"
    );
}

#[test]
fn business_hours_may_end_at_midnight() {
    let spec = BusinessCalendar {
        business_hours: vec![BusinessHours {
            start: "09:00".into(),
            end: "24:00".into(),
        }],
        ..BusinessCalendar::default()
    };
    let cal = Calendar::from_spec(&spec).unwrap();
    assert_eq!(
        due(&cal, "2026-03-04T10:00:00+09:00"),
        "2026-03-05T15:00:00Z" // 00:00 on Friday in Tokyo
    );
}

#[test]
fn an_unknown_time_zone_is_refused_naming_the_field() {
    let spec = BusinessCalendar {
        time_zone: "Mars/Olympus_Mons".into(),
        ..BusinessCalendar::default()
    };
    let err = Calendar::from_spec(&spec).unwrap_err();
    assert!(
        matches!(err, CalendarError::UnknownTimeZone { .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("businessCalendar.timeZone"),
        "{err}"
    );
}

#[test]
fn a_bad_time_of_day_is_refused_naming_the_field() {
    for (start, end, field) in [
        ("25:00", "17:00", "businessHours[0].start"),
        ("9:00", "17:00", "businessHours[0].start"),
        ("24:00", "24:00", "businessHours[0].start"),
        ("10:00", "17:60", "businessHours[0].end"),
    ] {
        let spec = BusinessCalendar {
            business_hours: vec![BusinessHours {
                start: start.into(),
                end: end.into(),
            }],
            ..BusinessCalendar::default()
        };
        let err = Calendar::from_spec(&spec).unwrap_err();
        assert!(
            matches!(&err, CalendarError::BadTime { field: f, .. } if f == field),
            "{start}-{end}: {err}"
        );
    }
    let backwards = BusinessCalendar {
        business_hours: vec![BusinessHours {
            start: "17:00".into(),
            end: "10:00".into(),
        }],
        ..BusinessCalendar::default()
    };
    assert!(matches!(
        Calendar::from_spec(&backwards),
        Err(CalendarError::EmptyPeriod { .. })
    ));
}
