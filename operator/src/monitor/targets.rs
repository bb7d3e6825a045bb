//! What the monitor probes (pure): every enabled service of every Active or Degraded end user,
//! and of every end user still waiting for its workloads after the startup grace, at the
//! endpoint the end user named or at its in-cluster Service, and a ping of every hosting pod
//! and of every node that hosts tenants.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use oem_crds::course::{Course, DatabaseEngine};
use oem_crds::enduser::{EndUser, EndUserPhase, ServiceName, WAITING_FOR_WORKLOADS};

use super::probes::{AddressOwners, Scope, Target};
use super::scheduler::Owner;
use crate::hosting::ServiceGroup;
use crate::naming;
use crate::slim::{HostingPod, ServiceAddresses};

/// Who a target belongs to: an end user's service, or a host (pod or node) by ping. An end
/// user's names are shared by its targets' keys (and their copies in the schedule), not
/// copied into each.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetKey {
    /// `namespace` is the end user's (the reseller's) namespace.
    EndUser {
        reseller: Arc<str>,
        namespace: Arc<str>,
        enduser: Arc<str>,
        service: ServiceName,
    },
    Pod {
        reseller: Arc<str>,
        enduser: Arc<str>,
        namespace: Arc<str>,
        pod: String,
    },
    Node {
        node: String,
    },
}

impl TargetKey {
    /// Metric labels: reseller, enduser, service, host (the pod or node pinged, else empty).
    pub fn labels(&self) -> [&str; 4] {
        match self {
            Self::EndUser {
                reseller,
                enduser,
                service,
                ..
            } => [reseller, enduser, service.as_str(), ""],
            Self::Pod {
                reseller,
                enduser,
                pod,
                ..
            } => [reseller, enduser, "ping", pod],
            Self::Node { node } => ["", "", "ping", node],
        }
    }

    /// A stable name, used to spread targets over the interval.
    pub fn id(&self) -> String {
        match self {
            Self::EndUser {
                namespace,
                enduser,
                service,
                ..
            } => format!("enduser/{namespace}/{enduser}/{service}"),
            Self::Pod { namespace, pod, .. } => format!("pod/{namespace}/{pod}"),
            Self::Node { node } => format!("node/{node}"),
        }
    }
}

/// Probe capacity is shared by reseller; nodes are the provider's (the empty owner).
impl Owner for TargetKey {
    fn owner(&self) -> &str {
        match self {
            Self::EndUser { reseller, .. } | Self::Pod { reseller, .. } => reseller,
            Self::Node { .. } => "",
        }
    }
}

/// A target and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoredTarget {
    pub key: TargetKey,
    pub target: Target,
}

/// The services a course enables, by protocol (SPEC §6).
pub fn course_services(course: &Course) -> Vec<ServiceName> {
    let services = &course.spec.services;
    let mut out = Vec::new();
    if services.web.is_some() {
        out.extend([ServiceName::Http, ServiceName::Https]);
    }
    if let Some(ftp) = &services.ftp {
        out.push(ServiceName::Ftp);
        if ftp.tls {
            out.push(ServiceName::Ftps);
        }
    }
    if services.mail.is_some() {
        out.extend([
            ServiceName::Smtp,
            ServiceName::Smtps,
            ServiceName::Pop3,
            ServiceName::Pop3s,
            ServiceName::Imap,
            ServiceName::Imaps,
        ]);
    }
    if let Some(db) = &services.database {
        out.push(match db.engine {
            DatabaseEngine::Mariadb => ServiceName::Mysql,
            DatabaseEngine::Postgresql => ServiceName::Postgresql,
        });
    }
    out
}

/// Whether the monitor watches this end user, not suspended nor being deleted: serving (Active
/// or Degraded), or provisioned and still waiting for its workloads (`Ready` reason
/// `WorkloadsNotReady`) `startup_grace` after the wait began. A workload that never becomes
/// ready (an image that cannot be pulled, a crash at every start) is so probed, seen Down and
/// alerted like any outage, instead of staying unseen in `Provisioning`; one that starts
/// normally is not probed (nor restarted by an incident) while it starts.
pub fn monitored(enduser: &EndUser, now: jiff::Timestamp, startup_grace: Duration) -> bool {
    let status = enduser.status.as_ref();
    let phase = status.and_then(|s| s.phase);
    let in_service = match phase {
        Some(EndUserPhase::Active | EndUserPhase::Degraded) => true,
        Some(EndUserPhase::Provisioning) => status.is_some_and(|s| {
            let waiting = oem_crds::conditions::find(&s.conditions, oem_crds::conditions::READY)
                .filter(|c| c.reason == WAITING_FOR_WORKLOADS);
            s.hosting_namespace.is_some()
                && waiting.is_some_and(|c| {
                    let waited = now.duration_since(c.last_transition_time.0);
                    !waited.is_negative() && waited.unsigned_abs() >= startup_grace
                })
        }),
        _ => false,
    };
    in_service && !enduser.spec.suspended && enduser.metadata.deletion_timestamp.is_none()
}

