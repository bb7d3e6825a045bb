//! What the alert controller knows of the cluster at one look (`World`, maintenance windows
//! included), and how incidents are found again: their key (end user, service, kind) and their deterministic name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use oem_crds::course::Course;
use oem_crds::enduser::{EndUser, ServiceName};
use oem_crds::incident::{Incident, IncidentKind};
use oem_crds::maintenance::{ClusterMaintenance, Maintenance};
use oem_crds::reseller::Reseller;
use sha2::{Digest, Sha256};

use super::maintenance::Window;
use super::source::AlertKey;
use crate::hosting::ServiceGroup;
use crate::naming;
use crate::slim::HostingPod;

/// What one look at the cluster finds.
pub struct World {
    pub resellers: HashMap<String, Arc<Reseller>>,
    pub endusers: HashMap<(String, String), Arc<EndUser>>,
    pub courses: HashMap<(String, String), Arc<Course>>,
    /// Owned: the loop updates them in place as it writes them.
    pub incidents: Vec<Incident>,
    pub maintenances: Vec<Maintenance>,
    pub cluster_maintenances: Vec<ClusterMaintenance>,
    /// Both kinds of maintenance window, as the decisions see them.
    pub windows: Vec<Window>,
    /// The operator's hosting pods, by namespace.
    pub pods: HashMap<String, Vec<Arc<HostingPod>>>,
    /// Whether each node is Ready, by name; a node not here is gone.
    pub nodes_ready: HashMap<String, bool>,
}

impl World {
    /// The world as the view's stores hold it now: no request.
    pub fn of(view: &crate::view::View) -> Self {
        use crate::view::View;
        // Windows are few and small, and written back by the announcements.
        fn owned<K: Clone>(all: Vec<Arc<K>>) -> Vec<K> {
            all.iter().map(|k| K::clone(k)).collect()
        }
        let maintenances: Vec<Maintenance> = owned(View::all(&view.maintenances));
        let cluster_maintenances: Vec<ClusterMaintenance> =
            owned(View::all(&view.cluster_maintenances));
        let windows = maintenances
            .iter()
            .map(Window::of_maintenance)
            .chain(
                cluster_maintenances
                    .iter()
                    .map(Window::of_cluster_maintenance),
            )
            .collect();
        let key = |ns: Option<String>, name: String| (ns.unwrap_or_default(), name);
        let mut incidents: Vec<Incident> = owned(View::all(&view.incidents));
        // The order the LIST gave (namespace, name), so each look walks them alike.
        incidents.sort_by_key(|i| (i.namespace(), i.name_any()));
        Self {
            resellers: View::all(&view.resellers)
                .into_iter()
                .map(|r| (r.name_any(), r))
                .collect(),
            endusers: View::all(&view.endusers)
                .into_iter()
                .map(|e| (key(e.namespace(), e.name_any()), e))
                .collect(),
            courses: View::all(&view.courses)
                .into_iter()
                .map(|c| (key(c.namespace(), c.name_any()), c))
                .collect(),
            incidents,
            maintenances,
            cluster_maintenances,
            windows,
            pods: view.pods.values().into_iter().fold(
                HashMap::new(),
                |mut by_namespace: HashMap<String, Vec<Arc<HostingPod>>>, pod| {
                    by_namespace
                        .entry(pod.namespace.to_string())
                        .or_default()
                        .push(pod);
                    by_namespace
                },
            ),
            nodes_ready: View::all(&view.nodes)
                .iter()
                .map(|n| (n.name_any(), node_ready(n)))
                .collect(),
        }
    }

    /// The hosting namespace of a key's end user: the one its status records, else the one
    /// its name gives.
    pub fn hosting_namespace(&self, key: &AlertKey) -> String {
        self.endusers
            .get(&(key.namespace.clone(), key.enduser.clone()))
            .and_then(|e| e.status.as_ref())
            .and_then(|s| s.hosting_namespace.clone())
            .unwrap_or_else(|| naming::hosting_namespace(key.reseller(), &key.enduser))
    }

    /// The pods of `group` in a hosting namespace (all of them for `None`).
    pub fn pods_in(&self, namespace: &str, group: Option<ServiceGroup>) -> Vec<Arc<HostingPod>> {
        self.pods
            .get(namespace)
            .into_iter()
            .flatten()
            .filter(|p| group.is_none_or(|g| p.group.as_deref() == Some(g.name())))
            .cloned()
            .collect()
    }

    /// The nodes a hosting namespace's pods are bound to.
    pub fn nodes_of(&self, namespace: &str) -> BTreeSet<String> {
        self.pods
            .get(namespace)
            .into_iter()
            .flatten()
            .filter_map(|p| p.node.as_deref().map(str::to_owned))
            .collect()
    }

