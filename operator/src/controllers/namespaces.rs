//! What the EndUser controller keeps of every namespace: its resourceVersion and the labels that
//! say whose it is (`slim::READ_LABELS`), so a new end user's namespace is known absent, or
//! someone else's, without a read, and whether it is being deleted (the orphan sweep reads
//! that). About 200 bytes instead of a cached metadata object (408
//! bytes of struct and a label map's node before any string).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;

use crate::slim::READ_LABELS;
use crate::versions::Kept;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceEntry {
    version: Box<str>,
    labels: Box<[(Box<str>, Box<str>)]>,
    /// Its deletion has begun.
    pub deleting: bool,
}

impl NamespaceEntry {
    pub fn of(namespace: &PartialObjectMeta<Namespace>) -> Self {
        Self {
            version: namespace
                .resource_version()
                .unwrap_or_default()
                .into_boxed_str(),
            labels: namespace
                .labels()
                .iter()
                .filter(|(k, _)| READ_LABELS.contains(&k.as_str()))
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
            deleting: namespace.metadata.deletion_timestamp.is_some(),
        }
    }

    /// One kept label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| **k == *key)
            .map(|(_, v)| &**v)
    }

    /// The labels kept: those that say whose the namespace is.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl Kept<Namespace> for NamespaceEntry {
    fn version(&self) -> &str {
        &self.version
    }

    fn version_of(namespace: &Namespace) -> Option<String> {
        namespace.resource_version()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_namespace_keeps_its_version_and_the_labels_of_its_owner() {
        let ns: PartialObjectMeta<Namespace> = serde_json::from_value(json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "h-acme-alice-1", "resourceVersion": "42",
                "labels": {"hosting.oem.dev/enduser": "alice", "hosting.oem.dev/reseller": "acme",
                    "kubernetes.io/metadata.name": "h-acme-alice-1",
                    "pod-security.kubernetes.io/enforce": "restricted"},
                "annotations": {"hosting.oem.dev/deletion-policy": "Delete"}}
        }))
        .unwrap();
        let entry = NamespaceEntry::of(&ns);
        assert_eq!(entry.version(), "42");
        assert!(!entry.deleting);
        assert_eq!(
            entry.labels(),
            BTreeMap::from([
                ("hosting.oem.dev/enduser".to_owned(), "alice".to_owned()),
                ("hosting.oem.dev/reseller".to_owned(), "acme".to_owned()),
            ])
        );
    }
}
