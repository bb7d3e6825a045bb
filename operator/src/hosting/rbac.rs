//! What a reseller's admins may do, as RoleBindings to the two ClusterRoles the chart installs
//! (`charts/oem-hosting/files/reseller-clusterroles.yaml`): full control of courses, end users
//! and maintenance windows in the reseller's namespace, read access to its end users' hosting
//! namespaces. And the operator's own Secret access (`oem-hosting-operator-secrets`, in
//! `charts/oem-hosting/files/operator-clusterrole.yaml`), bound to itself in each namespace it
//! manages, so that cluster-wide it holds only list/watch of Secrets. And the admission
//! webhooks' Secret access (`oem-hosting-webhooks-secrets`, in
//! `charts/oem-hosting/files/webhooks-clusterrole.yaml`), bound to their ServiceAccount in each
//! reseller namespace, so that cluster-wide they hold no Secret verb.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

use crate::naming;

pub const RESELLER_ADMIN_ROLE: &str = "oem-hosting-reseller-admin";
pub const TENANT_VIEWER_ROLE: &str = "oem-hosting-tenant-viewer";
pub const OPERATOR_SECRETS_ROLE: &str = "oem-hosting-operator-secrets";
/// The name of the operator's own RoleBinding in each namespace it manages.
pub const OPERATOR_SECRETS_BINDING: &str = "oem-hosting-operator-secrets";
pub const WEBHOOKS_SECRETS_ROLE: &str = "oem-hosting-webhooks-secrets";
/// The name of the webhooks' RoleBinding in each reseller namespace.
pub const WEBHOOKS_SECRETS_BINDING: &str = "oem-hosting-webhooks-secrets";

/// The prefix of each reseller's own ClusterRole and ClusterRoleBinding (its read of its own
/// Reseller); `charts/oem-hosting/files/operator-rbac-guard.yaml` lets the operator write no
/// other ClusterRole or ClusterRoleBinding.
pub const RESELLER_SELF_PREFIX: &str = "oem-hosting-reseller-self-";

/// The ClusterRole (`files/panel-clusterrole.yaml`) that lets the panel impersonate
/// [`oem_crds::reseller::PANEL_SERVICE_ACCOUNT`]; bound only inside reseller namespaces.
pub const PANEL_IMPERSONATION_ROLE: &str = "oem-hosting-panel-impersonation";

fn reseller_labels(reseller: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (naming::LABEL_MANAGED_BY.into(), naming::MANAGED_BY.into()),
        (naming::LABEL_RESELLER.into(), reseller.into()),
    ])
}

/// The reseller's own namespace, `reseller-<name>`.
pub fn reseller_namespace(reseller: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(naming::reseller_namespace(reseller)),
            labels: Some(reseller_labels(reseller)),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// `subjects` bound to the ClusterRole `role` in `namespace`.
fn role_binding(
    name: &str,
    namespace: &str,
    role: &str,
    labels: BTreeMap<String, String>,
    subjects: &[Subject],
) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role.to_owned(),
        },
        subjects: Some(subjects.to_vec()),
    }
}

fn binding(
    name: &str,
    namespace: &str,
    role: &str,
    reseller: &str,
    admins: &[Subject],
) -> RoleBinding {
    role_binding(name, namespace, role, reseller_labels(reseller), admins)
}

/// Full control of courses and end users (and their password Secrets) in the reseller's
/// namespace, read of incidents.
pub fn reseller_admin_binding(reseller: &str, admins: &[Subject]) -> RoleBinding {
    binding(
        "reseller-admins",
        &naming::reseller_namespace(reseller),
        RESELLER_ADMIN_ROLE,
        reseller,
        admins,
    )
}

/// Read access to one end user's hosting namespace.
pub fn tenant_viewer_binding(
    reseller: &str,
    hosting_namespace: &str,
    admins: &[Subject],
) -> RoleBinding {
    binding(
        "reseller-viewers",
        hosting_namespace,
        TENANT_VIEWER_ROLE,
        reseller,
        admins,
    )
}

