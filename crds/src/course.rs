//! The `Course` kind (namespaced, owned by the reseller): a hosting plan with its resources,
//! bandwidth, limits and the services it enables.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conditions::Condition;

/// A course: a plan the reseller sells. Each end user is on one course, which sets the
/// resources, bandwidth, limits and services of its hosting.
// printcolumn repeats its keys by design, which clippy takes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.oem.dev",
    version = "v1alpha1",
    kind = "Course",
    namespaced,
    status = "CourseStatus",
    shortname = "crs",
    category = "hosting",
    doc = "A course: a hosting plan of a reseller (resources, bandwidth, limits, services).",
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName",
        priority = 1
    ),
    printcolumn(name = "Services", type_ = "string", json_path = ".status.services"),
    printcolumn(name = "CPU", type_ = "string", json_path = ".spec.resources.cpu"),
    printcolumn(
        name = "Memory",
        type_ = "string",
        json_path = ".spec.resources.memory"
    ),
    printcolumn(
        name = "Storage",
        type_ = "string",
        json_path = ".spec.resources.storage"
    ),
    printcolumn(
        name = "Bandwidth",
        type_ = "string",
        json_path = ".spec.resources.bandwidth",
        priority = 1
    ),
    printcolumn(name = "End Users", type_ = "integer", json_path = ".status.endUsers"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.services.mail) || self.limits.mailAccounts >= 1").message("a course with mail needs limits.mailAccounts of at least 1").field_path(".limits.mailAccounts"))]
#[x_kube(validation = Rule::new("!has(self.services.database) || self.limits.databases >= 1").message("a course with a database needs limits.databases of at least 1").field_path(".limits.databases"))]
#[x_kube(validation = Rule::new("!has(self.services.ftp) || self.limits.ftpAccounts >= 1").message("a course with ftp needs limits.ftpAccounts of at least 1").field_path(".limits.ftpAccounts"))]
pub struct CourseSpec {
    /// Name of the plan as the reseller's customers see it, e.g. ビジネスプラン (no control characters or bidirectional overrides).
    #[schemars(length(min = 1, max = 128), regex(pattern = crate::schema::SINGLE_LINE_TEXT_PATTERN))]
    pub display_name: String,
    /// List price, for information only (billing is the reseller's business).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
    /// CPU, memory, storage and bandwidth of each end user's hosting on this course.
    pub resources: CourseResources,
    /// How many domains, mail accounts, databases and FTP accounts an end user may have.
    #[serde(default)]
    pub limits: CourseLimits,
    /// The services of the course; a service that is absent is disabled.
    pub services: CourseServices,
}

/// A price in minor-unit-free integer amount and ISO 4217 currency, e.g. 1500 JPY.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    /// Amount per month in the currency's main unit, e.g. 1500.
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub amount: i64,
    /// ISO 4217 currency code, three capital letters, e.g. JPY.
    #[schemars(regex(pattern = r"^[A-Z]{3}$"), length(equal = 3))]
    pub currency: String,
}

/// Resources of one end user's hosting, as Kubernetes quantities.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CourseResources {
    /// CPU limit of the hosting's workloads together, e.g. `1` or `500m`.
    #[schemars(schema_with = "crate::schema::quantity")]
    pub cpu: Quantity,
    /// Memory limit of the hosting's workloads together, e.g. `1Gi`.
    #[schemars(schema_with = "crate::schema::quantity")]
    pub memory: Quantity,
    /// Disk space of the hosting (web documents, mailboxes, databases), e.g. `50Gi`.
    #[schemars(schema_with = "crate::schema::quantity")]
    pub storage: Quantity,
    /// Network bandwidth limit per direction, in bits per second; default `100M`, the shared line.
    #[serde(default = "default_bandwidth")]
    #[schemars(schema_with = "crate::schema::quantity")]
    pub bandwidth: Quantity,
}

fn default_bandwidth() -> Quantity {
    Quantity("100M".to_owned())
}

/// Counts an end user on this course may not exceed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CourseLimits {
    /// Most domains an end user may have (default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 100))]
    pub domains: i32,
    /// Most mail accounts (default 10).
    #[serde(default = "ten")]
    #[schemars(range(min = 0, max = 10000))]
    pub mail_accounts: i32,
    /// Most databases (default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 100))]
    pub databases: i32,
    /// Most FTP accounts (default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 100))]
    pub ftp_accounts: i32,
}

impl Default for CourseLimits {
    fn default() -> Self {
        Self {
            domains: one(),
            mail_accounts: ten(),
            databases: one(),
            ftp_accounts: one(),
        }
    }
}

fn one() -> i32 {
    1
}

fn ten() -> i32 {
    10
}

