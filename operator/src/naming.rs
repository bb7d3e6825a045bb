//! Names and labels the operator gives what it creates: deterministic, within Kubernetes'
//! limits, collision-safe, and enough to find every object again (no orphan survives).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Label keys on everything the operator creates.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "oem-hosting";
pub const LABEL_RESELLER: &str = "hosting.oem.dev/reseller";
pub const LABEL_ENDUSER: &str = "hosting.oem.dev/enduser";
/// The EndUser's own namespace (the reseller's), so a child points back to its owner.
pub const LABEL_ENDUSER_NAMESPACE: &str = "hosting.oem.dev/enduser-namespace";
pub const LABEL_SERVICE_GROUP: &str = "hosting.oem.dev/service-group";
/// Set on data volumes kept by deletion policy `Retain`.
pub const LABEL_RETAINED: &str = "hosting.oem.dev/retained";
/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "oem-hosting-operator";

/// Prefix of every hosting namespace (what usage queries select).
pub const HOSTING_NAMESPACE_PREFIX: &str = "h-";

/// Prefix of a reseller's own namespace.
pub const RESELLER_NAMESPACE_PREFIX: &str = "reseller-";

/// The namespace that holds a reseller's courses and end users.
pub fn reseller_namespace(reseller: &str) -> String {
    format!("{RESELLER_NAMESPACE_PREFIX}{reseller}")
}

/// The reseller a namespace belongs to, if it is a reseller namespace.
pub fn reseller_of_namespace(namespace: &str) -> Option<&str> {
    namespace
        .strip_prefix(RESELLER_NAMESPACE_PREFIX)
        .filter(|r| !r.is_empty())
}

/// Hex characters of the hash in a hosting namespace's name: 16, i.e. 64 bits, so that two
/// (reseller, end user) pairs whose readable parts are cut to the same text still get
/// different names (a 32-bit hash could be brute-forced into a collision by a reseller).
const HASH_HEX: usize = 16;
/// Hex characters of the hash in names given before the hash was widened (see
/// [`HostingOwner::namespace_names`]).
const LEGACY_HASH_HEX: usize = 8;

/// The hosting namespace of one end user: `h-<reseller>-<enduser>-<hash>`, at most 63
/// characters: a readable part of at most 44 characters and 64 bits of the SHA-256 of the
/// (reseller, end user) pair, which keeps names distinct even when truncation or dashes would
/// make two pairs read alike (`a-b`/`c` against `a`/`b-c`).
pub fn hosting_namespace(reseller: &str, enduser: &str) -> String {
    hashed_name(reseller, enduser, HASH_HEX)
}

fn hashed_name(reseller: &str, enduser: &str, hex: usize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(reseller.as_bytes());
    hasher.update([0]);
    hasher.update(enduser.as_bytes());
    let digest = hasher.finalize();
    let hash: String = digest
        .iter()
        .take(hex / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    // "h-" + readable part + "-" + hash <= 63.
    let readable_max = 63 - HOSTING_NAMESPACE_PREFIX.len() - 1 - hex;
    let readable = format!("{reseller}-{enduser}");
    let mut readable: String = readable.chars().take(readable_max).collect();
    while readable.ends_with('-') {
        readable.pop();
    }
    format!("{HOSTING_NAMESPACE_PREFIX}{readable}-{hash}")
}

/// The end user a hosting namespace belongs to, as its labels name it. The operator writes
/// into, adopts or deletes a namespace only when its labels name this owner and its name is
/// one the owner's names are computed to, so a namespace that merely collides (or that
/// someone else created) is never taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostingOwner {
    pub reseller: String,
    /// The EndUser's namespace (the reseller's).
    pub enduser_namespace: String,
    pub enduser: String,
}

impl HostingOwner {
    /// The owner named by a namespace's labels, if they name one.
    pub fn of_labels(labels: &BTreeMap<String, String>) -> Option<Self> {
        Some(Self {
            reseller: labels.get(LABEL_RESELLER)?.clone(),
            enduser_namespace: labels.get(LABEL_ENDUSER_NAMESPACE)?.clone(),
            enduser: labels.get(LABEL_ENDUSER)?.clone(),
        })
    }

