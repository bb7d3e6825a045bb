//! A reseller reads its own Reseller with kubectl (issue 14, "kubectl stays first-class"), on the
//! local control plane with the operator under the chart's RBAC: the operator gives each
//! reseller's admins get/watch of that one cluster-scoped Reseller (a ClusterRole and binding
//! owned by it); another reseller's object stays Forbidden. The operator may write no other
//! cluster-wide RBAC: the chart's ValidatingAdmissionPolicy refuses its ServiceAccount any other
//! name, rule or roleRef. Deleting the Reseller removes both (owner references).

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Api;
use oem_crds::Reseller;
use oem_e2e::hosting;
use oem_e2e::operator::{OPERATOR_ACCOUNT, OPERATOR_NAMESPACE, Operator, OperatorOptions};
use oem_e2e::{Cluster, wait};
use serde_json::json;

/// `kubectl --as <user> <args>`: its stdout, or its stderr as the error.
fn kubectl_as(cluster: &Cluster, user: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["--as", user];
    all.extend_from_slice(args);
    let out = cluster.kubectl(&all, None).map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn a_reseller_reads_its_own_reseller_and_the_operator_writes_no_other_cluster_rbac()
-> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let client = cluster.client().await?;
    let _operator = Operator::start(
        cluster,
        OperatorOptions {
            env: vec![("OEM_MONITOR_ENABLED".into(), "false".into())],
            ..Default::default()
        },
    )
    .await?;
    let id = std::process::id() % 100000;
    let (one, two) = (format!("self{id}a"), format!("self{id}b"));
    let alice = format!("alice@{one}.example.jp");
    let admin = |user: &str| json!([{"kind": "User", "name": user}]);
    hosting::reseller_with_namespace(&client, &one, admin(&alice)).await?;
    hosting::reseller_with_namespace(&client, &two, admin(&format!("bob@{two}.example.jp")))
        .await?;

    let own = wait::until(
        "alice to read her own Reseller",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            kubectl_as(
                cluster,
                &alice,
                &[
                    "get",
                    "reseller",
                    &one,
                    "-o",
                    "jsonpath={.spec.quota.maxEndUsers}",
                ],
            )
        },
    )
    .await?;
    ensure!(!own.trim().is_empty(), "no quota read: {own:?}");
    let other = kubectl_as(cluster, &alice, &["get", "reseller", &two]);
    ensure!(
        other
            .as_ref()
            .is_err_and(|e| e.contains("Forbidden") || e.contains("forbidden")),
        "alice read another reseller: {other:?}"
    );
    let list = kubectl_as(cluster, &alice, &["get", "resellers"]);
    ensure!(list.is_err(), "alice listed every reseller: {list:?}");
    eprintln!("alice reads {one} (maxEndUsers {own}), not {two}, not the list");

    // The operator's ServiceAccount may write no other cluster-wide role or binding.
    let operator = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}");
    for (what, args) in [
        (
            "a role of another name",
            vec![
                "create",
                "clusterrole",
                "oem-evil",
                "--verb=list",
                "--resource=secrets",
            ],
        ),
        (
            "a self role with another rule",
            vec![
                "create",
                "clusterrole",
                "oem-hosting-reseller-self-evil",
                "--verb=list",
                "--resource=secrets",
            ],
        ),
        (
            "a self binding of another role",
            vec![
                "create",
                "clusterrolebinding",
                "oem-hosting-reseller-self-evil",
                "--clusterrole=oem-hosting-operator",
                &format!("--user={alice}"),
            ],
        ),
    ] {
        let refused = kubectl_as(cluster, &operator, &args);
        ensure!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("oem-hosting-operator-rbac-guard")),
            "the operator could write {what}: {refused:?}"
        );
    }
    eprintln!("the operator's ServiceAccount is refused three other cluster-wide RBAC writes");

    // Deleting the reseller removes its role and binding with it.
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let name = format!("oem-hosting-reseller-self-{one}");
    ensure!(roles.get_opt(&name).await?.is_some(), "no {name}");
    Api::<Reseller>::all(client.clone())
        .delete(&one, &Default::default())
        .await
        .context("deleting the reseller")?;
    wait::gone(&roles, &name, Duration::from_secs(60)).await?;
    Ok(())
}
