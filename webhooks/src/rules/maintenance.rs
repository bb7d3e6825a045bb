//! Maintenance window rules: a window ends after it starts and lasts no longer than the
//! provider allows (`--max-maintenance-window`, default 24 h); a reseller's window lives in its
//! own namespace and targets end users that exist there.

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use oem_crds::maintenance::{ClusterMaintenance, Maintenance};

use crate::lookup::{Lookup, reseller_of_namespace};
use crate::verdict::Verdict;

/// The longest window when the provider sets none.
pub const DEFAULT_MAX_WINDOW: SignedDuration = SignedDuration::from_hours(24);

/// Validates a reseller's window being created or updated.
pub fn validate_maintenance(new: &Maintenance, lookup: &impl Lookup) -> Verdict {
    let mut verdict = Verdict::default();
    check_span(
        new.spec.start.0,
        new.spec.end.0,
        lookup.max_maintenance_window(),
        &mut verdict,
    );
    let namespace = new.namespace().unwrap_or_default();
    if reseller_of_namespace(&namespace).is_none() {
        verdict.deny(
            "metadata.namespace",
            format!(
                "{namespace} is not a reseller's namespace: a maintenance window lives in its reseller's namespace (reseller-<name>)"
            ),
        );
        return verdict;
    }
    let end_users = lookup.end_users();
    for (i, target) in new.spec.targets.iter().enumerate() {
        let exists = end_users.iter().any(|e| {
            e.namespace().as_deref() == Some(namespace.as_str()) && e.name_any() == target.end_user
        });
        if !exists {
            verdict.deny(
                &format!("spec.targets[{i}].endUser"),
                format!(
                    "end user {} does not exist in namespace {namespace}: a window targets end users of its own namespace",
                    target.end_user
                ),
            );
        }
    }
    verdict
}

/// Validates the provider's window being created or updated.
pub fn validate_cluster_maintenance(new: &ClusterMaintenance, lookup: &impl Lookup) -> Verdict {
    let mut verdict = Verdict::default();
    check_span(
        new.spec.start.0,
        new.spec.end.0,
        lookup.max_maintenance_window(),
        &mut verdict,
    );
    verdict
}

fn check_span(start: Timestamp, end: Timestamp, max: SignedDuration, verdict: &mut Verdict) {
    if end <= start {
        verdict.deny(
            "spec.end",
            format!("{end} is not after spec.start {start}: a window ends after it starts"),
        );
        return;
    }
    let length = end.duration_since(start);
    if length > max {
        verdict.deny(
            "spec.end",
            format!(
                "the window lasts {length:#}, longer than the {max:#} the provider allows (maximum window length)"
            ),
        );
    }
}

#[cfg(test)]
#[path = "maintenance_tests.rs"]
mod tests;