    /// The first node of these pods that exists and is not Ready (the one level 2 cordons).
    pub fn not_ready_node(&self, pods: &[impl std::borrow::Borrow<HostingPod>]) -> Option<String> {
        pods.iter()
            .filter_map(|p| p.borrow().node.as_deref())
            .find(|node| self.nodes_ready.get(*node) == Some(&false))
            .map(str::to_owned)
    }

    /// The first node a hosting namespace's pods are bound to that is down: not Ready, or
    /// gone. Every end user on it fell with it.
    pub fn down_node(&self, namespace: &str) -> Option<String> {
        self.nodes_of(namespace)
            .into_iter()
            .find(|node| self.nodes_ready.get(node) != Some(&true))
    }

    /// The namespaces with a hosting pod on each of `nodes`.
    pub fn namespaces_on(&self, nodes: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
        let mut on: BTreeMap<String, BTreeSet<String>> =
            nodes.iter().map(|n| (n.clone(), BTreeSet::new())).collect();
        for (namespace, pods) in &self.pods {
            for node in pods.iter().filter_map(|p| p.node.as_deref()) {
                if let Some(namespaces) = on.get_mut(node) {
                    namespaces.insert(namespace.clone());
                }
            }
        }
        on
    }

    pub fn enduser_of(&self, incident: &Incident) -> Option<&EndUser> {
        self.endusers
            .get(&(
                incident.namespace().unwrap_or_default(),
                incident.spec.end_user.clone(),
            ))
            .map(Arc::as_ref)
    }
}

/// Whether a node's Ready condition is True.
fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The key of an incident.
pub fn key_of(incident: &Incident) -> AlertKey {
    AlertKey {
        namespace: incident.namespace().unwrap_or_default(),
        enduser: incident.spec.end_user.clone(),
        service: incident.spec.service,
        kind: incident.spec.kind,
    }
}

pub fn is_open(incident: &Incident) -> bool {
    incident
        .status
        .as_ref()
        .is_none_or(|s| s.resolved_at.is_none())
}

pub fn kind_text(kind: IncidentKind) -> &'static str {
    match kind {
        IncidentKind::ServiceDown => "ServiceDown",
        IncidentKind::HostDown => "HostDown",
        IncidentKind::MassMail => "MassMail",
    }
}

pub fn service_text(service: ServiceName) -> String {
    serde_json::to_value(service)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What a failing key without an open incident gets.
#[derive(Debug)]
pub enum Admit<'a> {
    /// A new Incident of this name.
    New(String),
    /// This resolved one again: the service flaps (`flow::takes_flap`).
    Reopen(&'a Incident),
    /// Nothing: this fall already has its Incident (resolved since).
    Known,
}

/// Decides how a fall of `key` that began at `since` is recorded: in the incident already
/// named for it, in a resolved incident of the key that takes the flap, else in a new one.
/// A service flapping with falls shorter than the notice threshold and rises shorter than
/// `flap_window` so keeps one Incident however long it flaps.
pub fn admit<'a>(
    incidents: &'a [Incident],
    key: &AlertKey,
    since: Timestamp,
    now: Timestamp,
    flap_window: jiff::SignedDuration,
) -> Admit<'a> {
    // Mass mail is named by its detection: the same burst may be locked again after the
    // grace, while its alert still counts from the same moment.
    let named_at = if key.kind == IncidentKind::MassMail {
        now
    } else {
        since
    };
    let name = incident_name(key, named_at);
    if incidents.iter().any(|i| i.name_any() == name) {
        return Admit::Known;
    }
    let latest = incidents
        .iter()
        .filter(|i| key_of(i) == *key)
        .max_by_key(|i| i.status.as_ref().and_then(|s| s.started_at.clone()));
    match latest {
        Some(incident) if super::flow::takes_flap(incident, since, flap_window) => {
            Admit::Reopen(incident)
        }
        _ => Admit::New(name),
    }
}

