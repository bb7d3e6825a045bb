//! AdmissionReview in, AdmissionReview out: decodes the request, skips what is never judged
//! (DELETE, CONNECT, other kinds, an update that leaves the spec as it was; an object being
//! deleted is not defaulted), runs the rules for the kind and builds the response with
//! refusals, warnings and (for `/mutate`) a JSON patch. Synchronous and pure but for the
//! admissions in flight (`claims`), so the fuzz target and proptests drive it directly.

use std::sync::Arc;

use jiff::civil::Date;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use oem_crds::{ClusterMaintenance, Course, EndUser, Maintenance, Reseller};
use serde::de::DeserializeOwned;

use crate::claims::{ClaimGuard, Claims};
use crate::defaulting::default_end_user;
use crate::lookup::{Lookup, ReservedDomain, SecretKeys, reseller_of_namespace};
use crate::policy::SecurityPolicy;
use crate::rules::names::normalise_domain;
use crate::rules::{
    validate_cluster_maintenance, validate_course, validate_end_user, validate_maintenance,
    validate_reseller,
};
use crate::verdict::Verdict;
use oem_crds::enduser::MAX_DOMAINS;

/// Which webhook is answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Validate,
    Mutate,
}

/// Decodes a request body; a body that is not an AdmissionReview with a request is an error.
pub fn decode(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| format!("not an AdmissionReview: {e}"))?;
    review
        .try_into()
        .map_err(|_| "the AdmissionReview has no request".to_owned())
}

/// The password Secret (namespace, name) an end-user validation will need, so the server
/// can fetch it (bounded) before running the synchronous rules. Only in the namespace of a
/// reseller that exists: whoever sends a review, the webhooks never tell whether a Secret
/// exists anywhere else (kube-system, a hosting namespace).
pub fn password_secret(
    req: &AdmissionRequest<DynamicObject>,
    lookup: &impl Lookup,
) -> Option<(String, String)> {
    if !judged(req) || req.kind.kind != "EndUser" {
        return None;
    }
    let namespace = req.namespace.clone()?;
    lookup.reseller(reseller_of_namespace(&namespace)?)?;
    let eu: EndUser = typed(req.object.as_ref()?, req).ok()?;
    let reference = eu.spec.password_secret_ref?;
    Some((namespace, reference.name))
}

/// The course an EndUser under review names, `(namespace, name)`: read when the cache does
/// not show it.
pub fn course_named(req: &AdmissionRequest<DynamicObject>) -> Option<(String, String)> {
    if !judged(req) || req.kind.kind != "EndUser" {
        return None;
    }
    let namespace = req.namespace.clone()?;
    let eu: EndUser = typed(req.object.as_ref()?, req).ok()?;
    Some((namespace, eu.spec.course_ref.name))
}

/// The domains an admitted end user holds from now on, to be claimed in the cluster
/// (`DomainClaim`s) before the admission is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainsToClaim {
    pub namespace: String,
    pub name: String,
    /// Normalised, at most [`MAX_DOMAINS`].
    pub domains: Vec<String>,
}

