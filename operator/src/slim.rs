//! What the caches keep of each object. A store holds every object of its kind for as long as
//! the operator leads, so each keeps only the fields something reads: at 300 end users the
//! full hosting Pods and StatefulSets were 22 MB of the 49 MB the operator held (heaptrack),
//! and each object's managed fields alone were larger than the rest of its metadata.
//!
//! Each function here is a watch's `modify` step; the test below pins what survives.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Node, NodeStatus, Pod, PodSpec, PodStatus, Service, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

use crate::naming;

/// Managed fields are the largest part of most objects and nothing reads them. The whole
/// slimming of the kinds the controllers reconcile (kube's finalizer helper reads finalizers,
/// the controllers their annotations).
pub fn managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// The labels anything reads from a cached object: whose it is, and a pod's service group.
const READ_LABELS: [&str; 5] = [
    naming::LABEL_MANAGED_BY,
    naming::LABEL_RESELLER,
    naming::LABEL_ENDUSER,
    naming::LABEL_ENDUSER_NAMESPACE,
    naming::LABEL_SERVICE_GROUP,
];

/// A child's metadata as its cache reads it: names, resourceVersion, generation, the labels
/// that say whose it is, annotations (a quota's grant) and deletion; no other labels, owners,
/// finalizers or managed fields.
pub fn metadata<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    let mut labels = meta.labels.take();
    if let Some(labels) = labels.as_mut() {
        labels.retain(|k, _| READ_LABELS.contains(&k.as_str()));
    }
    *meta = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        resource_version: meta.resource_version.take(),
        generation: meta.generation.take(),
        labels,
        annotations: meta.annotations.take(),
        deletion_timestamp: meta.deletion_timestamp.take(),
        ..ObjectMeta::default()
    };
}

/// A hosting pod as the monitor, remediation and the usage reporter read it: its labels, its
/// node, its first container's first port, its phase, conditions and addresses.
pub fn pod(pod: &mut Pod) {
    metadata(pod);
    pod.metadata.annotations = None;
    pod.spec = pod.spec.take().map(|spec| PodSpec {
        node_name: spec.node_name,
        containers: spec
            .containers
            .into_iter()
            .take(1)
            .map(|c| Container {
                name: c.name,
                ports: c.ports.map(|ports| {
                    ports
                        .into_iter()
                        .take(1)
                        .map(|p| ContainerPort {
                            container_port: p.container_port,
                            ..ContainerPort::default()
                        })
                        .collect()
                }),
                ..Container::default()
            })
            .collect(),
        ..PodSpec::default()
    });
    pod.status = pod.status.take().map(|status| PodStatus {
        phase: status.phase,
        conditions: status.conditions,
        pod_ip: status.pod_ip,
        pod_ips: status.pod_ips,
        ..PodStatus::default()
    });
}

/// A Service as the monitor reads it: its labels and addresses (not its ports: a mail
/// Service has eight).
pub fn service(service: &mut Service) {
    metadata(service);
    service.status = None;
    service.spec = service.spec.take().map(|spec| ServiceSpec {
        cluster_ip: spec.cluster_ip,
        cluster_ips: spec.cluster_ips,
        external_ips: spec.external_ips,
        ..ServiceSpec::default()
    });
}

/// A node without its image list and daemon details: its addresses and conditions.
pub fn node(node: &mut Node) {
    metadata(node);
    node.metadata.annotations = None;
    node.status = node.status.take().map(|status| NodeStatus {
        addresses: status.addresses,
        conditions: status.conditions,
        ..NodeStatus::default()
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_pod_keeps_what_the_loops_read_and_nothing_else() {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "h-a", "resourceVersion": "7",
                "labels": {"app": "web", "hosting.oem.dev/enduser": "alice"},
                "annotations": {"big": "x"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "name": "web", "uid": "u"}],
                "managedFields": [{"manager": "kubelet"}]},
            "spec": {"nodeName": "n1", "containers": [
                {"name": "php", "image": "php", "env": [{"name": "A", "value": "b"}],
                 "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]},
                {"name": "ftp", "image": "ftp"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "podIPs": [{"ip": "10.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "php", "image": "php", "imageID": "i",
                    "ready": true, "restartCount": 0}]}
        }))
        .unwrap();
        pod(&mut p);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-0", "namespace": "h-a", "resourceVersion": "7",
                    "labels": {"hosting.oem.dev/enduser": "alice"}},
                "spec": {"nodeName": "n1", "containers": [
                    {"name": "php", "ports": [{"containerPort": 80}]}]},
                "status": {"phase": "Running", "podIP": "10.0.0.1",
                    "podIPs": [{"ip": "10.0.0.1"}],
                    "conditions": [{"type": "Ready", "status": "True"}]}
            })
        );
    }

    #[test]
    fn a_node_keeps_its_addresses_and_conditions() {
        let mut n: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"k": "v"}},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.9"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "images": [{"names": ["php"], "sizeBytes": 1}]}
        }))
        .unwrap();
        node(&mut n);
        let v = serde_json::to_value(&n).unwrap();
        assert!(v["status"].get("images").is_none());
        assert_eq!(v["status"]["addresses"][0]["address"], "10.0.0.9");
        assert_eq!(v["status"]["conditions"][0]["type"], "Ready");
    }

    #[test]
    fn a_service_keeps_its_addresses_not_its_ports() {
        let mut svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "mail", "namespace": "h-a", "labels": {"k": "v"}},
            "spec": {"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
                "externalIPs": ["192.0.2.1"], "selector": {"app": "mail"},
                "ports": [{"name": "smtp", "port": 25}, {"name": "imaps", "port": 993}]},
            "status": {"loadBalancer": {}}
        }))
        .unwrap();
        service(&mut svc);
        let v = serde_json::to_value(&svc).unwrap();
        assert_eq!(
            v["spec"],
            json!({"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
                "externalIPs": ["192.0.2.1"]})
        );
        assert!(v.get("status").is_none());
    }
}
