//! The operator's backstop for a reseller's quota (its pool): the webhooks refuse what they can
//! see exceeds it, but they see the cluster through caches, one replica at a time, and not at
//! all for objects written while they were not registered. Before an end user's quota and
//! workloads are applied, the operator decides from the whole reseller what it may have.
//!
//! [`share`] is pure and deterministic ([`share_of`] gathers its input from the caches), so
//! every reconcile of every end user of a reseller reaches the same decisions from the same
//! view:
//! * What an end user was *granted* is what its hosting ResourceQuota was last applied with
//!   (recorded on it in the [`super::quotas::GRANT_ANNOTATION`]). Nothing granted is ever taken back by a
//!   later over-commit: the granted amounts (or the course's, where lower) are committed first.
//! * Then, oldest first (creation time, then name), each end user that wants more than it was
//!   granted (a new one: anything at all) gets what its course says if that still fits the
//!   pool (cpu, memory and storage, and `maxEndUsers` for a new one), else it is *held*: a new
//!   end user is not provisioned; a provisioned one keeps, per resource, the lower of its grant
//!   and its course.
//! * An end user whose course is missing, or which is being deleted, keeps its grant and asks
//!   for nothing more.

use std::collections::HashMap;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use oem_crds::{EndUser, Reseller};

use super::cache::Caches;
use crate::hosting;
use oem_crds::quantity;

/// The Ready reason (for an end user never provisioned) and the condition type (for any end
/// user held) when the reseller's pool cannot take what the course asks.
pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";

/// Cpu, memory and storage as Kubernetes quantity strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
    pub storage: String,
}

type Values = [f64; 3];
const NAMES: [&str; 3] = ["cpu", "memory", "storage"];
const QUOTA_FIELDS: [&str; 3] = ["totalCpu", "totalMemory", "totalStorage"];

impl Resources {
    fn strings(&self) -> [&str; 3] {
        [&self.cpu, &self.memory, &self.storage]
    }

    fn values(&self) -> Option<Values> {
        let [c, m, s] = self.strings().map(quantity::value);
        Some([c?, m?, s?])
    }

    /// The annotation value.
    pub fn annotation(&self) -> String {
        format!(
            "cpu={},memory={},storage={}",
            self.cpu, self.memory, self.storage
        )
    }

    /// Reads an annotation value; `None` when it is not one this module wrote.
    pub fn parse_annotation(value: &str) -> Option<Self> {
        let mut found = [None, None, None];
        for part in value.split(',') {
            let (key, quantity) = part.split_once('=')?;
            let i = NAMES.iter().position(|n| *n == key)?;
            quantity::value(quantity)?;
            found[i] = Some(quantity.to_owned());
        }
        let [cpu, memory, storage] = found;
        Some(Self {
            cpu: cpu?,
            memory: memory?,
            storage: storage?,
        })
    }

    /// Per resource, the lower of the two.
    fn lower(&self, other: &Self) -> Self {
        let pick = |a: &String, b: &String| match (quantity::value(a), quantity::value(b)) {
            (Some(x), Some(y)) if y < x => b.clone(),
            _ => a.clone(),
        };
        Self {
            cpu: pick(&self.cpu, &other.cpu),
            memory: pick(&self.memory, &other.memory),
            storage: pick(&self.storage, &other.storage),
        }
    }
}

/// A reseller's pool: `spec.quota`.
#[derive(Clone, Debug)]
pub struct Pool {
    pub reseller: String,
    pub max_end_users: usize,
    pub total: Resources,
}

/// One end user of the reseller as the operator sees it.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub created: Option<Timestamp>,
    /// What its ResourceQuota was last applied with (`None`: never provisioned by this rule).
    pub granted: Option<Resources>,
    /// What its course asks for (`None`: the course is missing or unreadable).
    pub wanted: Option<Resources>,
}

/// What one end user may have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Share {
    /// Everything its course asks for.
    Full,
    /// Held: `keep` is what it keeps (`None`: it is not provisioned), `why` says why.
    Held {
        keep: Option<Resources>,
        why: String,
    },
}