/// The targets of one end user on its course (nothing when it is not monitored).
pub fn enduser_targets(
    enduser: &EndUser,
    course: &Course,
    now: jiff::Timestamp,
    startup_grace: Duration,
) -> Vec<MonitoredTarget> {
    if !monitored(enduser, now, startup_grace) {
        return Vec::new();
    }
    let namespace = enduser.namespace().unwrap_or_default();
    let Some(reseller) = naming::reseller_of_namespace(&namespace) else {
        return Vec::new();
    };
    let name = enduser.name_any();
    let hosting_ns = enduser
        .status
        .as_ref()
        .and_then(|s| s.hosting_namespace.clone())
        .unwrap_or_else(|| naming::hosting_namespace(reseller, &name));
    let endpoints = enduser
        .spec
        .monitoring
        .as_ref()
        .map(|m| m.endpoints.as_slice())
        .unwrap_or_default();
    let domain = enduser.spec.domains.first();
    let (reseller_key, namespace_key, enduser_key): (Arc<str>, Arc<str>, Arc<str>) = (
        reseller.into(),
        namespace.as_str().into(),
        name.as_str().into(),
    );
    let key = |service| TargetKey::EndUser {
        reseller: reseller_key.clone(),
        namespace: namespace_key.clone(),
        enduser: enduser_key.clone(),
        service,
    };
    // What the reseller names is checked against the other tenants' addresses.
    let named_scope = || Scope::Named {
        own: hosting_ns.clone(),
    };
    let mut out: Vec<MonitoredTarget> = Vec::new();
    for service in course_services(course) {
        let named = endpoints.iter().find(|e| e.service == service);
        let mut target = match (named, ServiceGroup::serving(service)) {
            (Some(e), _) => Target::new(
                service,
                e.host.clone(),
                e.port.and_then(|p| u16::try_from(p).ok()),
            )
            .with_scope(named_scope()),
            (None, Some(group)) => Target::new(
                service,
                format!("{}.{hosting_ns}.svc", group.name()),
                service.default_port(),
            )
            .with_scope(Scope::Cluster),
            (None, None) => continue,
        };
        if let Some(domain) = domain {
            target = target.with_domain(domain.clone());
        }
        out.push(MonitoredTarget {
            key: key(service),
            target,
        });
    }
    // A ping endpoint the end user named (e.g. its own server outside the cluster).
    if let Some(e) = endpoints.iter().find(|e| e.service == ServiceName::Ping) {
        out.push(MonitoredTarget {
            key: key(ServiceName::Ping),
            target: Target::new(ServiceName::Ping, e.host.clone(), None).with_scope(named_scope()),
        });
    }
    out
}

/// A ping of every running hosting pod (TCP fallback: its first container port), and of every
/// node such a pod runs on (TCP fallback: the kubelet's port).
pub fn host_targets(
    pods: &[impl Borrow<HostingPod>],
    nodes: &[impl Borrow<Node>],
    kubelet_port: u16,
) -> Vec<MonitoredTarget> {
    let mut out = Vec::new();
    let mut tenant_nodes = BTreeSet::new();
    for pod in pods.iter().map(Borrow::borrow) {
        let (Some(reseller), Some(enduser)) = (&pod.reseller, &pod.enduser) else {
            continue;
        };
        if let Some(node) = &pod.node {
            tenant_nodes.insert(node.to_string());
        }
        let Some(ip) = pod.ips.first() else {
            continue;
        };
        out.push(MonitoredTarget {
            key: TargetKey::Pod {
                reseller: reseller.as_ref().into(),
                enduser: enduser.as_ref().into(),
                namespace: pod.namespace.as_ref().into(),
                pod: pod.name.to_string(),
            },
            target: Target::new(ServiceName::Ping, ip.to_string(), pod.port)
                .with_scope(Scope::Cluster),
        });
    }
    for node in nodes.iter().map(Borrow::borrow) {
        let name = node.name_any();
        if !tenant_nodes.contains(&name) {
            continue;
        }
        let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
        let Some(ip) = addresses.and_then(|a| {
            a.iter()
                .find(|a| a.type_ == "InternalIP")
                .or_else(|| a.first())
                .map(|a| a.address.clone())
        }) else {
            continue;
        };
        out.push(MonitoredTarget {
            key: TargetKey::Node { node: name },
            target: Target::new(ServiceName::Ping, ip, Some(kubelet_port)).with_scope(Scope::Node),
        });
    }
    out
}

