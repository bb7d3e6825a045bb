//! Domain claims in flight. The reflector caches lag the API server by a few milliseconds to
//! seconds, so two end users claiming one domain at once could both pass the uniqueness rule.
//! Each admission of an end user therefore checks and reserves its domains under one lock;
//! a reservation lives until the caches have surely caught up (the TTL).
//!
//! The remaining gap: the lock is per process. With several webhook replicas, two replicas can
//! each admit one of two simultaneous claims; the operator's reconcile reports the conflict.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::lookup::ReservedDomain;
use crate::rules::names::normalise_domain;

/// Reserved domains → (owner `namespace/name`, expiry).
#[derive(Debug)]
pub struct Claims {
    ttl: Duration,
    held: Mutex<HashMap<String, (String, Instant)>>,
}

/// The lock held while one admission checks and reserves.
pub struct ClaimGuard<'a> {
    ttl: Duration,
    held: MutexGuard<'a, HashMap<String, (String, Instant)>>,
}

impl Claims {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Takes the lock and drops expired reservations.
    pub fn lock(&self) -> ClaimGuard<'_> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        held.retain(|_, (_, until)| *until > now);
        ClaimGuard {
            ttl: self.ttl,
            held,
        }
    }
}

impl ClaimGuard<'_> {
    pub fn reserved(&self) -> Vec<ReservedDomain> {
        self.held
            .iter()
            .map(|(domain, (owner, _))| ReservedDomain {
                owner: owner.clone(),
                domain: domain.clone(),
            })
            .collect()
    }

    /// Reserves `domains` for `owner` until the TTL ends.
    pub fn reserve<'d>(&mut self, owner: &str, domains: impl IntoIterator<Item = &'d String>) {
        let until = Instant::now() + self.ttl;
        for d in domains {
            self.held
                .insert(normalise_domain(d), (owner.to_owned(), until));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_expires_after_its_ttl() {
        let claims = Claims::new(Duration::from_millis(20));
        claims
            .lock()
            .reserve("ns/alice", &["Shop.example.jp".to_owned()]);
        assert_eq!(claims.lock().reserved()[0].domain, "shop.example.jp");
        std::thread::sleep(Duration::from_millis(30));
        assert!(claims.lock().reserved().is_empty());
    }
}
