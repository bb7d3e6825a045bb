//! The reseller's business calendar (SPEC §5, §8): which days are business days in its time
//! zone, and when an incident report is due — the end of business hours of the next business
//! day after recovery. Weekends, Japanese public holidays (computed here from the National
//! Holidays Act) and the reseller's company holidays are not business days.

use std::collections::BTreeSet;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use oem_crds::reseller::BusinessCalendar;

/// How far ahead the next business day is looked for; a calendar whose company holidays leave
/// no business day in this many days is treated as if the day after recovery were one.
const SEARCH_DAYS: i32 = 800;

/// A reseller's calendar, parsed and checked once from its `BusinessCalendar`.
#[derive(Debug, Clone)]
pub struct Calendar {
    time_zone: TimeZone,
    /// Business hours as minutes after local midnight, `[start, end)`, sorted; end may be 1440.
    hours: Vec<(u16, u16)>,
    company_holidays: BTreeSet<Date>,
}

/// Why a `BusinessCalendar` cannot be used; each variant names the field.
#[derive(thiserror::Error, Debug)]
pub enum CalendarError {
    #[error("businessCalendar.timeZone: unknown time zone {name:?}: {source}")]
    UnknownTimeZone {
        name: String,
        #[source]
        source: jiff::Error,
    },
    #[error("businessCalendar.{field}: {value:?} is not a time of day as HH:MM")]
    BadTime { field: String, value: String },
    #[error("businessCalendar.{field}: business hours must start before they end")]
    EmptyPeriod { field: String },
    #[error("businessCalendar.businessHours: at least one period is needed")]
    NoBusinessHours,
}

impl Calendar {
    pub fn from_spec(spec: &BusinessCalendar) -> Result<Self, CalendarError> {
        let time_zone =
            TimeZone::get(&spec.time_zone).map_err(|source| CalendarError::UnknownTimeZone {
                name: spec.time_zone.clone(),
                source,
            })?;
        let mut hours = Vec::with_capacity(spec.business_hours.len());
        for (i, period) in spec.business_hours.iter().enumerate() {
            let start = parse_hhmm(&period.start, false).ok_or_else(|| CalendarError::BadTime {
                field: format!("businessHours[{i}].start"),
                value: period.start.clone(),
            })?;
            let end = parse_hhmm(&period.end, true).ok_or_else(|| CalendarError::BadTime {
                field: format!("businessHours[{i}].end"),
                value: period.end.clone(),
            })?;
            if start >= end {
                return Err(CalendarError::EmptyPeriod {
                    field: format!("businessHours[{i}]"),
                });
            }
            hours.push((start, end));
        }
        if hours.is_empty() {
            return Err(CalendarError::NoBusinessHours);
        }
        hours.sort_unstable();
        Ok(Self {
            time_zone,
            hours,
            company_holidays: spec.company_holidays.iter().copied().collect(),
        })
    }

    /// A weekday that is neither a Japanese public holiday nor a company holiday.
    pub fn is_business_day(&self, date: Date) -> bool {
        !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
            && !self.company_holidays.contains(&date)
            && japanese_holiday(date).is_none()
    }

