//! The hosting namespace itself and the limits the course puts on it: ResourceQuota (the
//! course's totals) and LimitRange (per-container defaults and ceilings).
//!
//! Ephemeral storage (container writable layers, logs, `emptyDir`: the node's own disk) is
//! bounded from the course too, so that PHP code filling `/tmp` is evicted rather than filling
//! the node: each container may use a tenth of the course's storage, at least 256Mi (logs and
//! temporary files of a small course) and at most 1Gi ([`ephemeral_per_container`]), by
//! default and as its ceiling, and requests a quarter of that by default; the namespace's
//! total is that allowance for up to four containers in each pod the quota allows.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::HostingPlan;
use oem_crds::quantity;

/// Name of the ResourceQuota and of the LimitRange.
pub const LIMITS_NAME: &str = "course-limits";
/// Annotation recording the deletion policy on the namespace, so an orphan sweep knows it
/// even when the EndUser is already gone.
pub const ANNOTATION_DELETION_POLICY: &str = "hosting.oem.dev/deletion-policy";

/// The hosting namespace: labelled with reseller and end user, Pod Security `restricted`.
pub fn namespace(plan: &HostingPlan) -> Namespace {
    let mut labels = plan.labels();
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "restricted".into(),
        );
    }
    let policy = if plan.retain_data { "Retain" } else { "Delete" };
    Namespace {
        metadata: ObjectMeta {
            name: Some(plan.namespace.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_DELETION_POLICY.to_owned(),
                policy.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// A resource list: each name with its quantity.
fn quantities<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, Quantity> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), Quantity(value.to_owned())))
        .collect()
}

/// The metadata of the quota and the limit range.
fn limits_meta(plan: &HostingPlan) -> ObjectMeta {
    ObjectMeta {
        name: Some(LIMITS_NAME.to_owned()),
        namespace: Some(plan.namespace.clone()),
        labels: Some(plan.labels()),
        ..ObjectMeta::default()
    }
}

const MI: f64 = 1024.0 * 1024.0;
/// The most ephemeral storage one container may use, whatever the course.
const EPHEMERAL_CEILING_MI: u64 = 1024;
/// What one container may always use, however small the course: room for its logs (the
/// kubelet keeps up to 50Mi of them) and temporary files.
const EPHEMERAL_FLOOR_MI: u64 = 256;
/// Containers per pod the namespace's ephemeral-storage total has room for.
const EPHEMERAL_CONTAINERS_PER_POD: u64 = 4;

/// Ephemeral storage of one container, in MiB: a tenth of the course's storage, at least
/// 256Mi and at most 1Gi.
pub(super) fn ephemeral_per_container(plan: &HostingPlan) -> u64 {
    let storage_mi = quantity::value(&plan.storage).map_or(0.0, |bytes| bytes / MI);
    ((storage_mi / 10.0).floor() as u64).clamp(EPHEMERAL_FLOOR_MI, EPHEMERAL_CEILING_MI)
}

/// Pods the quota allows: one per group, and one more for a restart's overlap.
fn pods(plan: &HostingPlan) -> usize {
    plan.groups().len() + 1
}

