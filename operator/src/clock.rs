//! "Now", injected: the system clock in production, a file-controlled clock in tests, so a
//! future start date or a report deadline can be reached without waiting for it.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The system clock shifted by the offset written in a file (`+86400s`, `-3600s`, or an RFC 3339
/// instant the clock jumps to and runs on from). Re-read on every call so tests can move time;
/// an absent or unreadable file means no shift.
#[derive(Debug, Clone)]
pub struct FileClock {
    path: PathBuf,
    started: Timestamp,
}

impl FileClock {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            started: Timestamp::now(),
        }
    }
}

impl Clock for FileClock {
    fn now(&self) -> Timestamp {
        let real = Timestamp::now();
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return real;
        };
        shifted(real, self.started, text.trim()).unwrap_or(real)
    }
}

/// Applies a clock file's content to the real time; `None` when it cannot be understood.
fn shifted(real: Timestamp, started: Timestamp, text: &str) -> Option<Timestamp> {
    if let Some(secs) = text.strip_suffix('s') {
        let secs: i64 = secs.trim_start_matches('+').parse().ok()?;
        return real.checked_add(jiff::SignedDuration::from_secs(secs)).ok();
    }
    let anchor: Timestamp = text.parse().ok()?;
    anchor.checked_add(real.duration_since(started)).ok()
}

pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_in_seconds_shifts_the_real_time() {
        let real: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let got = shifted(real, real, "+86400s").unwrap();
        assert_eq!(got.to_string(), "2026-01-02T00:00:00Z");
        let back = shifted(real, real, "-60s").unwrap();
        assert_eq!(back.to_string(), "2025-12-31T23:59:00Z");
    }

    #[test]
    fn an_instant_is_jumped_to_and_runs_on() {
        let started: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let real: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        let got = shifted(real, started, "2030-04-01T00:00:00Z").unwrap();
        assert_eq!(got.to_string(), "2030-04-01T00:00:10Z");
    }

    #[test]
    fn garbage_is_not_understood() {
        let real = Timestamp::now();
        assert!(shifted(real, real, "tomorrow").is_none());
    }
}
