//! An end user's phase: one pure function of what its reconcile found ([`phase`]), and what
//! its workloads say ([`observe`], read from the StatefulSet cache).

use oem_crds::conditions::{self, Condition, ConditionStatus, READY};
use oem_crds::enduser::{DnsRecord, EndUserPhase, EndUserStatus, WAITING_FOR_WORKLOADS};

use super::cache::Caches;
use crate::hosting::HostingPlan;

/// What a reconcile found, as far as the phase goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// It failed before it could look (a missing course, an API error): the reason is in
    /// `Ready`, and the phase stays what it was.
    Failed,
    /// The start date is ahead.
    Scheduled,
    /// The reseller's pool holds a new end user back: the phase stays what it was.
    Held,
    /// Suspended: nothing is served.
    Suspended,
    /// Deleted: its hosting is being removed (the finalizer holds it until that is done).
    Deleting,
    /// The workloads: whether every one the plan needs exists, and whether all are ready
    /// (running the current spec).
    Workloads { all_there: bool, all_ready: bool },
}

/// The phase. Terminating once deleted; Active when every workload is ready, Degraded instead when the monitor finds a
/// service down; an end user already serving (Active or Degraded) whose workloads all exist is
/// Degraded, not Provisioning, while one is not ready (a restart, a crash, a rollout), so it
/// stays monitored and an outage stays one outage; Provisioning otherwise. A failed or held
/// reconcile keeps the phase it had (Provisioning for a new end user).
pub fn phase(found: Found, previous: Option<EndUserPhase>, service_down: bool) -> EndUserPhase {
    let serving = matches!(
        previous,
        Some(EndUserPhase::Active | EndUserPhase::Degraded)
    );
    let phase = match found {
        Found::Failed | Found::Held => previous.unwrap_or(EndUserPhase::Provisioning),
        Found::Scheduled => EndUserPhase::Scheduled,
        Found::Suspended => EndUserPhase::Suspended,
        Found::Deleting => EndUserPhase::Terminating,
        Found::Workloads {
            all_ready: true,
            all_there: true,
        } => EndUserPhase::Active,
        Found::Workloads {
            all_there: true, ..
        } if serving => EndUserPhase::Degraded,
        Found::Workloads { .. } => EndUserPhase::Provisioning,
    };
    if phase == EndUserPhase::Active && service_down {
        EndUserPhase::Degraded
    } else {
        phase
    }
}

/// How long a new end user's start may go unsaid. While its workloads start (phase
/// Provisioning, waiting for them), its first status is written when they are ready, or once
/// they have been waited for this long since they were made. With 500 end users applied at
/// once, each step ("waiting for: db, web", "waiting for: web") was a write an end user
/// beside the objects themselves; a start that ends within this time costs one status write.
pub const START_UNSAID: jiff::SignedDuration = jiff::SignedDuration::from_secs(10);

/// How long the steps of a wait already said go unsaid: "waiting for: web" after "waiting
/// for: db, web" is written once the wait has lasted this long (counted from when the status
/// first said it), or not at all when the wait ends first (with 500 started at once, most
/// waits took 30–40 s and their sets turned ready within a second of each other). A workload
/// that does not start is still named within a minute.
pub const STEP_UNSAID: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// How long to hold back the write of `next` over `previous` (`None`: write it now): only a
/// start still waiting for its workloads within [`START_UNSAID`] (its first status) or
/// [`STEP_UNSAID`] (a later step of the same wait), and nothing else new to say
/// (a held pool or a domain conflict is said at once). `made`: when the end user's workloads
/// were made (the latest of them; `now` for one not yet seen). The end user is looked at again
/// then.
pub fn held_back(
    previous: &EndUserStatus,
    next: &EndUserStatus,
    made: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
) -> Option<std::time::Duration> {
    let waiting = |status: &EndUserStatus| {
        conditions::find(&status.conditions, READY)
            .filter(|c| c.reason == WAITING_FOR_WORKLOADS)
            .map(|c| c.last_transition_time.0)
    };
    if next.phase != Some(EndUserPhase::Provisioning) || waiting(next).is_none() {
        return None;
    }
    let others = |status: &EndUserStatus| -> Vec<Condition> {
        let mut others: Vec<Condition> = status
            .conditions
            .iter()
            .filter(|c| c.type_ != READY)
            .cloned()
            .collect();
        others.sort_by(|a, b| a.type_.cmp(&b.type_));
        others
    };
    if others(previous) != others(next) {
        return None;
    }
    let (since, unsaid) = match previous.phase {
        None => (made?, START_UNSAID),
        Some(EndUserPhase::Provisioning) => (waiting(previous)?, STEP_UNSAID),
        Some(_) => return None,
    };
    let left = unsaid.checked_sub(now.duration_since(since))?;
    if left.is_positive() {
        std::time::Duration::try_from(left).ok()
    } else {
        None
    }
}

