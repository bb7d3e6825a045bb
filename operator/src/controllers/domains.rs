//! Domain claims (`DomainClaim`, one cluster-scoped object per domain): the operator serves a
//! domain only to the end user its claim names. Each reconcile of an end user claims its
//! domains that have no claim yet (an end user written while the webhooks were away), leaves
//! out of its Ingress, mail and certificate the domains another end user holds (the EndUser
//! says which, in its `DomainConflict` condition and a Warning event), and releases the claims
//! of domains it no longer lists. Deleting the end user releases all of its claims.
//!
//! A claim created by an admission whose object was never stored names an end user that does
//! not exist (or does not list the domain); the sweep releases such claims once they are older
//! than [`CLAIM_GRACE`], so a domain is never lost for ever. The grace covers the time between
//! the webhook's claim and the API server storing the object.

use std::collections::{BTreeSet, HashMap};

use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use oem_crds::domainclaim::selector_of;
use oem_crds::{DomainClaim, EndUser};

use crate::error::{Error, Result};

/// A claim younger than this is never released for not being used: its admission may still
/// be on its way to storage.
pub const CLAIM_GRACE: std::time::Duration = std::time::Duration::from_secs(120);
/// The condition on an EndUser some of whose domains another end user holds.
pub const DOMAIN_CONFLICT: &str = "DomainConflict";

/// The domains of one end user, as claimed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Held by this end user: served.
    pub served: Vec<String>,
    /// Held by another end user: not served.
    pub refused: Vec<String>,
}

impl Claimed {
    /// The `DomainConflict` message, when any domain is refused.
    pub fn conflict(&self) -> Option<String> {
        (!self.refused.is_empty()).then(|| {
            format!(
                "not served, claimed by another end user: {} (a domain is served by the end user its DomainClaim names)",
                self.refused.join(", ")
            )
        })
    }
}

/// Normalised as the webhooks write them (lower case, no trailing dot), each once, in order.
pub fn normalised(domains: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    domains
        .iter()
        .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|d| seen.insert(d.clone()))
        .collect()
}

fn age_of(claim: &DomainClaim, now: jiff::Timestamp) -> Option<std::time::Duration> {
    let created = claim.metadata.creation_timestamp.as_ref()?.0;
    std::time::Duration::try_from(now.duration_since(created)).ok()
}

/// Whether a claim is past its grace (a claim without a creation time is treated as young).
pub fn past_grace(claim: &DomainClaim, now: jiff::Timestamp) -> bool {
    age_of(claim, now).is_some_and(|age| age >= CLAIM_GRACE)
}

/// Claims the domains of `enduser`, releases its claims of domains it no longer lists (past
/// their grace), and says which domains it may serve. Reads the claims from `claims` (the
/// controller's watch of them): an end user whose claims are all in place sends no request.
pub async fn ensure(
    client: &Client,
    claims: &Store<DomainClaim>,
    enduser: &EndUser,
    now: jiff::Timestamp,
) -> Result<Claimed> {
    let ns = enduser.namespace().unwrap_or_default();
    let name = enduser.name_any();
    let api: Api<DomainClaim> = Api::all(client.clone());
    let wanted = normalised(&enduser.spec.domains);
    let mut claimed = Claimed::default();
    for domain in &wanted {
        let held = match claims.get(&ObjectRef::new(domain)) {
            Some(found) => found.is_held_by(&ns, &name),
            // Not seen yet (or just released): created, or read when another got it first.
            None => claim(&api, domain, &ns, &name).await?,
        };
        if held {
            claimed.served.push(domain.clone());
        } else {
            claimed.refused.push(domain.clone());
        }
    }
    let mine: HashMap<String, DomainClaim> = claims
        .state()
        .iter()
        .filter(|c| c.is_held_by(&ns, &name))
        .map(|c| (c.name_any(), c.as_ref().clone()))
        .collect();
    for (domain, claim) in &mine {
        if !wanted.contains(domain) && past_grace(claim, now) {
            release(&api, claim).await?;
        }
    }
    Ok(claimed)
}

/// Creates the claim of `domain` for `ns/name`; whether the claim is theirs afterwards.
async fn claim(api: &Api<DomainClaim>, domain: &str, ns: &str, name: &str) -> Result<bool> {
    let wanted = DomainClaim::for_end_user(domain, ns, name);
    // Only for a domain the cache has no claim of: a domain another end user holds is refused
    // from the cache on every resync, without a create the API server would refuse (a steady
    // state writes nothing, not even refused writes).
    // Two rounds: a claim released between the create and the get is created again once.
    for _ in 0..2 {
        match api.create(&PostParams::default(), &wanted).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            // A domain that is not a valid object name is not served (the schema and the
            // webhooks refuse such names; this is an object written around both).
            Err(kube::Error::Api(s)) if s.code == 422 => return Ok(false),
            Err(e) => return Err(Error::kube("create", "DomainClaim", domain)(e)),
        }
        match api
            .get_opt(domain)
            .await
            .map_err(Error::kube("get", "DomainClaim", domain))?
        {
            Some(existing) => return Ok(existing.is_held_by(ns, name)),
            None => continue,
        }
    }
    Ok(false)
}

