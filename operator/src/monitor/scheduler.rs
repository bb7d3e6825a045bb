//! When each target is probed (pure; time is `tokio::time`, so tests pause it): once per
//! interval at a stable offset within it (a hash of the target's key), so a sweep is spread
//! evenly; after a failure every retry interval until the target answers, then back on its
//! own slot of the interval. A target still down once the reseller has been told (`backoff
//! after`) is re-checked less and less often, the wait doubling up to a cap, until it answers.
//!
//! Probe capacity is shared fairly between owners (resellers, and the provider for nodes):
//! each free slot goes to the owner with a due target and the fewest probes running, so an
//! owner whose targets all hang until the timeout holds at most the slots nobody else wants,
//! and another owner's due target waits for one probe to finish, not for the whole queue.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// Whose share of the probe capacity a target uses.
pub trait Owner {
    /// The owner's name (a reseller; empty for the provider's own targets).
    fn owner(&self) -> &str;
}

/// A shared key is owned as the key it points to.
impl<K: Owner + ?Sized> Owner for std::sync::Arc<K> {
    fn owner(&self) -> &str {
        (**self).owner()
    }
}

/// Where a target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Waiting for its next probe.
    Due(Instant),
    /// A probe is running.
    Probing,
}

/// One target: its offset in the interval, where it stands, and its current outage.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: Duration,
    slot: Slot,
    /// The end of the first failed probe of the current outage.
    down_since: Option<Instant>,
    /// Re-checks backed off so far in this outage.
    backoffs: u32,
}

/// How failed targets are re-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// The wait after a failure.
    pub every: Duration,
    /// A target down this long (the reseller has been told) backs off: each further wait
    /// doubles. `None`: never.
    pub backoff_after: Option<Duration>,
    /// The longest wait between re-checks.
    pub max: Duration,
}

impl Retry {
    /// Every `every`, without back-off.
    pub fn fixed(every: Duration) -> Self {
        Self {
            every,
            backoff_after: None,
            max: every,
        }
    }
}

/// The due targets of one owner and its probes running.
#[derive(Debug)]
struct Queue<K> {
    /// Due targets ordered by time (then key).
    due: BTreeSet<(Instant, K)>,
    running: usize,
}

impl<K> Default for Queue<K> {
    fn default() -> Self {
        Self {
            due: BTreeSet::new(),
            running: 0,
        }
    }
}

/// The probe times of a set of targets.
#[derive(Debug)]
pub struct Schedule<K> {
    interval: Duration,
    retry: Retry,
    /// The start of the first interval; each target's slots are `epoch + offset + k·interval`.
    epoch: Instant,
    /// Ordered, not hashed: a hash table keeps up to twice its entries' room (at 2,000 end
    /// users, 14,032 targets, this table was 4.2 MB at the heap's peak), a B-tree built from a
    /// sorted list about their size.
    slots: BTreeMap<K, Entry>,
    /// Each owner's queue (owners with neither due targets nor running probes are dropped).
    queues: BTreeMap<String, Queue<K>>,
}

