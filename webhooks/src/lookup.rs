//! What the rules may know besides the object under review: a read-only view of the cluster
//! (courses, end users, resellers, one Secret's keys), the security policy, the longest
//! maintenance window the provider allows and today's date.
//! The server answers it from reflector caches; tests and the fuzz target from a [`Snapshot`].

use std::sync::Arc;

use jiff::SignedDuration;
use jiff::civil::Date;
use kube::ResourceExt;
use oem_crds::{Course, EndUser, Reseller};

use crate::policy::SecurityPolicy;

/// What is known of one Secret: its keys only, never its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretKeys {
    Found(Vec<String>),
    Missing,
    /// The lookup failed (timeout, API error); the rule warns instead of refusing.
    Unknown(String),
}

/// A domain held for an end user whose admission passed but which the caches do not show yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservedDomain {
    /// `namespace/name` of the end user holding it.
    pub owner: String,
    pub domain: String,
}

/// The cluster as the rules see it.
pub trait Lookup {
    fn course(&self, namespace: &str, name: &str) -> Option<Arc<Course>>;
    /// Every end user in every namespace.
    fn end_users(&self) -> Vec<Arc<EndUser>>;
    fn reseller(&self, name: &str) -> Option<Arc<Reseller>>;
    fn secret_keys(&self, namespace: &str, name: &str) -> SecretKeys;
    fn policy(&self) -> &SecurityPolicy;
    fn today(&self) -> Date;
    /// Domains claimed by admissions still in flight (see `claims`).
    fn reserved_domains(&self) -> Vec<ReservedDomain> {
        Vec::new()
    }
    /// The longest maintenance window the provider allows.
    fn max_maintenance_window(&self) -> SignedDuration {
        crate::rules::maintenance::DEFAULT_MAX_WINDOW
    }
}

/// A plain in-memory cluster view.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub courses: Vec<Arc<Course>>,
    pub end_users: Vec<Arc<EndUser>>,
    pub resellers: Vec<Arc<Reseller>>,
    /// (namespace, name, keys) of existing Secrets.
    pub secrets: Vec<(String, String, Vec<String>)>,
    pub policy: SecurityPolicy,
    pub today: Date,
    pub reserved: Vec<ReservedDomain>,
    /// The provider's maximum window length; the default when `None`.
    pub max_maintenance_window: Option<SignedDuration>,
}

impl Lookup for Snapshot {
    fn course(&self, namespace: &str, name: &str) -> Option<Arc<Course>> {
        self.courses
            .iter()
            .find(|c| c.namespace().as_deref() == Some(namespace) && c.name_any() == name)
            .cloned()
    }

    fn end_users(&self) -> Vec<Arc<EndUser>> {
        self.end_users.clone()
    }

    fn reseller(&self, name: &str) -> Option<Arc<Reseller>> {
        self.resellers
            .iter()
            .find(|r| r.name_any() == name)
            .cloned()
    }

    fn secret_keys(&self, namespace: &str, name: &str) -> SecretKeys {
        self.secrets
            .iter()
            .find(|(ns, n, _)| ns == namespace && n == name)
            .map_or(SecretKeys::Missing, |(_, _, keys)| {
                SecretKeys::Found(keys.clone())
            })
    }

    fn policy(&self) -> &SecurityPolicy {
        &self.policy
    }

    fn today(&self) -> Date {
        self.today
    }

    fn reserved_domains(&self) -> Vec<ReservedDomain> {
        self.reserved.clone()
    }

    fn max_maintenance_window(&self) -> SignedDuration {
        self.max_maintenance_window
            .unwrap_or(crate::rules::maintenance::DEFAULT_MAX_WINDOW)
    }
}

/// The reseller that owns a namespace: `reseller-<name>` → `<name>`.
pub fn reseller_of_namespace(namespace: &str) -> Option<&str> {
    namespace
        .strip_prefix("reseller-")
        .filter(|name| !name.is_empty())
}
