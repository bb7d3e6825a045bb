//! The `EndUser` kind (namespaced, in the reseller's namespace, owned by the reseller): one
//! customer's hosting contract, and what the operator and the monitor observed of it.

use jiff::civil::Date;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conditions::Condition;
use crate::usage::Usage;

/// The most domains one end user may serve.
pub const MAX_DOMAINS: usize = 100;

/// An end user (エンドユーザー): a customer of the reseller with its own isolated hosting.
// printcolumn repeats its keys by design, which clippy takes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.oem.dev",
    version = "v1alpha1",
    kind = "EndUser",
    namespaced,
    status = "EndUserStatus",
    shortname = "eu",
    category = "hosting",
    doc = "An end user: one customer of a reseller, with its own isolated hosting.",
    printcolumn(name = "Login", type_ = "string", json_path = ".spec.loginId"),
    printcolumn(name = "Course", type_ = "string", json_path = ".spec.courseRef.name"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.domains[0]"),
    printcolumn(name = "Domains", type_ = "integer", json_path = ".status.domainCount"),
    printcolumn(
        name = "All Domains",
        type_ = "string",
        json_path = ".spec.domains",
        priority = 1
    ),
    printcolumn(
        name = "Start",
        type_ = "string",
        json_path = ".spec.startDate",
        priority = 1
    ),
    printcolumn(
        name = "Hosting Namespace",
        type_ = "string",
        json_path = ".status.hostingNamespace",
        priority = 1
    ),
    printcolumn(
        name = "Disk",
        type_ = "string",
        json_path = ".status.usage.disk",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.startDate >= self.contractDate").message("startDate must not be before contractDate").field_path(".startDate"))]
pub struct EndUserSpec {
    /// Login ID for the end user's panel, immutable: 3 to 32 characters, lower-case letters, digits and '-', starting with a letter.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{2,31}$"), length(max = 32))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("loginId is immutable"))]
    pub login_id: String,
    /// The Secret (in this namespace) and key holding the login password; when absent the operator generates a password into the Secret <name>-login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<PasswordSecretRef>,
    /// Name of the contract holder (契約名), a person or a company (no control characters or bidirectional overrides).
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::schema::SINGLE_LINE_TEXT_PATTERN))]
    pub contract_name: String,
    /// The reseller's own customer number, if it uses one (letters, digits and '-').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9-]*$"),
        length(min = 1, max = 64)
    )]
    pub customer_number: Option<String>,
    /// E-mail address of the end user.
    #[schemars(regex(pattern = crate::schema::EMAIL_PATTERN), length(max = 254))]
    pub contact_email: String,
    /// The course (in this namespace) the end user is on.
    pub course_ref: CourseRef,
    /// Host names the end user serves: lower-case RFC 1123 names with at least two labels, no duplicates, at most 100 (and at most the course's limits.domains).
    #[serde(default)]
    #[schemars(length(max = 100), extend("x-kubernetes-list-type" = "set"))]
    #[schemars(inner(regex(pattern = crate::schema::HOSTNAME_PATTERN), length(max = 253)))]
    pub domains: Vec<String>,
    /// Contract date (契約日), YYYY-MM-DD.
    #[schemars(schema_with = "crate::schema::date")]
    pub contract_date: Date,
    /// Start-of-use date (利用開始日), YYYY-MM-DD, not before the contract date: the hosting is provisioned on that day (in the reseller's time zone), not before.
    #[schemars(schema_with = "crate::schema::date")]
    pub start_date: Date,
    /// Stop serving (workloads scaled to 0, ingress removed) while keeping all data.
    #[serde(default)]
    pub suspended: bool,
    /// What happens to the data when the end user is deleted: Delete (default) or Retain.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Where the monitor probes this end user's services, when not at their in-cluster address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,
    /// What the end user chose among what its course allows (its panel writes it with the field manager oem-hosting-enduser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<EndUserWeb>,
}

/// The end user's web choices, within its course.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndUserWeb {
    /// PHP version, MAJOR.MINOR: the course's phpVersion or one of its allowedPhpVersions. Absent: the course's phpVersion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\d+\.\d+$"), length(max = 8))]
    pub php_version: Option<String>,
}

/// A key of a Secret in the end user's namespace that holds the login password.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSecretRef {
    /// Name of the Secret.
    #[schemars(regex(pattern = crate::schema::DNS_SUBDOMAIN_PATTERN), length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret; default password.
    #[serde(default = "default_password_key")]
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub key: String,
}