/// The stable offset of `id` within `interval`.
pub fn offset(id: &str, interval: Duration) -> Duration {
    let digest = Sha256::digest(id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let nanos = interval.as_nanos().max(1);
    Duration::from_nanos((u128::from(u64::from_be_bytes(head)) % nanos) as u64)
}

impl<K: Clone + Ord + Owner> Schedule<K> {
    pub fn new(interval: Duration, retry: Retry, now: Instant) -> Self {
        Self {
            interval,
            retry,
            epoch: now,
            slots: BTreeMap::new(),
            queues: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn enqueue(&mut self, key: &K, at: Instant) {
        let queue = self.queues.entry(key.owner().to_owned()).or_default();
        queue.due.insert((at, key.clone()));
    }

    /// Forgets a due time or a running probe of `key` in its owner's queue.
    fn dequeue(&mut self, key: &K, slot: Slot) {
        let owner = key.owner();
        let Some(queue) = self.queues.get_mut(owner) else {
            return;
        };
        match slot {
            Slot::Due(at) => {
                queue.due.remove(&(at, key.clone()));
            }
            Slot::Probing => queue.running = queue.running.saturating_sub(1),
        }
        if queue.due.is_empty() && queue.running == 0 {
            self.queues.remove(owner);
        }
    }

    /// Makes the schedule hold exactly `targets` (with their ids): new ones get their first
    /// slot, gone ones are forgotten, the others keep theirs.
    pub fn sync<'a>(&mut self, targets: impl IntoIterator<Item = (K, &'a str)>, now: Instant) {
        let mut keep = Vec::with_capacity(self.slots.len());
        for (key, id) in targets {
            if let Some(entry) = self.slots.remove(&key) {
                keep.push((key, entry));
                continue;
            }
            let offset = offset(id, self.interval);
            let due = self.next_slot(offset, now);
            self.enqueue(&key, due);
            let entry = Entry {
                offset,
                slot: Slot::Due(due),
                down_since: None,
                backoffs: 0,
            };
            keep.push((key, entry));
        }
        for (key, entry) in std::mem::take(&mut self.slots) {
            self.dequeue(&key, entry.slot);
        }
        // Collected whole, the tree is built from the sorted list with full nodes; inserted
        // one by one in order, its nodes would be half empty.
        self.slots = keep.into_iter().collect();
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
        self.queues
            .values()
            .filter_map(|q| q.due.first().map(|(at, _)| *at))
            .min()
    }

    /// Takes up to `limit` targets due at `now` and marks them probing. Each goes to the owner
    /// with a due target and the fewest probes running (then the earliest due, then the name),
    /// and within an owner the earliest due first.
    pub fn take_due(&mut self, now: Instant, limit: usize) -> Vec<K> {
        let mut due = Vec::new();
        while due.len() < limit {
            let next = self
                .queues
                .iter()
                .filter_map(|(owner, q)| {
                    let (at, _) = q.due.first()?;
                    (*at <= now).then_some((q.running, *at, owner))
                })
                .min()
                .map(|(_, _, owner)| owner.clone());
            let Some(owner) = next else {
                break;
            };
            let Some(queue) = self.queues.get_mut(&owner) else {
                break;
            };
            let Some((_, key)) = queue.due.pop_first() else {
                break;
            };
            queue.running += 1;
            if let Some(entry) = self.slots.get_mut(&key) {
                entry.slot = Slot::Probing;
            }
            due.push(key);
        }
        due
    }

    /// Records a finished probe: up → the target's next slot of the interval; down → again
    /// after the retry interval, backed off once the outage is older than `backoff_after`.
    /// Returns when it is due next (None: no longer scheduled).
    pub fn record(&mut self, key: &K, up: bool, now: Instant) -> Option<Instant> {
        let mut entry = self.slots.get(key).copied()?;
        self.dequeue(key, entry.slot);
        let due = if up {
            entry.down_since = None;
            entry.backoffs = 0;
            // Strictly after now, so a probe that finished inside its own slot does not rerun.
            self.next_slot(entry.offset, now + Duration::from_nanos(1))
        } else {
            let since = *entry.down_since.get_or_insert(now);
            let wait = match self.retry.backoff_after {
                Some(after) if now.saturating_duration_since(since) >= after => {
                    entry.backoffs = entry.backoffs.saturating_add(1);
                    let doubled = self
                        .retry
                        .every
                        .saturating_mul(1u32 << entry.backoffs.min(20));
                    doubled.min(self.retry.max).max(self.retry.every)
                }
                _ => self.retry.every,
            };
            now + wait
        };
        entry.slot = Slot::Due(due);
        self.slots.insert(key.clone(), entry);
        self.enqueue(key, due);
        Some(due)
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
