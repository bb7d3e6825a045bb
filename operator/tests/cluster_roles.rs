//! The ClusterRoles the chart installs (`charts/oem-hosting/files/`) grant no wildcard, no
//! privilege-escalation verb, no unrestricted `bind`, no `nodes/proxy` by default, no write of
//! webhook configurations without `resourceNames`, and Secret verbs only as documented below,
//! cluster-wide (a ClusterRoleBinding of `templates/rbac.yaml`) or per namespace (RoleBindings
//! the operator makes); a new grant of any of these fails here until it is documented (and in
//! docs/security.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct ClusterRole {
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
    #[serde(default)]
    non_resource_urls: Vec<String>,
}

/// Every ClusterRole of the chart's files.
fn cluster_roles() -> Vec<ClusterRole> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/oem-hosting/files");
    let mut roles = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("charts/oem-hosting/files exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.to_string_lossy().ends_with("clusterrole.yaml")
                || p.to_string_lossy().ends_with("clusterroles.yaml")
        })
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        for document in serde_yaml::Deserializer::from_str(&text) {
            let role = ClusterRole::deserialize(document).expect("a ClusterRole");
            assert_eq!(role.kind, "ClusterRole", "{}", file.display());
            roles.push(role);
        }
    }
    roles
}

/// Secret verbs each ClusterRole may hold, and why.
fn documented_secret_verbs() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    BTreeMap::from([
        // Cluster-wide, list and watch only: the metadata of its own (labelled) Secrets and of
        // the hosting namespaces' `tls` Secrets (the caches that restart workloads on a
        // rotation). RBAC cannot narrow a list to a label or a name, so this still lets it read
        // any Secret (a known gap in docs/security.md).
        ("oem-hosting-operator", BTreeSet::from(["list", "watch"])),
        // Bound by the operator to itself, by RoleBindings in each reseller namespace and each
        // hosting namespace it manages (never cluster-wide, checked below): reads a password
        // Secret an EndUser names and a webhook's HMAC key, creates `<name>-login` and
        // `credentials`, adds a missing key to `credentials`.
        (
            "oem-hosting-operator-secrets",
            BTreeSet::from(["get", "create", "patch"]),
        ),
        // Bound by the operator to the webhooks' ServiceAccount, by a RoleBinding in each
        // reseller namespace (never cluster-wide, checked below): get of the password Secret
        // an EndUser names, for its key names. The webhooks' cluster-wide role
        // (`oem-hosting-webhooks`) holds no Secret verb at all.
        ("oem-hosting-webhooks-secrets", BTreeSet::from(["get"])),
        // The end users' panel: watches Secrets' metadata (password versions), reads the login
        // password and credentials Secrets of the end user logged in, and patches them on a
        // password change or a rotation (docs/panels.md; narrowing it is a known gap in
        // docs/security.md).
        (
            "oem-hosting-panel",
            BTreeSet::from(["get", "list", "watch", "patch"]),
        ),
        // Bound only by RoleBindings in the reseller's own namespace (its password Secrets and
        // webhook HMAC keys).
        (
            "oem-hosting-reseller-admin",
            BTreeSet::from([
                "get", "list", "watch", "create", "update", "patch", "delete",
            ]),
        ),
        // Bound in each end user's hosting namespace, and only for the Secret named
        // `credentials` (checked below): the reseller hands the service passwords over and
        // rotates them (docs/credentials.md).
        (
            "oem-hosting-tenant-viewer",
            BTreeSet::from(["get", "update", "patch"]),
        ),
    ])
}

#[test]
fn the_tenant_viewer_reaches_only_the_credentials_secret() {
    let role = cluster_roles()
        .into_iter()
        .find(|r| r.metadata.name == "oem-hosting-tenant-viewer")
        .expect("the tenant-viewer ClusterRole");
    let secret_rules: Vec<_> = role
        .rules
        .iter()
        .filter(|r| r.resources.iter().any(|res| res == "secrets"))
        .collect();
    assert!(!secret_rules.is_empty());
    for rule in secret_rules {
        assert_eq!(rule.resource_names, ["credentials"], "{rule:?}");
    }
}

/// ClusterRoles bound cluster-wide by the chart's ClusterRoleBindings; every other one is
/// bound only by RoleBindings in namespaces.
const CLUSTER_WIDE: [&str; 4] = [
    "oem-hosting-operator",
    "oem-hosting-operator-kubelet-stats",
    "oem-hosting-panel",
    "oem-hosting-webhooks",
];

/// The Secret roles the operator binds by RoleBindings in the namespaces it manages, never by a
/// ClusterRoleBinding.
const PER_NAMESPACE: [&str; 2] = [
    "oem-hosting-operator-secrets",
    "oem-hosting-webhooks-secrets",
];

/// The panel's impersonation of each reseller's panel ServiceAccount: bound only by the
/// RoleBindings the operator makes in reseller namespaces.
const PANEL_IMPERSONATION_ROLE: &str = "oem-hosting-panel-impersonation";

