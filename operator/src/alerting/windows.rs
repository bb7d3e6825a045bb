//! The maintenance windows' side of the alert loop: the nodes under a failing end user (only
//! while a provider's node window is open), whether an outage is held by a window, and each
//! window's status, written (server-side apply, field manager `oem-hosting-alerting`) only
//! when its phase or record changed. The decisions are in `maintenance.rs`.

use std::collections::HashMap;

use jiff::Timestamp;
use kube::api::Api;
use kube::{Resource, ResourceExt};
use oem_crds::incident::IncidentKind;
use oem_crds::maintenance::MaintenanceStatus;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::incidents::World;
use super::maintenance::{self, Admission, Cover, Phase, Target, Window};
use super::source::{AlertKey, Observation};
use crate::status::owners;

/// The nodes each failing end user's pods run on (from the view), while a node window is open.
pub fn nodes_of_failing(
    world: &World,
    seen: Option<&Observation>,
    now: Timestamp,
) -> HashMap<AlertKey, Vec<String>> {
    let node_window_open = world.windows.iter().any(|w| {
        w.phase(now) == Phase::Open && w.covers.iter().any(|c| matches!(c, Cover::Node { .. }))
    });
    let mut nodes = HashMap::new();
    if !node_window_open {
        return nodes;
    }
    let mut keys: Vec<AlertKey> = seen
        .map(|s| s.active.keys().cloned().collect())
        .unwrap_or_default();
    keys.extend(
        world
            .incidents
            .iter()
            .filter(|i| super::incidents::is_open(i))
            .map(super::incidents::key_of),
    );
    for key in keys {
        let on = world.nodes_of(&world.hosting_namespace(&key));
        nodes.insert(key, on.into_iter().collect());
    }
    nodes
}

/// Whether an open window holds this outage now, and which.
pub fn holding(
    world: &World,
    nodes: &HashMap<AlertKey, Vec<String>>,
    key: &AlertKey,
    since: Timestamp,
    now: Timestamp,
) -> Admission {
    let on = nodes.get(key).map(Vec::as_slice).unwrap_or_default();
    maintenance::admission(&world.windows, key.kind, &Target::of(key, on), since, now)
}

/// Whether a target the window names is failing now. Without an observation, what the status
/// recorded stands: a window neither starts counting its work nor ends on recovery blind.
fn any_target_down(
    window: &Window,
    seen: Option<&Observation>,
    nodes: &HashMap<AlertKey, Vec<String>>,
) -> bool {
    let Some(seen) = seen else {
        return window.first_down_at.is_some();
    };
    seen.active.keys().any(|key| {
        let on = nodes.get(key).map(Vec::as_slice).unwrap_or_default();
        key.kind != IncidentKind::MassMail && window.names(&Target::of(key, on))
    })
}

/// Writes every window's status that changed.
pub async fn write_statuses(
    client: &kube::Client,
    world: &World,
    seen: Option<&Observation>,
    nodes: &HashMap<AlertKey, Vec<String>>,
    now: Timestamp,
) {
    for window in &world.maintenances {
        let view = Window::of_maintenance(window);
        let down = any_target_down(&view, seen, nodes);
        let api = Api::namespaced(client.clone(), &window.namespace().unwrap_or_default());
        write_one(&api, window, &view, window.status.as_ref(), down, now).await;
    }
    for window in &world.cluster_maintenances {
        let view = Window::of_cluster_maintenance(window);
        let down = any_target_down(&view, seen, nodes);
        let api = Api::all(client.clone());
        write_one(&api, window, &view, window.status.as_ref(), down, now).await;
    }
}

async fn write_one<K>(
    api: &Api<K>,
    window: &K,
    view: &Window,
    stored: Option<&MaintenanceStatus>,
    down: bool,
    now: Timestamp,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let status = maintenance::next_status(view, stored, window.meta().generation, down, now);
    if stored == Some(&status) {
        return;
    }
    match owners::WINDOW_PHASE
        .write(api, &window.name_any(), stored, &status)
        .await
    {
        Ok(_) => tracing::info!(window = %view.name, phase = ?status.phase,
            end_reason = ?status.end_reason, "maintenance window status written"),
        Err(error) => {
            tracing::warn!(window = %view.name, %error, "writing the maintenance window status failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use oem_crds::enduser::ServiceName;

    fn start() -> Timestamp {
        "2026-12-09T17:00:00Z".parse().unwrap()
    }

    fn window() -> Window {
        Window {
            name: "reseller-sakura/shop-upgrade".into(),
            covers: vec![Cover::EndUser {
                namespace: "reseller-sakura".into(),
                end_user: "shop".into(),
                services: vec![],
            }],
            start: start(),
            end: start() + SignedDuration::from_hours(2),
            end_when_recovered: true,
            first_down_at: None,
            recovered_at: None,
        }
    }

    fn key(kind: IncidentKind, service: ServiceName) -> AlertKey {
        AlertKey {
            namespace: "reseller-sakura".into(),
            enduser: "shop".into(),
            service,
            kind,
        }
    }

    fn seeing(keys: &[AlertKey]) -> Observation {
        Observation {
            active: keys.iter().map(|k| (k.clone(), start())).collect(),
            complete: true,
            ..Observation::default()
        }
    }

    #[test]
    fn a_failing_target_the_window_names_counts_as_down() {
        let seen = seeing(&[key(IncidentKind::ServiceDown, ServiceName::Http)]);
        assert!(any_target_down(&window(), Some(&seen), &HashMap::new()));
    }

    #[test]
    fn a_mass_mail_alert_is_not_the_work_of_a_window() {
        let seen = seeing(&[key(IncidentKind::MassMail, ServiceName::Smtp)]);
        assert!(!any_target_down(&window(), Some(&seen), &HashMap::new()));
    }

    #[test]
    fn without_an_observation_the_recorded_state_stands() {
        let mut w = window();
        assert!(
            !any_target_down(&w, None, &HashMap::new()),
            "never starts counting blind"
        );
        w.first_down_at = Some(start());
        assert!(
            any_target_down(&w, None, &HashMap::new()),
            "never ends on recovery blind"
        );
    }
}