    /// Whether `labels` (a live namespace's) say it is this owner's and the operator's.
    pub fn owns(&self, labels: &BTreeMap<String, String>) -> bool {
        labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY)
            && Self::of_labels(labels).as_ref() == Some(self)
    }

    /// The names this owner's hosting namespace may have: the current one, then the one given
    /// before the hash was widened to 64 bits (an end user provisioned then keeps its
    /// namespace, as recorded in its status).
    pub fn namespace_names(&self) -> [String; 2] {
        [
            hosting_namespace(&self.reseller, &self.enduser),
            hashed_name(&self.reseller, &self.enduser, LEGACY_HASH_HEX),
        ]
    }

    /// Whether `namespace` is a name computed for this owner, and the owner's namespace is
    /// the reseller's namespace.
    pub fn is_named(&self, namespace: &str) -> bool {
        self.enduser_namespace == reseller_namespace(&self.reseller)
            && self.namespace_names().iter().any(|n| n == namespace)
    }

    /// The namespace this owner uses: the one recorded in its status when that is one of its
    /// names (an end user provisioned before the hash was widened keeps its namespace), else
    /// the current name.
    pub fn namespace_in_use(&self, recorded: Option<&str>) -> String {
        match recorded {
            Some(recorded) if self.is_named(recorded) => recorded.to_owned(),
            _ => hosting_namespace(&self.reseller, &self.enduser),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oem_crds::schema::is_dns_label;

    #[test]
    fn hosting_namespace_is_deterministic_and_readable() {
        let a = hosting_namespace("sakura", "tanaka");
        assert_eq!(a, hosting_namespace("sakura", "tanaka"));
        assert!(a.starts_with("h-sakura-tanaka-"), "{a}");
        assert!(is_dns_label(&a), "{a}");
    }

    #[test]
    fn hosting_namespace_separates_pairs_that_read_alike() {
        assert_ne!(hosting_namespace("a-b", "c"), hosting_namespace("a", "b-c"));
    }

    #[test]
    fn hosting_namespace_fits_63_characters_for_the_longest_names() {
        let long = "x".repeat(63);
        let ns = hosting_namespace(&long, &long);
        assert!(is_dns_label(&ns), "{ns} ({} chars)", ns.len());
        assert_ne!(ns, hosting_namespace(&long, &"y".repeat(63)));
    }

    #[test]
    fn truncation_never_leaves_a_dash_before_the_hash() {
        // The readable part is cut at 44 characters, just after the dash.
        let reseller = "r".repeat(43);
        let ns = hosting_namespace(&reseller, "e");
        assert!(!ns.contains("--"), "{ns}");
        assert!(is_dns_label(&ns));
    }

    #[test]
    fn hosting_namespace_carries_64_bits_of_hash() {
        for (reseller, enduser) in [("sakura", "tanaka"), (&*"x".repeat(63), &*"y".repeat(63))] {
            let ns = hosting_namespace(reseller, enduser);
            let hash = ns.rsplit('-').next().unwrap();
            assert_eq!(hash.len(), 16, "{ns}");
            assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{ns}");
            assert!(ns.len() <= 63, "{ns}");
        }
        // Pairs whose readable parts are cut to the same 44 characters differ by the hash.
        let long = "r".repeat(50);
        assert_ne!(hosting_namespace(&long, "a"), hosting_namespace(&long, "b"));
    }

    fn owner() -> HostingOwner {
        HostingOwner {
            reseller: "sakura".into(),
            enduser_namespace: "reseller-sakura".into(),
            enduser: "tanaka".into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_namespace_is_owned_only_when_its_labels_name_the_owner() {
        let mine = labels(&[
            (LABEL_MANAGED_BY, MANAGED_BY),
            (LABEL_RESELLER, "sakura"),
            (LABEL_ENDUSER_NAMESPACE, "reseller-sakura"),
            (LABEL_ENDUSER, "tanaka"),
        ]);
        assert!(owner().owns(&mine));
        let mut other = mine.clone();
        other.insert(LABEL_ENDUSER.into(), "suzuki".into());
        assert!(!owner().owns(&other));
        let mut unmanaged = mine.clone();
        unmanaged.remove(LABEL_MANAGED_BY);
        assert!(!owner().owns(&unmanaged));
        assert!(!owner().owns(&BTreeMap::new()));
        assert_eq!(HostingOwner::of_labels(&mine), Some(owner()));
    }

    #[test]
    fn an_end_user_keeps_its_namespace_from_before_the_hash_was_widened() {
        let o = owner();
        let [current, legacy] = o.namespace_names();
        assert_eq!(current, hosting_namespace("sakura", "tanaka"));
        assert_eq!(legacy.rsplit('-').next().unwrap().len(), 8);
        assert_eq!(o.namespace_in_use(Some(&legacy)), legacy);
        assert_eq!(o.namespace_in_use(None), current);
        // A recorded name that is not one of the owner's is not trusted.
        assert_eq!(o.namespace_in_use(Some("kube-system")), current);
        assert!(o.is_named(&current) && o.is_named(&legacy));
        assert!(!o.is_named(&hosting_namespace("sakura", "suzuki")));
    }

    #[test]
    fn reseller_namespaces_round_trip() {
        assert_eq!(reseller_namespace("sakura"), "reseller-sakura");
        assert_eq!(reseller_of_namespace("reseller-sakura"), Some("sakura"));
        assert_eq!(reseller_of_namespace("reseller-"), None);
        assert_eq!(reseller_of_namespace("default"), None);
    }
}
