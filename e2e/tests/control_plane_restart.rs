//! Chaos on the control plane (issue 18): the API server, and then etcd, are SIGKILLed while
//! the operator runs, stay down longer than the leader's renew deadline, and come back. The
//! operator recovers by itself, without a restart: it stops leading when it cannot renew,
//! leads again once the API server answers, and has provisioned an end user applied right
//! after the return (its namespace, workloads and status written) within 30 s of the return.
//! The end user then turns Active once the controller manager, whose informers back off on
//! their own clock after the outage, has made its pods (printed; bounded more loosely).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, ListParams};
use oem_crds::EndUser;
use oem_e2e::hosting::{self, apply_course, apply_enduser, wait_phase};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::{Cluster, wait};
use serde_json::json;

/// The most the operator may take after the server's return (the bound).
const RECOVERY: Duration = Duration::from_secs(30);
/// The most the whole control plane may take to make the end user Active after its return:
/// the controller manager re-lists with client-go's backoff, up to half a minute after an
/// outage this long.
const ACTIVE: Duration = Duration::from_secs(90);
/// Longer than the leader's renew deadline (8 s), so it has to stop leading and lead again.
const DOWN_FOR: Duration = Duration::from_secs(12);

#[tokio::test]
async fn the_operator_recovers_by_itself_after_the_api_server_and_then_etcd_restart()
-> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let client = cluster.client().await?;
    let mut operator = Operator::start(cluster, OperatorOptions::provisioning_only()).await?;
    let ns = hosting::reseller_with_namespace(
        &client,
        &format!("cp{}", std::process::id() % 100000),
        json!([]),
    )
    .await?;
    let mut course = hosting::course(&ns, "plan", "1Gi", hosting::web_and_db());
    course["spec"]["resources"]["cpu"] = json!("100m");
    apply_course(&client, course).await?;
    apply_enduser(
        &client,
        hosting::enduser(&ns, "before", "plan", "2025-01-01", json!({})),
    )
    .await?;
    wait_phase(&client, &ns, "before", "Active", Duration::from_secs(60)).await?;

    for (round, component) in ["kube-apiserver", "etcd"].into_iter().enumerate() {
        let pid_file = cluster.state_dir.join(format!("pids/{component}.pid"));
        let pid = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {}", pid_file.display()))?;
        let status = std::process::Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()?;
        ensure!(status.success(), "kill -KILL {component} ({})", pid.trim());
        tokio::time::sleep(DOWN_FOR).await;
        let log = operator.log_tail(usize::MAX);
        ensure!(
            log.matches("stopped leading").count() > round,
            "with {component} down for {DOWN_FOR:?} the operator kept leading:\n{}",
            operator.log_tail(20)
        );
        // cluster.sh up starts what is not running and waits until the API server answers.
        tokio::task::spawn_blocking(|| Cluster::script_ok("up", &[])).await??;
        let restarted = Instant::now();
        let name = format!("after-{component}");
        // The first writes may still meet a server settling down: retried for a while.
        let client = cluster.client().await?;
        let endusers: Api<EndUser> = Api::namespaced(client.clone(), &ns);
        wait::until(
            &format!("{name} applied"),
            Duration::from_secs(20),
            Duration::from_millis(250),
            || async {
                apply_enduser(
                    &client,
                    hosting::enduser(&ns, &name, "plan", "2025-01-01", json!({})),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
            },
        )
        .await?;
        let applied = restarted.elapsed();
        // The operator leads again, provisions the end user and says so in its status.
        let provisioned = wait::until(
            &format!("{name} provisioned by the operator"),
            RECOVERY + Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                let enduser = endusers.get(&name).await.map_err(|e| e.to_string())?;
                let status = enduser.status.clone().unwrap_or_default();
                let hosting = status
                    .hosting_namespace
                    .clone()
                    .ok_or("no hosting namespace in the status yet")?;
                if status.observed_generation != enduser.metadata.generation {
                    return Err(format!(
                        "observed generation {:?}",
                        status.observed_generation
                    ));
                }
                let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &hosting);
                let found = sets
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                if found.items.is_empty() {
                    return Err(format!("no workloads in {hosting} yet"));
                }
                Ok(())
            },
        )
        .await
        .map(|()| restarted.elapsed())
        .with_context(|| format!("operator log:\n{}", operator.log_tail(30)))?;
        wait_phase(&client, &ns, &name, "Active", ACTIVE)
            .await
            .with_context(|| format!("operator log:\n{}", operator.log_tail(30)))?;
        let active = restarted.elapsed();
        println!(
            "{component} SIGKILLed, down {DOWN_FOR:?}; after its return: end user applied at \
             {applied:?}, provisioned by the operator at {provisioned:?}, Active at {active:?}"
        );
        ensure!(
            provisioned <= RECOVERY,
            "the operator took {provisioned:?} after {component}'s return, over {RECOVERY:?}"
        );
        ensure!(
            operator.exited()?.is_none(),
            "the operator exited instead of recovering:\n{}",
            operator.log_tail(20)
        );
    }
    cluster.kubectl_ok(
        &[
            "delete",
            "endusers",
            "--all",
            "-n",
            &ns,
            "--wait=true",
            "--timeout=120s",
        ],
        None,
    )?;
    Ok(())
}