/// The incident's name: readable, and the same for the same outage (end user, service, kind,
/// first failure), so a restarted operator finds instead of duplicating it.
pub fn incident_name(key: &AlertKey, since: Timestamp) -> String {
    let mut hasher = Sha256::new();
    for part in [
        key.namespace.as_str(),
        key.enduser.as_str(),
        &service_text(key.service),
        kind_text(key.kind),
        &since.as_second().to_string(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let hash: String = hasher
        .finalize()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let what = match key.kind {
        IncidentKind::MassMail => "massmail".to_owned(),
        _ => service_text(key.service),
    };
    let mut readable: String = format!("{}-{what}", key.enduser)
        .chars()
        .take(200)
        .collect();
    while readable.ends_with(['-', '.']) {
        readable.pop();
    }
    format!("{readable}-{hash}")
}

#[cfg(test)]
#[path = "flap_tests.rs"]
mod flap_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use oem_crds::enduser::ServiceName;

    fn key(kind: IncidentKind, service: ServiceName) -> AlertKey {
        AlertKey {
            namespace: "reseller-sakura".into(),
            enduser: "shop".into(),
            service,
            kind,
        }
    }

    #[test]
    fn the_same_outage_has_the_same_name_another_one_another() {
        let t: Timestamp = "2026-03-02T01:00:00Z".parse().unwrap();
        let k = key(IncidentKind::ServiceDown, ServiceName::Imap);
        assert_eq!(incident_name(&k, t), incident_name(&k, t));
        assert!(incident_name(&k, t).starts_with("shop-imap-"));
        assert_ne!(
            incident_name(&k, t),
            incident_name(&k, t + SignedDuration::from_secs(60))
        );
        let smtp_down = key(IncidentKind::ServiceDown, ServiceName::Smtp);
        let mass_mail = key(IncidentKind::MassMail, ServiceName::Smtp);
        assert_ne!(incident_name(&smtp_down, t), incident_name(&mass_mail, t));
        assert!(incident_name(&mass_mail, t).starts_with("shop-massmail-"));
    }

    #[test]
    fn a_long_end_user_name_still_makes_a_valid_name() {
        let mut k = key(IncidentKind::HostDown, ServiceName::Ping);
        k.enduser = "a".repeat(253);
        let name = incident_name(&k, Timestamp::UNIX_EPOCH);
        assert!(name.len() <= 253, "{}", name.len());
    }

    fn pod(
        namespace: &str,
        name: &str,
        group: &str,
        node: &str,
    ) -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace,
                "labels": {naming::LABEL_SERVICE_GROUP: group}},
            "spec": {"containers": [], "nodeName": node},
        }))
        .unwrap()
    }

    fn world(pods: Vec<k8s_openapi::api::core::v1::Pod>, nodes_ready: &[(&str, bool)]) -> World {
        let mut by_namespace: HashMap<String, Vec<Arc<HostingPod>>> = HashMap::new();
        for p in pods {
            by_namespace
                .entry(p.namespace().unwrap())
                .or_default()
                .push(Arc::new(HostingPod::of(&p)));
        }
        World {
            resellers: HashMap::new(),
            endusers: HashMap::new(),
            courses: HashMap::new(),
            incidents: Vec::new(),
            maintenances: Vec::new(),
            cluster_maintenances: Vec::new(),
            windows: Vec::new(),
            pods: by_namespace,
            nodes_ready: nodes_ready
                .iter()
                .map(|(n, r)| ((*n).to_owned(), *r))
                .collect(),
        }
    }

    #[test]
    fn the_nodes_under_a_hosting_namespace_come_from_the_view() {
        let w = world(
            vec![
                pod("h-shop", "web-0", "web", "node-1"),
                pod("h-shop", "mail-0", "mail", "node-2"),
                pod("h-blog", "web-0", "web", "node-2"),
                pod("h-cafe", "web-0", "web", "node-3"),
            ],
            &[("node-1", true), ("node-2", false)],
        );
        assert_eq!(w.pods_in("h-shop", Some(ServiceGroup::Web)).len(), 1);
        assert_eq!(w.pods_in("h-shop", None).len(), 2);
        assert_eq!(
            w.nodes_of("h-shop").into_iter().collect::<Vec<_>>(),
            ["node-1", "node-2"]
        );
        // node-2 is NotReady; node-3 is gone (no Node object): both are down.
        assert_eq!(w.down_node("h-shop").as_deref(), Some("node-2"));
        assert_eq!(w.down_node("h-cafe").as_deref(), Some("node-3"));
        assert_eq!(w.down_node("h-none"), None);
        // Level 2 cordons only a node that exists.
        assert_eq!(w.not_ready_node(&w.pods_in("h-cafe", None)), None);
        assert_eq!(
            w.not_ready_node(&w.pods_in("h-blog", None)).as_deref(),
            Some("node-2")
        );
        let on = w.namespaces_on(&["node-2".to_owned(), "node-9".to_owned()].into());
        assert_eq!(
            on["node-2"].iter().collect::<Vec<_>>(),
            ["h-blog", "h-shop"]
        );
        assert!(on["node-9"].is_empty());
        let healthy = world(
            vec![pod("h-shop", "web-0", "web", "node-1")],
            &[("node-1", true)],
        );
        assert_eq!(healthy.down_node("h-shop"), None);
    }
}
