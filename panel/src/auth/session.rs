//! Sessions: a random 256-bit ID in a cookie (the panel keeps only its SHA-256), the end user it
//! belongs to, the version of the password Secret it was opened with (a changed Secret ends
//! it), a per-session CSRF token, and idle and absolute expiry. Held in memory: the panel runs
//! one replica, and a restart logs everyone out.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use crate::config::SessionConfig;

/// Whose session it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// An end user: namespace and name of the EndUser. A reseller: the reseller's namespace
    /// and the panel login ID.
    pub namespace: String,
    pub name: String,
    pub role: Role,
}

/// Which panel a session belongs to; a session of one never opens a page of the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    EndUser,
    Reseller,
}

impl Owner {
    pub fn end_user(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            role: Role::EndUser,
        }
    }

    /// A reseller's panel login `login` of reseller `reseller`.
    pub fn reseller(reseller: &str, login: &str) -> Self {
        Self {
            namespace: format!("{}{reseller}", oem_crds::reseller::NAMESPACE_PREFIX),
            name: login.to_owned(),
            role: Role::Reseller,
        }
    }

    /// The reseller's name (from its namespace).
    pub fn reseller_name(&self) -> &str {
        self.namespace
            .strip_prefix(oem_crds::reseller::NAMESPACE_PREFIX)
            .unwrap_or_default()
    }
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub owner: Owner,
    /// resourceVersion of the password Secret at login.
    pub secret_version: String,
    pub csrf: String,
    created: Timestamp,
    last_seen: Timestamp,
}

/// Every live session, by the SHA-256 of its ID.
#[derive(Debug)]
pub struct Sessions {
    idle: SignedDuration,
    absolute: SignedDuration,
    by_id: HashMap<[u8; 32], Session>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(config: &SessionConfig) -> Self {
        let span =
            |d: std::time::Duration| SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
        Self {
            idle: span(config.idle),
            absolute: span(config.absolute),
            by_id: HashMap::new(),
        }
    }

    /// Opens a session; returns its ID (for the cookie only).
    pub fn open(&mut self, owner: Owner, secret_version: String, now: Timestamp) -> String {
        self.prune(now);
        let id = super::random_token();
        self.by_id.insert(
            digest(&id),
            Session {
                owner,
                secret_version,
                csrf: super::random_token(),
                created: now,
                last_seen: now,
            },
        );
        id
    }

    /// The live session with this ID, touched; an expired one is removed.
    pub fn get(&mut self, id: &str, now: Timestamp) -> Option<Session> {
        let key = digest(id);
        let session = self.by_id.get_mut(&key)?;
        let expired = now.duration_since(session.last_seen) >= self.idle
            || now.duration_since(session.created) >= self.absolute;
        if expired {
            self.by_id.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends one session (logout).
    pub fn revoke(&mut self, id: &str) {
        self.by_id.remove(&digest(id));
    }

    /// Ends every session of an end user (its password changed).
    pub fn revoke_owner(&mut self, owner: &Owner) {
        self.by_id.retain(|_, s| s.owner != *owner);
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn prune(&mut self, now: Timestamp) {
        let (idle, absolute) = (self.idle, self.absolute);
        self.by_id.retain(|_, s| {
            now.duration_since(s.last_seen) < idle && now.duration_since(s.created) < absolute
        });
    }
}

/// Whether a form's CSRF token is the session's.
pub fn csrf_ok(session: &Session, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| super::same_secret(p.as_bytes(), session.csrf.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sessions() -> Sessions {
        Sessions::new(&SessionConfig {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(300),
            secure_cookies: true,
        })
    }

    fn owner(name: &str) -> Owner {
        Owner {
            role: Role::EndUser,
            namespace: "reseller-sakura".into(),
            name: name.into(),
        }
    }

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn a_session_is_found_by_its_id_only() {
        let mut s = sessions();
        let id = s.open(owner("shop"), "7".into(), t(0));
        assert_eq!(id.len(), 64);
        assert_eq!(s.get(&id, t(1)).unwrap().owner, owner("shop"));
        assert!(s.get(&id.replace(&id[..1], "x"), t(1)).is_none());
        assert!(s.get("", t(1)).is_none());
    }

    #[test]
    fn an_idle_session_expires() {
        let mut s = sessions();
        let id = s.open(owner("shop"), "7".into(), t(0));
        assert!(s.get(&id, t(59)).is_some());
        assert!(s.get(&id, t(118)).is_some(), "use keeps it alive");
        assert!(s.get(&id, t(178)).is_none());
        assert!(s.get(&id, t(179)).is_none(), "and stays gone");
    }

    #[test]
    fn a_used_session_still_ends_at_its_absolute_expiry() {
        let mut s = sessions();
        let id = s.open(owner("shop"), "7".into(), t(0));
        for minute in 1..5 {
            assert!(s.get(&id, t(minute * 59)).is_some());
        }
        assert!(s.get(&id, t(300)).is_none());
    }

    #[test]
    fn logout_and_password_change_revoke() {
        let mut s = sessions();
        let a = s.open(owner("shop"), "7".into(), t(0));
        let b = s.open(owner("shop"), "7".into(), t(0));
        let other = s.open(owner("cafe"), "3".into(), t(0));
        s.revoke(&a);
        assert!(s.get(&a, t(1)).is_none());
        assert!(s.get(&b, t(1)).is_some());
        s.revoke_owner(&owner("shop"));
        assert!(s.get(&b, t(1)).is_none());
        assert!(s.get(&other, t(1)).is_some());
    }

    #[test]
    fn the_csrf_token_is_per_session_and_checked() {
        let mut s = sessions();
        let a = s.open(owner("shop"), "7".into(), t(0));
        let b = s.open(owner("shop"), "7".into(), t(0));
        let (a, b) = (s.get(&a, t(1)).unwrap(), s.get(&b, t(1)).unwrap());
        assert_ne!(a.csrf, b.csrf);
        assert!(csrf_ok(&a, Some(&a.csrf)));
        assert!(!csrf_ok(&a, Some(&b.csrf)));
        assert!(!csrf_ok(&a, None));
        assert!(!csrf_ok(&a, Some("")));
    }
}
