//! How the operator and the webhooks stop (issue 18, "Supervised"), on the local control plane:
//! SIGTERM — what a kubelet sends a stopping pod — ends each within 10 s with exit status 0,
//! while the operator is busy with an end user; a part of the operator that fails (here the
//! alert controller, whose mail password file is missing) stops the whole process non-zero,
//! naming the part, instead of leaving it running without alerting; an unknown configuration
//! key stops the start, naming the key.

use std::time::Duration;

use anyhow::{Context, ensure};
use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::webhooks::{WebhookConfigs, WebhookServer};
use oem_e2e::{Cluster, free_port};
use serde_json::json;

/// What an SRE expects a stop to take (and the pod's grace period leaves).
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// The tests share the operator's pid file: one operator at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env(pairs: &[(&str, String)]) -> OperatorOptions {
    OperatorOptions {
        env: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn sigterm_stops_the_operator_and_the_webhooks_within_ten_seconds() -> anyhow::Result<()> {
    let _one = SERIAL.lock().await;
    let cluster = Cluster::shared().await?;
    let client = cluster.client().await?;
    let mut operator = Operator::start(
        cluster,
        env(&[
            ("OEM_PROBE_INTERVAL", "2s".into()),
            ("OEM_ALERT_POLL_INTERVAL", "1s".into()),
        ]),
    )
    .await?;
    let id = std::process::id() % 100000;
    let ns = hosting::reseller_with_namespace(&client, &format!("stop{id}"), json!([])).await?;
    apply_course(
        &client,
        hosting::course(&ns, "web", "1Gi", json!({"web": {"phpVersion": "8.4"}})),
    )
    .await?;
    apply_enduser(
        &client,
        hosting::enduser(&ns, "busy", "web", "2025-01-01", json!({})),
    )
    .await?;
    // Let the controllers, the monitor and the alert controller all be at work.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, took) = operator
        .terminate(STOP_WITHIN)
        .with_context(|| format!("operator log:\n{}", operator.log_tail(30)))?;
    eprintln!("operator: SIGTERM to exit {took:?}, {status}");
    ensure!(
        status.success(),
        "the operator exited with {status} on SIGTERM:\n{}",
        operator.log_tail(30)
    );
    // The whole log: on a cluster other tests filled, the operator logs hundreds of lines.
    let log = operator.log_tail(usize::MAX);
    ensure!(
        log.contains("stop signal received") && log.contains("shut down"),
        "the operator's log does not tell the stop:\n{}",
        operator.log_tail(30)
    );
    ensure!(
        !log.contains("were aborted"),
        "a part ignored the stop until the grace period ended:\n{}",
        operator.log_tail(30)
    );

    let configs = WebhookConfigs::register(
        cluster,
        &client,
        &format!("stop{id}"),
        free_port()?,
        &format!("stop{id}"),
    )
    .await?;
    let mut webhooks = WebhookServer::start(cluster, &configs)?;
    configs.wait_ca_bundle(&client).await?;
    let (status, took) = webhooks
        .terminate(STOP_WITHIN)
        .with_context(|| format!("webhooks log:\n{}", webhooks.log_tail(30)))?;
    eprintln!("webhooks: SIGTERM to exit {took:?}, {status}");
    ensure!(
        status.success(),
        "the webhooks exited with {status} on SIGTERM:\n{}",
        webhooks.log_tail(30)
    );
    Ok(())
}

#[tokio::test]
async fn a_failing_part_stops_the_operator_non_zero_and_names_it() -> anyhow::Result<()> {
    let _one = SERIAL.lock().await;
    let cluster = Cluster::shared().await?;
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("no-such-password-file");
    let notify = json!({
        "smtpHost": "127.0.0.1", "smtpPort": free_port()?, "starttls": "none",
        "from": "noc@provider.example", "username": "notify", "passwordFile": missing
    });
    let mut operator = Operator::spawn(cluster, env(&[("OEM_NOTIFY", notify.to_string())]))?;
    let status = operator
        .wait_exit(Duration::from_secs(60))
        .with_context(|| format!("operator log:\n{}", operator.log_tail(30)))?;
    let log = operator.log_tail(60);
    eprintln!("operator with a missing password file: {status}");
    ensure!(
        status.code() == Some(1),
        "expected exit status 1, got {status}:\n{log}"
    );
    ensure!(
        log.contains("alert controller failed")
            && log.contains("no-such-password-file")
            && log.contains("one of its parts ended"),
        "the log does not name the failing part and its cause:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_configuration_key_stops_the_start_naming_it() -> anyhow::Result<()> {
    let _one = SERIAL.lock().await;
    let cluster = Cluster::shared().await?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("operator.yaml");
    std::fs::write(&config, "monitor:\n  intervl: 1m\n")?;
    let mut operator = Operator::spawn(
        cluster,
        env(&[("OEM_CONFIG", config.to_string_lossy().into_owned())]),
    )?;
    let status = operator.wait_exit(Duration::from_secs(30))?;
    let log = operator.log_tail(20);
    ensure!(
        status.code() == Some(2),
        "expected exit status 2, got {status}:\n{log}"
    );
    ensure!(
        log.contains("monitor: unknown field `intervl`"),
        "the log does not name the key:\n{log}"
    );
    Ok(())
}
