//! What the EndUser controller keeps of each hosting ResourceQuota: the version of what it owns
//! (`apply::ContentVersion`: the quota controller writes the usage at each pod's start and
//! stop), whose it is, and the grant recorded on it (the pool's input, `pool.rs`). About 150
//! bytes instead of a cached quota (its spec and status maps were 3.6 KB a quota in the heap).

use k8s_openapi::api::core::v1::ResourceQuota;
use kube::ResourceExt;

use crate::apply::ContentVersion;
use crate::naming;
use crate::versions::Kept;

/// The annotation on an end user's ResourceQuota recording what was granted, e.g.
/// `cpu=1,memory=2Gi,storage=10Gi`.
pub const GRANT_ANNOTATION: &str = "hosting.oem.dev/granted";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaEntry {
    version: Box<str>,
    /// Its end user's namespace and name (labels).
    pub owner: Option<(Box<str>, Box<str>)>,
    /// The [`GRANT_ANNOTATION`], as written.
    pub grant: Option<Box<str>>,
}

impl QuotaEntry {
    pub fn of(quota: &ResourceQuota) -> Self {
        let labels = quota.labels();
        let owner = match (
            labels.get(naming::LABEL_ENDUSER_NAMESPACE),
            labels.get(naming::LABEL_ENDUSER),
        ) {
            (Some(ns), Some(name)) => Some((ns.as_str().into(), name.as_str().into())),
            _ => None,
        };
        Self {
            version: quota.content_version().unwrap_or_default().into_boxed_str(),
            owner,
            grant: quota
                .annotations()
                .get(GRANT_ANNOTATION)
                .map(|g| g.as_str().into()),
        }
    }
}

impl Kept<ResourceQuota> for QuotaEntry {
    fn version(&self) -> &str {
        &self.version
    }

    fn version_of(quota: &ResourceQuota) -> Option<String> {
        quota.content_version()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn quota(used: &str) -> ResourceQuota {
        serde_json::from_value(json!({
            "metadata": {"name": "limits", "namespace": "h-a", "resourceVersion": used,
                "labels": {"hosting.oem.dev/enduser": "alice",
                    "hosting.oem.dev/enduser-namespace": "reseller-acme"},
                "annotations": {"hosting.oem.dev/granted": "cpu=1,memory=1Gi,storage=5Gi"}},
            "spec": {"hard": {"limits.cpu": "1"}},
            "status": {"hard": {"limits.cpu": "1"}, "used": {"limits.cpu": used}}
        }))
        .unwrap()
    }

    #[test]
    fn a_quota_keeps_its_owner_grant_and_a_version_its_usage_does_not_move() {
        let entry = QuotaEntry::of(&quota("0"));
        assert_eq!(entry.owner, Some(("reseller-acme".into(), "alice".into())));
        assert_eq!(entry.grant.as_deref(), Some("cpu=1,memory=1Gi,storage=5Gi"));
        assert_eq!(
            entry,
            QuotaEntry::of(&quota("500m")),
            "usage is not content"
        );
        let mut changed = quota("0");
        changed.spec.as_mut().unwrap().hard = Some(
            [(
                "limits.cpu".to_owned(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
            )]
            .into(),
        );
        assert_ne!(QuotaEntry::of(&changed).version(), entry.version());
    }
}
