//! The hosting namespace itself and the limits the course puts on it: ResourceQuota (the
//! course's totals) and LimitRange (per-container defaults and ceilings).

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use serde_json::json;

use super::HostingPlan;

/// Name of the ResourceQuota and of the LimitRange.
pub const LIMITS_NAME: &str = "course-limits";
/// Annotation recording the deletion policy on the namespace, so an orphan sweep knows it
/// even when the EndUser is already gone.
pub const ANNOTATION_DELETION_POLICY: &str = "hosting.oem.dev/deletion-policy";

/// The hosting namespace: labelled with reseller and end user, Pod Security `restricted`.
pub fn namespace(plan: &HostingPlan) -> Result<Namespace, serde_json::Error> {
    let mut labels = plan.labels();
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "restricted".into(),
        );
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": plan.namespace,
            "labels": labels,
            "annotations": {
                ANNOTATION_DELETION_POLICY: if plan.retain_data { "Retain" } else { "Delete" }
            }
        }
    }))
}

/// The course's totals as a hard quota on the namespace.
pub fn resource_quota(plan: &HostingPlan) -> Result<ResourceQuota, serde_json::Error> {
    let groups = plan.groups().len();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": LIMITS_NAME, "namespace": plan.namespace, "labels": plan.labels()},
        "spec": {"hard": {
            "requests.cpu": plan.cpu,
            "limits.cpu": plan.cpu,
            "requests.memory": plan.memory,
            "limits.memory": plan.memory,
            "requests.storage": plan.storage,
            "persistentvolumeclaims": groups.to_string(),
            // One pod per group, and one more for a restart's overlap.
            "pods": (groups + 1).to_string(),
            "services.loadbalancers": "0",
            "services.nodeports": "0"
        }}
    }))
}

/// Per-container defaults (so nothing unbounded starts) and ceilings (the course's totals).
pub fn limit_range(plan: &HostingPlan) -> Result<LimitRange, serde_json::Error> {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": LIMITS_NAME, "namespace": plan.namespace, "labels": plan.labels()},
        "spec": {"limits": [
            {
                "type": "Container",
                "default": {"cpu": "100m", "memory": "128Mi"},
                "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                "max": {"cpu": plan.cpu, "memory": plan.memory}
            },
            {
                "type": "PersistentVolumeClaim",
                "max": {"storage": plan.storage}
            }
        ]}
    }))
}

#[cfg(test)]
mod tests {
    use super::super::tests::business_plan;
    use super::*;

    #[test]
    fn namespace_enforces_restricted_pod_security_and_names_its_owner() {
        let ns = namespace(&business_plan()).unwrap();
        let labels = ns.metadata.labels.unwrap();
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(labels["hosting.oem.dev/reseller"], "sakura-web");
        assert_eq!(labels["hosting.oem.dev/enduser"], "tanaka-shoten");
        assert_eq!(
            ns.metadata.annotations.unwrap()[ANNOTATION_DELETION_POLICY],
            "Delete"
        );
    }

    #[test]
    fn quota_carries_the_course_totals() {
        let q = resource_quota(&business_plan()).unwrap();
        let hard = q.spec.unwrap().hard.unwrap();
        assert_eq!(hard["limits.cpu"].0, "2");
        assert_eq!(hard["limits.memory"].0, "4Gi");
        assert_eq!(hard["requests.storage"].0, "50Gi");
        assert_eq!(hard["persistentvolumeclaims"].0, "3");
        assert_eq!(hard["pods"].0, "4");
    }

    #[test]
    fn limit_range_caps_a_container_at_the_course() {
        let lr = limit_range(&business_plan()).unwrap();
        let limits = lr.spec.unwrap().limits;
        assert_eq!(limits[0].max.as_ref().unwrap()["memory"].0, "4Gi");
        assert_eq!(limits[1].type_, "PersistentVolumeClaim");
    }
}