fn default_password_key() -> String {
    "password".to_owned()
}

impl PasswordSecretRef {
    /// The Secret the operator generates for an end user without a password of their own:
    /// `<end user name>-login`, key `password`. The mutating webhook writes this reference into
    /// the spec, and the operator creates the Secret when it is missing.
    pub fn generated(end_user_name: &str) -> Self {
        Self {
            name: format!("{end_user_name}-login"),
            key: default_password_key(),
        }
    }

    /// Whether this reference names the generated Secret of `end_user_name`.
    pub fn is_generated_for(&self, end_user_name: &str) -> bool {
        *self == Self::generated(end_user_name)
    }
}

/// A course in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct CourseRef {
    /// Name of the Course.
    #[schemars(regex(pattern = crate::schema::DNS_LABEL_PATTERN), length(min = 1, max = 63))]
    pub name: String,
}

/// What happens to an end user's data when it is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// The hosting namespace and its volumes are deleted with the end user.
    #[default]
    Delete,
    /// The volumes are kept, labelled with reseller and end user, for recovery.
    Retain,
}

/// Explicit monitoring endpoints, e.g. for hosting outside the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    /// Where to probe each service, at most one endpoint per service; services not named here are probed at their in-cluster Service address.
    #[serde(default)]
    #[schemars(length(max = 13))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["service"]))]
    pub endpoints: Vec<MonitoringEndpoint>,
}

/// Where one service is probed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.service != 'ping' || !has(self.port)").message("a ping endpoint has no port").field_path(".port"))]
pub struct MonitoringEndpoint {
    /// The service probed there.
    pub service: ServiceName,
    /// Host name or IP address.
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub host: String,
    /// TCP port, 1-65535; default the service's well-known port; none for ping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// A monitored service: the host (ping) or one of the twelve protocols of the specification.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    /// ICMP echo to the host.
    Ping,
    /// HTTP.
    Http,
    /// HTTP over TLS.
    Https,
    /// FTP.
    Ftp,
    /// FTP with explicit TLS (AUTH TLS).
    Ftps,
    /// SMTP.
    Smtp,
    /// SMTP over TLS.
    Smtps,
    /// POP3.
    Pop3,
    /// POP3 over TLS.
    Pop3s,
    /// IMAP.
    Imap,
    /// IMAP over TLS.
    Imaps,
    /// PostgreSQL.
    Postgresql,
    /// MySQL protocol (MariaDB).
    Mysql,
}

impl ServiceName {
    /// Every monitored service, the host first.
    pub const ALL: [ServiceName; 13] = [
        Self::Ping,
        Self::Http,
        Self::Https,
        Self::Ftp,
        Self::Ftps,
        Self::Smtp,
        Self::Smtps,
        Self::Pop3,
        Self::Pop3s,
        Self::Imap,
        Self::Imaps,
        Self::Postgresql,
        Self::Mysql,
    ];

    /// The name as written in YAML and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Http => "http",
            Self::Https => "https",
            Self::Ftp => "ftp",
            Self::Ftps => "ftps",
            Self::Smtp => "smtp",
            Self::Smtps => "smtps",
            Self::Pop3 => "pop3",
            Self::Pop3s => "pop3s",
            Self::Imap => "imap",
            Self::Imaps => "imaps",
            Self::Postgresql => "postgresql",
            Self::Mysql => "mysql",
        }
    }

    /// The well-known TCP port, or None for ping.
    pub fn default_port(self) -> Option<u16> {
        match self {
            Self::Ping => None,
            Self::Http => Some(80),
            Self::Https => Some(443),
            Self::Ftp | Self::Ftps => Some(21),
            Self::Smtp => Some(25),
            Self::Smtps => Some(465),
            Self::Pop3 => Some(110),
            Self::Pop3s => Some(995),
            Self::Imap => Some(143),
            Self::Imaps => Some(993),
            Self::Postgresql => Some(5432),
            Self::Mysql => Some(3306),
        }
    }
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `Ready` reason while the end user waits for its workloads. Its `lastTransitionTime` is
/// when the wait began: the monitor probes an end user still waiting after its startup grace.
pub const WAITING_FOR_WORKLOADS: &str = "WorkloadsNotReady";

/// Phase of the end user: Scheduled (before its start date), Provisioning, Active, Suspended, Degraded (a service down) or Terminating.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum EndUserPhase {
    /// Before its start date: nothing is provisioned yet.
    Scheduled,
    /// Its hosting is being created or changed.
    Provisioning,
    /// Every workload is ready and every service answers.
    Active,
    /// Serving is stopped on purpose (spec.suspended); the data are kept.
    Suspended,
    /// Provisioned, but a monitored service is down.
    Degraded,
    /// Being deleted: the hosting is removed (or retained) by the finalizer.
    Terminating,
}

