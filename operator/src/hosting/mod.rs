//! What an end user becomes, as pure functions: from a `HostingPlan` (the end user's spec
//! resolved against its course and the operator's configuration) to the exact objects of its
//! hosting namespace. No I/O here; `controllers::enduser` applies what these return.

pub mod certificate;
pub mod config;
pub mod dkim;
pub mod dns;
mod namespace;
mod network;
pub mod public;
pub mod rbac;
mod resources;
mod workloads;

pub use namespace::{
    ANNOTATION_DELETION_POLICY, LIMITS_NAME, limit_range, namespace, resource_quota,
};
pub use network::network_policies;
pub use resources::{GroupResources, split_resources};
pub use workloads::{ServiceGroup, ingresses, services, stateful_sets};

use std::collections::BTreeMap;

use crate::naming;

/// The Secret in the hosting namespace holding the generated service passwords. The reseller's
/// role may read and rotate it (`docs/credentials.md`); a rotation restarts the workloads.
pub const CREDENTIALS_SECRET: &str = "credentials";
/// Keys of [`CREDENTIALS_SECRET`].
pub const KEY_FTP_PASSWORD: &str = "ftp-password";
/// Mail accounts, a line `address:password` each.
pub const KEY_MAIL_ACCOUNTS: &str = "mail-accounts";
pub const KEY_DB_PASSWORD: &str = "db-password";
pub const KEY_DB_ROOT_PASSWORD: &str = "db-root-password";
/// The Secret (`kubernetes.io/tls`) of the hosting namespace whose certificate the services
/// present for TLS (https, ftps, smtps, pop3s, imaps), e.g. issued by cert-manager for the end
/// user's domains. Optional: without it each service makes a self-signed one at start, which
/// clients and the monitor do not trust. Read at start: its resourceVersion is on the pod
/// template ([`ANNOTATION_TLS_VERSION`]), so a new or renewed certificate rolls the workloads.
pub const TLS_SECRET: &str = "tls";
/// Pod template annotation carrying the `tls` Secret's resourceVersion (absent: no Secret).
pub const ANNOTATION_TLS_VERSION: &str = "hosting.oem.dev/tls-version";
/// Pod template annotation carrying the credentials Secret's resourceVersion, so that a new
/// value (a rotation) rolls the workloads and every daemon starts with it.
pub const ANNOTATION_CREDENTIALS_VERSION: &str = "hosting.oem.dev/credentials-version";

/// Database engines a course can enable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbEngine {
    MariaDb,
    PostgreSql,
}

impl DbEngine {
    /// The engine as the images' `DB_ENGINE` names it.
    pub fn name(self) -> &'static str {
        match self {
            DbEngine::MariaDb => "mariadb",
            DbEngine::PostgreSql => "postgresql",
        }
    }

    pub fn port(self) -> u16 {
        match self {
            DbEngine::MariaDb => 3306,
            DbEngine::PostgreSql => 5432,
        }
    }
}

/// The web service: the course's PHP version and the image the security policy names for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPlan {
    pub php_version: String,
    pub image: String,
}

/// FTP on the web document root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FtpPlan {
    /// Explicit TLS (AUTH TLS) offered besides plain FTP.
    pub tls: bool,
}

/// The database server: engine and the image of its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabasePlan {
    pub engine: DbEngine,
    pub image: String,
}

/// Everything the builders need, already resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct HostingPlan {
    pub reseller: String,
    /// The EndUser object's name and namespace (the reseller's namespace).
    pub enduser: String,
    pub enduser_namespace: String,
    /// The hosting namespace (`naming::hosting_namespace`).
    pub namespace: String,
    pub cpu: String,
    pub memory: String,
    pub storage: String,
    /// Bandwidth limit of every pod, e.g. `100M`.
    pub bandwidth: String,
    /// The end user's login ID: its FTP account's name.
    pub login_id: String,
    pub web: Option<WebPlan>,
    pub ftp: Option<FtpPlan>,
    /// Max mails sent per hour when the mail service is enabled.
    pub mail: Option<u32>,
    pub database: Option<DatabasePlan>,
    pub domains: Vec<String>,
    pub suspended: bool,
    pub mail_locked: bool,
    /// `Retain` keeps the data volumes when the end user is deleted.
    pub retain_data: bool,
    /// The credentials Secret's resourceVersion, once known (see
    /// [`ANNOTATION_CREDENTIALS_VERSION`]).
    pub credentials_version: Option<String>,
    /// The `tls` Secret's resourceVersion, when the namespace has one (see
    /// [`ANNOTATION_TLS_VERSION`]).
    pub tls_version: Option<String>,
}

