//! Who the operator is to the API server: the RBAC subject its own RoleBindings name (the
//! per-namespace Secret access of `oem-hosting-operator-secrets`, see `hosting::rbac`). Asked
//! once at start with a SelfSubjectReview, so the chart's ServiceAccount, the end-to-end
//! tests' one or any other identity is bound as it is, without configuration.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::rbac::v1::Subject;
use kube::api::{Api, PostParams};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("asking the API server who the operator is (SelfSubjectReview): {0}")]
    Review(#[source] kube::Error),
    #[error("the API server named no user in the SelfSubjectReview")]
    Anonymous,
}

/// The operator's own subject, from a SelfSubjectReview.
pub async fn own_subject(client: &kube::Client) -> Result<Subject, IdentityError> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(IdentityError::Review)?;
    let username = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
        .ok_or(IdentityError::Anonymous)?;
    Ok(subject_of(&username))
}

/// `system:serviceaccount:<namespace>:<name>` as a ServiceAccount subject; any other user name
/// as a User.
pub fn subject_of(username: &str) -> Subject {
    match username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, name)) => Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(namespace.into()),
            api_group: None,
        },
        None => Subject {
            kind: "User".into(),
            name: username.into(),
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_user_is_bound_as_its_service_account() {
        let s = subject_of("system:serviceaccount:oem-hosting:oem-operator");
        assert_eq!(s.kind, "ServiceAccount");
        assert_eq!(s.name, "oem-operator");
        assert_eq!(s.namespace.as_deref(), Some("oem-hosting"));
        assert_eq!(s.api_group, None);
    }

    #[test]
    fn any_other_user_is_bound_as_a_user() {
        let s = subject_of("operator@example.net");
        assert_eq!(s.kind, "User");
        assert_eq!(s.name, "operator@example.net");
        assert_eq!(s.namespace, None);
        assert_eq!(s.api_group.as_deref(), Some("rbac.authorization.k8s.io"));
    }
}
