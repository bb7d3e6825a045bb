//! Monthly availability (pure; issue 17): for one end user's service, the share of a calendar
//! month in the reseller's time zone during which it was not down, from the recorded outages
//! (intervals of the Down state, the last one possibly still open) with the maintenance
//! windows' intervals taken out of both the time measured and the downtime; and the same summed
//! per reseller (total downtime over total time measured). A month still running is measured
//! up to `now`.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

/// A half-open interval of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Span {
    pub fn new(start: Timestamp, end: Timestamp) -> Self {
        Self { start, end }
    }

    fn length(&self) -> SignedDuration {
        self.end
            .duration_since(self.start)
            .max(SignedDuration::ZERO)
    }

    fn clip(&self, to: &Span) -> Option<Span> {
        let start = self.start.max(to.start);
        let end = self.end.min(to.end);
        (start < end).then_some(Span { start, end })
    }
}

/// One recorded outage: from the Down transition to the recovery, or still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

/// The figures of one service (or, summed, of a reseller) for one month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Figures {
    /// The month (up to now when it is still running) less the maintenance windows.
    pub measured: SignedDuration,
    /// Downtime outside the maintenance windows.
    pub down: SignedDuration,
    /// Maintenance time taken out of the month.
    pub maintenance: SignedDuration,
}

impl Figures {
    /// Availability as a fraction in [0, 1]; 1 when nothing was measured.
    pub fn availability(&self) -> f64 {
        let measured = self.measured.as_secs_f64();
        if measured <= 0.0 {
            return 1.0;
        }
        (1.0 - self.down.as_secs_f64() / measured).clamp(0.0, 1.0)
    }

    /// Availability in percent, rounded down to `decimals` places (never shows 100 % for a
    /// month with downtime).
    pub fn percent(&self, decimals: i32) -> f64 {
        let scale = 10f64.powi(decimals);
        (self.availability() * 100.0 * scale).floor() / scale
    }
}

impl std::ops::Add for Figures {
    type Output = Figures;
    fn add(self, other: Figures) -> Figures {
        Figures {
            measured: self.measured + other.measured,
            down: self.down + other.down,
            maintenance: self.maintenance + other.maintenance,
        }
    }
}

/// The calendar month `year`-`month` in `zone`: from its first midnight to the next month's.
pub fn month(year: i16, month: i8, zone: &TimeZone) -> Result<Span, jiff::Error> {
    let first = Date::new(year, month, 1)?;
    let next = first.checked_add(1.month())?;
    Ok(Span {
        start: first.to_zoned(zone.clone())?.timestamp(),
        end: next.to_zoned(zone.clone())?.timestamp(),
    })
}

/// Sorted, merged, non-empty spans.
fn union(mut spans: Vec<Span>) -> Vec<Span> {
    spans.retain(|s| s.start < s.end);
    spans.sort();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match out.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => out.push(span),
        }
    }
    out
}

/// Total length of `spans` (merged) less what `holes` (merged) cover of them.
fn length_outside(spans: &[Span], holes: &[Span]) -> SignedDuration {
    let mut total = SignedDuration::ZERO;
    for span in spans {
        let covered = holes
            .iter()
            .filter_map(|h| h.clip(span))
            .fold(SignedDuration::ZERO, |sum, s| sum + s.length());
        total += span.length() - covered;
    }
    total
}

/// One service's figures for the month `period`, as of `now`.
pub fn figures(period: Span, outages: &[Outage], windows: &[Span], now: Timestamp) -> Figures {
    let seen = Span::new(period.start, period.end.min(now));
    if seen.start >= seen.end {
        return Figures::default();
    }
    let windows = union(windows.iter().filter_map(|w| w.clip(&seen)).collect());
    let down = union(
        outages
            .iter()
            .filter_map(|o| Span::new(o.start, o.end.unwrap_or(now)).clip(&seen))
            .collect(),
    );
    let maintenance = windows
        .iter()
        .fold(SignedDuration::ZERO, |sum, w| sum + w.length());
    Figures {
        measured: seen.length() - maintenance,
        down: length_outside(&down, &windows),
        maintenance,
    }
}

/// A reseller's figures: the sum over its end users' services.
pub fn reseller_total(services: impl IntoIterator<Item = Figures>) -> Figures {
    services.into_iter().fold(Figures::default(), |a, b| a + b)
}

#[cfg(test)]
#[path = "availability_tests.rs"]
mod tests;