/// What the operator and the monitor observed of an end user.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndUserStatus {
    /// Scheduled, Provisioning, Active, Suspended, Degraded or Terminating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<EndUserPhase>,
    /// The namespace holding the end user's workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosting_namespace: Option<String>,
    /// Name of the Secret holding the login password (never the password itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
    /// How many domains spec.domains lists (kubectl's Domains column; the Domain column shows the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub domain_count: Option<i32>,
    /// Health of each monitored service, written by the monitor when a state changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 13))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["service"]))]
    pub services: Vec<ServiceHealth>,
    /// Disk, memory and network use of the hosting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// True while the account's outbound mail is locked after sending above the course's rate.
    #[serde(default)]
    pub mail_locked: bool,
    /// The DNS records each of the end user's domains needs (web and mail addresses, MX, SPF,
    /// the DKIM public key), for the end user to publish where its domains are hosted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub dns: Vec<DnsRecord>,
    /// Standard conditions; Ready is True when every workload is ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The state of a monitored service.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum HealthState {
    /// The last probe succeeded.
    Up,
    /// The last probe failed.
    Down,
    /// Not probed yet.
    Unknown,
}

/// The health of one monitored service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceHealth {
    /// The service.
    pub service: ServiceName,
    /// Up, Down or Unknown.
    pub state: HealthState,
    /// When the service entered this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// When the service was last probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe: Option<Time>,
    /// What the last probe saw, e.g. the error of a failed probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
}

/// A DNS record of one of the end user's domains.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecord {
    /// The record's owner name, without the final dot, e.g. `mail.example.jp`.
    #[schemars(length(max = 253))]
    pub name: String,
    /// A, AAAA, CNAME, MX or TXT.
    #[serde(rename = "type")]
    pub type_: DnsRecordType,
    /// The record's data as a zone file writes it: an address, a host name with its final dot
    /// (CNAME), `10 mail.example.jp.` for MX,
    /// the text of a TXT record (one string; a zone file splits it into 255-byte pieces).
    #[schemars(length(max = 1024))]
    pub value: String,
    /// What the record is for.
    pub purpose: DnsPurpose,
}

/// The DNS record types `status.dns` lists.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DnsRecordType {
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[serde(rename = "CNAME")]
    Cname,
    #[serde(rename = "MX")]
    Mx,
    #[serde(rename = "TXT")]
    Txt,
}

impl DnsRecordType {
    /// The type as zone files and `status.dns` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            DnsRecordType::A => "A",
            DnsRecordType::Aaaa => "AAAA",
            DnsRecordType::Cname => "CNAME",
            DnsRecordType::Mx => "MX",
            DnsRecordType::Txt => "TXT",
        }
    }
}

/// What a DNS record of `status.dns` is for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DnsPurpose {
    /// The domain's web site: its address.
    Web,
    /// Mail for the domain: its MX and the mail host's address.
    Mail,
    /// Which servers may send the domain's mail (SPF, RFC 7208).
    Spf,
    /// The public key that verifies the domain's signed mail (DKIM, RFC 6376).
    Dkim,
    /// The end user's FTP host's address (`ftp.<first domain>`, with a load balancer).
    Ftp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_record_types_serialise_as_zone_files_write_them() {
        let names: Vec<serde_json::Value> = [
            DnsRecordType::A,
            DnsRecordType::Aaaa,
            DnsRecordType::Cname,
            DnsRecordType::Mx,
            DnsRecordType::Txt,
        ]
        .iter()
        .map(|t| {
            let json = serde_json::to_value(t).expect("serialisable");
            assert_eq!(json, serde_json::Value::from(t.as_str()));
            json
        })
        .collect();
        assert_eq!(names, ["A", "AAAA", "CNAME", "MX", "TXT"]);
    }

    #[test]
    fn service_names_serialise_as_written_in_yaml() {
        for service in ServiceName::ALL {
            let json = serde_json::to_value(service).expect("serialisable");
            assert_eq!(json, serde_json::Value::from(service.as_str()));
        }
    }

    #[test]
    fn only_ping_has_no_well_known_port() {
        for service in ServiceName::ALL {
            assert_eq!(
                service.default_port().is_none(),
                service == ServiceName::Ping
            );
        }
    }
}
