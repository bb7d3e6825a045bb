//! Usage figures as values: what one hosting namespace uses, how end users' figures add up to
//! their reseller's, when a measurement is taken and which accounting period network traffic
//! covers, and how figures become the `status.usage` quantities. No I/O here.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use oem_crds::Usage;

/// Figures in bytes; `None` where nothing was measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    pub disk: Option<f64>,
    pub memory: Option<f64>,
    pub network_in: Option<f64>,
    pub network_out: Option<f64>,
}

/// One query's answer: bytes by hosting namespace, or `None` when the query failed.
pub type Reading = Option<BTreeMap<String, f64>>;

/// Everything one measurement read. Network traffic is read once per time zone, since each
/// reseller's accounting period starts at midnight of the 1st in its own time zone.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub disk: Reading,
    pub memory: Reading,
    /// Time zone → received bytes in the period.
    pub network_in: BTreeMap<String, Reading>,
    /// Time zone → sent bytes in the period.
    pub network_out: BTreeMap<String, Reading>,
}

impl Snapshot {
    /// The figures of one hosting namespace whose reseller keeps `time_zone`.
    ///
    /// A namespace the source has no series for, in a query that worked, has no running
    /// container: memory and traffic are 0. Its volumes still hold data while unmounted (a
    /// suspended end user), so disk stays unmeasured there and the caller keeps the last figure.
    pub fn figures_of(&self, namespace: &str, time_zone: &str) -> Figures {
        let found = |reading: &Reading| {
            reading
                .as_ref()
                .map(|by_ns| by_ns.get(namespace).copied().unwrap_or(0.0))
        };
        let network = |by_tz: &BTreeMap<String, Reading>| by_tz.get(time_zone).and_then(found);
        Figures {
            disk: self
                .disk
                .as_ref()
                .and_then(|by_ns| by_ns.get(namespace).copied()),
            memory: found(&self.memory),
            network_in: network(&self.network_in),
            network_out: network(&self.network_out),
        }
    }
}

impl Figures {
    /// Each figure measured now, else the one reported before.
    pub fn or(self, previous: Figures) -> Figures {
        Figures {
            disk: self.disk.or(previous.disk),
            memory: self.memory.or(previous.memory),
            network_in: self.network_in.or(previous.network_in),
            network_out: self.network_out.or(previous.network_out),
        }
    }

    /// The sum of two: a figure measured on either side counts.
    pub fn plus(self, other: Figures) -> Figures {
        let add = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        Figures {
            disk: add(self.disk, other.disk),
            memory: add(self.memory, other.memory),
            network_in: add(self.network_in, other.network_in),
            network_out: add(self.network_out, other.network_out),
        }
    }

    /// The figures a stored `status.usage` reports.
    pub fn from_usage(usage: Option<&Usage>) -> Figures {
        let value = |q: &Option<Quantity>| q.as_ref().and_then(|q| oem_crds::quantity::value(&q.0));
        usage
            .map(|u| Figures {
                disk: value(&u.disk),
                memory: value(&u.memory),
                network_in: value(&u.network_in),
                network_out: value(&u.network_out),
            })
            .unwrap_or_default()
    }

    /// `status.usage` for these figures, measured at `at`; whole bytes.
    pub fn to_usage(self, at: Timestamp) -> Usage {
        Usage {
            disk: self.disk.map(quantity),
            memory: self.memory.map(quantity),
            network_in: self.network_in.map(quantity),
            network_out: self.network_out.map(quantity),
            updated_at: Some(Time(at)),
        }
    }

    /// Whether `usage` already reports these figures (to the byte), whenever it was measured.
    pub fn reported_by(self, usage: Option<&Usage>) -> bool {
        let stored = Figures::from_usage(usage);
        let same = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => whole_bytes(a) == whole_bytes(b),
            (None, None) => true,
            _ => false,
        };
        usage.is_some()
            && same(self.disk, stored.disk)
            && same(self.memory, stored.memory)
            && same(self.network_in, stored.network_in)
            && same(self.network_out, stored.network_out)
    }
}

fn whole_bytes(bytes: f64) -> u64 {
    if bytes.is_finite() && bytes > 0.0 {
        bytes.round() as u64
    } else {
        0
    }
}

