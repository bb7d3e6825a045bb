//! Planned work: the `Maintenance` kind (namespaced, in the reseller's namespace, a reseller's
//! window for some of its end users) and the `ClusterMaintenance` kind (cluster-scoped, the
//! provider's window for a node or for every end user). While a window is open its targets are
//! still probed, but no incident opens for them, nothing is remediated and no notice goes out.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conditions::Condition;
use crate::enduser::ServiceName;
use crate::incident::{Channel, DeliveryState};

/// The most targets one window names.
pub const MAX_TARGETS: usize = 100;

/// A reseller's maintenance window (メンテナンス) for some of its end users' services.
// printcolumn repeats its keys by design, which clippy takes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.oem.dev",
    version = "v1alpha1",
    kind = "Maintenance",
    namespaced,
    status = "MaintenanceStatus",
    shortname = "mw",
    category = "hosting",
    doc = "A reseller's maintenance window: planned work on some of its end users' services, during which no incident opens for them.",
    printcolumn(
        name = "Targets",
        type_ = "string",
        json_path = ".spec.targets[*].endUser"
    ),
    printcolumn(name = "Start", type_ = "string", json_path = ".spec.start"),
    printcolumn(name = "End", type_ = "string", json_path = ".spec.end"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ended By",
        type_ = "string",
        json_path = ".status.endReason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.end > self.start").message("end must be after start").field_path(".end"))]
pub struct MaintenanceSpec {
    /// The end users (in this namespace) and services the work affects; at least one.
    #[schemars(length(min = 1, max = 100))]
    pub targets: Vec<MaintenanceTarget>,
    /// When the work begins (RFC 3339, e.g. 2026-12-09T17:00:00Z for 02:00 JST).
    pub start: Time,
    /// When the work is planned to end; a target still down then opens an incident whose outage starts at this instant.
    pub end: Time,
    /// End the window as soon as every target's probes pass again, before the planned end.
    #[serde(default)]
    pub end_when_recovered: bool,
    /// Why, in Japanese and/or English; told to the reseller's contacts.
    pub reason: MaintenanceReason,
}

/// One end user of the reseller, and which of its services.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceTarget {
    /// Name of the EndUser, in the window's namespace.
    #[schemars(regex(pattern = crate::schema::DNS_SUBDOMAIN_PATTERN), length(min = 1, max = 253))]
    pub end_user: String,
    /// The services affected (ping for the host); empty means every service of the end user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 13), extend("x-kubernetes-list-type" = "set"))]
    pub services: Vec<ServiceName>,
}

/// The provider's maintenance window: planned work on a node, or on the whole platform.
// printcolumn repeats its keys by design, which clippy takes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.oem.dev",
    version = "v1alpha1",
    kind = "ClusterMaintenance",
    status = "MaintenanceStatus",
    shortname = "cmw",
    category = "hosting",
    doc = "The provider's maintenance window: planned work on a node or on every end user, during which no incident opens for the end users it covers.",
    printcolumn(name = "Nodes", type_ = "string", json_path = ".spec.targets[*].node"),
    printcolumn(
        name = "All End Users",
        type_ = "string",
        json_path = ".spec.targets[*].allEndUsers"
    ),
    printcolumn(name = "Start", type_ = "string", json_path = ".spec.start"),
    printcolumn(name = "End", type_ = "string", json_path = ".spec.end"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ended By",
        type_ = "string",
        json_path = ".status.endReason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.end > self.start").message("end must be after start").field_path(".end"))]
pub struct ClusterMaintenanceSpec {
    /// The nodes, or every end user, the work affects; at least one.
    #[schemars(length(min = 1, max = 100))]
    pub targets: Vec<ClusterMaintenanceTarget>,
    /// When the work begins (RFC 3339).
    pub start: Time,
    /// When the work is planned to end; an end user still down then opens an incident whose outage starts at this instant.
    pub end: Time,
    /// End the window as soon as every covered end user's probes pass again, before the planned end.
    #[serde(default)]
    pub end_when_recovered: bool,
    /// Why, in Japanese and/or English; told to every affected reseller's contacts.
    pub reason: MaintenanceReason,
}

/// A node by name, or every end user of every reseller.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.node) != self.allEndUsers").message("a target names a node or sets allEndUsers: true, not both"))]
pub struct ClusterMaintenanceTarget {
    /// A node: every end user with a pod on it is covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::schema::DNS_SUBDOMAIN_PATTERN), length(min = 1, max = 253))]
    pub node: Option<String>,
    /// Every end user of every reseller is covered.
    #[serde(default)]
    pub all_end_users: bool,
    /// The services affected (ping for the host); empty means every service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 13), extend("x-kubernetes-list-type" = "set"))]
    pub services: Vec<ServiceName>,
}

