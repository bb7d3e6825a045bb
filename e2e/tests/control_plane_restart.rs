//! Chaos on the control plane (issue 18): the API server, and then etcd, are SIGKILLed while
//! the operator runs, stay down longer than the leader's renew deadline, and come back. The
//! operator recovers by itself, without a restart: it stops leading when it cannot renew,
//! leads again once the API server answers, and an end user applied right after the return is
//! Active within 30 s.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use oem_e2e::hosting::{self, apply_course, apply_enduser, wait_phase};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::{Cluster, wait};
use serde_json::json;

/// The most the operator may take after the server's return (the bound).
const RECOVERY: Duration = Duration::from_secs(30);
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

    for component in ["kube-apiserver", "etcd"] {
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
            log.contains("stopped leading"),
            "with {component} down for {DOWN_FOR:?} the operator kept leading:\n{}",
            operator.log_tail(20)
        );
        // cluster.sh up starts what is not running and waits until the API server answers.
        tokio::task::spawn_blocking(|| Cluster::script_ok("up", &[])).await??;
        let restarted = Instant::now();
        let name = format!("after-{component}");
        // The first writes may still meet a server settling down: retried for a while.
        let client = cluster.client().await?;
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
        // The server is back when it serves the end users' kind again (it answers /readyz a
        // little before its custom resources).
        let back = Instant::now();
        let serving = back.duration_since(restarted);
        wait_phase(
            &client,
            &ns,
            &name,
            "Active",
            RECOVERY + Duration::from_secs(30),
        )
        .await
        .with_context(|| format!("operator log:\n{}", operator.log_tail(30)))?;
        let took = back.elapsed();
        println!(
            "{component} SIGKILLed, down {DOWN_FOR:?}: custom resources served {serving:?} after \
             /readyz; an end user applied then was Active {took:?} later"
        );
        ensure!(
            took <= RECOVERY,
            "the operator took {took:?} after {component}'s return, over {RECOVERY:?}"
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
