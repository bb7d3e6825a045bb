//! The one way the operator writes a status. Every writer is an [`Owner`]: its field manager
//! and the top-level status fields it owns, all declared in [`owners`]. A write sends exactly
//! those fields of the status it is given (server-side apply, forced: they are this writer's
//! alone), and only when one of them differs from what is stored. A field the writer owns but
//! leaves out is removed, as server-side apply drops what a manager stops sending; the fields
//! other writers own are never sent, so nobody lists what is someone else's. A test checks
//! that each field of each kind's status has exactly one owner.

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// A status writer: its field manager and the top-level status fields it owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub manager: &'static str,
    pub fields: &'static [&'static str],
}

/// Every status writer of the operator, by kind.
pub mod owners {
    use super::Owner;
    use crate::naming::FIELD_MANAGER as CONTROLLERS;

    /// The monitor's field manager.
    pub const MONITOR: &str = "oem-hosting-monitor";
    /// The usage reporter's.
    pub const USAGE: &str = "oem-hosting-usage";
    /// The alert controller's (incidents, mail locks, maintenance windows' phases).
    pub const ALERTING: &str = "oem-hosting-alerting";
    /// Maintenance announcements'.
    pub const ANNOUNCER: &str = "oem-hosting-announcer";
    /// The monthly availability reports'.
    pub const REPORTER: &str = "oem-hosting-reporter";

    pub const ENDUSER: Owner = Owner {
        manager: CONTROLLERS,
        fields: &[
            "phase",
            "hostingNamespace",
            "passwordSecret",
            "domainCount",
            "dns",
            "conditions",
            "observedGeneration",
        ],
    };
    pub const ENDUSER_SERVICES: Owner = Owner {
        manager: MONITOR,
        fields: &["services"],
    };
    pub const ENDUSER_USAGE: Owner = Owner {
        manager: USAGE,
        fields: &["usage"],
    };
    pub const ENDUSER_MAIL_LOCK: Owner = Owner {
        manager: ALERTING,
        fields: &["mailLocked"],
    };
    pub const RESELLER: Owner = Owner {
        manager: CONTROLLERS,
        fields: &["namespace", "endUsers", "conditions", "observedGeneration"],
    };
    pub const RESELLER_USAGE: Owner = Owner {
        manager: USAGE,
        fields: &["usage"],
    };
    pub const RESELLER_REPORTS: Owner = Owner {
        manager: REPORTER,
        fields: &["reports"],
    };
    pub const COURSE: Owner = Owner {
        manager: CONTROLLERS,
        fields: &["services", "endUsers", "conditions", "observedGeneration"],
    };
    pub const INCIDENT: Owner = Owner {
        manager: ALERTING,
        fields: &[
            "phase",
            "startedAt",
            "detectedAt",
            "notifiedAt",
            "resolvedAt",
            "reportDueBy",
            "reportSentAt",
            "timeline",
            "notifications",
            "conditions",
            "observedGeneration",
        ],
    };
    /// Maintenance and ClusterMaintenance: the window's phase.
    pub const WINDOW_PHASE: Owner = Owner {
        manager: ALERTING,
        fields: &[
            "phase",
            "endReason",
            "firstDownAt",
            "endedAt",
            "conditions",
            "observedGeneration",
        ],
    };
    /// Maintenance and ClusterMaintenance: what was announced.
    pub const WINDOW_ANNOUNCER: Owner = Owner {
        manager: ANNOUNCER,
        fields: &[
            "announcedAt",
            "announcements",
            "announcedTimes",
            "rescheduledFrom",
        ],
    };
}

impl Owner {
    /// The fields of `status` this writer owns, as JSON (a field it does not set is absent).
    pub fn pick<S: Serialize>(&self, status: &S) -> Result<Map<String, Value>, serde_json::Error> {
        let Value::Object(mut all) = serde_json::to_value(status)? else {
            return Ok(Map::new());
        };
        all.retain(|field, value| self.fields.contains(&field.as_str()) && !value.is_null());
        Ok(all)
    }

    /// Whether writing `status` over `current` would change a field this writer owns.
    pub fn changes<S: Serialize>(
        &self,
        current: Option<&S>,
        status: &S,
    ) -> Result<bool, serde_json::Error> {
        let wanted = self.pick(status)?;
        Ok(match current {
            Some(current) => self.pick(current)? != wanted,
            None => true,
        })
    }

