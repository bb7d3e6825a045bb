//! Wrong-password limits. Per login ID: `maxFailures` wrong passwords within `window` lock the
//! login for `duration`; the lock is published on the EndUser as the annotation
//! [`LOCK_ANNOTATION`] (its end, RFC 3339) so the reseller sees it (`kubectl get enduser -o
//! yaml`) and lifts it by removing the annotation. Until the annotation is written, and for
//! [`CACHE_CATCH_UP`] after (while the panel's own cache may not show it yet), the lock is
//! held in memory; from then on the annotation alone decides. Per client address: `maxAddressFailures`
//! within `window` block the address for `duration` (memory only: an address is not the
//! reseller's business). Pure: the caller passes the time and what the EndUser shows.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};

use crate::config::LockoutConfig;

/// The EndUser annotation that says until when its panel login is locked.
pub const LOCK_ANNOTATION: &str = "hosting.oem.dev/panel-locked-until";

/// How long after the lock annotation was written the in-memory lock still holds, covering the
/// time the panel's EndUser cache takes to show the annotation.
pub const CACHE_CATCH_UP: SignedDuration = SignedDuration::from_secs(10);

/// A login as the limiter counts it: login IDs are unique within a reseller only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoginKey {
    pub reseller: String,
    pub login_id: String,
}

/// What a login attempt may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The login is locked until then.
    LoginLocked(Timestamp),
    /// The client's address is blocked until then.
    AddressBlocked(Timestamp),
}

#[derive(Debug, Default)]
struct Failures {
    times: VecDeque<Timestamp>,
    locked_until: Option<Timestamp>,
    /// When the lock annotation was written; None while it is not (yet, or the write failed).
    written_at: Option<Timestamp>,
}

impl Failures {
    fn note(&mut self, now: Timestamp, window: SignedDuration) -> usize {
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.times.pop_front();
        }
        self.times.push_back(now);
        self.times.len()
    }

    fn idle(&self, now: Timestamp, window: SignedDuration) -> bool {
        self.locked_until.is_none_or(|until| until <= now)
            && self
                .times
                .back()
                .is_none_or(|t| now.duration_since(*t) >= window)
    }
}

/// The counts and locks, in memory.
#[derive(Debug)]
pub struct Limiter {
    max_failures: usize,
    max_address_failures: usize,
    window: SignedDuration,
    duration: SignedDuration,
    logins: HashMap<LoginKey, Failures>,
    addresses: HashMap<IpAddr, Failures>,
}

/// Entries kept before idle ones are pruned.
const PRUNE_ABOVE: usize = 10_000;

