//! The `Reseller` kind (cluster-scoped, owned by the provider): a brand with its admin
//! subjects, incident contacts, quotas and business calendar.

use jiff::civil::Date;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conditions::Condition;
use crate::incident::DeliveryState;
use crate::usage::Usage;

/// The namespace prefix of every reseller's own namespace: `reseller-<name>`.
pub const NAMESPACE_PREFIX: &str = "reseller-";

/// The ServiceAccount, in each reseller's namespace, that the resellers' panel acts as for
/// that reseller: the operator binds it wherever it binds the reseller's admins, and lets only
/// the panel's ServiceAccount impersonate it (a RoleBinding in that namespace), so the panel
/// can do no more than the reseller could with kubectl.
pub const PANEL_SERVICE_ACCOUNT: &str = "oem-hosting-reseller-panel";

/// The user name the panel impersonates for `reseller`: its [`PANEL_SERVICE_ACCOUNT`].
pub fn panel_user(reseller: &str) -> String {
    format!("system:serviceaccount:{NAMESPACE_PREFIX}{reseller}:{PANEL_SERVICE_ACCOUNT}")
}

/// The Secret, in the provider's namespace, holding a reseller's panel logins: each key a login
/// ID, each value its password (the operator generates the `admin` login and fills any empty
/// value; `docs/panels.md`).
pub fn panel_accounts_secret(reseller: &str) -> String {
    format!("oem-hosting-panel-{reseller}")
}

/// The login the operator creates in a new panel accounts Secret.
pub const FIRST_PANEL_LOGIN: &str = "admin";

/// A reseller: a company that resells hosting under its own brand. The operator gives it the
/// namespace `reseller-<name>`, where it manages its courses and end users.
// printcolumn repeats its keys by design, which clippy takes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.oem.dev",
    version = "v1alpha1",
    kind = "Reseller",
    status = "ResellerStatus",
    shortname = "rsl",
    category = "hosting",
    doc = "A reseller: a brand that resells rental web hosting to its own end users.",
    validation = Rule::new("size(self.metadata.name) <= 54").message("metadata.name: a reseller name may have at most 54 characters, so that its namespace reseller-<name> fits in 63"),
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name: a reseller name must be a DNS label (lower-case letters, digits and '-')"),
    printcolumn(name = "Brand", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace"),
    printcolumn(name = "End Users", type_ = "integer", json_path = ".status.endUsers"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ResellerSpec {
    /// The brand under which the reseller sells hosting, shown to its end users (any script, e.g. さくらウェブ; no control characters or bidirectional overrides).
    #[schemars(length(min = 1, max = 128), regex(pattern = crate::schema::SINGLE_LINE_TEXT_PATTERN))]
    pub display_name: String,
    /// The people and robots that manage this reseller's courses and end users: they get full control of Course and EndUser and read access to Incident in the reseller's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub admins: Vec<AdminSubject>,
    /// Who is told about incidents (outage, recovery, report, deferral, mail lock); at least one contact, names unique.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub contacts: Vec<Contact>,
    /// What the reseller may use in total, over all its end users.
    pub quota: ResellerQuota,
    /// Business hours and days of the reseller's support desk; they set incident-report deadlines.
    #[serde(default)]
    pub business_calendar: BusinessCalendar,
    /// How the panels show the brand besides its name: an accent colour and a logo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branding: Option<Branding>,
}

/// The brand's look in the end users' and the reseller's panels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Branding {
    /// Colour of links, buttons and focus rings, `#RRGGBB`. The panels use it only when white text on it is readable (contrast at least 4.5:1, WCAG AA), else their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^#[0-9a-fA-F]{6}$"))]
    pub accent_color: Option<String>,
    /// The logo the panels show beside the brand name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<Logo>,
}

/// A logo image, carried in the Reseller (small, so the panels serve it from their cache).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Logo {
    /// image/png or image/jpeg (no SVG: an image that can carry script is not accepted).
    pub media_type: LogoMediaType,
    /// The image, base64 (standard alphabet, padded), at most 64 KiB decoded.
    #[schemars(
        length(min = 4, max = 87384),
        regex(pattern = r"^[A-Za-z0-9+/]+={0,2}$")
    )]
    pub data: String,
}

