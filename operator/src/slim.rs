//! What the caches keep of each object. A store holds every object of its kind for as long as
//! the operator leads, so each keeps only the fields something reads: at 300 end users the
//! full hosting Pods and StatefulSets were 22 MB of the 49 MB the operator held (heaptrack),
//! and each object's managed fields alone were larger than the rest of its metadata.
//!
//! Each function here is a watch's `modify` step, or a compact type a watch's objects are
//! turned into; the tests below pin what survives.

use std::borrow::Cow;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, NodeStatus, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::Lookup;
use kube::{Resource, ResourceExt};

use crate::naming;

/// Managed fields are the largest part of most objects and nothing reads them. The whole
/// slimming of the kinds the controllers reconcile (kube's finalizer helper reads finalizers,
/// the controllers their annotations).
pub fn managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// The labels anything reads from a cached object: whose it is, and a pod's service group.
pub const READ_LABELS: [&str; 5] = [
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

/// A hosting pod as the monitor, the remediation, the alert loop and the usage reporter read
/// it: whose it is, its service group, its node, its first container's first port, whether it
/// is not Ready, and its addresses. About 300 bytes with its strings, against 2,176 bytes of
/// `Pod` struct before any (its conditions alone were 2.8 KB a pod in the heap at 500 end users).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostingPod {
    pub namespace: Box<str>,
    pub name: Box<str>,
    pub reseller: Option<Box<str>>,
    pub enduser: Option<Box<str>>,
    /// Its service group (`naming::LABEL_SERVICE_GROUP`).
    pub group: Option<Box<str>>,
    pub node: Option<Box<str>>,
    /// Its first container's first port.
    pub port: Option<u16>,
    /// It has a Ready condition, and that is not True.
    pub not_ready: bool,
    /// `status.podIP` first, then the rest of `status.podIPs`.
    pub ips: Box<[IpAddr]>,
}

/// The addresses among `texts`, each once, in their order (`None` and other words dropped).
fn addresses<'a>(texts: impl Iterator<Item = &'a String>) -> Box<[IpAddr]> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for ip in texts.filter_map(|t| t.parse().ok()) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips.into()
}

fn boxed(s: Option<&String>) -> Option<Box<str>> {
    s.map(|s| s.as_str().into())
}

impl HostingPod {
    pub fn of(pod: &Pod) -> Self {
        let labels = pod.labels();
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let listed = status
            .and_then(|s| s.pod_ips.as_ref())
            .into_iter()
            .flatten();
        let ips = addresses(
            status
                .and_then(|s| s.pod_ip.as_ref())
                .into_iter()
                .chain(listed.map(|p| &p.ip)),
        );
        Self {
            namespace: ResourceExt::namespace(pod).unwrap_or_default().into(),
            name: pod.name_any().into(),
            reseller: boxed(labels.get(naming::LABEL_RESELLER)),
            enduser: boxed(labels.get(naming::LABEL_ENDUSER)),
            group: boxed(labels.get(naming::LABEL_SERVICE_GROUP)),
            node: boxed(spec.and_then(|s| s.node_name.as_ref())),
            port: spec
                .and_then(|s| s.containers.first())
                .and_then(|c| c.ports.as_ref())
                .and_then(|p| p.first())
                .and_then(|p| u16::try_from(p.container_port).ok()),
            not_ready: status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status != "True"),
            ips,
        }
    }
}

/// A compact type stored in a reflector store as the kind `$kind` it stands for (the key is its
/// namespace and name).
macro_rules! lookup_as {
    ($compact:ty, $kind:ty) => {
        impl Lookup for $compact {
            type DynamicType = ();

            fn kind(_: &()) -> Cow<'_, str> {
                <$kind as Resource>::kind(&())
            }

            fn group(_: &()) -> Cow<'_, str> {
                <$kind as Resource>::group(&())
            }

            fn version(_: &()) -> Cow<'_, str> {
                <$kind as Resource>::version(&())
            }

            fn plural(_: &()) -> Cow<'_, str> {
                <$kind as Resource>::plural(&())
            }

            fn name(&self) -> Option<Cow<'_, str>> {
                Some(Cow::Borrowed(&self.name))
            }

            fn namespace(&self) -> Option<Cow<'_, str>> {
                Some(Cow::Borrowed(&self.namespace))
            }

            fn resource_version(&self) -> Option<Cow<'_, str>> {
                None
            }

            fn uid(&self) -> Option<Cow<'_, str>> {
                None
            }
        }
    };
}

lookup_as!(ServiceAddresses, Service);

/// A Service as the monitor reads it: whose namespace it is in and its addresses (cluster
/// IPs and external IPs), not its ports (a mail Service has eight) or selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAddresses {
    pub namespace: Box<str>,
    pub name: Box<str>,
    pub ips: Box<[IpAddr]>,
}