    /// The first business day strictly after `date`.
    pub fn next_business_day(&self, date: Date) -> Date {
        let mut day = date;
        for _ in 0..SEARCH_DAYS {
            match day.tomorrow() {
                Ok(next) if self.is_business_day(next) => return next,
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        date.tomorrow().unwrap_or(date)
    }

    /// The first business day on or after `date`.
    pub fn business_day_from(&self, date: Date) -> Date {
        if self.is_business_day(date) {
            date
        } else {
            self.next_business_day(date)
        }
    }

    /// When business hours begin on `date` (the first period's start, local time).
    pub fn opening_of_business(&self, date: Date) -> Timestamp {
        let start = self.hours.first().map(|&(start, _)| start).unwrap_or(0);
        Time::new((start / 60) as i8, (start % 60) as i8, 0, 0)
            .map(|t| date.to_datetime(t))
            .and_then(|dt: DateTime| dt.to_zoned(self.time_zone.clone()))
            .map(|z| z.timestamp())
            // Only dates at the edge of jiff's range (year 9999) fail.
            .unwrap_or(Timestamp::MAX)
    }

    /// When business hours end on `date` (the last period's end, local time).
    pub fn close_of_business(&self, date: Date) -> Timestamp {
        let end = self
            .hours
            .iter()
            .map(|&(_, end)| end)
            .max()
            .unwrap_or(24 * 60);
        let local = if end >= 24 * 60 {
            date.tomorrow().map(|d| d.to_datetime(Time::midnight()))
        } else {
            Time::new((end / 60) as i8, (end % 60) as i8, 0, 0).map(|t| date.to_datetime(t))
        };
        // Only dates at the edge of jiff's range (year 9999) fail; they have no deadline.
        local
            .and_then(|dt: DateTime| dt.to_zoned(self.time_zone.clone()))
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::MAX)
    }

    /// The incident report deadline: the end of the business hours (last period's end, e.g.
    /// 17:00 local) of the next business day strictly after the local date of `recovered`.
    pub fn report_due(&self, recovered: Timestamp) -> Timestamp {
        let local = self.time_zone.to_datetime(recovered).date();
        self.close_of_business(self.next_business_day(local))
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// Whether `at` falls within business hours on a business day (local time).
    pub fn is_business_hours(&self, at: Timestamp) -> bool {
        let local = self.time_zone.to_datetime(at);
        if !self.is_business_day(local.date()) {
            return false;
        }
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        self.hours.iter().any(|&(s, e)| s <= minute && minute < e)
    }
}

/// `HH:MM` as minutes after midnight; `24:00` only where `allow_midnight_end`.
fn parse_hhmm(text: &str, allow_midnight_end: bool) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    match (h, m) {
        (24, 0) if allow_midnight_end => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// The name of the Japanese public holiday on `date`, if it is one.
pub fn japanese_holiday(date: Date) -> Option<&'static str> {
    japanese_holidays(date.year())
        .into_iter()
        .find(|(d, _)| *d == date)
        .map(|(_, name)| name)
}

pub const SUBSTITUTE_HOLIDAY: &str = "振替休日";
pub const CITIZENS_HOLIDAY: &str = "国民の休日";

/// Japanese public holidays of a year (with their names), computed by the rules of the
/// National Holidays Act: fixed days, Happy Mondays, vernal/autumnal equinox (astronomical
/// formula valid for 1980–2099), substitute holidays (振替休日) and citizens' holidays (国民の休日).
///
/// The rules are those in force since 2020 (Emperor's Birthday on 23 February, Sports Day),
/// with the Olympic moves of 2020 and 2021; earlier years follow today's rules, not history.
/// Sorted by date. A year outside jiff's range gives an empty list.
pub fn japanese_holidays(year: i16) -> Vec<(Date, &'static str)> {
    let mut national = national_holidays(year);
    national.sort_unstable();
    let is_national = |d: Date| national.iter().any(|(n, _)| *n == d);
    let mut all = national.clone();
    // §3(3): a day that is not a national holiday, between two national holidays.
    for pair in national.windows(2) {
        let (a, b) = (pair[0].0, pair[1].0);
        if let (Ok(mid), Ok(after_mid)) = (a.tomorrow(), a.checked_add(2.days()))
            && after_mid == b
            && !is_national(mid)
        {
            all.push((mid, CITIZENS_HOLIDAY));
        }
    }
    // §3(2): a national holiday on a Sunday makes the nearest following day that is not a
    // national holiday a holiday. It takes precedence over a citizens' holiday on the same day.
    for (day, _) in national
        .iter()
        .filter(|(d, _)| d.weekday() == Weekday::Sunday)
    {
        let mut next = day.tomorrow().ok();
        while let Some(d) = next.filter(|d| is_national(*d)) {
            next = d.tomorrow().ok();
        }
        if let Some(d) = next {
            all.retain(|(x, name)| !(*x == d && *name == CITIZENS_HOLIDAY));
            all.push((d, SUBSTITUTE_HOLIDAY));
        }
    }
    all.sort_unstable();
    all.dedup_by_key(|(d, _)| *d);
    all
}

/// The sixteen 国民の祝日 of a year (§2 of the Act), unsorted.
fn national_holidays(year: i16) -> Vec<(Date, &'static str)> {
    let fixed = |m: i8, d: i8| Date::new(year, m, d).ok();
    let monday = |m: i8, nth: i8| {
        Date::new(year, m, 1)
            .and_then(|first| first.nth_weekday_of_month(nth, Weekday::Monday))
            .ok()
    };
    // Tokyo 2020 moved Marine Day, Sports Day and Mountain Day in 2020 and 2021 (special act).
    let (marine, sports, mountain) = match year {
        2020 => (fixed(7, 23), fixed(7, 24), fixed(8, 10)),
        2021 => (fixed(7, 22), fixed(7, 23), fixed(8, 8)),
        _ => (monday(7, 3), monday(10, 2), fixed(8, 11)),
    };
    let candidates = [
        (fixed(1, 1), "元日"),
        (monday(1, 2), "成人の日"),
        (fixed(2, 11), "建国記念の日"),
        (fixed(2, 23), "天皇誕生日"),
        (fixed(3, vernal_equinox_day(year)), "春分の日"),
        (fixed(4, 29), "昭和の日"),
        (fixed(5, 3), "憲法記念日"),
        (fixed(5, 4), "みどりの日"),
        (fixed(5, 5), "こどもの日"),
        (marine, "海の日"),
        (mountain, "山の日"),
        (monday(9, 3), "敬老の日"),
        (fixed(9, autumnal_equinox_day(year)), "秋分の日"),
        (sports, "スポーツの日"),
        (fixed(11, 3), "文化の日"),
        (fixed(11, 23), "勤労感謝の日"),
    ];
    candidates
        .into_iter()
        .filter_map(|(date, name)| date.map(|d| (d, name)))
        .collect()
}

/// Day of March of the vernal equinox (JST), by the usual approximation for 1980–2099.
fn vernal_equinox_day(year: i16) -> i8 {
    equinox_day(year, 20.8431)
}

/// Day of September of the autumnal equinox (JST), same approximation.
fn autumnal_equinox_day(year: i16) -> i8 {
    equinox_day(year, 23.2488)
}

fn equinox_day(year: i16, base: f64) -> i8 {
    let y = f64::from(year) - 1980.0;
    let day = (base + 0.242194 * y - (y / 4.0).floor()).floor();
    // Out-of-range years give a day Date::new rejects, so no holiday rather than a wrong one.
    day.clamp(0.0, 99.0) as i8
}

#[cfg(test)]
mod tests;
