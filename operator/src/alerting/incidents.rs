//! What the alert controller knows of the cluster at one look (`World`, maintenance windows
//! included), and how incidents are found again: their key (end user, service, kind) and their deterministic name.

use std::collections::HashMap;

use jiff::Timestamp;
use kube::ResourceExt;
use oem_crds::course::Course;
use oem_crds::enduser::{EndUser, ServiceName};
use oem_crds::incident::{Incident, IncidentKind};
use oem_crds::maintenance::{ClusterMaintenance, Maintenance};
use oem_crds::reseller::Reseller;
use sha2::{Digest, Sha256};

use super::maintenance::Window;
use super::source::AlertKey;

/// What one look at the cluster finds.
pub struct World {
    pub resellers: HashMap<String, Reseller>,
    pub endusers: HashMap<(String, String), EndUser>,
    pub courses: HashMap<(String, String), Course>,
    pub incidents: Vec<Incident>,
    pub maintenances: Vec<Maintenance>,
    pub cluster_maintenances: Vec<ClusterMaintenance>,
    /// Both kinds of maintenance window, as the decisions see them.
    pub windows: Vec<Window>,
}

impl World {
    /// The world as the view's stores hold it now: no request.
    pub fn of(view: &crate::view::View) -> Self {
        use crate::view::View;
        let maintenances = View::all(&view.maintenances);
        let cluster_maintenances = View::all(&view.cluster_maintenances);
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
        let mut incidents = View::all(&view.incidents);
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
        }
    }

    pub fn enduser_of(&self, incident: &Incident) -> Option<&EndUser> {
        self.endusers.get(&(
            incident.namespace().unwrap_or_default(),
            incident.spec.end_user.clone(),
        ))
    }
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
}
