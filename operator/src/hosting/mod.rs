//! What an end user becomes, as pure functions: from a `HostingPlan` (the end user's spec
//! resolved against its course and the operator's configuration) to the exact objects of its
//! hosting namespace. No I/O here; `controllers::enduser` applies what these return.

mod namespace;
mod network;
pub mod rbac;
mod resources;
mod workloads;

pub use namespace::{ANNOTATION_DELETION_POLICY, limit_range, namespace, resource_quota};
pub use network::network_policies;
pub use resources::{GroupResources, split_resources};
pub use workloads::{ServiceGroup, ingresses, services, stateful_sets};

use std::collections::BTreeMap;

use crate::naming;

/// The Secret in the hosting namespace holding the generated service passwords.
pub const CREDENTIALS_SECRET: &str = "credentials";

/// Database engines a course can enable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbEngine {
    MariaDb,
    PostgreSql,
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
    /// PHP version when the web service is enabled.
    pub web: Option<String>,
    pub ftp: bool,
    /// Max mails sent per hour when the mail service is enabled.
    pub mail: Option<u32>,
    pub database: Option<DbEngine>,
    pub domains: Vec<String>,
    pub suspended: bool,
    pub mail_locked: bool,
    /// `Retain` keeps the data volumes when the end user is deleted.
    pub retain_data: bool,
}

impl HostingPlan {
    /// The service groups this plan runs, in a stable order.
    pub fn groups(&self) -> Vec<ServiceGroup> {
        let mut groups = Vec::new();
        if self.web.is_some() || self.ftp {
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
            web: Some("8.3".into()),
            ftp: true,
            mail: Some(200),
            database: Some(DbEngine::MariaDb),
            domains: vec![
                "tanaka-shoten.example.jp".into(),
                "www.tanaka-shoten.example.jp".into(),
            ],
            suspended: false,
            mail_locked: false,
            retain_data: false,
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
        plan.ftp = false;
        assert!(plan.groups().is_empty());
    }
}
