//! What the EndUser controller keeps of each of its StatefulSets: the version of what it owns
//! (`apply::ContentVersion`), whether the set is ready at its current generation (the phase),
//! and its volume claim templates as the server holds them (immutable: a set is applied with
//! them), as JSON text. A few hundred bytes instead of a cached `StatefulSet` (2,536 bytes
//! before any string or template).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

use crate::apply::ContentVersion;
use crate::error::{Error, Result};
use crate::versions::Kept;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetEntry {
    version: Box<str>,
    /// Ready replicas at least those asked for, at the generation the set's controller saw.
    pub ready: bool,
    /// `spec.volumeClaimTemplates` as JSON (`null` when it has none).
    templates: Box<str>,
    /// When the set was made: when its end user's wait for it began.
    pub created: Option<jiff::Timestamp>,
}

impl SetEntry {
    pub fn of(set: &StatefulSet) -> Self {
        let want = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = set.status.as_ref();
        let ready_replicas = status.and_then(|s| s.ready_replicas).unwrap_or(0);
        let current = status.and_then(|s| s.observed_generation) == set.metadata.generation;
        let templates = set.spec.as_ref().map(|s| &s.volume_claim_templates);
        Self {
            version: set.content_version().unwrap_or_default().into_boxed_str(),
            ready: ready_replicas >= want && current,
            templates: serde_json::to_string(&templates.cloned().flatten())
                .unwrap_or_default()
                .into_boxed_str(),
            created: set.metadata.creation_timestamp.as_ref().map(|t| t.0),
        }
    }

    /// The live volume claim templates.
    pub fn templates(&self) -> Result<Option<Vec<PersistentVolumeClaim>>> {
        serde_json::from_str(&self.templates).map_err(|source| Error::Serialize {
            what: "cached volume claim templates",
            source,
        })
    }
}

impl Kept<StatefulSet> for SetEntry {
    fn version(&self) -> &str {
        &self.version
    }

    fn version_of(set: &StatefulSet) -> Option<String> {
        set.content_version()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set(ready: i32, observed: i64) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "h-a", "generation": 3},
            "spec": {"replicas": 1, "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "php", "image": "php"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"resources": {"requests": {"storage": "1Gi"}}}}]},
            "status": {"replicas": 1, "readyReplicas": ready, "observedGeneration": observed}
        }))
        .unwrap()
    }

    #[test]
    fn a_set_is_ready_at_its_generation_only() {
        assert!(SetEntry::of(&set(1, 3)).ready);
        assert!(!SetEntry::of(&set(0, 3)).ready, "no ready replica");
        assert!(
            !SetEntry::of(&set(1, 2)).ready,
            "an older generation's readiness"
        );
    }

    #[test]
    fn the_entry_keeps_the_content_version_and_the_templates() {
        let s = set(1, 3);
        let entry = SetEntry::of(&s);
        assert_eq!(Some(entry.version().to_owned()), s.content_version());
        let templates = entry.templates().unwrap().unwrap();
        assert_eq!(templates[0].metadata.name.as_deref(), Some("data"));
        let mut bare = s.clone();
        bare.spec.as_mut().unwrap().volume_claim_templates = None;
        assert_eq!(SetEntry::of(&bare).templates().unwrap(), None);
    }
}