/// Decides the share of end user `me` among `members` (all the reseller's end users).
pub fn share(pool: &Pool, members: &[Member], me: &str) -> Share {
    let Some(total) = pool.total.values() else {
        // A quota the API server accepted but no quantity parser reads: nothing to hold to.
        return Share::Full;
    };
    let mut order: Vec<&Member> = members.iter().collect();
    order.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));

    // What is kept in any case: each grant, lowered to the course where the course is lower.
    let base = |m: &Member| -> Option<Resources> {
        let granted = m.granted.as_ref()?;
        Some(match &m.wanted {
            Some(wanted) => granted.lower(wanted),
            None => granted.clone(),
        })
    };
    let mut committed: Values = [0.0; 3];
    let mut users = 0usize;
    for m in &order {
        if let Some(values) = base(m).and_then(|b| b.values()) {
            add(&mut committed, &values, 1.0);
            users += 1;
        }
    }
    for m in order {
        let Some(wanted) = m.wanted.as_ref() else {
            continue;
        };
        let Some(wanted_values) = wanted.values() else {
            continue;
        };
        let kept = base(m);
        let kept_values = kept.as_ref().and_then(Resources::values);
        let raises = kept_values.is_none_or(|k| (0..3).any(|i| wanted_values[i] > k[i]));
        if !raises {
            if m.name == me {
                return Share::Full;
            }
            continue;
        }
        let mut after = committed;
        if let Some(k) = &kept_values {
            add(&mut after, k, -1.0);
        }
        add(&mut after, &wanted_values, 1.0);
        let new_user = kept_values.is_none();
        let over: Vec<usize> = (0..3)
            .filter(|&i| after[i] > total[i] * (1.0 + 1e-9))
            .collect();
        let too_many = new_user && users + 1 > pool.max_end_users;
        if over.is_empty() && !too_many {
            committed = after;
            users += usize::from(new_user);
            if m.name == me {
                return Share::Full;
            }
            continue;
        }
        if m.name == me {
            let before: Values = match &kept_values {
                Some(k) => {
                    let mut c = committed;
                    add(&mut c, k, -1.0);
                    c
                }
                None => committed,
            };
            let mut reasons: Vec<String> = over
                .iter()
                .map(|&i| {
                    format!(
                        "{} {} would bring the reseller's committed {} from {} to {}, over quota.{} {}",
                        NAMES[i],
                        wanted.strings()[i],
                        NAMES[i],
                        show(before[i] + kept_values.map_or(0.0, |k| k[i]), i),
                        show(before[i] + wanted_values[i], i),
                        QUOTA_FIELDS[i],
                        pool.total.strings()[i],
                    )
                })
                .collect();
            if too_many {
                reasons.push(format!(
                    "the reseller already has {users} end users provisioned or admitted before this one, its quota.maxEndUsers is {}",
                    pool.max_end_users
                ));
            }
            let held = match &kept {
                Some(k) => format!(
                    "keeps cpu {}, memory {}, storage {}",
                    k.cpu, k.memory, k.storage
                ),
                None => "is not provisioned".to_owned(),
            };
            return Share::Held {
                keep: kept,
                why: format!(
                    "reseller {}'s pool is exhausted: {}; this end user {held} until the pool has room (earlier end users come first)",
                    pool.reseller,
                    reasons.join("; ")
                ),
            };
        }
    }
    // Not among the members (not cached yet): judged as the newest.
    Share::Full
}

fn add(to: &mut Values, values: &Values, sign: f64) {
    for i in 0..3 {
        to[i] += sign * values[i];
    }
}

/// A number for messages: cores for cpu, binary units for bytes.
fn show(v: f64, resource: usize) -> String {
    const GI: f64 = 1024.0 * 1024.0 * 1024.0;
    const MI: f64 = 1024.0 * 1024.0;
    let trim = |v: f64| {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    if resource == 0 {
        trim(v)
    } else if v >= GI {
        format!("{}Gi", trim(v / GI))
    } else {
        format!("{}Mi", trim(v / MI))
    }
}

/// This end user's share of its reseller's pool, from the end users in the controller's store
/// (plus this one), their courses and the grants recorded on their ResourceQuotas.
pub fn share_of(
    enduser: &EndUser,
    reseller: &Reseller,
    caches: &Caches,
    end_users: &Store<EndUser>,
) -> Share {
    let ns = enduser.namespace().unwrap_or_default();
    let me = enduser.name_any();
    let mut granted: HashMap<String, Resources> = HashMap::new();
    caches.quotas.each(|_, name, quota| {
        if name != hosting::LIMITS_NAME {
            return;
        }
        if let (Some((owner_ns, owner)), Some(grant)) = (&quota.owner, &quota.grant)
            && **owner_ns == *ns
            && let Some(grant) = Resources::parse_annotation(grant)
        {
            granted.insert(owner.to_string(), grant);
        }
    });
    let member = |eu: &EndUser| {
        let name = eu.name_any();
        // One being deleted keeps what it has until its hosting is gone, and asks for no more.
        let wanted = if eu.metadata.deletion_timestamp.is_some() {
            None
        } else {
            caches
                .course(&ns, &eu.spec.course_ref.name)
                .map(|c| Resources {
                    cpu: c.spec.resources.cpu.0.clone(),
                    memory: c.spec.resources.memory.0.clone(),
                    storage: c.spec.resources.storage.0.clone(),
                })
        };
        Member {
            granted: granted.get(&name).cloned(),
            created: eu.metadata.creation_timestamp.as_ref().map(|t| t.0),
            name,
            wanted,
        }
    };
    let mut members: Vec<Member> = end_users
        .state()
        .iter()
        .filter(|eu| eu.namespace().as_deref() == Some(ns.as_str()) && eu.name_any() != me)
        .map(|eu| member(eu))
        .collect();
    members.push(member(enduser));
    let quota = &reseller.spec.quota;
    let pool = Pool {
        reseller: reseller.name_any(),
        max_end_users: usize::try_from(quota.max_end_users).unwrap_or(0),
        total: Resources {
            cpu: quota.total_cpu.0.clone(),
            memory: quota.total_memory.0.clone(),
            storage: quota.total_storage.0.clone(),
        },
    };
    share(&pool, &members, &me)
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
