//! Announcing maintenance windows in advance (pure; SPEC §3 "update with prior notice"): when
//! a window is announced (once, `announceLeadTime` before its start, or at once when created
//! inside the lead time; never once started), which resellers are told (a reseller's window:
//! that reseller; the provider's: every reseller with an end user it covers) and what about
//! (the end users and services, per reseller), and the records queued per contact and channel.
//! Sending them is `announce.rs`.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use oem_crds::enduser::ServiceName;
use oem_crds::incident::DeliveryState;
use oem_crds::maintenance::AnnouncementRecord;

use super::flow::Recipient;
use super::maintenance::{Cover, Window};
use super::notify;
use crate::naming;

/// What a window's status says was announced: nothing, or the times told (`None`: announced
/// before the times were recorded, taken as unchanged).
pub type Told = Option<Option<(Timestamp, Timestamp)>>;

/// Whether the window is to be announced now. Never once started. Not yet announced: once the
/// lead time before its start is reached (a window created inside the lead time goes at once).
/// Announced with other times (moved or lengthened): at once, again.
pub fn due(window: &Window, told: Told, lead: SignedDuration, now: Timestamp) -> bool {
    if now >= window.start {
        return false;
    }
    match told {
        // Status times keep whole seconds; a spec may carry fractions.
        Some(Some((start, end))) => {
            start.as_second() != window.start.as_second()
                || end.as_second() != window.end.as_second()
        }
        Some(None) => false,
        None => window
            .start
            .checked_sub(lead)
            .map_or(true, |from| now >= from),
    }
}

/// One end user of a reseller as the audience decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub reseller: String,
    /// The EndUser's name in the reseller's namespace.
    pub end_user: String,
    /// How the reseller knows it: the login ID, else the name.
    pub label: String,
    pub hosting_namespace: String,
}

/// What one reseller is told is affected.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Affected {
    /// Every end user of the reseller.
    EveryEndUser { services: Vec<ServiceName> },
    /// One end user (its label).
    EndUser {
        label: String,
        services: Vec<ServiceName>,
    },
}

/// Per reseller, what the window affects. `on_node` holds the hosting namespaces with a pod
/// on each node a node target names. A reseller with no end user covered is not told.
pub fn audience(
    covers: &[Cover],
    tenants: &[Tenant],
    on_node: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeMap<String, BTreeSet<Affected>> {
    let mut out: BTreeMap<String, BTreeSet<Affected>> = BTreeMap::new();
    for cover in covers {
        match cover {
            Cover::EndUser {
                namespace,
                end_user,
                services,
            } => {
                let Some(reseller) = naming::reseller_of_namespace(namespace) else {
                    continue;
                };
                let label = tenants
                    .iter()
                    .find(|t| t.reseller == reseller && t.end_user == *end_user)
                    .map_or_else(|| end_user.clone(), |t| t.label.clone());
                out.entry(reseller.to_owned())
                    .or_default()
                    .insert(Affected::EndUser {
                        label,
                        services: services.clone(),
                    });
            }
            Cover::AllEndUsers { services } => {
                for tenant in tenants {
                    out.entry(tenant.reseller.clone()).or_default().insert(
                        Affected::EveryEndUser {
                            services: services.clone(),
                        },
                    );
                }
            }
            Cover::Node { node, services } => {
                let Some(namespaces) = on_node.get(node) else {
                    continue;
                };
                for tenant in tenants
                    .iter()
                    .filter(|t| namespaces.contains(&t.hosting_namespace))
                {
                    out.entry(tenant.reseller.clone())
                        .or_default()
                        .insert(Affected::EndUser {
                            label: tenant.label.clone(),
                            services: services.clone(),
                        });
                }
            }
        }
    }
    out
}

/// The nodes the window's node targets name.
pub fn nodes(covers: &[Cover]) -> BTreeSet<String> {
    covers
        .iter()
        .filter_map(|c| match c {
            Cover::Node { node, .. } => Some(node.clone()),
            _ => None,
        })
        .collect()
}

/// One Pending record per recipient of each reseller told, keyed by the window's uid and the
/// start announced (a repeated announcement has keys of its own).
pub fn records(
    window_uid: &str,
    start: Timestamp,
    told: &[(String, Vec<Recipient>)],
) -> Vec<AnnouncementRecord> {
    let announced = format!("{window_uid}@{start}");
    let announced = announced.as_str();
    told.iter()
        .flat_map(|(reseller, recipients)| {
            recipients.iter().map(move |r| AnnouncementRecord {
                reseller: reseller.clone(),
                channel: r.channel,
                target: r.target.clone(),
                state: DeliveryState::Pending,
                attempts: 0,
                last_attempt_at: None,
                idempotency_key: notify::announcement_key(
                    announced, reseller, r.channel, &r.target,
                ),
                message: None,
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "announcements_tests.rs"]
mod tests;
