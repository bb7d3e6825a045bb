//! Names and labels the operator gives what it creates: deterministic, within Kubernetes'
//! limits, collision-safe, and enough to find every object again (no orphan survives).

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

/// The hosting namespace of one end user: `h-<reseller>-<enduser>-<hash>`, at most 63
/// characters. The hash of the (reseller, end user) pair keeps names distinct even when
/// truncation or dashes would make two pairs read alike (`a-b`/`c` against `a`/`b-c`).
pub fn hosting_namespace(reseller: &str, enduser: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(reseller.as_bytes());
    hasher.update([0]);
    hasher.update(enduser.as_bytes());
    let digest = hasher.finalize();
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    // "h-" + readable part + "-" + 8 hex characters <= 63.
    const READABLE: usize = 63 - 2 - 1 - 8;
    let readable = format!("{reseller}-{enduser}");
    let mut readable: String = readable.chars().take(READABLE).collect();
    while readable.ends_with('-') {
        readable.pop();
    }
    format!("{HOSTING_NAMESPACE_PREFIX}{readable}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

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
        let reseller = "r".repeat(51);
        let ns = hosting_namespace(&reseller, "e");
        assert!(!ns.contains("--"), "{ns}");
        assert!(is_dns_label(&ns));
    }

    #[test]
    fn reseller_namespaces_round_trip() {
        assert_eq!(reseller_namespace("sakura"), "reseller-sakura");
        assert_eq!(reseller_of_namespace("reseller-sakura"), Some("sakura"));
        assert_eq!(reseller_of_namespace("reseller-"), None);
        assert_eq!(reseller_of_namespace("default"), None);
    }
}
