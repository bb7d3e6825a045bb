//! Monthly availability reports (pure; issue 17): which month's report is due for a reseller
//! (the past calendar month in its time zone, from the opening of business on the first
//! business day of the next month), the outages an Incident records (its timeline's Down and
//! Recovered entries: the monitor's state changes, not samples), the maintenance windows that
//! name an end user's service, and the report itself — per end user and service, summed per
//! reseller, with the month's incidents. Sending it is `reporter.rs`.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use oem_crds::enduser::ServiceName;
use oem_crds::incident::{Incident, IncidentKind, event};

use super::availability::{self, Figures, Outage, Span};
use super::calendar::Calendar;
use super::incidents::service_text;
use super::maintenance::{Target, Window};
use super::notify::{AvailabilityReport, ReportIncident, ReportLine};

/// Availability is shown rounded down to this many decimals of a percent.
pub const DECIMALS: i32 = 3;

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i16,
    pub month: i8,
}

impl Month {
    /// The month `at` falls in, in `zone`.
    pub fn of(at: Timestamp, zone: &TimeZone) -> Self {
        let date = zone.to_datetime(at).date();
        Self {
            year: date.year(),
            month: date.month(),
        }
    }

    pub fn first_day(self) -> Result<Date, jiff::Error> {
        Date::new(self.year, self.month, 1)
    }

    pub fn previous(self) -> Result<Self, jiff::Error> {
        let day = self.first_day()?.checked_sub(1.month())?;
        Ok(Self {
            year: day.year(),
            month: day.month(),
        })
    }

    pub fn next(self) -> Result<Self, jiff::Error> {
        let day = self.first_day()?.checked_add(1.month())?;
        Ok(Self {
            year: day.year(),
            month: day.month(),
        })
    }

    /// `YYYY-MM`, as `status.reports[].month` records it.
    pub fn label(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// From its first midnight to the next month's, in `zone`.
    pub fn span(self, zone: &TimeZone) -> Result<Span, jiff::Error> {
        availability::month(self.year, self.month, zone)
    }
}

/// When the report of `month` is due: business hours' opening on the first business day of
/// the next month (weekends, Japanese public holidays and company holidays skipped).
pub fn due_at(month: Month, calendar: &Calendar) -> Result<Timestamp, jiff::Error> {
    let first = month.next()?.first_day()?;
    Ok(calendar.opening_of_business(calendar.business_day_from(first)))
}

/// The month whose report is due at `now`: the past month, once its due time has come. Only
/// the past month: a report missed for a whole month is not sent a month late.
pub fn due_month(now: Timestamp, calendar: &Calendar) -> Option<Month> {
    let past = Month::of(now, calendar.time_zone()).previous().ok()?;
    let due = due_at(past, calendar).ok()?;
    (now >= due).then_some(past)
}

/// Whether an incident's outages count as downtime (a mass-mail lock is not an outage).
pub fn is_downtime(kind: IncidentKind) -> bool {
    matches!(kind, IncidentKind::ServiceDown | IncidentKind::HostDown)
}

/// The outages an incident records: each `Down` entry of its timeline up to the next
/// `Recovered` (a reopened incident holds several); one still open ends at `resolvedAt`, else
/// is still running. An incident without a timeline counts from `startedAt` to `resolvedAt`.
pub fn outages(incident: &Incident) -> Vec<Outage> {
    let Some(status) = incident.status.as_ref() else {
        return Vec::new();
    };
    let mut entries: Vec<_> = status.timeline.iter().collect();
    entries.sort_by_key(|e| e.time.0);
    let mut out = Vec::new();
    let mut open: Option<Timestamp> = None;
    for entry in entries {
        match entry.event.as_str() {
            event::DOWN if open.is_none() => open = Some(entry.time.0),
            event::RECOVERED => {
                if let Some(start) = open.take() {
                    out.push(Outage {
                        start,
                        end: Some(entry.time.0),
                    });
                }
            }
            _ => {}
        }
    }
    let resolved = status.resolved_at.as_ref().map(|t| t.0);
    if let Some(start) = open {
        out.push(Outage {
            start,
            end: resolved.filter(|r| *r >= start),
        });
    }
    if out.is_empty()
        && let Some(started) = &status.started_at
    {
        out.push(Outage {
            start: started.0,
            end: resolved,
        });
    }
    out
}

/// The intervals of the windows naming the target (a window that ended early on recovery
/// counts up to then).
pub fn window_spans(windows: &[Window], target: &Target) -> Vec<Span> {
    windows
        .iter()
        .filter(|w| w.names(target))
        .map(|w| Span::new(w.start, w.ended_at()))
        .collect()
}

/// One end user as the report sees it.
#[derive(Debug, Clone)]
pub struct EndUserInput<'a> {
    /// How the reseller knows it: the login ID, else the name.
    pub label: String,
    /// Its namespace (the reseller's) and name.
    pub namespace: &'a str,
    pub name: &'a str,
    /// Counted from here when it began during the month.
    pub created: Timestamp,
    /// The services monitored for it.
    pub services: Vec<ServiceName>,
    /// The nodes its pods run on (for the provider's node windows).
    pub nodes: Vec<String>,
    /// Its incidents (any month).
    pub incidents: Vec<&'a Incident>,
}