/// Deletes `claim` if it is still the same object (a claim taken anew by someone else since
/// it was read is left alone).
async fn release(api: &Api<DomainClaim>, claim: &DomainClaim) -> Result<()> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: claim.uid(),
            resource_version: claim.resource_version(),
        }),
        ..DeleteParams::default()
    };
    match api.delete(&claim.name_any(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(Error::kube("delete", "DomainClaim", claim.name_any())(e)),
    }
}

/// Releases every claim of the end user `ns/name` (it is being deleted).
pub async fn release_all(client: &Client, ns: &str, name: &str) -> Result<usize> {
    let api: Api<DomainClaim> = Api::all(client.clone());
    let mine = api
        .list(&ListParams::default().labels(&selector_of(ns, name)))
        .await
        .map_err(Error::kube(
            "list",
            "DomainClaim",
            format!("enduser {ns}/{name}"),
        ))?;
    let mut released = 0;
    for claim in mine.items.iter().filter(|c| c.is_held_by(ns, name)) {
        release(&api, claim).await?;
        released += 1;
    }
    Ok(released)
}

/// Which claims the sweep releases: past their grace, naming an end user that does not exist
/// or does not list the domain. `domains_of` gives an end user's normalised domains by
/// (namespace, name), `None` when it does not exist.
pub fn unused<C: AsRef<DomainClaim>>(
    claims: &[C],
    domains_of: impl Fn(&str, &str) -> Option<Vec<String>>,
    now: jiff::Timestamp,
) -> Vec<&DomainClaim> {
    claims
        .iter()
        .map(AsRef::as_ref)
        .filter(|c| c.metadata.deletion_timestamp.is_none() && past_grace(c, now))
        .filter(|c| {
            let holder = &c.spec.end_user;
            domains_of(&holder.namespace, &holder.name)
                .is_none_or(|domains| !domains.contains(&c.name_any()))
        })
        .collect()
}

/// One sweep of the claims no end user uses; returns how many it released. Reads the claims
/// and the end users from stores (the EndUser controller's watch of the claims, the view's end
/// users), so a sweep sends no request until a claim is to go; then its holder is read by name
/// first, as a store may lag.
pub async fn sweep(
    client: &Client,
    claims: &Store<DomainClaim>,
    end_users: &Store<EndUser>,
    now: jiff::Timestamp,
) -> Result<usize> {
    let claims = claims.state();
    let stored = |namespace: &str, name: &str| {
        end_users
            .get(&ObjectRef::new(name).within(namespace))
            .map(|e| normalised(&e.spec.domains))
    };
    let api: Api<DomainClaim> = Api::all(client.clone());
    let mut released = 0;
    for claim in unused(&claims, stored, now) {
        let holder = &claim.spec.end_user;
        let read = Api::<EndUser>::namespaced(client.clone(), &holder.namespace)
            .get_opt(&holder.name)
            .await
            .map_err(Error::kube("get", "EndUser", holder.name.clone()))?;
        if read.is_some_and(|e| normalised(&e.spec.domains).contains(&claim.name_any())) {
            continue;
        }
        tracing::info!(domain = %claim.name_any(), enduser = %format!("{}/{}", holder.namespace, holder.name), "releasing a domain claim no end user uses");
        release(&api, claim).await?;
        released += 1;
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap()
    }

    fn claim(domain: &str, ns: &str, name: &str, created: i64) -> DomainClaim {
        let mut c = DomainClaim::for_end_user(domain, ns, name);
        c.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            at(created),
        ));
        c
    }

    #[test]
    fn the_sweep_releases_only_unused_claims_past_their_grace() {
        let grace = CLAIM_GRACE.as_secs() as i64;
        let now = 10_000;
        let claims = [
            // Used by alice: kept however old.
            claim("a.example.jp", "reseller-x", "alice", 0),
            // alice does not list it: released when old, kept when young.
            claim("old.example.jp", "reseller-x", "alice", now - grace),
            claim("young.example.jp", "reseller-x", "alice", now - grace + 1),
            // Its end user never got stored.
            claim("ghost.example.jp", "reseller-x", "ghost", 0),
        ]
        .map(std::sync::Arc::new);
        let domains_of = |ns: &str, name: &str| {
            (ns == "reseller-x" && name == "alice").then(|| vec!["a.example.jp".to_owned()])
        };
        let released: Vec<String> = unused(&claims, domains_of, at(now))
            .into_iter()
            .map(|c| c.name_any())
            .collect();
        assert_eq!(released, ["old.example.jp", "ghost.example.jp"]);
    }

    #[test]
    fn domains_are_normalised_once_each() {
        let domains = ["Shop.Example.JP.", "shop.example.jp", "b.example.jp"].map(String::from);
        assert_eq!(normalised(&domains), ["shop.example.jp", "b.example.jp"]);
        let claimed = Claimed {
            served: vec!["b.example.jp".into()],
            refused: vec!["shop.example.jp".into()],
        };
        assert!(claimed.conflict().unwrap().contains("shop.example.jp"));
        assert_eq!(Claimed::default().conflict(), None);
    }
}
