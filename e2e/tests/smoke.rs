//! The local control plane works: pods schedule to kwok nodes and become Ready, a ResourceQuota
//! is enforced, and a namespace deletion completes.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, ResourceQuota};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use oem_e2e::cluster::unique_name;
use oem_e2e::{Cluster, wait};
use serde_json::json;

fn pod_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn deployment_runs_quota_refuses_and_namespace_deletes() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let client = cluster.client().await?;
    let ns = unique_name("smoke");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;

    // Three replicas scheduled to the fake nodes become Running and Ready.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:stable"}]}
            }
        }
    }))?;
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait::until(
        "3 pods Running and Ready",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            let list = pods
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let ready = list.items.iter().filter(|p| pod_ready(p)).count();
            if ready == 3 {
                Ok(())
            } else {
                Err(format!("{ready} of {} pods ready", list.items.len()))
            }
        },
    )
    .await?;

    // A quota of 3 pods: once the quota controller has counted them, a fourth is refused.
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns);
    let quota = serde_json::from_value(json!({
        "metadata": {"name": "pods"},
        "spec": {"hard": {"pods": "3"}}
    }))?;
    quotas.create(&PostParams::default(), &quota).await?;
    wait::until(
        "the quota to count 3 pods",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let q = quotas.get("pods").await.map_err(|e| e.to_string())?;
            let used = q
                .status
                .and_then(|s| s.used)
                .and_then(|u| u.get("pods").cloned());
            match used {
                Some(q) if q.0 == "3" => Ok(()),
                other => Err(format!("used pods = {other:?}")),
            }
        },
    )
    .await?;
    let fourth = serde_json::from_value(json!({
        "metadata": {"name": "fourth"},
        "spec": {"containers": [{"name": "web", "image": "nginx:stable"}]}
    }))?;
    let refused = pods
        .create(&PostParams::default(), &fourth)
        .await
        .expect_err("a fourth pod must be refused by the quota");
    let message = refused.to_string();
    assert!(
        message.contains("exceeded quota"),
        "unexpected refusal: {message}"
    );

    // Deleting the namespace completes: the namespace controller and kwok clean up.
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    wait::gone(&namespaces, &ns, Duration::from_secs(120)).await?;
    Ok(())
}
