//! The chart's ClusterRoles as the API server applies them (issue 15 item 10): the operator,
//! running under `oem-hosting-operator`, provisions an end user (its generated login Secret in
//! the reseller namespace, the `credentials` Secret in the hosting namespace), which it can
//! only do through the RoleBindings it makes to itself there (`oem-hosting-operator-secrets`);
//! the API server then answers that it may not read or write a Secret anywhere else, may not
//! delete one, and may not reach the node proxy; the webhooks may not rewrite webhook
//! configurations, and may get Secrets only in the reseller namespace, where the operator bound
//! `oem-hosting-webhooks-secrets` to them (not in default, kube-system or a hosting namespace). What stays cluster-wide (list/watch of Secrets) is asserted too, so a change
//! shows here and in docs/security.md.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use oem_e2e::hosting::{self, apply_course, apply_enduser, wait_phase};
use oem_e2e::operator::{OPERATOR_ACCOUNT, OPERATOR_NAMESPACE, Operator, OperatorOptions};
use oem_e2e::webhooks::WEBHOOKS_ACCOUNT;
use oem_e2e::{Cluster, wait};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_reads_and_writes_secrets_only_where_it_manages() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let cluster = Cluster::shared().await?;
    let operator_process = Operator::start(
        cluster,
        OperatorOptions {
            env: vec![("OEM_MONITOR_ENABLED".into(), "false".into())],
            ..Default::default()
        },
    )
    .await?;
    let client = cluster.client().await?;
    let reseller = format!("priv{}", std::process::id() % 100000);
    let ns = hosting::reseller_with_namespace(
        &client,
        &reseller,
        json!([{"kind": "User", "name": format!("carol@{reseller}")}]),
    )
    .await?;
    apply_course(
        &client,
        hosting::course(&ns, "plan", "1Gi", json!({"web": {"phpVersion": "8.4"}})),
    )
    .await?;
    apply_enduser(
        &client,
        hosting::enduser(&ns, "kept", "plan", "2025-01-01", json!({})),
    )
    .await?;
    let eu = wait_phase(&client, &ns, "kept", "Active", LIMIT).await?;
    let hosting_ns = hosting::hosting_namespace(&eu)?;
    println!("end user Active after {:?}", started.elapsed());

    // Both Secrets were written under the per-namespace grant (the ClusterRole has no create).
    Api::<Secret>::namespaced(client.clone(), &ns)
        .get("kept-login")
        .await?;
    Api::<Secret>::namespaced(client.clone(), &hosting_ns)
        .get("credentials")
        .await?;

    let operator = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}");
    let can = |who: &str, verb: &str, resource: &str, ns: Option<&str>| -> anyhow::Result<bool> {
        let mut args = vec!["auth", "can-i", verb, resource, "--as", who];
        match ns {
            Some(ns) => args.extend(["-n", ns]),
            None => args.push("--all-namespaces"),
        }
        let out = cluster.kubectl(&args, None)?;
        Ok(String::from_utf8_lossy(&out.stdout).trim() == "yes")
    };
    // Where it manages: read, create, patch; never delete (owner references and namespace
    // deletion remove its Secrets).
    for managed in [ns.as_str(), hosting_ns.as_str()] {
        for verb in ["get", "create", "patch"] {
            assert!(
                can(&operator, verb, "secrets", Some(managed))?,
                "{verb} secrets in {managed}"
            );
        }
        assert!(!can(&operator, "delete", "secrets", Some(managed))?);
        assert!(!can(&operator, "update", "secrets", Some(managed))?);
    }
    // The provider's namespace, where it keeps the resellers' panel logins
    // (the namespace of `panelServiceAccount`): get, create, patch, as in a namespace it
    // manages.
    for verb in ["get", "create", "patch"] {
        assert!(
            can(&operator, verb, "secrets", Some(OPERATOR_NAMESPACE))?,
            "{verb} secrets in {OPERATOR_NAMESPACE}, for the panel logins"
        );
    }
    assert!(!can(
        &operator,
        "delete",
        "secrets",
        Some(OPERATOR_NAMESPACE)
    )?);
    // Anywhere else: nothing but the cluster-wide list/watch of its metadata caches.
    for other in ["default", "kube-system"] {
        for verb in ["get", "create", "patch", "update", "delete"] {
            assert!(
                !can(&operator, verb, "secrets", Some(other))?,
                "the operator may {verb} secrets in {other}"
            );
        }
    }
    assert!(can(&operator, "list", "secrets", None)?, "documented gap");
    assert!(can(&operator, "watch", "secrets", None)?, "documented gap");
    // (`auth can-i get nodes/proxy` would ask about a node named "proxy".)
    for verb in ["get", "create"] {
        let out = cluster.kubectl(
            &[
                "auth",
                "can-i",
                verb,
                "nodes",
                "--subresource=proxy",
                "--as",
                &operator,
            ],
            None,
        )?;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "no",
            "the operator may {verb} nodes/proxy"
        );
    }

    // The webhooks: the chart's role names no webhook configuration.
    oem_e2e::webhooks::install(cluster)?;
    let webhooks = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:{WEBHOOKS_ACCOUNT}");
    for resource in [
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
    ] {
        for verb in ["get", "update", "patch"] {
            assert!(
                !can(&webhooks, verb, resource, None)?,
                "the webhooks may {verb} {resource}"
            );
        }
    }
    // Their Secret get only in the reseller namespace, through the RoleBinding the operator
    // made there to their ServiceAccount (its OEM_WEBHOOKS_SERVICE_ACCOUNT, e2e/src/operator.rs).
    let binding = cluster.kubectl_ok(
        &[
            "get",
            "rolebinding",
            "oem-hosting-webhooks-secrets",
            "-n",
            &ns,
            "-o",
            "jsonpath={.roleRef.name} {.subjects[0].kind} {.subjects[0].namespace}/{.subjects[0].name}",
        ],
        None,
    )?;
    assert_eq!(
        binding.trim(),
        format!(
            "oem-hosting-webhooks-secrets ServiceAccount {OPERATOR_NAMESPACE}/{WEBHOOKS_ACCOUNT}"
        )
    );
    assert!(
        can(&webhooks, "get", "secrets", Some(&ns))?,
        "the webhooks may not get secrets in {ns}"
    );
    for verb in ["list", "watch", "create", "patch", "update", "delete"] {
        assert!(
            !can(&webhooks, verb, "secrets", Some(&ns))?,
            "the webhooks may {verb} secrets in {ns}"
        );
    }
    for other in [
        "default",
        "kube-system",
        OPERATOR_NAMESPACE,
        hosting_ns.as_str(),
    ] {
        assert!(
            !can(&webhooks, "get", "secrets", Some(other))?,
            "the webhooks may get secrets in {other}"
        );
    }
    for verb in ["get", "list", "watch"] {
        assert!(
            !can(&webhooks, verb, "secrets", None)?,
            "the webhooks may {verb} secrets cluster-wide"
        );
    }

    // The configuration emptied: the operator removes the webhooks' binding (converged with
    // the other bindings of the reseller namespace), and their Secret get with it.
    drop(operator_process);
    let _operator = Operator::start(
        cluster,
        OperatorOptions {
            env: vec![
                ("OEM_MONITOR_ENABLED".into(), "false".into()),
                ("OEM_WEBHOOKS_SERVICE_ACCOUNT".into(), String::new()),
            ],
            ..Default::default()
        },
    )
    .await?;
    wait::until(
        "the webhooks' binding removed",
        LIMIT,
        Duration::from_millis(500),
        || async {
            let out = cluster
                .kubectl(
                    &[
                        "get",
                        "rolebinding",
                        "oem-hosting-webhooks-secrets",
                        "-n",
                        &ns,
                    ],
                    None,
                )
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Err("still there".into())
            } else {
                Ok(())
            }
        },
    )
    .await?;
    assert!(!can(&webhooks, "get", "secrets", Some(&ns))?);
    println!("webhooks' binding removed after {:?}", started.elapsed());

    // Cleanup: the end user, then the reseller (bounded).
    cluster.kubectl_ok(
        &["delete", "enduser", "kept", "-n", &ns, "--wait=false"],
        None,
    )?;
    wait::until(
        "the end user gone",
        LIMIT,
        Duration::from_millis(500),
        || async {
            let out = cluster
                .kubectl(&["get", "enduser", "kept", "-n", &ns], None)
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Err("still there".into())
            } else {
                Ok(())
            }
        },
    )
    .await?;
    cluster.kubectl_ok(&["delete", "reseller", &reseller, "--wait=false"], None)?;
    println!("privileges e2e passed in {:?}", started.elapsed());
    Ok(())
}