/// Bytes as a Kubernetes quantity, rounded to whole bytes, with the largest binary (`Gi`) or
/// else decimal (`G`) suffix that keeps the number whole: `1536Mi`, `150M`, `1234567`.
pub fn quantity(bytes: f64) -> Quantity {
    let n = whole_bytes(bytes);
    if n == 0 {
        return Quantity("0".into());
    }
    const BINARY: [(&str, u32); 6] = [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ];
    const DECIMAL: [(&str, u32); 6] = [
        ("E", 18),
        ("P", 15),
        ("T", 12),
        ("G", 9),
        ("M", 6),
        ("k", 3),
    ];
    for (suffix, power) in BINARY {
        let factor = 1u64 << power;
        if n.is_multiple_of(factor) {
            return Quantity(format!("{}{suffix}", n / factor));
        }
    }
    for (suffix, power) in DECIMAL {
        let factor = 10u64.pow(power);
        if n.is_multiple_of(factor) {
            return Quantity(format!("{}{suffix}", n / factor));
        }
    }
    Quantity(n.to_string())
}

/// The instant a measurement stands for: `now` rounded down to a multiple of `interval` since
/// the Unix epoch.
pub fn measurement_instant(now: Timestamp, interval: Duration) -> Timestamp {
    let step = interval.as_secs().max(1) as i64;
    let secs = now.as_second().div_euclid(step) * step;
    Timestamp::from_second(secs).unwrap_or(now)
}

/// Start of the accounting period that `at` falls in: midnight of the 1st of that calendar
/// month in `time_zone` (an unknown zone counts as Asia/Tokyo, the reseller default).
pub fn period_start(at: Timestamp, time_zone: &str) -> Timestamp {
    let tz = TimeZone::get(time_zone)
        .or_else(|_| TimeZone::get("Asia/Tokyo"))
        .unwrap_or(TimeZone::UTC);
    let local = at.to_zoned(tz.clone());
    local
        .date()
        .first_of_month()
        .to_zoned(tz)
        .map(|start| start.timestamp())
        .unwrap_or(at)
}

/// Every figure measured as 0.
pub const ZERO: Figures = Figures {
    disk: Some(0.0),
    memory: Some(0.0),
    network_in: Some(0.0),
    network_out: Some(0.0),
};

