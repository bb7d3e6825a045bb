//! When each target is probed (pure; time is `tokio::time`, so tests pause it): once per
//! interval at a stable offset within it (a hash of the target's key), so a sweep is spread
//! evenly; after a failure every retry interval until the target answers, then back on its
//! own slot of the interval.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// Where a target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Waiting for its next probe.
    Due(Instant),
    /// A probe is running.
    Probing,
}

/// The probe times of a set of targets.
#[derive(Debug)]
pub struct Schedule<K> {
    interval: Duration,
    retry: Duration,
    /// The start of the first interval; each target's slots are `epoch + offset + k·interval`.
    epoch: Instant,
    slots: HashMap<K, (Duration, Slot)>,
    /// Due targets ordered by time (then key), to find the next ones without a full scan.
    queue: BTreeSet<(Instant, K)>,
}

/// The stable offset of `id` within `interval`.
pub fn offset(id: &str, interval: Duration) -> Duration {
    let digest = Sha256::digest(id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let nanos = interval.as_nanos().max(1);
    Duration::from_nanos((u128::from(u64::from_be_bytes(head)) % nanos) as u64)
}

impl<K: Clone + Eq + Hash + Ord> Schedule<K> {
    pub fn new(interval: Duration, retry: Duration, now: Instant) -> Self {
        Self {
            interval,
            retry,
            epoch: now,
            slots: HashMap::new(),
            queue: BTreeSet::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Makes the schedule hold exactly `targets` (with their ids): new ones get their first
    /// slot, gone ones are forgotten, the others keep theirs.
    pub fn sync<'a>(&mut self, targets: impl IntoIterator<Item = (K, &'a str)>, now: Instant) {
        let mut keep = HashMap::with_capacity(self.slots.len());
        for (key, id) in targets {
            if let Some(slot) = self.slots.remove(&key) {
                keep.insert(key, slot);
                continue;
            }
            let off = offset(id, self.interval);
            let due = self.next_slot(off, now);
            self.queue.insert((due, key.clone()));
            keep.insert(key, (off, Slot::Due(due)));
        }
        for (key, (_, slot)) in self.slots.drain() {
            if let Slot::Due(at) = slot {
                self.queue.remove(&(at, key));
            }
        }
        self.slots = keep;
    }

    /// The first slot of a target with offset `off` at or after `now`.
    fn next_slot(&self, off: Duration, now: Instant) -> Instant {
        let first = self.epoch + off;
        if now <= first {
            return first;
        }
        let interval = self.interval.as_nanos().max(1);
        let periods = (now - first).as_nanos().div_ceil(interval);
        first + Duration::from_nanos((periods * interval) as u64)
    }

    /// When the next target is due, if any is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// Takes up to `limit` targets due at `now`, earliest first, and marks them probing.
    pub fn take_due(&mut self, now: Instant, limit: usize) -> Vec<K> {
        let mut due = Vec::new();
        while due.len() < limit {
            match self.queue.first() {
                Some((at, _)) if *at <= now => {}
                _ => break,
            }
            let Some((_, key)) = self.queue.pop_first() else {
                break;
            };
            if let Some((_, slot)) = self.slots.get_mut(&key) {
                *slot = Slot::Probing;
            }
            due.push(key);
        }
        due
    }

    /// Records a finished probe: up → the target's next slot of the interval; down → again
    /// after the retry interval. Returns when it is due next (None: no longer scheduled).
    pub fn record(&mut self, key: &K, up: bool, now: Instant) -> Option<Instant> {
        let (off, slot) = self.slots.get(key).copied()?;
        if let Slot::Due(at) = slot {
            self.queue.remove(&(at, key.clone()));
        }
        let due = if up {
            // Strictly after now, so a probe that finished inside its own slot does not rerun.
            self.next_slot(off, now + Duration::from_nanos(1))
        } else {
            now + self.retry
        };
        self.slots.insert(key.clone(), (off, Slot::Due(due)));
        self.queue.insert((due, key.clone()));
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(600);
    const RETRY: Duration = Duration::from_secs(60);

    /// Runs the schedule for `span`, every probe finishing at once with `up(key, now)`;
    /// returns every (key, time since start) probed.
    async fn run(
        schedule: &mut Schedule<String>,
        span: Duration,
        up: impl Fn(&str, Duration) -> bool,
    ) -> Vec<(String, Duration)> {
        let start = Instant::now();
        let mut seen = Vec::new();
        while let Some(next) = schedule.next_due() {
            if next > start + span {
                break;
            }
            tokio::time::sleep_until(next).await;
            // The timer wakes on a millisecond tick; the schedule's own time is exact.
            let now = next;
            for key in schedule.take_due(now, usize::MAX) {
                let at = now - start;
                schedule.record(&key, up(&key, at), now);
                seen.push((key, at));
            }
        }
        seen
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("enduser/r/u{i}/http")).collect()
    }

    fn schedule(keys: &[String]) -> Schedule<String> {
        let mut s = Schedule::new(INTERVAL, RETRY, Instant::now());
        s.sync(keys.iter().map(|k| (k.clone(), k.as_str())), Instant::now());
        s
    }

    #[tokio::test(start_paused = true)]
    async fn ten_targets_over_600s_are_probed_once_each_at_distinct_offsets() {
        let keys = keys(10);
        let mut s = schedule(&keys);
        let seen = run(&mut s, INTERVAL - Duration::from_nanos(1), |_, _| true).await;
        assert_eq!(seen.len(), 10);
        let offsets: BTreeSet<Duration> = seen.iter().map(|(_, at)| *at).collect();
        assert_eq!(offsets.len(), 10, "distinct offsets: {seen:?}");
        assert!(offsets.iter().all(|o| *o < INTERVAL));
    }

    #[tokio::test(start_paused = true)]
    async fn each_target_keeps_its_offset_every_interval() {
        let keys = keys(10);
        let mut s = schedule(&keys);
        let seen = run(&mut s, INTERVAL * 3, |_, _| true).await;
        for key in &keys {
            let times: Vec<Duration> = seen
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, t)| *t)
                .collect();
            assert!(times.len() >= 3, "{key}: {times:?}");
            for pair in times.windows(2) {
                assert_eq!(pair[1] - pair[0], INTERVAL);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_targets_are_spread_evenly() {
        let keys = keys(1000);
        let mut s = schedule(&keys);
        let seen = run(&mut s, INTERVAL - Duration::from_nanos(1), |_, _| true).await;
        assert_eq!(seen.len(), 1000);
        // Ten buckets of 60 s: each holds roughly a tenth.
        let mut buckets = [0usize; 10];
        for (_, at) in &seen {
            buckets[(at.as_secs() / 60) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|b| (60..=140).contains(b)),
            "{buckets:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_target_is_rechecked_every_retry_interval_until_it_answers() {
        let keys = keys(1);
        let mut s = schedule(&keys);
        let first = s.next_due().unwrap() - Instant::now();
        // Down for the first five probes, up afterwards.
        let recovered = first + RETRY * 4;
        let seen = run(&mut s, first + RETRY * 4 + INTERVAL * 2, |_, at| {
            at >= recovered
        })
        .await;
        let times: Vec<Duration> = seen.iter().map(|(_, t)| *t).collect();
        let gaps: Vec<Duration> = times.windows(2).map(|p| p[1] - p[0]).collect();
        assert_eq!(&gaps[..4], &[RETRY; 4], "{times:?}");
        // Recovered: back to its own slot of the interval, then every interval.
        let after = &times[5..];
        assert!(!after.is_empty());
        for t in after {
            assert_eq!((*t - first).as_nanos() % INTERVAL.as_nanos(), 0, "{t:?}");
        }
        for pair in after.windows(2) {
            assert_eq!(pair[1] - pair[0], INTERVAL);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_probe_is_not_taken_twice_and_limits_are_kept() {
        let keys = keys(50);
        let mut s = schedule(&keys);
        tokio::time::advance(INTERVAL).await;
        let now = Instant::now();
        let first = s.take_due(now, 20);
        assert_eq!(first.len(), 20);
        let rest = s.take_due(now, usize::MAX);
        assert_eq!(rest.len(), 30);
        assert!(s.take_due(now, usize::MAX).is_empty());
        assert_eq!(s.next_due(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn targets_that_disappear_are_forgotten_and_new_ones_get_a_slot() {
        let keys = keys(3);
        let mut s = schedule(&keys);
        let now = Instant::now();
        s.sync(
            [(keys[0].clone(), keys[0].as_str()), ("new".into(), "new")],
            now,
        );
        assert_eq!(s.len(), 2);
        tokio::time::advance(INTERVAL).await;
        let mut due = s.take_due(Instant::now(), usize::MAX);
        due.sort();
        assert_eq!(due, [keys[0].clone(), "new".to_string()]);
        assert_eq!(s.record(&keys[1], true, Instant::now()), None);
    }

    #[test]
    fn offsets_are_stable_and_within_the_interval() {
        let a = offset("enduser/r/u/http", INTERVAL);
        assert_eq!(a, offset("enduser/r/u/http", INTERVAL));
        assert!(a < INTERVAL);
        assert_ne!(a, offset("enduser/r/u/https", INTERVAL));
    }
}
