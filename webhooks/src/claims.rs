//! Admissions in flight. The reflector caches lag the API server by a few milliseconds to
//! seconds, so two end users claiming one domain at once could both pass the uniqueness rule,
//! and a burst of end users created at once could each fit the reseller's quota alone and
//! overshoot it together. Each admission of an end user (and each Course change, which moves
//! the reseller's totals) therefore runs under one lock, which also holds the domains and the
//! end users admitted but maybe not cached yet; a reservation lives until the caches have
//! surely caught up (the TTL). The rules see the admitted end users in place of (or besides)
//! the cached ones, so quotas count them.
//!
//! The lock is per process. With several webhook replicas, two replicas can each pass one of
//! two simultaneous claims of a domain here; the cluster decides between them (`domains`: a
//! `DomainClaim` per domain, created at most once by the API server), and the operator is the
//! backstop for the quota (it holds an end user beyond the reseller's pool, see docs/api.md)
//! and serves a domain only to the end user its claim names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use oem_crds::EndUser;

use crate::lookup::ReservedDomain;
use crate::rules::names::normalise_domain;

/// What admissions in flight hold.
#[derive(Debug, Default)]
struct Held {
    /// Reserved domains → (owner `namespace/name`, expiry).
    domains: HashMap<String, (String, Instant)>,
    /// Admitted end users by `namespace/name` → (the admitted object, expiry).
    end_users: HashMap<String, (Arc<EndUser>, Instant)>,
}

#[derive(Debug)]
pub struct Claims {
    ttl: Duration,
    held: Mutex<Held>,
}

/// The lock held while one admission checks and reserves.
pub struct ClaimGuard<'a> {
    ttl: Duration,
    held: MutexGuard<'a, Held>,
}

impl Claims {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            held: Mutex::new(Held::default()),
        }
    }

    /// Takes the lock and drops expired reservations.
    pub fn lock(&self) -> ClaimGuard<'_> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        held.domains.retain(|_, (_, until)| *until > now);
        held.end_users.retain(|_, (_, until)| *until > now);
        ClaimGuard {
            ttl: self.ttl,
            held,
        }
    }
}

impl ClaimGuard<'_> {
    /// End users admitted within the TTL (as admitted), keyed `namespace/name`.
    pub fn admitted(&self) -> Vec<(String, Arc<EndUser>)> {
        self.held
            .end_users
            .iter()
            .map(|(key, (eu, _))| (key.clone(), eu.clone()))
            .collect()
    }

    /// Holds the admitted `end_user` (as `owner`, `namespace/name`) until the TTL ends.
    pub fn admit(&mut self, owner: &str, end_user: EndUser) {
        let until = Instant::now() + self.ttl;
        self.held
            .end_users
            .insert(owner.to_owned(), (Arc::new(end_user), until));
    }

    /// Forgets the admitted end users the caches show as admitted (same spec): from then on
    /// the caches count them, and a deletion the webhooks never see stops counting as soon as
    /// the caches drop the object, not only at the end of the TTL.
    pub fn settle(&mut self, cached: &[Arc<EndUser>]) {
        use kube::ResourceExt;
        self.held.end_users.retain(|key, (admitted, _)| {
            !cached.iter().any(|c| {
                c.spec == admitted.spec
                    && format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()) == *key
            })
        });
    }

    pub fn reserved(&self) -> Vec<ReservedDomain> {
        self.held
            .domains
            .iter()
            .map(|(domain, (owner, _))| ReservedDomain {
                owner: owner.clone(),
                domain: domain.clone(),
            })
            .collect()
    }

    /// Drops what an admission of `owner` reserved and admitted: the cluster refused its
    /// domains after all, so neither its domains nor its share of the quota are held.
    pub fn release(&mut self, owner: &str) {
        self.held.domains.retain(|_, (holder, _)| holder != owner);
        self.held.end_users.remove(owner);
    }

    /// Reserves `domains` for `owner` until the TTL ends.
    pub fn reserve<'d>(&mut self, owner: &str, domains: impl IntoIterator<Item = &'d String>) {
        let until = Instant::now() + self.ttl;
        for d in domains {
            self.held
                .domains
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

    #[test]
    fn an_admitted_end_user_is_held_until_its_ttl_ends() {
        let claims = Claims::new(Duration::from_millis(20));
        let eu = crate::fixtures::end_user("reseller-acme", "alice", &[]);
        claims.lock().admit("reseller-acme/alice", eu);
        assert_eq!(claims.lock().admitted()[0].0, "reseller-acme/alice");
        std::thread::sleep(Duration::from_millis(30));
        assert!(claims.lock().admitted().is_empty());
    }

    #[test]
    fn an_admitted_end_user_is_forgotten_once_the_caches_show_it_as_admitted() {
        let claims = Claims::new(Duration::from_secs(30));
        let eu = crate::fixtures::end_user("reseller-acme", "alice", &[]);
        claims.lock().admit("reseller-acme/alice", eu.clone());
        let mut older = eu.clone();
        older.spec.course_ref.name = "other".into();
        claims.lock().settle(&[Arc::new(older)]);
        assert_eq!(claims.lock().admitted().len(), 1, "the cache is behind");
        claims.lock().settle(&[Arc::new(eu)]);
        assert!(claims.lock().admitted().is_empty());
    }
}
