//! Provisioning at scale and across a crash: 50 end users provisioned while the operator is
//! killed with SIGKILL and restarted end up Active with no duplicate and no orphan; then two
//! minutes of steady state cost zero write requests by the operator (counted from the API
//! server's audit log of the operator's ServiceAccount).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use oem_crds::EndUser;
use oem_e2e::hosting::{self, apply_course, apply_enduser, phase_of};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::{Cluster, wait};
use serde_json::json;

const END_USERS: usize = 50;

fn options() -> OperatorOptions {
    OperatorOptions {
        env: vec![
            // Provisioning alone: the monitor would probe Service names that do not resolve
            // in the test's network namespace and mark every end user Degraded.
            ("OEM_MONITOR_ENABLED".into(), "false".into()),
            ("OEM_RESYNC_INTERVAL".into(), "10s".into()),
            ("OEM_SPEC_RETRY".into(), "5s".into()),
        ],
    }
}

async fn active_count(client: &Client, ns: &str) -> anyhow::Result<usize> {
    let list = Api::<EndUser>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    Ok(list
        .items
        .iter()
        .filter(|e| phase_of(e) == "Active")
        .count())
}

#[tokio::test]
async fn fifty_end_users_survive_a_sigkill_and_then_idle_without_writes() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let client = cluster.client().await?;
    let mut operator = Operator::start(cluster, options()).await?;
    let reseller = format!("scale{}", std::process::id() % 100000);
    let ns = hosting::reseller_with_namespace(&client, &reseller, json!([])).await?;
    apply_course(
        &client,
        hosting::course(&ns, "plan", "1Gi", hosting::web_and_db()),
    )
    .await?;
    for i in 0..END_USERS {
        apply_enduser(
            &client,
            hosting::enduser(
                &ns,
                &format!("user-{i:02}"),
                "plan",
                "2025-01-01",
                json!({}),
            ),
        )
        .await?;
    }

    // Kill the operator in the middle of provisioning.
    wait::until(
        "some end users Active",
        Duration::from_secs(180),
        Duration::from_millis(200),
        || async {
            match active_count(&client, &ns).await {
                Ok(n) if n >= 5 => Ok(()),
                Ok(n) => Err(format!("{n} Active")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    let at_kill = active_count(&client, &ns).await?;
    operator.kill()?;
    assert!(
        at_kill < END_USERS,
        "the kill came mid-provisioning ({at_kill} Active)"
    );
    drop(operator);
    let operator = Operator::start(cluster, options()).await?;

    wait::until(
        "all 50 end users Active",
        Duration::from_secs(300),
        Duration::from_millis(500),
        || async {
            match active_count(&client, &ns).await {
                Ok(n) if n == END_USERS => Ok(()),
                Ok(n) => Err(format!("{n} Active\n{}", operator.log_tail(5))),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;

    // Exactly one hosting namespace per end user, each with exactly its workloads.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let hosting = namespaces
        .list(&ListParams::default().labels(&format!(
            "hosting.oem.dev/reseller={reseller},hosting.oem.dev/enduser"
        )))
        .await?;
    let mut per_user: BTreeMap<String, usize> = BTreeMap::new();
    for n in &hosting.items {
        if let Some(eu) = n.labels().get("hosting.oem.dev/enduser") {
            *per_user.entry(eu.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        per_user.len(),
        END_USERS,
        "one hosting namespace per end user"
    );
    assert!(
        per_user.values().all(|&n| n == 1),
        "no duplicate namespace: {per_user:?}"
    );
    for n in &hosting.items {
        let sets = Api::<StatefulSet>::namespaced(client.clone(), &n.name_any())
            .list(&ListParams::default())
            .await?;
        let names: Vec<String> = sets.items.iter().map(|s| s.name_any()).collect();
        assert_eq!(
            names,
            ["db", "web"],
            "{}: exactly its workloads",
            n.name_any()
        );
    }
    let orphans = namespaces
        .list(
            &ListParams::default()
                .labels("app.kubernetes.io/managed-by=oem-hosting,hosting.oem.dev/enduser"),
        )
        .await?
        .items
        .into_iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter(|n| {
            let labels = n.labels();
            labels.get("hosting.oem.dev/reseller") == Some(&reseller)
                && !per_user.contains_key(
                    labels
                        .get("hosting.oem.dev/enduser")
                        .map(String::as_str)
                        .unwrap_or_default(),
                )
        })
        .count();
    assert_eq!(orphans, 0, "no orphaned hosting namespace");

    // Steady state: let in-flight work settle, then two minutes of resyncs every 5 s.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (reads_before, before) = oem_e2e::operator::requests(cluster)?;
    tokio::time::sleep(Duration::from_secs(120)).await;
    let (reads_after, after) = oem_e2e::operator::requests(cluster)?;
    println!(
        "idle: {} operator write requests and {} reads in 120 s with {END_USERS} Active end users \
         (audit log)",
        after - before,
        reads_after - reads_before
    );
    assert!(before > 0, "the audit log records the operator's writes");
    assert_eq!(after - before, 0, "a steady state writes nothing");
    Ok(())
}
