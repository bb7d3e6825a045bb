//! Standard status conditions shared by every kind (`Ready` and others), and the pure helpers
//! that keep a condition's transition time stable while its status does not change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The condition type every kind carries: the object's summary health.
pub const READY: &str = "Ready";

/// Whether a condition holds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The controller cannot tell (yet).
    #[default]
    Unknown,
}

/// One aspect of an object's observed state, in the shape of Kubernetes' `metav1.Condition`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of the condition in CamelCase, e.g. `Ready`; unique within the list.
    #[serde(rename = "type")]
    #[schemars(
        length(min = 1, max = 316),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_.-]*$")
    )]
    pub type_: String,
    /// Status of the condition: True, False or Unknown.
    pub status: ConditionStatus,
    /// Machine-readable CamelCase reason for the last transition, e.g. `ProbeFailed`.
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    )]
    pub reason: String,
    /// Human-readable explanation of the last transition; never contains secrets.
    #[serde(default)]
    #[schemars(length(max = 32768))]
    pub message: String,
    /// When the status last changed (not when it was last written).
    pub last_transition_time: Time,
    /// The metadata.generation the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// A condition observed at `now` for the object's `generation`.
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
        generation: Option<i64>,
        now: jiff::Timestamp,
    ) -> Self {
        Self {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message: message.into(),
            last_transition_time: Time(now),
            observed_generation: generation,
        }
    }

    /// A `Ready` condition.
    pub fn ready(
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
        generation: Option<i64>,
        now: jiff::Timestamp,
    ) -> Self {
        Self::new(READY, status, reason, message, generation, now)
    }
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the `Ready` condition is present and True.
pub fn is_ready(conditions: &[Condition]) -> bool {
    find(conditions, READY).is_some_and(|c| c.status == ConditionStatus::True)
}

/// Returns `previous` with `next` merged in: a condition of a new type is appended; one of an
/// existing type replaces it, keeping the old `lastTransitionTime` when the status is unchanged,
/// so that re-deriving the same state does not look like a transition.
pub fn merge(previous: &[Condition], next: Condition) -> Vec<Condition> {
    let mut merged = previous.to_vec();
    match merged.iter_mut().find(|c| c.type_ == next.type_) {
        Some(existing) => {
            let keep_time = existing.status == next.status;
            let old_time = existing.last_transition_time.clone();
            *existing = next;
            if keep_time {
                existing.last_transition_time = old_time;
            }
        }
        None => merged.push(next),
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(seconds).expect("valid timestamp")
    }

    #[test]
    fn a_new_condition_type_is_appended() {
        let merged = merge(
            &[],
            Condition::ready(ConditionStatus::True, "Up", "", Some(1), at(10)),
        );
        assert_eq!(merged.len(), 1);
        assert!(is_ready(&merged));
    }

    #[test]
    fn an_unchanged_status_keeps_its_transition_time() {
        let first = merge(
            &[],
            Condition::ready(ConditionStatus::True, "Up", "a", Some(1), at(10)),
        );
        let second = merge(
            &first,
            Condition::ready(ConditionStatus::True, "Up", "b", Some(2), at(20)),
        );
        let ready = find(&second, READY).expect("ready present");
        assert_eq!(ready.last_transition_time, Time(at(10)));
        assert_eq!(ready.message, "b");
        assert_eq!(ready.observed_generation, Some(2));
    }

    #[test]
    fn a_changed_status_moves_its_transition_time() {
        let first = merge(
            &[],
            Condition::ready(ConditionStatus::True, "Up", "", Some(1), at(10)),
        );
        let second = merge(
            &first,
            Condition::ready(ConditionStatus::False, "Down", "", Some(1), at(20)),
        );
        let ready = find(&second, READY).expect("ready present");
        assert_eq!(ready.last_transition_time, Time(at(20)));
        assert!(!is_ready(&second));
    }

    #[test]
    fn other_condition_types_are_left_alone() {
        let first = merge(
            &[],
            Condition::new(
                "Scheduled",
                ConditionStatus::True,
                "Waiting",
                "",
                None,
                at(1),
            ),
        );
        let second = merge(
            &first,
            Condition::ready(ConditionStatus::False, "Waiting", "", None, at(2)),
        );
        assert_eq!(second.len(), 2);
        assert_eq!(second[0].type_, "Scheduled");
    }
}
