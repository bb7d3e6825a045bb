//! Checks of the installed release shared by the chart tests.

use anyhow::bail;
use oem_e2e::cluster::Cluster;

/// The panel's ServiceAccount, as the chart names it for release `oem`, holds exactly what
/// `files/panel-clusterrole.yaml` grants: it reads what the pages show (maintenance windows
/// included), patches Secrets and
/// EndUsers (password, credentials, the lock annotation) and nothing more.
pub fn check_panel_rights(cluster: &Cluster, namespace: &str) -> anyhow::Result<()> {
    let subject = format!("system:serviceaccount:{namespace}:oem-oem-hosting-panel");
    // `resource` may name a subresource after a slash (`kind/status`).
    let can = |verb: &str, resource: &str| -> anyhow::Result<bool> {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        let mut args = vec![
            "auth",
            "can-i",
            verb,
            resource,
            "-n",
            "reseller-anyone",
            "--as",
            &subject,
        ];
        let flag = format!("--subresource={subresource}");
        if !subresource.is_empty() {
            args.push(&flag);
        }
        let out = cluster.kubectl(&args, None)?;
        match String::from_utf8_lossy(&out.stdout).trim() {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => bail!(
                "kubectl auth can-i {verb} {resource}: {other:?} {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    };
    let mut wrong = Vec::new();
    for (verb, resource) in [
        ("list", "endusers.hosting.oem.dev"),
        ("watch", "endusers.hosting.oem.dev"),
        ("patch", "endusers.hosting.oem.dev"),
        ("get", "resellers.hosting.oem.dev"),
        ("watch", "courses.hosting.oem.dev"),
        ("watch", "incidents.hosting.oem.dev"),
        ("watch", "maintenances.hosting.oem.dev"),
        ("watch", "clustermaintenances.hosting.oem.dev"),
        ("watch", "secrets"),
        ("get", "secrets"),
        ("patch", "secrets"),
    ] {
        if !can(verb, resource)? {
            wrong.push(format!("cannot {verb} {resource}"));
        }
    }
    for (verb, resource) in [
        ("create", "endusers.hosting.oem.dev"),
        ("delete", "endusers.hosting.oem.dev"),
        ("patch", "endusers.hosting.oem.dev/status"),
        ("patch", "resellers.hosting.oem.dev"),
        ("patch", "courses.hosting.oem.dev"),
        ("patch", "maintenances.hosting.oem.dev"),
        ("create", "secrets"),
        ("delete", "secrets"),
        ("create", "pods"),
        ("get", "configmaps"),
        ("impersonate", "users"),
        ("impersonate", "serviceaccounts"),
    ] {
        if can(verb, resource)? {
            wrong.push(format!("can {verb} {resource}"));
        }
    }
    if !wrong.is_empty() {
        bail!("the panel's ServiceAccount {subject}: {wrong:?}");
    }
    Ok(())
}