/// Everything a reseller's report of one month is made of.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    pub brand: String,
    pub month: Month,
    pub zone: TimeZone,
    pub end_users: Vec<EndUserInput<'a>>,
    pub windows: &'a [Window],
    pub now: Timestamp,
}

/// The report, with the reseller's total.
pub fn build(input: &ReportInput<'_>) -> Result<(AvailabilityReport, Figures), jiff::Error> {
    let period = input.month.span(&input.zone)?;
    let mut lines = Vec::new();
    let mut incidents = Vec::new();
    let mut all = Vec::new();
    for user in &input.end_users {
        let measured = Span::new(period.start.max(user.created), period.end);
        for &service in &user.services {
            let target = Target {
                namespace: user.namespace,
                end_user: user.name,
                service,
                nodes: &user.nodes,
            };
            let down: Vec<Outage> = user
                .incidents
                .iter()
                .filter(|i| i.spec.service == service && is_downtime(i.spec.kind))
                .flat_map(|i| outages(i))
                .collect();
            let windows = window_spans(input.windows, &target);
            let figures = availability::figures(measured, &down, &windows, input.now);
            all.push(figures);
            lines.push(ReportLine {
                end_user: user.label.clone(),
                service: service_text(service),
                availability: percent(&figures),
                down: figures.down,
                maintenance: figures.maintenance,
            });
        }
        for incident in &user.incidents {
            let spans = outages(incident);
            let in_month: Vec<Span> = spans
                .iter()
                .filter_map(|o| {
                    let span = Span::new(o.start.max(period.start), o.end.unwrap_or(input.now));
                    (span.start < span.end.min(period.end))
                        .then(|| Span::new(span.start, span.end.min(period.end)))
                })
                .collect();
            if in_month.is_empty() {
                continue;
            }
            let Some(first) = spans.first() else { continue };
            let down = if is_downtime(incident.spec.kind) {
                in_month.iter().fold(SignedDuration::ZERO, |sum, s| {
                    sum + s.end.duration_since(s.start)
                })
            } else {
                SignedDuration::ZERO
            };
            incidents.push(ReportIncident {
                name: kube::ResourceExt::name_any(*incident),
                end_user: user.label.clone(),
                service: service_text(incident.spec.service),
                kind: incident.spec.kind,
                started: first.start,
                resolved: incident
                    .status
                    .as_ref()
                    .and_then(|s| s.resolved_at.as_ref())
                    .map(|t| t.0),
                down,
                cause: incident.spec.cause.clone().filter(|c| !c.trim().is_empty()),
            });
        }
    }
    incidents.sort_by(|a, b| (a.started, &a.name).cmp(&(b.started, &b.name)));
    let total = availability::reseller_total(all);
    let report = AvailabilityReport {
        brand: input.brand.clone(),
        year: input.month.year,
        month: input.month.month,
        time_zone: input.zone.clone(),
        period,
        availability: percent(&total),
        down: total.down,
        maintenance: total.maintenance,
        lines,
        incidents,
    };
    Ok((report, total))
}

/// `99.987`: rounded down, three decimals.
pub fn percent(figures: &Figures) -> String {
    format!(
        "{:.*}",
        DECIMALS as usize,
        figures.percent(DECIMALS).max(0.0)
    )
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