/// The only ClusterRole that may reach kubelets through the API server's node proxy, rendered
/// (with its binding) only when `operator.config.usage.kubeletStats` is on.
const KUBELET_STATS_ROLE: &str = "oem-hosting-operator-kubelet-stats";

fn rbac_template() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/oem-hosting/templates/rbac.yaml");
    std::fs::read_to_string(path).expect("templates/rbac.yaml is readable")
}

/// The ClusterRoles the chart's ClusterRoleBindings reference (`roleRef` of each binding).
fn cluster_role_binding_refs(template: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for binding in template.split("kind: ClusterRoleBinding").skip(1) {
        let role = binding
            .split("roleRef:")
            .nth(1)
            .and_then(|r| r.lines().find_map(|l| l.trim().strip_prefix("name: ")))
            .expect("a ClusterRoleBinding with a roleRef name");
        refs.insert(role.trim().to_owned());
    }
    refs
}

#[test]
fn only_the_documented_roles_are_bound_cluster_wide() {
    let refs = cluster_role_binding_refs(&rbac_template());
    let expected: BTreeSet<String> = CLUSTER_WIDE.map(String::from).into();
    assert_eq!(refs, expected);
    assert!(!refs.contains(PANEL_IMPERSONATION_ROLE));
}

#[test]
fn no_default_cluster_role_reaches_the_node_proxy() {
    for role in cluster_roles() {
        for rule in &role.rules {
            let proxy = rule
                .resources
                .iter()
                .any(|r| r == "nodes/proxy" || r.starts_with("nodes/") || r == "pods/proxy");
            assert!(
                !proxy || role.metadata.name == KUBELET_STATS_ROLE,
                "{} reaches the node proxy: {rule:?}",
                role.metadata.name
            );
        }
    }
    // The kubelet-stats role and its binding are rendered only when the value is on.
    let template = rbac_template();
    let (_, rest) = template
        .split_once("{{- if .Values.operator.config.usage.kubeletStats }}")
        .expect("rbac.yaml renders the kubelet-stats role conditionally");
    let block = rest.split("{{- end }}").next().unwrap_or_default();
    assert!(block.contains("files/operator-kubelet-stats-clusterrole.yaml"));
    assert!(block.contains(&format!("name: {KUBELET_STATS_ROLE}")));
    let outside = template.replace(block, "");
    assert!(!outside.contains(KUBELET_STATS_ROLE), "{outside}");
    assert!(!outside.contains("operator-kubelet-stats-clusterrole.yaml"));
}