/// Adds end users' figures up per reseller, starting from `base`: [`ZERO`] when the source
/// answered every query (a reseller whose end users were all deleted then reports zeros), else
/// nothing (a reseller reports only what its end users' figures say).
pub fn sum_by_reseller<'a>(
    resellers: impl IntoIterator<Item = &'a str>,
    endusers: impl IntoIterator<Item = (&'a str, Figures)>,
    base: Figures,
) -> BTreeMap<String, Figures> {
    let zero = base;
    let mut sums: BTreeMap<String, Figures> = resellers
        .into_iter()
        .map(|r| (r.to_owned(), zero))
        .collect();
    for (reseller, figures) in endusers {
        let sum = sums.entry(reseller.to_owned()).or_insert(zero);
        *sum = sum.plus(figures);
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn reading(pairs: &[(&str, f64)]) -> Reading {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
    }

    #[test]
    fn quantities_use_the_largest_suffix_that_keeps_them_whole() {
        assert_eq!(quantity(0.0).0, "0");
        assert_eq!(quantity(1024.0 * 1024.0 * 1536.0).0, "1536Mi");
        assert_eq!(quantity(3.0 * 1024f64.powi(3)).0, "3Gi");
        assert_eq!(quantity(150_000_000.0).0, "150M");
        assert_eq!(quantity(1_234_567.0).0, "1234567");
        assert_eq!(quantity(999.6).0, "1k");
        assert_eq!(quantity(-5.0).0, "0");
        assert_eq!(quantity(f64::NAN).0, "0");
    }

    #[test]
    fn a_measurement_stands_for_the_last_aligned_instant() {
        let five = Duration::from_secs(300);
        assert_eq!(
            measurement_instant(at("2026-11-26T01:43:14Z"), five),
            at("2026-11-26T01:40:00Z")
        );
        assert_eq!(
            measurement_instant(at("2026-11-26T01:45:00Z"), five),
            at("2026-11-26T01:45:00Z")
        );
    }

    #[test]
    fn the_accounting_period_is_the_calendar_month_of_the_resellers_time_zone() {
        // 2026-11-30T20:00Z is already December 1st in Tokyo (UTC+9).
        assert_eq!(
            period_start(at("2026-11-30T20:00:00Z"), "Asia/Tokyo"),
            at("2026-11-30T15:00:00Z")
        );
        assert_eq!(
            period_start(at("2026-11-30T20:00:00Z"), "UTC"),
            at("2026-11-01T00:00:00Z")
        );
        // An unknown zone falls back to the default, Asia/Tokyo.
        assert_eq!(
            period_start(at("2026-11-30T20:00:00Z"), "Mars/Olympus"),
            at("2026-11-30T15:00:00Z")
        );
    }

    #[test]
    fn an_absent_namespace_ran_nothing_but_keeps_its_disk() {
        let mut snapshot = Snapshot {
            disk: reading(&[("h-a", 100.0)]),
            memory: reading(&[("h-a", 50.0)]),
            ..Snapshot::default()
        };
        snapshot
            .network_in
            .insert("Asia/Tokyo".into(), reading(&[("h-a", 7.0)]));
        snapshot.network_out.insert("Asia/Tokyo".into(), None);
        let a = snapshot.figures_of("h-a", "Asia/Tokyo");
        assert_eq!(a.disk, Some(100.0));
        assert_eq!(a.memory, Some(50.0));
        assert_eq!(a.network_in, Some(7.0));
        assert_eq!(a.network_out, None, "the failed query measured nothing");
        let b = snapshot.figures_of("h-b", "Asia/Tokyo");
        assert_eq!(
            (b.disk, b.memory, b.network_in),
            (None, Some(0.0), Some(0.0))
        );
        let previous = Figures {
            disk: Some(42.0),
            network_out: Some(9.0),
            ..Figures::default()
        };
        let kept = b.or(previous);
        assert_eq!(kept.disk, Some(42.0));
        assert_eq!(kept.network_out, Some(9.0));
        assert_eq!(kept.memory, Some(0.0));
    }

    #[test]
    fn resellers_sum_their_end_users_and_an_empty_one_reports_zero() {
        let f = |d: f64, m: f64| Figures {
            disk: Some(d),
            memory: Some(m),
            network_in: Some(1.0),
            network_out: None,
        };
        let sums = sum_by_reseller(
            ["acme", "empty"],
            [("acme", f(100.0, 10.0)), ("acme", f(200.0, 20.0))],
            ZERO,
        );
        assert_eq!(sums["acme"].disk, Some(300.0));
        assert_eq!(sums["acme"].memory, Some(30.0));
        assert_eq!(sums["acme"].network_in, Some(2.0));
        assert_eq!(sums["acme"].network_out, Some(0.0));
        assert_eq!(sums["empty"].disk, Some(0.0));
        // Nothing measured (no source answered): nothing reported, not zeros.
        let unmeasured =
            sum_by_reseller(["acme"], [("acme", Figures::default())], Figures::default());
        assert_eq!(unmeasured["acme"], Figures::default());
    }

    #[test]
    fn figures_already_reported_need_no_write() {
        let figures = Figures {
            disk: Some(3.0 * 1024f64.powi(3)),
            memory: Some(512.0 * 1024f64.powi(2)),
            network_in: Some(150_000_000.4),
            network_out: None,
        };
        let usage = figures.to_usage(at("2026-11-26T01:40:00Z"));
        assert_eq!(usage.disk.as_ref().unwrap().0, "3Gi");
        assert_eq!(usage.memory.as_ref().unwrap().0, "512Mi");
        assert_eq!(usage.network_in.as_ref().unwrap().0, "150M");
        assert!(figures.reported_by(Some(&usage)));
        assert!(!figures.reported_by(None));
        let grown = Figures {
            disk: Some(3.0 * 1024f64.powi(3) + 1.0),
            ..figures
        };
        assert!(!grown.reported_by(Some(&usage)));
        let measured_more = Figures {
            network_out: Some(0.0),
            ..figures
        };
        assert!(!measured_more.reported_by(Some(&usage)));
    }
}