/// The image formats a logo may have.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum LogoMediaType {
    #[serde(rename = "image/png")]
    Png,
    #[serde(rename = "image/jpeg")]
    Jpeg,
}

impl LogoMediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }
}

/// Kind of an RBAC subject.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SubjectKind {
    /// A user known to the cluster's authenticator.
    User,
    /// A group known to the cluster's authenticator.
    Group,
    /// A Kubernetes service account (e.g. for a GitOps agent).
    ServiceAccount,
}

/// An RBAC subject that administers the reseller's objects.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.kind != 'ServiceAccount' || has(self.__namespace__)").message("a ServiceAccount admin needs a namespace"))]
#[x_kube(validation = Rule::new("self.kind == 'ServiceAccount' || !has(self.__namespace__)").message("only a ServiceAccount admin has a namespace"))]
#[x_kube(validation = Rule::new("!self.name.startsWith('system:')").message("an admin may not be a system: identity (system:authenticated would give every user the reseller's access)").field_path(".name"))]
pub struct AdminSubject {
    /// User, Group or ServiceAccount.
    pub kind: SubjectKind,
    /// Name of the user, group or service account; never a `system:` identity.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the service account; only for kind ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = crate::schema::DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,
}

/// Language of the notices sent to a contact.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Language {
    /// Japanese.
    #[default]
    #[serde(rename = "ja")]
    Ja,
    /// English.
    #[serde(rename = "en")]
    En,
}

/// A contact for incident notices, reached on every channel it lists.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.email) || has(self.webhook) || has(self.faxGatewayEmail)").message("a contact needs at least one channel: email, webhook or faxGatewayEmail"))]
pub struct Contact {
    /// Name of the person or desk, unique among the contacts (no control characters or bidirectional overrides).
    #[schemars(length(min = 1, max = 128), regex(pattern = crate::schema::SINGLE_LINE_TEXT_PATTERN))]
    pub name: String,
    /// E-mail address for notices and incident reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254), regex(pattern = crate::schema::EMAIL_PATTERN))]
    pub email: Option<String>,
    /// A URL that receives signed JSON notices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
    /// E-mail address of a fax gateway that faxes the notice on (incident reports by FAX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254), regex(pattern = crate::schema::EMAIL_PATTERN))]
    pub fax_gateway_email: Option<String>,
    /// Language of the notices: ja (default) or en.
    #[serde(default)]
    pub language: Language,
}

/// A webhook channel: the operator POSTs JSON notices, signed with HMAC-SHA256 when a key is given.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// The https (or, for tests, http) URL to POST to.
    #[schemars(
        length(max = 2048),
        regex(pattern = r"^https?://[^\s/?#]+([/?#]\S*)?$")
    )]
    pub url: String,
    /// The Secret (in the reseller's namespace) holding the HMAC key that signs each notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

/// A key of a Secret in the same namespace as the object that refers to it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = crate::schema::DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "default_hmac_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_hmac_key() -> String {
    "hmacKey".to_owned()
}

/// Totals the reseller may use over all its end users.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResellerQuota {
    /// The most end users the reseller may have.
    #[schemars(range(min = 0, max = 100000))]
    pub max_end_users: i32,
    /// Total CPU of all end users' courses, e.g. `16`.
    #[schemars(schema_with = "crate::schema::quantity")]
    pub total_cpu: Quantity,
    /// Total memory of all end users' courses, e.g. `64Gi`.
    #[schemars(schema_with = "crate::schema::quantity")]
    pub total_memory: Quantity,
    /// Total storage of all end users' courses, e.g. `2Ti`.
    #[schemars(schema_with = "crate::schema::quantity")]
    pub total_storage: Quantity,
}