/// What was observed: the phase's input and the `Ready` condition's parts.
pub struct Observed {
    pub found: Found,
    pub ready: ConditionStatus,
    pub reason: &'static str,
    pub message: String,
    /// Why the reseller's pool holds this end user (`Some(None)`: it does not; `None`: not
    /// known, as after an error, so the condition stays as it was).
    pub held: Option<Option<String>>,
    /// Which of its domains another end user holds (`Some(None)`: none; `None`: not known).
    pub conflict: Option<Option<String>>,
    /// The DNS records its domains need (`None`: not known, so `status.dns` stays as it was).
    pub dns: Option<Vec<DnsRecord>>,
}

/// What the workloads of `plan` say, read from the StatefulSet cache (a set turning ready
/// wakes the end user again).
pub fn observe(caches: &Caches, plan: &HostingPlan) -> Observed {
    if plan.suspended {
        return Observed {
            found: Found::Suspended,
            ready: ConditionStatus::False,
            reason: "Suspended",
            message: "suspended: nothing is served, all data is kept".into(),
            held: None,
            conflict: None,
            dns: None,
        };
    }
    let sets = caches.stateful_sets.in_namespace(&plan.namespace);
    let wanted: Vec<&str> = plan.groups().iter().map(|g| g.name()).collect();
    let mut not_ready: Vec<String> = sets
        .iter()
        .filter(|(_, set)| !set.ready)
        .map(|(name, _)| name.clone())
        .collect();
    let all_there = wanted
        .iter()
        .all(|name| sets.iter().any(|(set, _)| set == name));
    for name in &wanted {
        if !sets.iter().any(|(set, _)| set == name) {
            not_ready.push((*name).to_owned());
        }
    }
    not_ready.sort();
    if not_ready.is_empty() && all_there {
        Observed {
            found: Found::Workloads {
                all_there,
                all_ready: true,
            },
            ready: ConditionStatus::True,
            reason: "WorkloadsReady",
            message: format!("{} workloads ready", sets.len()),
            held: None,
            conflict: None,
            dns: None,
        }
    } else {
        Observed {
            found: Found::Workloads {
                all_there,
                all_ready: false,
            },
            ready: ConditionStatus::False,
            reason: WAITING_FOR_WORKLOADS,
            message: format!("waiting for: {}", not_ready.join(", ")),
            held: None,
            conflict: None,
            dns: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use serde_json::json;

    use super::*;
    use crate::controllers::cache::tests::detached;
    use crate::hosting::tests::business_plan;

    fn set(plan: &HostingPlan, name: &str, ready: i32, observed_generation: i64) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": plan.namespace, "generation": 2},
            "spec": {"replicas": 1, "selector": {}, "template": {}, "serviceName": name},
            "status": {"replicas": 1, "readyReplicas": ready, "observedGeneration": observed_generation}
        }))
        .unwrap()
    }

    /// The phase the workloads in `sets` give an end user that was `previous`.
    fn phase_of(
        sets: Vec<StatefulSet>,
        plan: &HostingPlan,
        previous: Option<EndUserPhase>,
    ) -> EndUserPhase {
        phase(observe(&detached(sets), plan).found, previous, false)
    }

    #[test]
    fn active_when_every_group_has_a_ready_current_set() {
        let plan = business_plan();
        let sets = ["web", "mail", "db"].map(|g| set(&plan, g, 1, 2)).to_vec();
        let observed = observe(&detached(sets.clone()), &plan);
        assert_eq!(observed.ready, ConditionStatus::True);
        assert_eq!(phase_of(sets, &plan, None), EndUserPhase::Active);
    }

    #[test]
    fn a_missing_unready_or_stale_set_keeps_it_provisioning() {
        let plan = business_plan();
        // mail missing, db not ready, web ready but its new spec not yet rolled out.
        let sets = vec![set(&plan, "web", 1, 1), set(&plan, "db", 0, 2)];
        let observed = observe(&detached(sets.clone()), &plan);
        assert_eq!(observed.message, "waiting for: db, mail, web");
        assert_eq!(phase_of(sets, &plan, None), EndUserPhase::Provisioning);
    }

    #[test]
    fn a_serving_end_user_with_a_set_restarting_is_degraded_not_provisioning() {
        let plan = business_plan();
        let sets = vec![
            set(&plan, "web", 1, 2),
            set(&plan, "mail", 1, 2),
            set(&plan, "db", 0, 2),
        ];
        for previous in [EndUserPhase::Active, EndUserPhase::Degraded] {
            let observed = observe(&detached(sets.clone()), &plan);
            assert_eq!(observed.message, "waiting for: db");
            assert_eq!(
                phase_of(sets.clone(), &plan, Some(previous)),
                EndUserPhase::Degraded
            );
        }
        // A set missing altogether (a service added to the course) is provisioning.
        assert_eq!(
            phase_of(sets[..2].to_vec(), &plan, Some(EndUserPhase::Active)),
            EndUserPhase::Provisioning
        );
        // Coming back from suspension is provisioning again.
        assert_eq!(
            phase_of(sets, &plan, Some(EndUserPhase::Suspended)),
            EndUserPhase::Provisioning
        );
    }

    #[test]
    fn sets_of_other_namespaces_do_not_count() {
        let plan = business_plan();
        let mut other = business_plan();
        other.namespace = "h-someone-else".into();
        let sets = ["web", "mail", "db"].map(|g| set(&other, g, 1, 2)).to_vec();
        assert_eq!(phase_of(sets, &plan, None), EndUserPhase::Provisioning);
    }

    #[test]
    fn suspended_whatever_the_workloads_say() {
        let mut plan = business_plan();
        plan.suspended = true;
        let observed = observe(&detached(Vec::new()), &plan);
        assert_eq!(observed.found, Found::Suspended);
        assert_eq!(
            phase(observed.found, Some(EndUserPhase::Active), true),
            EndUserPhase::Suspended
        );
    }

    #[test]
    fn a_failed_or_held_reconcile_keeps_the_phase_a_service_down_degrades_an_active_one() {
        use EndUserPhase::*;
        for found in [Found::Failed, Found::Held] {
            assert_eq!(phase(found, None, false), Provisioning);
            assert_eq!(phase(found, Some(Suspended), false), Suspended);
            assert_eq!(phase(found, Some(Active), false), Active);
            assert_eq!(phase(found, Some(Active), true), Degraded);
        }
        assert_eq!(phase(Found::Scheduled, Some(Active), true), Scheduled);
        assert_eq!(phase(Found::Deleting, Some(Active), false), Terminating);
        let ready = Found::Workloads {
            all_there: true,
            all_ready: true,
        };
        assert_eq!(phase(ready, None, false), Active);
        assert_eq!(phase(ready, Some(Provisioning), true), Degraded);
        // Nothing serves yet: a service down does not make it more than provisioning.
        let missing = Found::Workloads {
            all_there: false,
            all_ready: false,
        };
        assert_eq!(phase(missing, Some(Degraded), true), Provisioning);
    }

    fn status(phase: Option<EndUserPhase>, reason: &str, since: i64) -> EndUserStatus {
        let at = jiff::Timestamp::from_second(since).unwrap();
        EndUserStatus {
            phase,
            conditions: phase
                .map(|_| {
                    let ready = ConditionStatus::False;
                    vec![Condition::ready(
                        ready,
                        reason,
                        "waiting for: db",
                        Some(1),
                        at,
                    )]
                })
                .unwrap_or_default(),
            ..EndUserStatus::default()
        }
    }

    #[test]
    fn a_start_is_said_when_its_workloads_are_ready_or_once_it_has_waited_a_while() {
        let t = |s: i64| jiff::Timestamp::from_second(s).unwrap();
        // Its workloads were made at 1000.
        let created = Some(t(1000));
        let new = EndUserStatus::default();
        let waiting = status(
            Some(EndUserPhase::Provisioning),
            WAITING_FOR_WORKLOADS,
            1002,
        );
        // A new end user waiting for its workloads: held back until ten seconds after they
        // were made, then said.
        assert_eq!(
            held_back(&new, &waiting, created, t(1002)),
            Some(std::time::Duration::from_secs(8))
        );
        assert_eq!(held_back(&new, &waiting, created, t(1010)), None);
        // Its workloads ready: said at once.
        let active = status(Some(EndUserPhase::Active), "WorkloadsReady", 1003);
        assert_eq!(held_back(&new, &active, created, t(1003)), None);
        // Said waiting (since 1002): the next step of the same wait is held back until the
        // wait has lasted a minute.
        let mut later = waiting.clone();
        later.conditions[0].message = "waiting for: web".into();
        assert_eq!(
            held_back(&waiting, &later, created, t(1032)),
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!(held_back(&waiting, &later, created, t(1062)), None);
        // Not a start: an error, a serving end user, or something else new to say.
        let failed = status(Some(EndUserPhase::Provisioning), "CourseNotFound", 1002);
        assert_eq!(held_back(&new, &failed, created, t(1002)), None);
        let serving = status(Some(EndUserPhase::Degraded), "Probed", 1002);
        assert_eq!(held_back(&serving, &waiting, created, t(1002)), None);
        let mut held = waiting.clone();
        held.conditions.push(Condition::new(
            "QuotaExceeded",
            ConditionStatus::True,
            "ResellerPoolExhausted",
            "no room",
            Some(1),
            t(1002),
        ));
        assert_eq!(held_back(&new, &held, created, t(1002)), None);
    }
}
