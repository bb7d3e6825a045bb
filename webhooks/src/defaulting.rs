//! Defaulting (the mutating webhook): domains normalised to lower case without a trailing
//! dot, and `passwordSecretRef` defaulted to the Secret the operator generates.

use kube::ResourceExt;
use oem_crds::EndUser;
use serde_json::{Value, json};

use crate::rules::names::normalise_domain;
use oem_crds::enduser::PasswordSecretRef;

/// The JSON patch operations that default an end user; empty when nothing changes.
pub fn default_end_user(end_user: &EndUser) -> Vec<Value> {
    let mut ops = Vec::new();
    let normalised: Vec<String> = end_user
        .spec
        .domains
        .iter()
        .map(|d| normalise_domain(d))
        .collect();
    if normalised != end_user.spec.domains {
        ops.push(json!({"op": "replace", "path": "/spec/domains", "value": normalised}));
    }
    let name = end_user.name_any();
    if end_user.spec.password_secret_ref.is_none() && !name.is_empty() {
        let generated = PasswordSecretRef::generated(&name);
        ops.push(json!({"op": "add", "path": "/spec/passwordSecretRef",
                        "value": {"name": generated.name, "key": generated.key}}));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::end_user;

    #[test]
    fn domains_are_lower_cased_and_lose_their_trailing_dot() {
        let mut eu = end_user(
            "reseller-acme",
            "alice",
            &["Shop.Example.JP.", "a.example.jp"],
        );
        eu.spec.password_secret_ref = Some(oem_crds::enduser::PasswordSecretRef {
            name: "x".into(),
            key: "y".into(),
        });
        assert_eq!(
            default_end_user(&eu),
            [json!({"op": "replace", "path": "/spec/domains",
                    "value": ["shop.example.jp", "a.example.jp"]})]
        );
    }

    #[test]
    fn an_absent_password_secret_ref_defaults_to_the_generated_secret() {
        let eu = end_user("reseller-acme", "alice", &["a.example.jp"]);
        assert_eq!(
            default_end_user(&eu),
            [json!({"op": "add", "path": "/spec/passwordSecretRef",
                    "value": {"name": "alice-login", "key": "password"}})]
        );
    }

    #[test]
    fn a_normalised_end_user_with_a_reference_is_left_alone() {
        let mut eu = end_user("reseller-acme", "alice", &["a.example.jp"]);
        eu.spec.password_secret_ref = Some(oem_crds::enduser::PasswordSecretRef {
            name: "x".into(),
            key: "y".into(),
        });
        assert!(default_end_user(&eu).is_empty());
    }
}