/// When the reseller's support desk works; incident reports are due by the end of the next business day.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BusinessCalendar {
    /// IANA time zone of the business hours, e.g. Asia/Tokyo (default).
    #[serde(default = "default_time_zone")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
    )]
    pub time_zone: String,
    /// Business hours on business days, in order and not overlapping; default 10:00-12:00 and 13:00-17:00.
    #[serde(default = "default_business_hours")]
    #[schemars(length(min = 1, max = 8))]
    #[x_kube(validation = Rule::new("self.all(a, self.all(b, a == b || a.end <= b.start || b.end <= a.start))").message("business hours must not overlap"))]
    pub business_hours: Vec<BusinessHours>,
    /// Company holidays (YYYY-MM-DD) that are not business days, besides weekends and Japanese public holidays.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::date_set")]
    pub company_holidays: Vec<Date>,
}

impl Default for BusinessCalendar {
    fn default() -> Self {
        Self {
            time_zone: default_time_zone(),
            business_hours: default_business_hours(),
            company_holidays: Vec::new(),
        }
    }
}

fn default_time_zone() -> String {
    "Asia/Tokyo".to_owned()
}

fn default_business_hours() -> Vec<BusinessHours> {
    vec![
        BusinessHours {
            start: "10:00".to_owned(),
            end: "12:00".to_owned(),
        },
        BusinessHours {
            start: "13:00".to_owned(),
            end: "17:00".to_owned(),
        },
    ]
}

/// One span of business hours, `HH:MM` to `HH:MM` local time, start before end.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.start < self.end").message("business hours must start before they end"))]
pub struct BusinessHours {
    /// Opening time, HH:MM (24-hour clock).
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"), length(max = 5))]
    pub start: String,
    /// Closing time, HH:MM (24-hour clock), or 24:00 for midnight.
    #[schemars(
        regex(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"),
        length(max = 5)
    )]
    pub end: String,
}

/// What the operator observed of a reseller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResellerStatus {
    /// The reseller's namespace, reseller-<name>, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How many end users the reseller has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_users: Option<i32>,
    /// Usage summed over all the reseller's end users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Standard conditions; Ready is True when the namespace and its RBAC are in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The monthly availability reports of the last twelve months, newest last: each month's figures and its delivery to every e-mail contact (written by the reporter, field manager oem-hosting-reporter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 12))]
    pub reports: Vec<MonthlyReport>,
}

/// One month's availability report of a reseller, made once on the first business day of the
/// next month.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonthlyReport {
    /// The calendar month in the reseller's time zone, as YYYY-MM.
    #[schemars(regex(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$"))]
    pub month: String,
    /// When the report was made.
    pub generated_at: Time,
    /// Availability of all the reseller's end users' services together (total downtime over total time measured, maintenance left out), in percent rounded down to three decimals, e.g. "99.987".
    #[schemars(length(max = 16))]
    pub availability_percent: String,
    /// Downtime outside maintenance windows, summed over every end user's services, in seconds.
    #[schemars(range(min = 0))]
    pub downtime_seconds: i64,
    /// Incidents of the month (outages and mass mail).
    #[schemars(range(min = 0))]
    pub incidents: i32,
    /// One delivery per e-mail address of the reseller's contacts: recorded before sending, so each address gets the month's report once across restarts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub deliveries: Vec<ReportDelivery>,
}

/// The report's e-mail to one address.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportDelivery {
    /// The e-mail address.
    #[schemars(length(min = 1, max = 320))]
    pub to: String,
    /// Pending, Sent or Failed.
    pub state: DeliveryState,
    /// Delivery attempts made so far.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub attempts: i32,
    /// When the last attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Time>,
    /// Unique key of this mail (its Message-ID).
    #[schemars(length(min = 1, max = 256))]
    pub idempotency_key: String,
    /// The last delivery error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
}

impl Reseller {
    /// The reseller's own namespace, where its courses, end users and incidents live.
    pub fn namespace_name(name: &str) -> String {
        format!("{NAMESPACE_PREFIX}{name}")
    }

    /// Whether the operator has set the reseller up: it records the namespace in the status
    /// once the namespace exists with the operator's Secret access in it, which its end users
    /// wait for.
    pub fn is_set_up(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.namespace.is_some())
    }
}