/// Why the work is done, in Japanese, English or both.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.ja) || has(self.en)").message("reason needs ja or en"))]
pub struct MaintenanceReason {
    /// The reason in Japanese (one line, no control characters or bidirectional overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 500), regex(pattern = crate::schema::SINGLE_LINE_TEXT_PATTERN))]
    pub ja: Option<String>,
    /// The reason in English (one line, no control characters or bidirectional overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 500), regex(pattern = crate::schema::SINGLE_LINE_TEXT_PATTERN))]
    pub en: Option<String>,
}

/// Where a window stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MaintenancePhase {
    /// Its start is still ahead.
    Scheduled,
    /// The work is under way: its targets open no incident.
    Open,
    /// Past its planned end, or its targets recovered (`endWhenRecovered`).
    Ended,
}

/// Why a window ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MaintenanceEndReason {
    /// Its planned end passed.
    PlannedEnd,
    /// Every target's probes passed again before the planned end.
    Recovered,
}

/// A window's state, written by the operator when it changes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceStatus {
    /// Scheduled, Open or Ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MaintenancePhase>,
    /// PlannedEnd or Recovered, once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<MaintenanceEndReason>,
    /// When a target was first seen down while the window was open; with `endWhenRecovered` the window ends once none is down any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_down_at: Option<Time>,
    /// When the window ended: the planned end, or when the last target recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,
    /// Standard conditions; Ready is True while the window is Scheduled or Open as specified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the announcement to the affected resellers' contacts was queued (once per window; a window already started is never announced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced_at: Option<Time>,
    /// One record per affected reseller, contact and channel: recorded before sending, so each is delivered once across restarts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub announcements: Vec<AnnouncementRecord>,
    /// The start and planned end the last announcement told; a window moved or lengthened before its start is announced again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced_times: Option<WindowTimes>,
    /// On a repeated announcement: the start and planned end told before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescheduled_from: Option<WindowTimes>,
}

/// A window's start and planned end, as announced.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowTimes {
    pub start: Time,
    pub end: Time,
}

/// The announcement of a window to one contact of one reseller by one channel.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnnouncementRecord {
    /// The reseller told.
    #[schemars(length(min = 1, max = 253))]
    pub reseller: String,
    /// email, webhook or fax.
    pub channel: Channel,
    /// Where to: the e-mail address, or the webhook URL's host and a digest of its path.
    #[schemars(length(min = 1, max = 2048))]
    pub target: String,
    /// Pending, Sent or Failed.
    pub state: DeliveryState,
    /// Delivery attempts made so far.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub attempts: i32,
    /// When the last attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Time>,
    /// Unique key of this announcement (the mail's Message-ID, the webhook's Idempotency-Key).
    #[schemars(length(min = 1, max = 256))]
    pub idempotency_key: String,
    /// The last delivery error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    fn rules_and_columns(
        crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    ) -> (String, Vec<String>) {
        let version = &crd.spec.versions[0];
        let schema = serde_json::to_string(&version.schema).unwrap_or_default();
        let columns = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect();
        (schema, columns)
    }

    #[test]
    fn the_schema_checks_end_after_start_a_target_and_a_reason() {
        for crd in [Maintenance::crd(), ClusterMaintenance::crd()] {
            let (schema, columns) = rules_and_columns(&crd);
            assert!(
                schema.contains("self.end > self.start"),
                "{}",
                crd.spec.names.kind
            );
            assert!(schema.contains("has(self.ja) || has(self.en)"));
            assert!(schema.contains(r#""minItems":1"#));
            for column in ["Start", "End", "Phase"] {
                assert!(columns.iter().any(|c| c == column), "{column}");
            }
            assert!(
                crd.spec.versions[0]
                    .subresources
                    .as_ref()
                    .is_some_and(|s| s.status.is_some())
            );
        }
        assert_eq!(Maintenance::crd().spec.scope, "Namespaced");
        assert_eq!(ClusterMaintenance::crd().spec.scope, "Cluster");
    }

    #[test]
    fn a_cluster_target_names_a_node_or_every_end_user() {
        let (schema, _) = rules_and_columns(&ClusterMaintenance::crd());
        assert!(schema.contains("has(self.node) != self.allEndUsers"));
    }
}
