//! Remediation against the cluster (SPEC §7): level 1 restarts the failing service's workload
//! (a rollout restart of its StatefulSet: the pod template's `restartedAt` annotation, applied
//! with a field manager of its own); level 2 force-deletes the end user's pods so they are
//! recreated, and cordons a NotReady node and moves the tenant pods off it. Also what the
//! flow needs to know first: whether the pod is Ready and its node NotReady.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::hosting::ServiceGroup;
use crate::naming;
use crate::slim::HostingPod;

/// The field manager of remediation writes.
pub const FIELD_MANAGER: &str = "oem-hosting-remediation";

/// Why a remediation step failed.
#[derive(Debug, thiserror::Error)]
pub enum RemedyError {
    #[error("{action} in {namespace}: {source}")]
    Kube {
        action: &'static str,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("{action} in {namespace}: nothing to act on")]
    NothingThere {
        action: &'static str,
        namespace: String,
    },
}

fn selector(group: Option<ServiceGroup>) -> String {
    let managed = format!("{}={}", naming::LABEL_MANAGED_BY, naming::MANAGED_BY);
    match group {
        Some(g) => format!("{managed},{}={}", naming::LABEL_SERVICE_GROUP, g.name()),
        None => managed,
    }
}

fn kube_error(action: &'static str, namespace: &str) -> impl FnOnce(kube::Error) -> RemedyError {
    let namespace = namespace.to_owned();
    move |source| RemedyError::Kube {
        action,
        namespace,
        source,
    }
}

/// The annotation a rollout restart sets on the pod template.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// When the set's pods were last rollout-restarted, if after `since`.
pub fn restarted_since(set: &StatefulSet, since: jiff::Timestamp) -> Option<jiff::Timestamp> {
    let annotations = set
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?;
    let at: jiff::Timestamp = annotations.get(RESTARTED_AT)?.parse().ok()?;
    (at > since).then_some(at)
}

/// Level 1: rollout-restart the group's StatefulSet, unless it was restarted after
/// `fresh_since` (the incident of another service of the same workload restarted it a moment
/// ago: restarting it again would only interrupt the restart). Returns what was done.
pub async fn restart(
    client: &Client,
    namespace: &str,
    group: ServiceGroup,
    at: jiff::Timestamp,
    fresh_since: jiff::Timestamp,
) -> Result<String, RemedyError> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let name = group.name();
    let Some(set) = api
        .get_opt(name)
        .await
        .map_err(kube_error("reading the statefulset", namespace))?
    else {
        return Err(RemedyError::NothingThere {
            action: "restarting the workload",
            namespace: namespace.to_owned(),
        });
    };
    if let Some(when) = restarted_since(&set, fresh_since) {
        return Ok(format!(
            "statefulset {namespace}/{name} already restarted at {when}"
        ));
    }
    let patch = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": at.to_string()
        }}}}
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(kube_error("restarting the statefulset", namespace))?;
    Ok(format!("statefulset {namespace}/{name} restarted"))
}

/// The group's pods (all the end user's pods for `None`).
pub async fn pods(
    client: &Client,
    namespace: &str,
    group: Option<ServiceGroup>,
) -> Result<Vec<Pod>, RemedyError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .list(&ListParams::default().labels(&selector(group)))
        .await
        .map_err(kube_error("listing pods", namespace))?
        .items)
}

/// Whether any of the pods exists and is not Ready.
pub fn any_not_ready(pods: &[impl std::borrow::Borrow<HostingPod>]) -> bool {
    pods.iter().any(|p| p.borrow().not_ready)
}

/// The annotation level 2 sets on the StatefulSets whose pods it force-deleted (metadata only:
/// no rollout).
const RECREATED_AT: &str = "hosting.oem.dev/recreated-at";

/// When the set's pods were last force-deleted by level 2, if after `since`.
pub fn recreated_since(set: &StatefulSet, since: jiff::Timestamp) -> Option<jiff::Timestamp> {
    let at: jiff::Timestamp = set.annotations().get(RECREATED_AT)?.parse().ok()?;
    (at > since).then_some(at)
}