/// The services a course enables; each present entry enables one service group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.web) || has(self.mail) || has(self.ftp) || has(self.database)").message("a course must enable at least one service: web, mail, ftp or database"))]
#[x_kube(validation = Rule::new("!has(self.ftp) || has(self.web)").message("ftp serves the web document root, so it needs web").field_path(".ftp"))]
pub struct CourseServices {
    /// Web hosting (http and https) with PHP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebService>,
    /// Mail (smtp/smtps, pop3/pop3s, imap/imaps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<MailService>,
    /// FTP access to the web document root (ftp, and ftps when tls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ftp: Option<FtpService>,
    /// One database server, MariaDB or PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseService>,
}

impl CourseServices {
    /// The enabled service groups in a fixed order: web, mail, ftp, database.
    pub fn enabled(&self) -> Vec<&'static str> {
        [
            (self.web.is_some(), "web"),
            (self.mail.is_some(), "mail"),
            (self.ftp.is_some(), "ftp"),
            (self.database.is_some(), "database"),
        ]
        .into_iter()
        .filter_map(|(enabled, name)| enabled.then_some(name))
        .collect()
    }

    /// The enabled service groups comma-separated, e.g. `web,mail,ftp,database`: what the
    /// operator writes to `status.services` for `kubectl get courses`.
    pub fn summary(&self) -> String {
        self.enabled().join(",")
    }
}

/// Web hosting settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebService {
    /// PHP version, MAJOR.MINOR, e.g. "8.4"; the provider's security policy must allow it and name the image that runs it. The end users' default.
    #[schemars(regex(pattern = r"^\d+\.\d+$"), length(max = 8))]
    pub php_version: String,
    /// Other PHP versions an end user on this course may choose instead (EndUser spec.web.phpVersion, e.g. from its panel); each must be allowed by the security policy like phpVersion. Empty: the course's version only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 8),
        inner(regex(pattern = r"^\d+\.\d+$"), length(max = 8))
    )]
    pub allowed_php_versions: Vec<String>,
}

impl WebService {
    /// Whether an end user on the course may run `version`: the course's own or one it allows.
    pub fn allows(&self, version: &str) -> bool {
        self.php_version == version || self.allowed_php_versions.iter().any(|v| v == version)
    }

    /// Every version an end user may choose, the course's own first.
    pub fn choices(&self) -> Vec<&str> {
        let mut all = vec![self.php_version.as_str()];
        for version in &self.allowed_php_versions {
            if !all.contains(&version.as_str()) {
                all.push(version);
            }
        }
        all
    }
}

/// Mail settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailService {
    /// Mails an account may send per hour; above it the account's outbound mail is locked (mass-mail protection).
    #[schemars(range(min = 1, max = 100000))]
    pub max_sends_per_hour: i32,
}

/// FTP settings; an empty object `{}` enables FTP with the defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FtpService {
    /// Offer explicit TLS (ftps, AUTH TLS) besides plain ftp; default true.
    #[serde(default = "yes")]
    pub tls: bool,
}

impl Default for FtpService {
    fn default() -> Self {
        Self { tls: true }
    }
}

fn yes() -> bool {
    true
}

/// The database engine of a course.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseEngine {
    /// MariaDB (MySQL protocol).
    Mariadb,
    /// PostgreSQL.
    Postgresql,
}

/// Database settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseService {
    /// mariadb or postgresql; immutable, since end users' data live in it.
    #[x_kube(validation = Rule::new("self == oldSelf").message("database engine is immutable"))]
    pub engine: DatabaseEngine,
    /// Engine version, e.g. "10.11" or "15"; must be listed with an image in the security policy; default: the newest listed one with an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\d+(\.\d+){0,2}$"), length(max = 16))]
    pub version: Option<String>,
}

/// What the operator observed of a course.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CourseStatus {
    /// The enabled services, comma-separated, e.g. web,mail,ftp,database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<String>,
    /// How many end users are on this course.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_users: Option<i32>,
    /// Standard conditions; Ready is True when the course is valid and allowed by the policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_user_may_choose_the_courses_php_or_one_it_allows() {
        let web = WebService {
            php_version: "8.4".into(),
            allowed_php_versions: vec!["8.2".into(), "8.4".into()],
        };
        assert!(web.allows("8.4") && web.allows("8.2") && !web.allows("8.3"));
        assert_eq!(web.choices(), ["8.4", "8.2"]);
    }

    #[test]
    fn the_summary_lists_enabled_services_in_order() {
        let services = CourseServices {
            web: Some(WebService {
                php_version: "8.4".into(),
                allowed_php_versions: Vec::new(),
            }),
            ftp: Some(FtpService::default()),
            database: Some(DatabaseService {
                engine: DatabaseEngine::Mariadb,
                version: None,
            }),
            ..CourseServices::default()
        };
        assert_eq!(services.summary(), "web,ftp,database");
    }

    #[test]
    fn an_empty_ftp_object_enables_ftp_with_tls() {
        let ftp: FtpService = serde_json::from_str("{}").expect("valid ftp");
        assert!(ftp.tls);
    }
}
