//! Domain claims in the cluster: an admitted end user's domains are claimed as `DomainClaim`
//! objects (one per domain, named by it) before the admission is answered. The API server
//! creates a name at most once, so of two replicas admitting one domain for two end users at
//! the same time exactly one creates the claim; the other finds it held and refuses, naming
//! the field. A claim already held by the same end user (an update) is kept.
//!
//! When any domain is refused, or the API server cannot be asked, the claims this admission
//! created are deleted again and the admission is refused. A claim whose admission passed but
//! whose object was never stored (a later webhook refused it, the write failed) is released by
//! the operator after a grace period (see docs/api.md, DomainClaim).

use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};
use oem_crds::DomainClaim;

use crate::review::DomainsToClaim;

/// How many claims of one admission are created at once.
const PARALLEL: usize = 8;

/// The cluster's domain claims as the webhooks write them.
#[derive(Clone)]
pub struct ClusterClaims {
    api: Api<DomainClaim>,
    /// The whole claim of one admission is given this long (under the webhook's timeout).
    timeout: Duration,
}

/// What became of one domain.
#[derive(Debug)]
enum Claimed {
    /// Created by this admission.
    Created(String),
    /// Already this end user's.
    Held,
    /// Another end user's: refused at this index.
    Taken(usize, String),
    /// The API server could not be asked.
    Failed(usize, String, String),
}

impl ClusterClaims {
    pub fn new(client: Client, timeout: Duration) -> Self {
        Self {
            api: Api::all(client),
            timeout,
        }
    }

    /// Claims every domain of `wanted`; on refusal, the message for the API server (every
    /// refused field, `spec.domains[i]: …`) after the claims created here are released.
    pub async fn claim(&self, wanted: &DomainsToClaim) -> Result<(), String> {
        // Owned jobs: futures that borrow across `buffer_unordered` are not `Send`.
        let jobs: Vec<_> = (wanted.domains.iter().cloned().enumerate())
            .map(|(i, domain)| {
                let (this, wanted) = (self.clone(), wanted.clone());
                async move { this.claim_one(i, &domain, &wanted).await }
            })
            .collect();
        let attempt = futures::stream::iter(jobs)
            .buffer_unordered(PARALLEL)
            .collect::<Vec<_>>();
        let outcomes = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(outcomes) => outcomes,
            Err(_) => {
                // Whatever was created before the time ran out is left to the operator's
                // release of claims whose end user does not hold the domain.
                return Err(format!(
                    "spec.domains: the domains could not be claimed within {}s; try again",
                    self.timeout.as_secs_f64()
                ));
            }
        };
        let mut refusals: Vec<(usize, String)> = outcomes
            .iter()
            .filter_map(|o| match o {
                Claimed::Taken(i, domain) => Some((
                    *i,
                    format!(
                        "spec.domains[{i}]: domain {domain} is already used by another end user (domains are unique cluster-wide)"
                    ),
                )),
                Claimed::Failed(i, domain, error) => Some((
                    *i,
                    format!("spec.domains[{i}]: the claim of domain {domain} could not be recorded: {error}"),
                )),
                _ => None,
            })
            .collect();
        if refusals.is_empty() {
            return Ok(());
        }
        refusals.sort();
        for outcome in &outcomes {
            if let Claimed::Created(domain) = outcome {
                self.release(domain, wanted).await;
            }
        }
        Err(refusals
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>()
            .join("; "))
    }

    async fn claim_one(&self, index: usize, domain: &str, wanted: &DomainsToClaim) -> Claimed {
        let claim = DomainClaim::for_end_user(domain, &wanted.namespace, &wanted.name);
        let failed = |e: kube::Error| Claimed::Failed(index, domain.to_owned(), api_error(&e));
        // Two rounds: a claim found gone between the create and the get is created again once.
        for _ in 0..2 {
            match self.api.create(&PostParams::default(), &claim).await {
                Ok(_) => return Claimed::Created(domain.to_owned()),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return failed(e),
            }
            match self.api.get_opt(domain).await {
                Ok(Some(existing)) if existing.is_held_by(&wanted.namespace, &wanted.name) => {
                    return Claimed::Held;
                }
                Ok(Some(_)) => return Claimed::Taken(index, domain.to_owned()),
                Ok(None) => continue,
                Err(e) => return failed(e),
            }
        }
        Claimed::Taken(index, domain.to_owned())
    }

    /// Deletes a claim this admission created (only if it is still the same object).
    async fn release(&self, domain: &str, wanted: &DomainsToClaim) {
        let Ok(Some(existing)) = self.api.get_opt(domain).await else {
            return;
        };
        if !existing.is_held_by(&wanted.namespace, &wanted.name) {
            return;
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: existing.uid(),
                resource_version: existing.resource_version(),
            }),
            ..DeleteParams::default()
        };
        if let Err(error) = self.api.delete(domain, &params).await {
            tracing::warn!(%domain, %error, "releasing a claim of a refused admission failed; the operator releases it");
        }
    }
}

/// An API error without the server's full text (kept short for the refusal message).
fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.reason, s.code),
        other => other.to_string().chars().take(120).collect(),
    }
}