/// The operator's Secret access (get, create, patch) in one namespace it manages: a reseller
/// namespace (password Secrets, generated logins, webhook keys) or a hosting namespace (the
/// `credentials` Secret). Made before any Secret is written there.
pub fn operator_secrets_binding(
    reseller: &str,
    namespace: &str,
    operator: &Subject,
) -> RoleBinding {
    binding(
        OPERATOR_SECRETS_BINDING,
        namespace,
        OPERATOR_SECRETS_ROLE,
        reseller,
        std::slice::from_ref(operator),
    )
}

/// The operator's Secret access in the provider's namespace that holds the resellers' panel
/// logins (shared by every reseller, so labelled with none).
pub fn panel_accounts_binding(namespace: &str, operator: &Subject) -> RoleBinding {
    role_binding(
        OPERATOR_SECRETS_BINDING,
        namespace,
        OPERATOR_SECRETS_ROLE,
        BTreeMap::from([(naming::LABEL_MANAGED_BY.into(), naming::MANAGED_BY.into())]),
        std::slice::from_ref(operator),
    )
}

/// The admission webhooks' Secret access (get) in a reseller's namespace: they read the key
/// names of the password Secret an EndUser names, and only in a reseller namespace.
/// The metadata of a reseller's own ClusterRole or ClusterRoleBinding: named after it, owned by
/// its Reseller (so deleting the Reseller deletes them).
fn self_metadata(reseller: &str, reseller_uid: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(format!("{RESELLER_SELF_PREFIX}{reseller}")),
        labels: Some(reseller_labels(reseller)),
        owner_references: Some(vec![OwnerReference {
            api_version: "hosting.oem.dev/v1alpha1".into(),
            kind: "Reseller".into(),
            name: reseller.into(),
            uid: reseller_uid.into(),
            controller: Some(true),
            block_owner_deletion: None,
        }]),
        ..ObjectMeta::default()
    }
}

/// Read (get, watch) of the one Reseller object `reseller`: cluster-scoped, so a reseller's
/// namespace roles cannot reach it; `kubectl get reseller <name>` shows its quota, totals,
/// usage and reports.
pub fn reseller_self_role(reseller: &str, reseller_uid: &str) -> ClusterRole {
    ClusterRole {
        metadata: self_metadata(reseller, reseller_uid),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["hosting.oem.dev".into()]),
            resources: Some(vec!["resellers".into()]),
            resource_names: Some(vec![reseller.into()]),
            verbs: vec!["get".into(), "watch".into()],
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    }
}

/// The reseller's admins bound to [`reseller_self_role`] (no subject when it has no admin).
pub fn reseller_self_binding(
    reseller: &str,
    reseller_uid: &str,
    admins: &[Subject],
) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: self_metadata(reseller, reseller_uid),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: format!("{RESELLER_SELF_PREFIX}{reseller}"),
        },
        subjects: (!admins.is_empty()).then(|| admins.to_vec()),
    }
}

/// The ServiceAccount the resellers' panel acts as, in the reseller's namespace (it holds no
/// token of its own: the panel impersonates it).
pub fn reseller_panel_account(reseller: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(oem_crds::reseller::PANEL_SERVICE_ACCOUNT.to_owned()),
            namespace: Some(naming::reseller_namespace(reseller)),
            labels: Some(reseller_labels(reseller)),
            ..ObjectMeta::default()
        },
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// The panel's right, in the reseller's namespace only, to impersonate that reseller's
/// [`reseller_panel_account`].
pub fn panel_impersonation_binding(reseller: &str, panel: &Subject) -> RoleBinding {
    binding(
        PANEL_IMPERSONATION_ROLE,
        &naming::reseller_namespace(reseller),
        PANEL_IMPERSONATION_ROLE,
        reseller,
        std::slice::from_ref(panel),
    )
}