    /// Writes this writer's fields of `status` on the object `name` unless `current` (what is
    /// stored; `None`: not known, always write) already has them. Returns the object as stored
    /// after the write, `None` when nothing was written.
    pub async fn write<K, S>(
        &self,
        api: &Api<K>,
        name: &str,
        current: Option<&S>,
        status: &S,
    ) -> Result<Option<K>, kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
        S: Serialize,
    {
        if !self
            .changes(current, status)
            .map_err(kube::Error::SerdeError)?
        {
            return Ok(None);
        }
        let fields = self.pick(status).map_err(kube::Error::SerdeError)?;
        let patch = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": fields,
        });
        api.patch_status(
            name,
            &PatchParams::apply(self.manager).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::CustomResourceExt;
    use oem_crds::enduser::{EndUserPhase, EndUserStatus};
    use oem_crds::maintenance::{
        ClusterMaintenance, Maintenance, MaintenancePhase, MaintenanceStatus,
    };
    use oem_crds::{Course, EndUser, Incident, Reseller};

    use super::owners::*;
    use super::*;

    /// The status fields of a kind as its CRD's schema has them.
    fn schema_fields<K: CustomResourceExt>() -> Vec<String> {
        let crd = serde_json::to_value(K::crd()).unwrap();
        let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
            ["properties"];
        let mut fields: Vec<String> = status.as_object().unwrap().keys().cloned().collect();
        fields.sort();
        fields
    }

    fn owned(owners: &[Owner]) -> BTreeMap<String, Vec<&'static str>> {
        let mut by_field: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
        for owner in owners {
            for field in owner.fields {
                by_field
                    .entry((*field).to_owned())
                    .or_default()
                    .push(owner.manager);
            }
        }
        by_field
    }

    fn exactly_one_owner_each<K: CustomResourceExt>(owners: &[Owner]) {
        let by_field = owned(owners);
        let declared: Vec<String> = by_field.keys().cloned().collect();
        assert_eq!(
            declared,
            schema_fields::<K>(),
            "{}: the declared owners must cover its status",
            K::crd_name()
        );
        for (field, managers) in by_field {
            assert_eq!(
                managers.len(),
                1,
                "{}: {field} has owners {managers:?}",
                K::crd_name()
            );
        }
    }

    #[test]
    fn each_field_of_each_status_has_exactly_one_writer() {
        exactly_one_owner_each::<EndUser>(&[
            ENDUSER,
            ENDUSER_SERVICES,
            ENDUSER_USAGE,
            ENDUSER_MAIL_LOCK,
        ]);
        exactly_one_owner_each::<Reseller>(&[RESELLER, RESELLER_USAGE, RESELLER_REPORTS]);
        exactly_one_owner_each::<Course>(&[COURSE]);
        exactly_one_owner_each::<Incident>(&[INCIDENT]);
        exactly_one_owner_each::<Maintenance>(&[WINDOW_PHASE, WINDOW_ANNOUNCER]);
        exactly_one_owner_each::<ClusterMaintenance>(&[WINDOW_PHASE, WINDOW_ANNOUNCER]);
    }

    #[test]
    fn a_writer_sends_and_compares_only_its_own_fields() {
        let stored = EndUserStatus {
            phase: Some(EndUserPhase::Active),
            mail_locked: true,
            ..EndUserStatus::default()
        };
        // Another writer's field differing (mailLocked) is no change for the controller.
        let wanted = EndUserStatus {
            phase: Some(EndUserPhase::Active),
            ..EndUserStatus::default()
        };
        assert!(!ENDUSER.changes(Some(&stored), &wanted).unwrap());
        assert!(ENDUSER_MAIL_LOCK.changes(Some(&stored), &wanted).unwrap());
        let picked = ENDUSER.pick(&stored).unwrap();
        assert_eq!(picked.keys().collect::<Vec<_>>(), ["phase"]);
        let degraded = EndUserStatus {
            phase: Some(EndUserPhase::Degraded),
            ..stored.clone()
        };
        assert!(ENDUSER.changes(Some(&stored), &degraded).unwrap());
        assert!(ENDUSER.changes(None, &stored).unwrap());
    }

    #[test]
    fn the_two_window_writers_send_their_own_fields_and_never_a_null() {
        let at = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-12-01T00:00:00Z".parse().unwrap(),
        );
        let status = MaintenanceStatus {
            phase: Some(MaintenancePhase::Scheduled),
            announced_at: Some(at),
            ..MaintenanceStatus::default()
        };
        let announcer = Value::Object(WINDOW_ANNOUNCER.pick(&status).unwrap());
        assert_eq!(announcer, json!({"announcedAt": "2026-12-01T00:00:00Z"}));
        let phase = Value::Object(WINDOW_PHASE.pick(&status).unwrap());
        assert_eq!(phase["phase"], "Scheduled");
        assert!(phase.get("announcedAt").is_none(), "{phase}");
        assert!(phase.get("endReason").is_none(), "{phase}");
    }
}
