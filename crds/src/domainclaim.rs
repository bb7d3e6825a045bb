//! The `DomainClaim` kind (cluster-scoped, one per domain, named by the domain): which end
//! user serves a domain. The API server creates an object of a name at most once, so two
//! admissions of one domain (in two webhook replicas, or a webhook and the operator) cannot
//! both win: whoever creates the claim holds the domain until the claim is deleted.
//!
//! The webhooks create the claims of the domains they admit; the operator creates missing
//! ones (an end user written while the webhooks were away), serves only the domains whose
//! claim is its end user's, and deletes claims an end user no longer needs (a domain removed,
//! the end user deleted, or an admission that never got stored).

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Label on a claim: the namespace of the end user holding it.
pub const LABEL_ENDUSER_NAMESPACE: &str = "hosting.oem.dev/enduser-namespace";
/// Label on a claim: the name of the end user holding it.
pub const LABEL_ENDUSER: &str = "hosting.oem.dev/enduser";

/// A domain claim: the end user that serves the domain this object is named after.
// printcolumn repeats its keys by design, which clippy takes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.oem.dev",
    version = "v1alpha1",
    kind = "DomainClaim",
    shortname = "dc",
    category = "hosting",
    doc = "A domain claim: which end user serves the domain this object is named after (one claim per domain, cluster-wide).",
    printcolumn(
        name = "Namespace",
        type_ = "string",
        json_path = ".spec.endUser.namespace"
    ),
    printcolumn(name = "EndUser", type_ = "string", json_path = ".spec.endUser.name"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DomainClaimSpec {
    /// The end user holding the domain; immutable (a claim changes hands by being deleted and created again).
    #[x_kube(validation = Rule::new("self == oldSelf").message("endUser is immutable"))]
    pub end_user: ClaimHolder,
}

/// The end user a claim names.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimHolder {
    /// The end user's namespace (its reseller's namespace).
    #[schemars(regex(pattern = crate::schema::DNS_LABEL_PATTERN), length(min = 1, max = 63))]
    pub namespace: String,
    /// The end user's name.
    #[schemars(regex(pattern = crate::schema::DNS_SUBDOMAIN_PATTERN), length(min = 1, max = 253))]
    pub name: String,
}

impl DomainClaim {
    /// A claim of `domain` (already normalised: lower case, no trailing dot) for the end user
    /// `namespace/name`, labelled with its holder so its claims can be listed.
    pub fn for_end_user(domain: &str, namespace: &str, name: &str) -> Self {
        let mut claim = DomainClaim::new(
            domain,
            DomainClaimSpec {
                end_user: ClaimHolder {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                },
            },
        );
        claim.metadata.labels = Some(
            [
                (LABEL_ENDUSER_NAMESPACE.to_owned(), namespace.to_owned()),
                (LABEL_ENDUSER.to_owned(), label_value(name)),
            ]
            .into(),
        );
        claim
    }

    /// Whether this claim names the end user `namespace/name`.
    pub fn is_held_by(&self, namespace: &str, name: &str) -> bool {
        self.spec.end_user.namespace == namespace && self.spec.end_user.name == name
    }
}

/// A label selector for the claims of the end user `namespace/name` (the spec must still be
/// checked: a name longer than a label value is shortened).
pub fn selector_of(namespace: &str, name: &str) -> String {
    format!(
        "{LABEL_ENDUSER_NAMESPACE}={namespace},{LABEL_ENDUSER}={}",
        label_value(name)
    )
}

/// A label value is at most 63 characters and ends alphanumeric.
fn label_value(name: &str) -> String {
    let cut: String = name.chars().take(63).collect();
    cut.trim_end_matches(['-', '.']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_named_by_its_domain_and_labelled_by_its_holder() {
        let claim = DomainClaim::for_end_user("shop.example.jp", "reseller-acme", "alice");
        assert_eq!(claim.metadata.name.as_deref(), Some("shop.example.jp"));
        assert!(claim.is_held_by("reseller-acme", "alice"));
        assert!(!claim.is_held_by("reseller-other", "alice"));
        assert_eq!(
            selector_of("reseller-acme", "alice"),
            "hosting.oem.dev/enduser-namespace=reseller-acme,hosting.oem.dev/enduser=alice"
        );
        let long = format!("{}-x", "a".repeat(62));
        assert_eq!(label_value(&long), "a".repeat(62));
    }
}