/// Who owns which in-cluster address, for the check of named endpoints: the ClusterIPs and
/// external IPs of the operator's Services and the IPs of its pods, each by namespace (a
/// hosting namespace), and the API server's Service (`default/kubernetes`) as the control
/// plane's.
pub fn address_owners(
    services: &[impl Borrow<ServiceAddresses>],
    pods: &[impl Borrow<HostingPod>],
    api_server: Option<&ServiceAddresses>,
) -> AddressOwners {
    let services = services.iter().map(Borrow::borrow);
    let services = services.flat_map(|s| s.ips.iter().map(|ip| (*ip, &*s.namespace)));
    let pods = pods.iter().map(Borrow::borrow);
    let pods = pods.flat_map(|p| p.ips.iter().map(|ip| (*ip, &*p.namespace)));
    let api_server = api_server.map(|s| &s.ips[..]).unwrap_or_default();
    AddressOwners::new(services.chain(pods), api_server.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn course(services: serde_json::Value) -> Course {
        serde_json::from_value(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Course",
            "metadata": {"name": "basic", "namespace": "reseller-acme"},
            "spec": {
                "displayName": "Basic",
                "resources": {"cpu": "1", "memory": "1Gi", "storage": "10Gi"},
                "limits": {"domains": 1, "mailAccounts": 1, "databases": 1, "ftpAccounts": 1},
                "services": services
            }
        }))
        .unwrap()
    }

    fn enduser(phase: &str, monitoring: serde_json::Value) -> EndUser {
        serde_json::from_value(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "EndUser",
            "metadata": {"name": "alice", "namespace": "reseller-acme"},
            "spec": {
                "loginId": "alice", "contractName": "Alice", "contactEmail": "a@example.com",
                "courseRef": {"name": "basic"}, "domains": ["alice.example.com"],
                "contractDate": "2026-01-01", "startDate": "2026-01-01",
                "monitoring": monitoring
            },
            "status": {"phase": phase, "hostingNamespace": "h-acme-alice-x"}
        }))
        .unwrap()
    }

    const GRACE: Duration = Duration::from_secs(600);

    fn now() -> jiff::Timestamp {
        "2026-03-02T01:30:00Z".parse().unwrap()
    }

    /// An end user provisioning, waiting for its workloads since `since`.
    fn waiting(since: &str) -> EndUser {
        let mut eu = enduser("Provisioning", json!({}));
        let status = eu.status.as_mut().unwrap();
        status.conditions = vec![
            serde_json::from_value(json!({
                "type": "Ready", "status": "False", "reason": WAITING_FOR_WORKLOADS,
                "message": "waiting for: web", "lastTransitionTime": since
            }))
            .unwrap(),
        ];
        eu
    }

    fn everything() -> Course {
        course(json!({
            "web": {"phpVersion": "8.4"}, "ftp": {"tls": true},
            "mail": {"maxSendsPerHour": 100}, "database": {"engine": "mariadb"}
        }))
    }

    #[test]
    fn a_full_course_yields_twelve_services_minus_the_other_database() {
        let services = course_services(&everything());
        assert_eq!(services.len(), 11);
        assert!(services.contains(&ServiceName::Mysql));
        assert!(!services.contains(&ServiceName::Postgresql));
    }

    #[test]
    fn ftp_without_tls_has_no_ftps() {
        let services = course_services(&course(
            json!({"web": {"phpVersion": "8.4"}, "ftp": {"tls": false}}),
        ));
        assert_eq!(
            services,
            [ServiceName::Http, ServiceName::Https, ServiceName::Ftp]
        );
    }

    #[test]
    fn services_default_to_the_in_cluster_service_address() {
        let targets = enduser_targets(
            &enduser("Active", json!({"endpoints": []})),
            &everything(),
            now(),
            GRACE,
        );
        let imaps = targets
            .iter()
            .find(|t| t.target.service == ServiceName::Imaps)
            .unwrap();
        assert_eq!(imaps.target.host, "mail.h-acme-alice-x.svc");
        assert_eq!(imaps.target.port, Some(993));
        assert_eq!(imaps.target.domain.as_deref(), Some("alice.example.com"));
        assert_eq!(imaps.target.scope, Scope::Cluster);
        assert_eq!(imaps.key.labels(), ["acme", "alice", "imaps", ""]);
    }

    #[test]
    fn named_endpoints_override_the_in_cluster_address() {
        let monitoring = json!({"endpoints": [
            {"service": "smtp", "host": "127.0.0.1", "port": 2525},
            {"service": "ping", "host": "127.0.0.2"}
        ]});
        let targets = enduser_targets(
            &enduser("Degraded", monitoring),
            &everything(),
            now(),
            GRACE,
        );
        let smtp = targets
            .iter()
            .find(|t| t.target.service == ServiceName::Smtp)
            .unwrap();
        assert_eq!(
            (smtp.target.host.as_str(), smtp.target.port),
            ("127.0.0.1", Some(2525))
        );
        // Named endpoints are checked against other tenants' addresses, as this end user's.
        let own = Scope::Named {
            own: "h-acme-alice-x".into(),
        };
        assert_eq!(smtp.target.scope, own);
        let ping = targets
            .iter()
            .find(|t| t.target.service == ServiceName::Ping)
            .unwrap();
        assert_eq!(ping.target.scope, own);
    }

    #[test]
    fn only_active_or_degraded_end_users_are_probed() {
        for phase in ["Provisioning", "Scheduled", "Suspended", "Terminating"] {
            assert!(
                enduser_targets(&enduser(phase, json!({})), &everything(), now(), GRACE).is_empty()
            );
        }
    }

    #[test]
    fn an_end_user_waiting_for_its_workloads_is_probed_after_the_startup_grace() {
        // Nine minutes into its start: not yet (nor restarted by an incident while starting).
        let starting = waiting("2026-03-02T01:21:00Z");
        assert!(!monitored(&starting, now(), GRACE));
        // Ten minutes and more: probed like a serving end user, at its in-cluster Services.
        let stuck = waiting("2026-03-02T01:20:00Z");
        assert!(monitored(&stuck, now(), GRACE));
        let targets = enduser_targets(&stuck, &everything(), now(), GRACE);
        assert_eq!(targets.len(), 11);
        assert!(
            targets
                .iter()
                .all(|t| t.target.host.ends_with(".h-acme-alice-x.svc"))
        );
        // Not when it waits for something else, is suspended or being deleted.
        let mut refused = stuck.clone();
        refused.status.as_mut().unwrap().conditions[0].reason = "CourseNotFound".into();
        assert!(!monitored(&refused, now(), GRACE));
        let mut suspended = stuck.clone();
        suspended.spec.suspended = true;
        assert!(!monitored(&suspended, now(), GRACE));
        let mut deleted = stuck.clone();
        deleted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        assert!(!monitored(&deleted, now(), GRACE));
        // Without a hosting namespace yet, there is nothing to probe.
        let mut unplaced = stuck;
        unplaced.status.as_mut().unwrap().hosting_namespace = None;
        assert!(!monitored(&unplaced, now(), GRACE));
    }

    #[test]
    fn hosting_pods_and_their_nodes_are_pinged() {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "h-acme-alice-x", "labels": {
                naming::LABEL_RESELLER: "acme", naming::LABEL_ENDUSER: "alice"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "web", "ports": [{"containerPort": 8080}]}]},
            "status": {"podIP": "127.100.0.5"}
        }))
        .unwrap();
        let node = |name: &str| -> Node {
            serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}}))
            .unwrap()
        };
        let targets = host_targets(&[HostingPod::of(&pod)], &[node("n1"), node("idle")], 10250);
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].target.host, "127.100.0.5");
        assert_eq!(targets[0].target.port, Some(8080));
        assert_eq!(targets[0].target.scope, Scope::Cluster);
        assert_eq!(targets[1].key, TargetKey::Node { node: "n1".into() });
        assert_eq!(targets[1].target.scope, Scope::Node);
    }

    #[test]
    fn service_and_pod_addresses_belong_to_their_namespace() {
        let svc = |ns: &str, ip: &str| {
            ServiceAddresses::of(
                &serde_json::from_value(json!({"metadata": {"name": "db", "namespace": ns},
                    "spec": {"clusterIP": ip, "clusterIPs": [ip]}}))
                .unwrap(),
            )
        };
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": "db-0", "namespace": "h-acme-bob-y"},
            "status": {"podIP": "10.244.0.9", "podIPs": [{"ip": "10.244.0.9"}]}
        }))
        .unwrap();
        let headless = svc("h-acme-bob-y", "None");
        let owners = address_owners(
            &[svc("h-acme-bob-y", "10.96.7.7"), headless],
            &[HostingPod::of(&pod)],
            Some(&svc("default", "10.96.0.1")),
        );
        assert_eq!(owners.len(), 3);
        let alice = "h-acme-alice-x";
        for bob in ["10.96.7.7", "10.244.0.9"] {
            assert!(owners.check(bob.parse().unwrap(), alice).is_err(), "{bob}");
            assert!(owners.check(bob.parse().unwrap(), "h-acme-bob-y").is_ok());
        }
        let api = owners.check("10.96.0.1".parse().unwrap(), alice);
        assert_eq!(api.unwrap_err().metric_label(), "control_plane");
    }
}
