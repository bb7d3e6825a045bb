//! Finished incidents are deleted after `alerting.incidentRetention` (issue 18), on the local
//! control plane: incidents as a long-lived cluster holds them — resolved without notice 100
//! days ago, reported 95 days ago, reported 10 days ago, and one still open since 200 days ago
//! — are written with their recorded times; the operator deletes the two finished past 90 days
//! and keeps the recent one and the open one (which it does not delete, whatever its age).

use std::time::Duration;

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use oem_crds::{Incident, Reseller};
use oem_e2e::operator::{Operator, OperatorOptions, install_crds};
use oem_e2e::{Cluster, hosting, wait};
use serde_json::{Value, json};

fn days_ago(days: i64) -> String {
    (Timestamp::now() - SignedDuration::from_hours(24 * days)).to_string()
}

/// An incident of a long-gone end user with `status` as the alert controller left it.
async fn write(api: &Api<Incident>, name: &str, status: Value) -> anyhow::Result<()> {
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"endUser": "gone", "service": "http", "kind": "ServiceDown"}
    }))?;
    api.create(&PostParams::default(), &incident)
        .await
        .with_context(|| format!("creating incident {name}"))?;
    let patch = json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Incident", "status": status
    });
    api.patch_status(
        name,
        &PatchParams::apply("e2e-history").force(),
        &Patch::Apply(&patch),
    )
    .await
    .with_context(|| format!("writing the status of incident {name}"))?;
    Ok(())
}

#[tokio::test]
async fn finished_incidents_past_the_retention_are_deleted_and_no_other() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let client = cluster.client().await?;
    let id = std::process::id() % 100000;
    // The history is written before the operator starts, as it would find it: the CRDs, the
    // reseller and its namespace first (the operator adopts the namespace when it starts).
    install_crds(cluster)?;
    let name = format!("ret{id}");
    hosting::apply(
        &Api::<Reseller>::all(client.clone()),
        hosting::reseller(&name, json!([])),
    )
    .await?;
    let ns = format!("reseller-{name}");
    hosting::apply(
        &Api::<Namespace>::all(client.clone()),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await?;
    let api: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let notice = |event: &str, at: &str| {
        json!({"channel": "email", "target": "noc@example.jp", "event": event, "state": "Sent",
               "attempts": 1, "lastAttemptAt": at, "idempotencyKey": format!("{event}-{at}")})
    };
    write(
        &api,
        "gone-http-short",
        json!({"phase": "Resolved", "startedAt": days_ago(100), "detectedAt": days_ago(100),
               "resolvedAt": days_ago(100)}),
    )
    .await?;
    write(
        &api,
        "gone-http-told",
        json!({"phase": "Reported", "startedAt": days_ago(96), "detectedAt": days_ago(96),
               "notifiedAt": days_ago(96), "resolvedAt": days_ago(96),
               "reportDueBy": days_ago(95), "reportSentAt": days_ago(95),
               "notifications": [notice("outage", &days_ago(96)), notice("recovered", &days_ago(96)),
                                 notice("report", &days_ago(95))]}),
    )
    .await?;
    write(
        &api,
        "gone-http-recent",
        json!({"phase": "Reported", "startedAt": days_ago(11), "detectedAt": days_ago(11),
               "notifiedAt": days_ago(11), "resolvedAt": days_ago(11),
               "reportDueBy": days_ago(10), "reportSentAt": days_ago(10),
               "notifications": [notice("outage", &days_ago(11)), notice("recovered", &days_ago(11)),
                                 notice("report", &days_ago(10))]}),
    )
    .await?;
    write(
        &api,
        "gone-http-open",
        json!({"phase": "Notified", "startedAt": days_ago(200), "detectedAt": days_ago(200),
               "notifiedAt": days_ago(200),
               "notifications": [notice("outage", &days_ago(200))]}),
    )
    .await?;

    let operator = Operator::start(
        cluster,
        OperatorOptions {
            env: vec![("OEM_ALERT_POLL_INTERVAL".into(), "1s".into())],
            ..Default::default()
        },
    )
    .await?;
    let names = || async {
        let mut names: Vec<String> = api
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter_map(|i| i.metadata.name)
            .collect();
        names.sort();
        Ok::<_, String>(names)
    };
    let left = wait::until(
        "the two finished incidents past 90 days deleted",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let left = names().await?;
            if left.len() == 2 {
                Ok(left)
            } else {
                Err(format!("{left:?}"))
            }
        },
    )
    .await
    .with_context(|| format!("operator log:\n{}", operator.log_tail(30)))?;
    anyhow::ensure!(
        left == ["gone-http-open", "gone-http-recent"],
        "kept {left:?}"
    );
    // And they stay: a few more polls delete nothing else.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = names().await.map_err(anyhow::Error::msg)?;
    anyhow::ensure!(still == left, "then {still:?}");
    let metrics = operator.metrics().await?;
    let line = format!("oem_incidents_deleted_total{{reseller=\"ret{id}\"}} 2");
    anyhow::ensure!(metrics.contains(&line), "no {line} in /metrics");
    eprintln!("retention: deleted 2 of 4, kept {left:?}");
    Ok(())
}