pub fn webhooks_secrets_binding(reseller: &str, webhooks: &Subject) -> RoleBinding {
    binding(
        WEBHOOKS_SECRETS_BINDING,
        &naming::reseller_namespace(reseller),
        WEBHOOKS_SECRETS_ROLE,
        reseller,
        std::slice::from_ref(webhooks),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Vec<Subject> {
        vec![Subject {
            kind: "User".into(),
            name: "alice@sakura".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        }]
    }

    #[test]
    fn admins_are_bound_only_inside_the_reseller_namespace() {
        let b = reseller_admin_binding("sakura", &alice());
        assert_eq!(b.metadata.namespace.as_deref(), Some("reseller-sakura"));
        assert_eq!(b.role_ref.name, RESELLER_ADMIN_ROLE);
        assert_eq!(b.subjects.unwrap()[0].name, "alice@sakura");
    }

    #[test]
    fn the_operator_binds_its_secret_role_to_itself_in_one_namespace() {
        let me = crate::identity::subject_of("system:serviceaccount:oem-hosting:oem-operator");
        let b = operator_secrets_binding("sakura", "h-sakura-a-1234abcd", &me);
        assert_eq!(b.metadata.namespace.as_deref(), Some("h-sakura-a-1234abcd"));
        assert_eq!(b.role_ref.name, OPERATOR_SECRETS_ROLE);
        assert_eq!(b.role_ref.kind, "ClusterRole");
        assert_eq!(b.subjects.unwrap(), vec![me]);
    }

    #[test]
    fn the_webhooks_get_their_secret_role_only_in_the_reseller_namespace() {
        let webhooks = crate::config::ServiceAccountRef {
            namespace: "oem-hosting".into(),
            name: "oem-hosting-webhooks".into(),
        }
        .subject();
        let b = webhooks_secrets_binding("sakura", &webhooks);
        assert_eq!(b.metadata.name.as_deref(), Some(WEBHOOKS_SECRETS_BINDING));
        assert_eq!(b.metadata.namespace.as_deref(), Some("reseller-sakura"));
        assert_eq!(b.role_ref.name, WEBHOOKS_SECRETS_ROLE);
        assert_eq!(b.role_ref.kind, "ClusterRole");
        assert_ne!(WEBHOOKS_SECRETS_BINDING, OPERATOR_SECRETS_BINDING);
        let subjects = b.subjects.unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[0].name, "oem-hosting-webhooks");
        assert_eq!(subjects[0].namespace.as_deref(), Some("oem-hosting"));
        let labels = b.metadata.labels.unwrap();
        assert_eq!(
            labels.get(naming::LABEL_RESELLER).map(String::as_str),
            Some("sakura")
        );
    }

    #[test]
    fn the_panel_may_act_as_the_resellers_panel_account_in_its_namespace_only() {
        let account = reseller_panel_account("sakura");
        assert_eq!(
            account.metadata.name.as_deref(),
            Some("oem-hosting-reseller-panel")
        );
        assert_eq!(
            account.metadata.namespace.as_deref(),
            Some("reseller-sakura")
        );
        assert_eq!(account.automount_service_account_token, Some(false));
        let panel = Subject {
            kind: "ServiceAccount".into(),
            name: "oem-hosting-panel".into(),
            namespace: Some("oem-hosting".into()),
            ..Subject::default()
        };
        let binding = panel_impersonation_binding("sakura", &panel);
        assert_eq!(
            binding.metadata.namespace.as_deref(),
            Some("reseller-sakura")
        );
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(binding.role_ref.name, PANEL_IMPERSONATION_ROLE);
        assert_eq!(binding.subjects.unwrap(), [panel]);
    }

    #[test]
    fn a_reseller_reads_its_own_reseller_object_and_no_other() {
        let role = reseller_self_role("sakura", "uid-1");
        assert_eq!(
            role.metadata.name.as_deref(),
            Some("oem-hosting-reseller-self-sakura")
        );
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].resource_names.as_deref(),
            Some(&["sakura".to_owned()][..])
        );
        assert_eq!(rules[0].verbs, ["get", "watch"]);
        let owner = &role.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Reseller", "uid-1")
        );
        let binding = reseller_self_binding("sakura", "uid-1", &alice());
        assert_eq!(binding.role_ref.name, "oem-hosting-reseller-self-sakura");
        assert_eq!(binding.subjects.unwrap()[0].name, "alice@sakura");
        assert!(
            reseller_self_binding("sakura", "uid-1", &[])
                .subjects
                .is_none()
        );
    }

    #[test]
    fn hosting_namespaces_are_read_only_for_the_reseller() {
        let b = tenant_viewer_binding("sakura", "h-sakura-a-1234abcd", &alice());
        assert_eq!(b.metadata.namespace.as_deref(), Some("h-sakura-a-1234abcd"));
        assert_eq!(b.role_ref.name, TENANT_VIEWER_ROLE);
    }
}