/// Level 2: force-deletes the pods (grace period 0); their StatefulSets recreate them, and
/// carry the time. Unless every set was recreated after `fresh_since` (the incident of another
/// service of the same workload did it a moment ago: its new pods are left to start).
pub async fn recreate(
    client: &Client,
    namespace: &str,
    group: Option<ServiceGroup>,
    at: jiff::Timestamp,
    fresh_since: jiff::Timestamp,
) -> Result<String, RemedyError> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let owners = sets
        .list(&ListParams::default().labels(&selector(group)))
        .await
        .map_err(kube_error("listing the statefulsets", namespace))?
        .items;
    let recent: Vec<jiff::Timestamp> = owners
        .iter()
        .filter_map(|s| recreated_since(s, fresh_since))
        .collect();
    if !owners.is_empty() && recent.len() == owners.len() {
        let names: Vec<String> = owners.iter().map(|s| s.name_any()).collect();
        let when = recent
            .iter()
            .min()
            .map(ToString::to_string)
            .unwrap_or_default();
        return Ok(format!(
            "pods of {} in {namespace} already recreated at {when}",
            names.join(", ")
        ));
    }
    let found = pods(client, namespace, group).await?;
    if found.is_empty() {
        return Err(RemedyError::NothingThere {
            action: "recreating pods",
            namespace: namespace.to_owned(),
        });
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut names = Vec::new();
    for pod in &found {
        let name = pod.name_any();
        match api
            .delete(&name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => names.push(name),
            Err(kube::Error::Api(e)) if e.code == 404 => names.push(name),
            Err(source) => return Err(kube_error("deleting a pod", namespace)(source)),
        }
    }
    for set in &owners {
        let name = set.name_any();
        let patch = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": namespace,
                "annotations": {RECREATED_AT: at.to_string()}}
        });
        sets.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(kube_error("recording the recreation", namespace))?;
    }
    Ok(format!(
        "pods {} of {namespace} recreated",
        names.join(", ")
    ))
}

/// Level 2: cordons the node and force-deletes the tenant pods on it, so they are scheduled
/// elsewhere.
pub async fn cordon(client: &Client, node: &str) -> Result<String, RemedyError> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .map_err(kube_error("cordoning node", node))?;
    let pods: Api<Pod> = Api::all(client.clone());
    let on_node = pods
        .list(
            &ListParams::default()
                .labels(&selector(None))
                .fields(&format!("spec.nodeName={node}")),
        )
        .await
        .map_err(kube_error("listing tenant pods on node", node))?;
    let mut moved = 0;
    for pod in on_node.items {
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        match api
            .delete(&pod.name_any(), &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => moved += 1,
            Err(kube::Error::Api(e)) if e.code == 404 => moved += 1,
            Err(source) => return Err(kube_error("moving a tenant pod", node)(source)),
        }
    }
    Ok(format!("node {node} cordoned, {moved} tenant pods moved"))
}

#[cfg(test)]
mod tests {
    use oem_crds::enduser::ServiceName;

    use super::*;

    #[test]
    fn each_service_restarts_the_workload_that_serves_it() {
        assert_eq!(
            ServiceGroup::serving(ServiceName::Ftps),
            Some(ServiceGroup::Web)
        );
        assert_eq!(
            ServiceGroup::serving(ServiceName::Imaps),
            Some(ServiceGroup::Mail)
        );
        assert_eq!(
            ServiceGroup::serving(ServiceName::Mysql),
            Some(ServiceGroup::Db)
        );
        assert_eq!(ServiceGroup::serving(ServiceName::Ping), None);
    }

    #[test]
    fn a_pod_without_a_true_ready_condition_is_not_ready() {
        let pod = |status: &str| {
            HostingPod::of(
                &serde_json::from_value(json!({"metadata": {"name": "web-0"},
                    "status": {"conditions": [{"type": "Ready", "status": status}]}}))
                .unwrap(),
            )
        };
        assert!(any_not_ready(&[pod("True"), pod("False")]));
        assert!(!any_not_ready(&[pod("True")]));
    }

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_workload_restarted_a_moment_ago_is_not_restarted_again() {
        let set = |annotations: serde_json::Value| -> StatefulSet {
            serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
                "selector": {}, "serviceName": "web",
                "template": {"metadata": {"annotations": annotations}}}}))
            .unwrap()
        };
        let restarted = set(json!({RESTARTED_AT: "2026-03-02T01:00:05.123Z"}));
        assert_eq!(
            restarted_since(&restarted, at("2026-03-02T01:00:00Z")),
            Some(at("2026-03-02T01:00:05.123Z"))
        );
        assert_eq!(
            restarted_since(&restarted, at("2026-03-02T01:00:06Z")),
            None
        );
        assert_eq!(
            restarted_since(&set(json!({})), at("2026-03-02T01:00:00Z")),
            None
        );
        let garbled = set(json!({RESTARTED_AT: "yesterday"}));
        assert_eq!(restarted_since(&garbled, at("2026-03-02T01:00:00Z")), None);
    }

    #[test]
    fn a_workload_recreated_a_moment_ago_is_not_recreated_again() {
        let set = |annotations: serde_json::Value| -> StatefulSet {
            serde_json::from_value(
                json!({"metadata": {"name": "web", "annotations": annotations},
                "spec": {"selector": {}, "serviceName": "web", "template": {}}}),
            )
            .unwrap()
        };
        let recreated = set(json!({RECREATED_AT: "2026-03-02T01:00:05Z"}));
        assert_eq!(
            recreated_since(&recreated, at("2026-03-02T01:00:00Z")),
            Some(at("2026-03-02T01:00:05Z"))
        );
        // The same incident's next attempt, a backoff later, is not held by its own.
        assert_eq!(
            recreated_since(&recreated, at("2026-03-02T01:00:05Z")),
            None
        );
        assert_eq!(
            recreated_since(&set(json!({})), at("2026-03-02T01:00:00Z")),
            None
        );
    }
}