/// Cluster-wide Lease writes would let a role take over any controller's leader election
/// (kube-controller-manager's in kube-system, say): the operator's Lease is a namespaced Role
/// of its own, for its one Lease.
#[test]
fn no_cluster_role_writes_leases_and_the_operators_role_names_its_lease() {
    for role in cluster_roles() {
        for rule in &role.rules {
            assert!(
                !rule.resources.iter().any(|r| r == "leases"),
                "{} grants {:?} on leases cluster-wide",
                role.metadata.name,
                rule.verbs
            );
        }
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/oem-hosting/files");
    let text = std::fs::read_to_string(dir.join("operator-lease-role.yaml")).expect("readable");
    let role = ClusterRole::deserialize(serde_yaml::Deserializer::from_str(&text).next().unwrap())
        .expect("a Role");
    assert_eq!(role.kind, "Role");
    for rule in &role.rules {
        assert_eq!(rule.resources, ["leases"]);
        let named = rule.resource_names == ["oem-hosting-operator"];
        assert!(
            named || rule.verbs == ["create"],
            "only create goes without the Lease's name: {rule:?}"
        );
    }
}

#[test]
fn webhook_configurations_are_written_only_by_name() {
    for role in cluster_roles() {
        for rule in &role.rules {
            let configurations = rule.resources.iter().any(|r| {
                r == "validatingwebhookconfigurations" || r == "mutatingwebhookconfigurations"
            });
            let writes = rule
                .verbs
                .iter()
                .any(|v| matches!(v.as_str(), "update" | "patch" | "delete" | "create"));
            assert!(
                !(configurations && writes && rule.resource_names.is_empty()),
                "{} may rewrite every webhook configuration: {rule:?}",
                role.metadata.name
            );
        }
    }
}

#[test]
fn the_chart_installs_the_nine_cluster_roles() {
    let names: BTreeSet<String> = cluster_roles()
        .into_iter()
        .map(|r| r.metadata.name)
        .collect();
    let expected: BTreeSet<String> = [
        "oem-hosting-operator",
        "oem-hosting-operator-kubelet-stats",
        "oem-hosting-operator-secrets",
        "oem-hosting-panel",
        "oem-hosting-panel-impersonation",
        "oem-hosting-reseller-admin",
        "oem-hosting-tenant-viewer",
        "oem-hosting-webhooks",
        "oem-hosting-webhooks-secrets",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, expected);
}

#[test]
fn the_webhooks_read_no_secret_cluster_wide() {
    let role = cluster_roles()
        .into_iter()
        .find(|r| r.metadata.name == "oem-hosting-webhooks")
        .expect("the webhooks' ClusterRole");
    for rule in &role.rules {
        assert!(
            !rule.resources.iter().any(|r| r == "secrets"),
            "the webhooks' cluster-wide role reaches Secrets: {rule:?}"
        );
    }
    // Their Secret get comes only from the per-namespace role, which the operator may bind.
    let operator = cluster_roles()
        .into_iter()
        .find(|r| r.metadata.name == "oem-hosting-operator")
        .expect("the operator's ClusterRole");
    assert!(operator.rules.iter().any(|r| {
        r.verbs.iter().any(|v| v == "bind")
            && r.resource_names
                .iter()
                .any(|n| n == "oem-hosting-webhooks-secrets")
    }));
}

#[test]
fn no_cluster_role_grants_a_wildcard() {
    for role in cluster_roles() {
        for rule in &role.rules {
            for value in rule
                .api_groups
                .iter()
                .chain(&rule.resources)
                .chain(&rule.verbs)
                .chain(&rule.resource_names)
                .chain(&rule.non_resource_urls)
            {
                assert!(
                    !value.contains('*'),
                    "{} grants a wildcard: {rule:?}",
                    role.metadata.name
                );
            }
        }
    }
}

#[test]
fn no_cluster_role_escalates_or_binds_freely() {
    for role in cluster_roles() {
        for rule in &role.rules {
            for verb in &rule.verbs {
                // The one impersonation: the panel acting as the resellers' panel
                // ServiceAccount, by that name, in the namespaces it is bound in.
                let panel_acting = verb == "impersonate"
                    && role.metadata.name == PANEL_IMPERSONATION_ROLE
                    && rule.api_groups == [""]
                    && rule.resources == ["serviceaccounts"]
                    && rule.resource_names == ["oem-hosting-reseller-panel"];
                assert!(
                    !matches!(verb.as_str(), "escalate" | "impersonate") || panel_acting,
                    "{} may {verb}: {rule:?}",
                    role.metadata.name
                );
                if verb == "bind" {
                    assert!(
                        !rule.resource_names.is_empty(),
                        "{} may bind any role: {rule:?}",
                        role.metadata.name
                    );
                }
            }
            assert!(
                !rule.resources.iter().any(|r| r == "serviceaccounts/token"),
                "{} may mint tokens: {rule:?}",
                role.metadata.name
            );
        }
    }
}

/// Writing cluster-wide RBAC is held only by the operator, and only under the admission policy
/// that limits it to each reseller's own read of its Reseller (operator-rbac-guard.yaml, which
/// the chart installs with the operator's ServiceAccount and the e2e harness too).
#[test]
fn cluster_rbac_is_written_only_by_the_operator_under_its_guard() {
    let writers: Vec<String> = cluster_roles()
        .into_iter()
        .filter(|role| {
            role.rules.iter().any(|rule| {
                rule.resources
                    .iter()
                    .any(|r| r == "clusterroles" || r == "clusterrolebindings")
                    && rule
                        .verbs
                        .iter()
                        .any(|v| matches!(v.as_str(), "create" | "patch" | "update"))
            })
        })
        .map(|role| role.metadata.name)
        .collect();
    assert_eq!(writers, ["oem-hosting-operator"]);
    let guard = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../charts/oem-hosting/files/operator-rbac-guard.yaml"),
    )
    .expect("operator-rbac-guard.yaml");
    let prefix = oem_operator::hosting::rbac::RESELLER_SELF_PREFIX;
    assert!(guard.contains(&format!("request.name.startsWith('{prefix}')")));
    assert!(guard.contains(&format!("request.name.substring({})", prefix.len())));
    assert!(guard.contains("request.userInfo.username == 'OPERATOR_USERNAME'"));
    assert!(rbac_template().contains("operator-rbac-guard.yaml"));
}

#[test]
fn secret_verbs_are_only_those_documented() {
    let documented = documented_secret_verbs();
    for role in cluster_roles() {
        let name = role.metadata.name.as_str();
        let granted: BTreeSet<&str> = role
            .rules
            .iter()
            .filter(|r| r.api_groups.iter().any(String::is_empty))
            .filter(|r| r.resources.iter().any(|res| res == "secrets"))
            .flat_map(|r| r.verbs.iter().map(String::as_str))
            .collect();
        let allowed = documented.get(name).cloned().unwrap_or_default();
        if PER_NAMESPACE.contains(&name) {
            assert!(
                !CLUSTER_WIDE.contains(&name),
                "{name} is bound per namespace only"
            );
        }
        let extra: Vec<&&str> = granted.difference(&allowed).collect();
        assert!(
            extra.is_empty(),
            "{name} holds undocumented Secret verbs {extra:?}"
        );
    }
}