impl ServiceAddresses {
    pub fn of(service: &Service) -> Self {
        let spec = service.spec.as_ref();
        let listed = spec
            .and_then(|s| s.cluster_ips.as_ref())
            .into_iter()
            .flatten();
        let single = spec.and_then(|s| s.cluster_ip.as_ref());
        let external = spec
            .and_then(|s| s.external_ips.as_ref())
            .into_iter()
            .flatten();
        let ips = addresses(listed.chain(single).chain(external));
        Self {
            namespace: ResourceExt::namespace(service).unwrap_or_default().into(),
            name: service.name_any().into(),
            ips,
        }
    }
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

/// A domain claim as the EndUser controller and the orphan sweep read it: its name and holder,
/// when it was made and whether it is going, and the uid and version a release is made on;
/// no labels or owners (about 700 bytes a claim less).
pub fn claim(claim: &mut oem_crds::DomainClaim) {
    let meta = &mut claim.metadata;
    *meta = ObjectMeta {
        name: meta.name.take(),
        uid: meta.uid.take(),
        resource_version: meta.resource_version.take(),
        creation_timestamp: meta.creation_timestamp.take(),
        deletion_timestamp: meta.deletion_timestamp.take(),
        ..ObjectMeta::default()
    };
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_hosting_pod_keeps_what_the_loops_read() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "h-a", "resourceVersion": "7",
                "labels": {"app": "web", "hosting.oem.dev/enduser": "alice",
                    "hosting.oem.dev/reseller": "acme", "hosting.oem.dev/service-group": "web"},
                "annotations": {"big": "x"},
                "managedFields": [{"manager": "kubelet"}]},
            "spec": {"nodeName": "n1", "containers": [
                {"name": "php", "image": "php", "env": [{"name": "A", "value": "b"}],
                 "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]},
                {"name": "ftp", "image": "ftp"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
                "conditions": [{"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "False"}]}
        }))
        .unwrap();
        assert_eq!(
            HostingPod::of(&p),
            HostingPod {
                namespace: "h-a".into(),
                name: "web-0".into(),
                reseller: Some("acme".into()),
                enduser: Some("alice".into()),
                group: Some("web".into()),
                node: Some("n1".into()),
                port: Some(80),
                not_ready: true,
                ips: ["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()].into(),
            }
        );
        let pending: Pod = serde_json::from_value(json!({
            "metadata": {"name": "db-0", "namespace": "h-a"}, "spec": {"containers": []}
        }))
        .unwrap();
        let pending = HostingPod::of(&pending);
        assert!(!pending.not_ready, "no Ready condition yet");
        assert!(pending.ips.is_empty() && pending.node.is_none() && pending.port.is_none());
    }

    #[test]
    fn a_domain_claim_keeps_its_holder_and_what_a_release_needs() {
        let mut c: oem_crds::DomainClaim = serde_json::from_value(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "DomainClaim",
            "metadata": {"name": "shop.example", "uid": "u1", "resourceVersion": "9",
                "creationTimestamp": "2026-12-05T00:00:00Z",
                "deletionTimestamp": "2026-12-05T00:01:00Z",
                "labels": {"hosting.oem.dev/reseller": "acme"},
                "managedFields": [{"manager": "oem-hosting"}]},
            "spec": {"endUser": {"namespace": "acme", "name": "alice"}}
        }))
        .unwrap();
        claim(&mut c);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["metadata"],
            json!({"name": "shop.example", "uid": "u1", "resourceVersion": "9",
                "creationTimestamp": "2026-12-05T00:00:00Z",
                "deletionTimestamp": "2026-12-05T00:01:00Z"})
        );
        assert_eq!(v["spec"]["endUser"]["name"], "alice");
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
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "mail", "namespace": "h-a", "labels": {"k": "v"}},
            "spec": {"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9", "fd00::9"],
                "externalIPs": ["192.0.2.1"], "selector": {"app": "mail"},
                "ports": [{"name": "smtp", "port": 25}, {"name": "imaps", "port": 993}]},
            "status": {"loadBalancer": {}}
        }))
        .unwrap();
        let ips = ["10.96.0.9", "fd00::9", "192.0.2.1"].map(|ip| ip.parse().unwrap());
        assert_eq!(
            ServiceAddresses::of(&svc),
            ServiceAddresses {
                namespace: "h-a".into(),
                name: "mail".into(),
                ips: ips.into(),
            }
        );
        let headless: Service = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "h-a"}, "spec": {"clusterIP": "None"}
        }))
        .unwrap();
        assert!(ServiceAddresses::of(&headless).ips.is_empty());
    }
}