impl Limiter {
    pub fn new(config: &LockoutConfig) -> Self {
        let span =
            |d: std::time::Duration| SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
        Self {
            max_failures: config.max_failures as usize,
            max_address_failures: config.max_address_failures as usize,
            window: span(config.window),
            duration: span(config.duration),
            logins: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    /// Whether an attempt may go on. `published` is the lock the EndUser's annotation shows
    /// (None: no annotation, or no such end user).
    pub fn check(
        &mut self,
        login: &LoginKey,
        address: IpAddr,
        published: Option<Timestamp>,
        now: Timestamp,
    ) -> Verdict {
        // The in-memory lock, while the annotation is not written or may not be cached yet.
        let ours = self
            .logins
            .get(login)
            .filter(|e| {
                e.written_at
                    .is_none_or(|at| now.duration_since(at) < CACHE_CATCH_UP)
            })
            .and_then(|e| e.locked_until);
        let until = [ours, published].into_iter().flatten().max();
        if let Some(until) = until.filter(|u| *u > now) {
            return Verdict::LoginLocked(until);
        }
        if let Some(until) = self
            .addresses
            .get(&address)
            .and_then(|e| e.locked_until)
            .filter(|u| *u > now)
        {
            return Verdict::AddressBlocked(until);
        }
        Verdict::Allowed
    }

    /// The lock annotation ending at `until` was written on the EndUser.
    pub fn written(&mut self, login: &LoginKey, until: Timestamp, now: Timestamp) {
        if let Some(entry) = self.logins.get_mut(login)
            && entry.locked_until == Some(until)
        {
            entry.written_at = Some(now);
        }
    }

    /// Counts a wrong password. Returns the end of the login's lock when this failure locked
    /// it, which the caller publishes on the EndUser.
    pub fn failed(
        &mut self,
        login: &LoginKey,
        address: IpAddr,
        now: Timestamp,
    ) -> Option<Timestamp> {
        self.prune(now);
        let window = self.window;
        let until = now.saturating_add(self.duration).ok()?;
        let by_address = self.addresses.entry(address).or_default();
        if by_address.note(now, window) >= self.max_address_failures {
            by_address.locked_until = Some(until);
            by_address.times.clear();
        }
        let by_login = self.logins.entry(login.clone()).or_default();
        if by_login.note(now, window) >= self.max_failures {
            by_login.locked_until = Some(until);
            by_login.written_at = None;
            by_login.times.clear();
            return Some(until);
        }
        None
    }

    /// A right password: the login's count starts again.
    pub fn succeeded(&mut self, login: &LoginKey) {
        self.logins.remove(login);
    }

    fn prune(&mut self, now: Timestamp) {
        let window = self.window;
        if self.logins.len() > PRUNE_ABOVE {
            self.logins.retain(|_, e| !e.idle(now, window));
        }
        if self.addresses.len() > PRUNE_ABOVE {
            self.addresses.retain(|_, e| !e.idle(now, window));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter() -> Limiter {
        Limiter::new(&LockoutConfig {
            max_failures: 5,
            max_address_failures: 8,
            window: Duration::from_secs(900),
            duration: Duration::from_secs(900),
        })
    }

    fn login(id: &str) -> LoginKey {
        LoginKey {
            reseller: "sakura".into(),
            login_id: id.into(),
        }
    }

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn the_fifth_wrong_password_locks_the_login_for_the_duration() {
        let mut l = limiter();
        for i in 0..4 {
            assert_eq!(l.failed(&login("shop"), HOME, t(i)), None);
            assert_eq!(l.check(&login("shop"), HOME, None, t(i)), Verdict::Allowed);
        }
        assert_eq!(l.failed(&login("shop"), HOME, t(4)), Some(t(904)));
        // From any address, until the end of the lock.
        assert_eq!(
            l.check(&login("shop"), OTHER, None, t(5)),
            Verdict::LoginLocked(t(904))
        );
        assert_eq!(
            l.check(&login("shop"), OTHER, None, t(904)),
            Verdict::Allowed
        );
        // Other logins are not concerned.
        assert_eq!(l.check(&login("cafe"), HOME, None, t(5)), Verdict::Allowed);
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let mut l = limiter();
        for i in 0..4 {
            l.failed(&login("shop"), HOME, t(i * 300));
        }
        // The first failure (t=0) left the window at t=900.
        assert_eq!(l.failed(&login("shop"), HOME, t(1200)), None);
    }

    #[test]
    fn a_right_password_resets_the_count() {
        let mut l = limiter();
        for i in 0..4 {
            l.failed(&login("shop"), HOME, t(i));
        }
        l.succeeded(&login("shop"));
        assert_eq!(l.failed(&login("shop"), HOME, t(10)), None);
    }

    #[test]
    fn one_address_guessing_many_logins_is_blocked() {
        let mut l = limiter();
        for i in 0..8 {
            l.failed(&login(&format!("user{i}")), HOME, t(i));
        }
        assert_eq!(
            l.check(&login("fresh"), HOME, None, t(9)),
            Verdict::AddressBlocked(t(907))
        );
        assert_eq!(
            l.check(&login("fresh"), OTHER, None, t(9)),
            Verdict::Allowed
        );
    }

    #[test]
    fn a_published_lock_counts_even_when_this_process_did_not_set_it() {
        let mut l = limiter();
        assert_eq!(
            l.check(&login("shop"), HOME, Some(t(100)), t(1)),
            Verdict::LoginLocked(t(100))
        );
        assert_eq!(
            l.check(&login("shop"), HOME, Some(t(100)), t(100)),
            Verdict::Allowed
        );
    }

    #[test]
    fn removing_the_published_lock_lifts_it() {
        let mut l = limiter();
        for i in 0..5 {
            l.failed(&login("shop"), HOME, t(i));
        }
        // Not written yet (or the write failed): held in memory.
        assert_eq!(
            l.check(&login("shop"), HOME, None, t(100)),
            Verdict::LoginLocked(t(904))
        );
        // Written at t=100: memory still holds while the cache catches up...
        l.written(&login("shop"), t(904), t(100));
        assert_eq!(
            l.check(&login("shop"), HOME, None, t(105)),
            Verdict::LoginLocked(t(904))
        );
        // ...then the annotation alone decides: shown, locked; removed, lifted.
        assert_eq!(
            l.check(&login("shop"), HOME, Some(t(904)), t(111)),
            Verdict::LoginLocked(t(904))
        );
        assert_eq!(
            l.check(&login("shop"), HOME, None, t(111)),
            Verdict::Allowed
        );
    }
}