impl DomainsToClaim {
    /// `namespace/name`, as the in-process reservations know the end user.
    pub fn owner(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What an allowed, stored (not dry-run) end-user create or spec change must claim; `None`
/// when nothing is to be claimed (refused, dry run, another kind, no domains, the spec
/// unchanged, or more domains than an end user may have).
pub fn domains_to_claim(
    req: &AdmissionRequest<DynamicObject>,
    response: &AdmissionResponse,
) -> Option<DomainsToClaim> {
    if !response.allowed || req.dry_run || !judged(req) || req.kind.kind != "EndUser" {
        return None;
    }
    let object = req.object.as_ref()?;
    if passes_unjudged(object, req.old_object.as_ref()) {
        return None;
    }
    let eu: EndUser = typed(object, req).ok()?;
    if eu.spec.domains.is_empty() || eu.spec.domains.len() > MAX_DOMAINS {
        return None;
    }
    Some(DomainsToClaim {
        namespace: req.namespace.clone()?,
        name: eu.name_any(),
        domains: eu
            .spec
            .domains
            .iter()
            .map(|d| normalise_domain(d))
            .collect(),
    })
}

/// The whole exchange for one body: decode, judge, respond.
pub fn respond(
    body: &[u8],
    endpoint: Endpoint,
    lookup: &impl Lookup,
    claims: &Claims,
) -> AdmissionReview<DynamicObject> {
    match decode(body) {
        Ok(req) => match endpoint {
            Endpoint::Validate => validate(&req, lookup, claims),
            Endpoint::Mutate => mutate(&req),
        }
        .into_review(),
        Err(e) => AdmissionResponse::invalid(e).into_review(),
    }
}

/// DELETE and CONNECT are never judged (deleting must always work), nor other groups.
fn judged(req: &AdmissionRequest<DynamicObject>) -> bool {
    matches!(req.operation, Operation::Create | Operation::Update)
        && req.kind.group == oem_crds::GROUP
}

fn typed<K: DeserializeOwned>(
    obj: &DynamicObject,
    req: &AdmissionRequest<DynamicObject>,
) -> Result<K, String> {
    let mut value = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    if let Some(ns) = &req.namespace
        && let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut())
    {
        meta.entry("namespace")
            .or_insert_with(|| serde_json::Value::String(ns.clone()));
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// An update that leaves the spec as it was (a finalizer removed, a label or annotation
/// changed) is let through: the rules judge the spec, which was judged when it was written,
/// and refusing it would keep a deleted object Terminating for ever once what it refers to
/// (its course, its password Secret) is gone. A spec change is judged even on an object being
/// deleted: a Terminating object held by a reseller's own finalizer must not carry, say,
/// another tenant's domains past the rules (the mutating webhook leaves such objects alone,
/// so their spec stays as stored).
fn passes_unjudged(object: &DynamicObject, old: Option<&DynamicObject>) -> bool {
    old.is_some_and(|old| old.data.get("spec") == object.data.get("spec"))
}

/// The validating webhook.
pub fn validate(
    req: &AdmissionRequest<DynamicObject>,
    lookup: &impl Lookup,
    claims: &Claims,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(req);
    if !judged(req) {
        return response;
    }
    let Some(object) = &req.object else {
        return response.deny("the request carries no object");
    };
    if passes_unjudged(object, req.old_object.as_ref()) {
        return response;
    }
    let kind = req.kind.kind.as_str();
    let verdict = match kind {
        "EndUser" => (|| {
            let new: EndUser = typed(object, req)?;
            let old: Option<EndUser> = req.old_object.as_ref().and_then(|o| typed(o, req).ok());
            let owner = format!("{}/{}", req.namespace.clone().unwrap_or_default(), req.name);
            // One lock for every end-user admission (and course change) of this process:
            // the checks of a burst of creates run one after the other, each seeing the
            // end users admitted before it even when the caches do not show them yet.
            let mut guard = claims.lock();
            guard.settle(&lookup.end_users());
            let view = Reserving::new(lookup, &guard);
            let verdict = validate_end_user(&new, old.as_ref(), &view);
            if verdict.allowed() && !req.dry_run {
                guard.reserve(&owner, &new.spec.domains);
                guard.admit(&owner, new);
            }
            Ok::<_, String>(verdict)
        })(),
        "Course" => typed::<Course>(object, req).map(|new| {
            let old: Option<Course> = req.old_object.as_ref().and_then(|o| typed(o, req).ok());
            let mut guard = claims.lock();
            guard.settle(&lookup.end_users());
            validate_course(&new, old.as_ref(), &Reserving::new(lookup, &guard))
        }),
        "Reseller" => typed::<Reseller>(object, req).map(|new| validate_reseller(&new)),
        "Maintenance" => {
            typed::<Maintenance>(object, req).map(|new| validate_maintenance(&new, lookup))
        }
        "ClusterMaintenance" => typed::<ClusterMaintenance>(object, req)
            .map(|new| validate_cluster_maintenance(&new, lookup)),
        _ => return response,
    };
    match verdict {
        Ok(verdict) => with_verdict(response, verdict),
        Err(e) => response.deny(format!("the {kind} could not be read: {e}")),
    }
}

fn with_verdict(mut response: AdmissionResponse, verdict: Verdict) -> AdmissionResponse {
    if !verdict.warnings.is_empty() {
        response.warnings = Some(verdict.warnings.clone());
    }
    if verdict.allowed() {
        response
    } else {
        response.deny(verdict.message())
    }
}

/// The mutating (defaulting) webhook. An object that does not decode is left to schema
/// validation, which runs after mutation and reports it better.
pub fn mutate(req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let response = AdmissionResponse::from(req);
    if !judged(req) || req.kind.kind != "EndUser" {
        return response;
    }
    // Defaults added to an object being deleted would change its spec, and so have it judged
    // (and refused when its course is gone) when only its finalizer is being removed.
    if req
        .object
        .as_ref()
        .is_some_and(|o| o.metadata.deletion_timestamp.is_some())
    {
        return response;
    }
    let Some(Ok(eu)) = req.object.as_ref().map(|o| typed::<EndUser>(o, req)) else {
        return response;
    };
    let ops = default_end_user(&eu);
    if ops.is_empty() {
        return response;
    }
    match serde_json::from_value::<json_patch::Patch>(serde_json::Value::Array(ops)) {
        Ok(patch) => match response.clone().with_patch(patch) {
            Ok(patched) => patched,
            Err(_) => response,
        },
        Err(_) => response,
    }
}

/// A lookup that also sees the domains reserved and the end users admitted by admissions in
/// flight (an admitted end user replaces its cached copy, which may be older).
struct Reserving<'a, L> {
    inner: &'a L,
    reserved: Vec<ReservedDomain>,
    admitted: Vec<(String, Arc<EndUser>)>,
}

impl<'a, L> Reserving<'a, L> {
    fn new(inner: &'a L, guard: &ClaimGuard<'_>) -> Self {
        Self {
            inner,
            reserved: guard.reserved(),
            admitted: guard.admitted(),
        }
    }
}

impl<L: Lookup> Lookup for Reserving<'_, L> {
    fn course(&self, namespace: &str, name: &str) -> Option<Arc<Course>> {
        self.inner.course(namespace, name)
    }
    fn end_users(&self) -> Vec<Arc<EndUser>> {
        let admitted = |e: &EndUser| {
            let key = format!("{}/{}", e.namespace().unwrap_or_default(), e.name_any());
            self.admitted.iter().any(|(k, _)| *k == key)
        };
        let mut all: Vec<_> = self
            .inner
            .end_users()
            .into_iter()
            .filter(|e| !admitted(e))
            .collect();
        all.extend(self.admitted.iter().map(|(_, e)| e.clone()));
        all
    }
    fn reseller(&self, name: &str) -> Option<Arc<Reseller>> {
        self.inner.reseller(name)
    }
    fn secret_keys(&self, namespace: &str, name: &str) -> SecretKeys {
        self.inner.secret_keys(namespace, name)
    }
    fn policy(&self) -> &SecurityPolicy {
        self.inner.policy()
    }
    fn today(&self) -> Date {
        self.inner.today()
    }
    fn max_maintenance_window(&self) -> jiff::SignedDuration {
        self.inner.max_maintenance_window()
    }
    fn reserved_domains(&self) -> Vec<ReservedDomain> {
        let mut all = self.inner.reserved_domains();
        all.extend(self.reserved.iter().cloned());
        all
    }
}

#[cfg(test)]
#[path = "review_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "review_claim_tests.rs"]
mod claim_tests;
