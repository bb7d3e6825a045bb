//! Provisioning at scale and across a crash: 50 end users provisioned while the operator is
//! killed with SIGKILL and restarted end up Active with no duplicate and no orphan; then two
//! minutes of steady state cost zero write requests by the operator (counted from the API
//! server's audit log of the operator's ServiceAccount).

use std::time::Duration;

use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::{Cluster, wait};
use serde_json::json;

const END_USERS: usize = 50;

#[tokio::test]
async fn fifty_end_users_survive_a_sigkill_and_then_idle_without_writes() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let client = cluster.client().await?;
    let mut operator = Operator::start(cluster, OperatorOptions::provisioning_only()).await?;
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
            match hosting::active_count(&client, &ns).await {
                Ok(n) if n >= 5 => Ok(()),
                Ok(n) => Err(format!("{n} Active")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    let at_kill = hosting::active_count(&client, &ns).await?;
    operator.kill()?;
    assert!(
        at_kill < END_USERS,
        "the kill came mid-provisioning ({at_kill} Active)"
    );
    drop(operator);
    let operator = Operator::start(cluster, OperatorOptions::provisioning_only()).await?;

    wait::until(
        "all 50 end users Active",
        Duration::from_secs(300),
        Duration::from_millis(500),
        || async {
            match hosting::active_count(&client, &ns).await {
                Ok(n) if n == END_USERS => Ok(()),
                Ok(n) => Err(format!("{n} Active\n{}", operator.log_tail(5))),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;

    hosting::check_provisioned_once(&client, &reseller, END_USERS, &["db", "web"]).await?;

    // Steady state: let in-flight work settle, then two minutes of resyncs every 5 s.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let counted = oem_e2e::operator::request_counts(cluster)?;
    let (reads_before, before) = oem_e2e::operator::requests(cluster)?;
    tokio::time::sleep(Duration::from_secs(120)).await;
    let (reads_after, after) = oem_e2e::operator::requests(cluster)?;
    let made =
        oem_e2e::operator::requests_between(&counted, &oem_e2e::operator::request_counts(cluster)?);
    println!(
        "idle: {} operator write requests and {} reads in 120 s with {END_USERS} Active end users \
         (audit log): {made:?}",
        after - before,
        reads_after - reads_before
    );
    assert!(before > 0, "the audit log records the operator's writes");
    assert_eq!(after - before, 0, "a steady state writes nothing");
    Ok(())
}