impl HostingPlan {
    /// The service groups this plan runs, in a stable order.
    pub fn groups(&self) -> Vec<ServiceGroup> {
        let mut groups = Vec::new();
        if self.web.is_some() || self.ftp.is_some() {
            groups.push(ServiceGroup::Web);
        }
        if self.mail.is_some() {
            groups.push(ServiceGroup::Mail);
        }
        if self.database.is_some() {
            groups.push(ServiceGroup::Db);
        }
        groups
    }

    /// The application database's name and its user's: the login ID with `_` for `-`, so it
    /// needs no quoting in SQL.
    pub fn database_name(&self) -> String {
        self.login_id.replace('-', "_")
    }

    /// The mail server's host name: `mail.` and the first domain, or a name inside the cluster
    /// when the end user has no domain yet.
    pub fn mail_hostname(&self) -> String {
        match self.domains.first() {
            Some(domain) => format!("mail.{domain}"),
            None => format!("mail.{}.svc", self.namespace),
        }
    }

    /// The end user the hosting namespace belongs to, as its labels say.
    pub fn owner(&self) -> naming::HostingOwner {
        naming::HostingOwner {
            reseller: self.reseller.clone(),
            enduser_namespace: self.enduser_namespace.clone(),
            enduser: self.enduser.clone(),
        }
    }

    /// Labels on every object of the hosting namespace, and on the namespace itself.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                naming::LABEL_MANAGED_BY.to_owned(),
                naming::MANAGED_BY.to_owned(),
            ),
            (naming::LABEL_RESELLER.to_owned(), self.reseller.clone()),
            (naming::LABEL_ENDUSER.to_owned(), self.enduser.clone()),
            (
                naming::LABEL_ENDUSER_NAMESPACE.to_owned(),
                self.enduser_namespace.clone(),
            ),
        ])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The "business" end user of the examples: every service group enabled.
    pub fn business_plan() -> HostingPlan {
        HostingPlan {
            reseller: "sakura-web".into(),
            enduser: "tanaka-shoten".into(),
            enduser_namespace: "reseller-sakura-web".into(),
            namespace: naming::hosting_namespace("sakura-web", "tanaka-shoten"),
            cpu: "2".into(),
            memory: "4Gi".into(),
            storage: "50Gi".into(),
            bandwidth: "100M".into(),
            login_id: "tanaka".into(),
            web: Some(WebPlan {
                php_version: "8.4".into(),
                image: "oem.local/oem-hosting/web-php8.4:test".into(),
            }),
            ftp: Some(FtpPlan { tls: true }),
            mail: Some(200),
            database: Some(DatabasePlan {
                engine: DbEngine::MariaDb,
                image: "oem.local/oem-hosting/mariadb:test".into(),
            }),
            domains: vec![
                "tanaka-shoten.example.jp".into(),
                "www.tanaka-shoten.example.jp".into(),
            ],
            suspended: false,
            mail_locked: false,
            retain_data: false,
            credentials_version: None,
            tls_version: None,
        }
    }

    #[test]
    fn groups_follow_the_enabled_services() {
        let mut plan = business_plan();
        assert_eq!(
            plan.groups(),
            vec![ServiceGroup::Web, ServiceGroup::Mail, ServiceGroup::Db]
        );
        plan.web = None;
        plan.mail = None;
        plan.database = None;
        assert_eq!(
            plan.groups(),
            vec![ServiceGroup::Web],
            "ftp alone runs the web group"
        );
        plan.ftp = None;
        assert!(plan.groups().is_empty());
    }
}