/// The course's totals as a hard quota on the namespace.
pub fn resource_quota(plan: &HostingPlan) -> ResourceQuota {
    let groups = plan.groups().len().to_string();
    let pod_count = pods(plan);
    let ephemeral_total = format!(
        "{}Mi",
        ephemeral_per_container(plan) * EPHEMERAL_CONTAINERS_PER_POD * pod_count as u64
    );
    let pods = pod_count.to_string();
    ResourceQuota {
        metadata: limits_meta(plan),
        spec: Some(ResourceQuotaSpec {
            hard: Some(quantities([
                ("requests.cpu", &plan.cpu),
                ("limits.cpu", &plan.cpu),
                ("requests.memory", &plan.memory),
                ("limits.memory", &plan.memory),
                ("requests.storage", &plan.storage),
                ("requests.ephemeral-storage", &ephemeral_total),
                ("limits.ephemeral-storage", &ephemeral_total),
                ("persistentvolumeclaims", &groups),
                ("pods", &pods),
                ("services.loadbalancers", "0"),
                ("services.nodeports", "0"),
            ])),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    }
}

/// Per-container defaults (so nothing unbounded starts) and ceilings (the course's totals).
pub fn limit_range(plan: &HostingPlan) -> LimitRange {
    let ephemeral = ephemeral_per_container(plan);
    let ephemeral_limit = format!("{ephemeral}Mi");
    let ephemeral_request = format!("{}Mi", (ephemeral / 4).max(1));
    let container = LimitRangeItem {
        type_: "Container".into(),
        default: Some(quantities([
            ("cpu", "100m"),
            ("memory", "128Mi"),
            ("ephemeral-storage", &ephemeral_limit),
        ])),
        default_request: Some(quantities([
            ("cpu", "100m"),
            ("memory", "128Mi"),
            ("ephemeral-storage", &ephemeral_request),
        ])),
        max: Some(quantities([
            ("cpu", &plan.cpu),
            ("memory", &plan.memory),
            ("ephemeral-storage", &ephemeral_limit),
        ])),
        ..LimitRangeItem::default()
    };
    let volume = LimitRangeItem {
        type_: "PersistentVolumeClaim".into(),
        max: Some(quantities([("storage", &plan.storage)])),
        ..LimitRangeItem::default()
    };
    LimitRange {
        metadata: limits_meta(plan),
        spec: Some(LimitRangeSpec {
            limits: vec![container, volume],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::business_plan;
    use super::*;

    #[test]
    fn namespace_enforces_restricted_pod_security_and_names_its_owner() {
        let ns = namespace(&business_plan());
        // What server-side apply is sent names its kind (typed objects carry it).
        let sent = serde_json::to_value(&ns).unwrap();
        assert_eq!(
            (&sent["apiVersion"], &sent["kind"]),
            (&"v1".into(), &"Namespace".into())
        );
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
        let q = resource_quota(&business_plan());
        let hard = q.spec.unwrap().hard.unwrap();
        assert_eq!(hard["limits.cpu"].0, "2");
        assert_eq!(hard["limits.memory"].0, "4Gi");
        assert_eq!(hard["requests.storage"].0, "50Gi");
        assert_eq!(hard["persistentvolumeclaims"].0, "3");
        assert_eq!(hard["pods"].0, "4");
    }

    #[test]
    fn ephemeral_storage_is_a_tenth_of_the_course_storage_between_256mi_and_1gi_per_container() {
        let mut plan = business_plan();
        assert_eq!(
            ephemeral_per_container(&plan),
            1024,
            "50Gi course: the 1Gi ceiling"
        );
        plan.storage = "5Gi".into();
        assert_eq!(ephemeral_per_container(&plan), 512);
        plan.storage = "1Gi".into();
        assert_eq!(ephemeral_per_container(&plan), 256, "the floor");
    }

    #[test]
    fn quota_and_limit_range_bound_ephemeral_storage() {
        let mut plan = business_plan();
        plan.storage = "5Gi".into();
        let hard = resource_quota(&plan).spec.unwrap().hard.unwrap();
        // 512Mi per container, 4 containers per pod, 4 pods.
        assert_eq!(hard["limits.ephemeral-storage"].0, "8192Mi");
        assert_eq!(hard["requests.ephemeral-storage"].0, "8192Mi");
        let limits = limit_range(&plan).spec.unwrap().limits;
        let container = &limits[0];
        assert_eq!(
            container.max.as_ref().unwrap()["ephemeral-storage"].0,
            "512Mi"
        );
        assert_eq!(
            container.default.as_ref().unwrap()["ephemeral-storage"].0,
            "512Mi"
        );
        assert_eq!(
            container.default_request.as_ref().unwrap()["ephemeral-storage"].0,
            "128Mi"
        );
    }

    #[test]
    fn limit_range_caps_a_container_at_the_course() {
        let lr = limit_range(&business_plan());
        let limits = lr.spec.unwrap().limits;
        assert_eq!(limits[0].max.as_ref().unwrap()["memory"].0, "4Gi");
        assert_eq!(limits[1].type_, "PersistentVolumeClaim");
    }
}
