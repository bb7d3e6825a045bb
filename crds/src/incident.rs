//! The `Incident` kind (namespaced, in the reseller's namespace, written by the operator): one
//! outage of one end user's service or host, from detection to the incident report.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conditions::Condition;
use crate::enduser::ServiceName;

/// An incident (障害): an outage, what was done about it, who was told and when.
// printcolumn repeats its keys by design, which clippy takes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.oem.dev",
    version = "v1alpha1",
    kind = "Incident",
    namespaced,
    status = "IncidentStatus",
    shortname = "inc",
    category = "hosting",
    doc = "An incident: one outage of one end user's service or host, from detection to the report.",
    printcolumn(name = "End User", type_ = "string", json_path = ".spec.endUser"),
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(
        name = "Kind",
        type_ = "string",
        json_path = ".spec.kind",
        priority = 1
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Started", type_ = "date", json_path = ".status.startedAt"),
    printcolumn(name = "Resolved", type_ = "date", json_path = ".status.resolvedAt"),
    printcolumn(
        name = "Report Due",
        type_ = "string",
        json_path = ".status.reportDueBy",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.kind != 'HostDown' || self.service == 'ping'").message("a HostDown incident is about the host: service must be ping").field_path(".service"))]
#[x_kube(validation = Rule::new("self.kind != 'ServiceDown' || self.service != 'ping'").message("a ServiceDown incident names a service, not ping").field_path(".service"))]
#[x_kube(validation = Rule::new("self.kind != 'MassMail' || self.service == 'smtp' || self.service == 'smtps'").message("a MassMail incident is about smtp or smtps").field_path(".service"))]
pub struct IncidentSpec {
    /// Name of the affected EndUser, in this namespace; immutable.
    #[schemars(regex(pattern = crate::schema::DNS_SUBDOMAIN_PATTERN), length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("endUser is immutable"))]
    pub end_user: String,
    /// The service that failed (ping for the host); immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("service is immutable"))]
    pub service: ServiceName,
    /// ServiceDown, HostDown or MassMail; immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("kind is immutable"))]
    pub kind: IncidentKind,
    /// The cause, as an SRE recorded it; the incident report waits for it until shortly before its deadline. Lines of text: no control characters but line feeds and tabs, no bidirectional overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096), regex(pattern = crate::schema::MULTI_LINE_TEXT_PATTERN))]
    pub cause: Option<String>,
    /// Set by an SRE when the investigation needs longer than the deadline allows: the reseller is told so by the deadline, and the report follows when the cause is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_deferral: Option<ReportDeferral>,
    /// The node the end user's hosting ran on, when that node was down (not Ready, or gone) as the incident opened; set by the operator, immutable. The incidents of every end user of one reseller on one down node are one outage: one notice lists them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::schema::DNS_SUBDOMAIN_PATTERN), length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("node is immutable"))]
    pub node: Option<String>,
}

/// What kind of outage an incident is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum IncidentKind {
    /// A service of the end user stopped answering (response level 1: restart it).
    ServiceDown,
    /// The host stopped answering ping (response level 2: restart the base).
    HostDown,
    /// An account sent mail above its course's rate and was locked.
    MassMail,
}

/// Why the incident report comes later than the next business day.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportDeferral {
    /// What the investigation is waiting for; told to the reseller. Lines of text: no control characters but line feeds and tabs, no bidirectional overrides.
    #[schemars(length(min = 1, max = 2000), regex(pattern = crate::schema::MULTI_LINE_TEXT_PATTERN))]
    pub reason: String,
}

/// Phase of the incident: Open, Notified (the outage reached 10 minutes), Remediating, Resolved or Reported.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum IncidentPhase {
    /// Detected; not yet 10 minutes long.
    Open,
    /// The outage reached 10 minutes and the reseller's contacts were notified.
    Notified,
    /// Remediation (restart, recreate, cordon) is under way.
    Remediating,
    /// The service answers again; the report is due.
    Resolved,
    /// The incident report was sent.
    Reported,
}

/// The incident's record, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentStatus {
    /// Open, Notified, Remediating, Resolved or Reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<IncidentPhase>,
    /// When the outage began: the first failed probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the failure was confirmed and the incident opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_at: Option<Time>,
    /// When the reseller was first notified (the outage reached 10 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified_at: Option<Time>,
    /// When the service answered again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,
    /// Deadline of the incident report: end of the next business day after recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_due_by: Option<Time>,
    /// When the incident report was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_sent_at: Option<Time>,
    /// Everything that happened, in order (at most 256 entries; the operator keeps the first and the latest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub timeline: Vec<TimelineEntry>,
    /// Every notice sent, or being sent, about this incident, one per event, contact and channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["idempotencyKey"]))]
    pub notifications: Vec<NotificationRecord>,
    /// Standard conditions; Ready is True once the incident is resolved and reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Well-known timeline events.
pub mod event {
    /// The first failed probe.
    pub const DOWN: &str = "Down";
    /// The incident was opened.
    pub const DETECTED: &str = "Detected";
    /// Level 1: the failing workload was restarted.
    pub const RESTARTED: &str = "Restarted";
    /// Level 2: the pod was recreated.
    pub const RECREATED: &str = "Recreated";
    /// Level 2: a NotReady node was cordoned and tenant pods moved.
    pub const CORDONED: &str = "Cordoned";
    /// Outbound mail of the account was locked.
    pub const MAIL_LOCKED: &str = "MailLocked";
    /// The reseller's contacts were notified.
    pub const NOTIFIED: &str = "Notified";
    /// The service answered again.
    pub const RECOVERED: &str = "Recovered";
    /// The report was deferred and the deferral told.
    pub const REPORT_DEFERRED: &str = "ReportDeferred";
    /// The incident report was sent.
    pub const REPORTED: &str = "Reported";
}

/// One event of the incident.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// When it happened.
    pub time: Time,
    /// What happened, in CamelCase: Down, Detected, Restarted, Recreated, Cordoned, MailLocked, Notified, Recovered, ReportDeferred, Reported.
    #[schemars(regex(pattern = r"^[A-Z][A-Za-z0-9]*$"), length(min = 1, max = 64))]
    pub event: String,
    /// Details, e.g. which workload was restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub message: Option<String>,
}

/// How a notice is delivered.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// E-mail over SMTP.
    Email,
    /// Signed JSON POST.
    Webhook,
    /// E-mail to the contact's fax gateway.
    Fax,
}

/// What a notice tells.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum NotificationEvent {
    /// The outage reached 10 minutes.
    Outage,
    /// The service answers again.
    Recovered,
    /// The incident report.
    Report,
    /// The report is deferred, and why.
    Deferral,
    /// An account's outbound mail was locked for mass mailing.
    MailLock,
}

/// Delivery state of a notice.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeliveryState {
    /// Not delivered yet; retried with backoff.
    Pending,
    /// Delivered.
    Sent,
    /// Given up after the last retry.
    Failed,
}

/// One notice to one contact by one channel.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRecord {
    /// email, webhook or fax.
    pub channel: Channel,
    /// Where to: the e-mail address or the webhook URL.
    #[schemars(length(min = 1, max = 2048))]
    pub target: String,
    /// outage, recovered, report, deferral or mailLock.
    pub event: NotificationEvent,
    /// Pending, Sent or Failed.
    pub state: DeliveryState,
    /// Delivery attempts made so far.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub attempts: i32,
    /// When the last attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Time>,
    /// Unique key of this notice: recorded before sending, so it is delivered once across restarts and failovers.
    #[schemars(length(min = 1, max = 256))]
    pub idempotency_key: String,
    /// The last delivery error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
}
