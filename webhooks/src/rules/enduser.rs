//! EndUser rules: the course exists in the same namespace; the reseller's quotas hold; the
//! domain count is within the course; domains are unique cluster-wide; login IDs are unique
//! within the reseller; the referenced password Secret has its key.

use std::collections::HashMap;

use kube::ResourceExt;
use oem_crds::{Course, EndUser};

use crate::lookup::{Lookup, SecretKeys, reseller_of_namespace};
use crate::rules::names::{is_dns_name, normalise_domain};
use crate::verdict::Verdict;
use oem_crds::quantity;

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Validates an end user being created (`old` is `None`) or updated.
pub fn validate_end_user(new: &EndUser, old: Option<&EndUser>, lookup: &impl Lookup) -> Verdict {
    let mut verdict = Verdict::default();
    let namespace = new.namespace().unwrap_or_default();
    let name = new.name_any();
    let me = key(&namespace, &name);
    let others: Vec<_> = lookup
        .end_users()
        .into_iter()
        .filter(|e| key(&e.namespace().unwrap_or_default(), &e.name_any()) != me)
        .collect();
    let same_reseller: Vec<_> = others
        .iter()
        .filter(|e| e.namespace().as_deref() == Some(namespace.as_str()))
        .collect();

    let course_name = &new.spec.course_ref.name;
    let course = lookup.course(&namespace, course_name);
    match &course {
        None => verdict.deny(
            "spec.courseRef.name",
            format!("course {course_name} does not exist in namespace {namespace}"),
        ),
        Some(course) => {
            let limit = course.spec.limits.domains.max(0) as usize;
            if new.spec.domains.len() > limit {
                verdict.deny(
                    "spec.domains",
                    format!(
                        "{} domains exceed the limit of {limit} of course {course_name} (limits.domains)",
                        new.spec.domains.len()
                    ),
                );
            }
            check_php_choice(new, course, &mut verdict);
        }
    }

    check_domains(new, &me, &others, lookup, &mut verdict);

    if let Some(other) = same_reseller
        .iter()
        .find(|e| e.spec.login_id == new.spec.login_id)
    {
        verdict.deny(
            "spec.loginId",
            format!(
                "login ID {} is already used by end user {} of this reseller",
                new.spec.login_id,
                other.name_any()
            ),
        );
    }

    check_password_secret(new, &namespace, &name, lookup, &mut verdict);

    let course_changed = old.is_none_or(|o| o.spec.course_ref.name != *course_name);
    if let Some(course) = &course {
        check_quota(
            new,
            old.is_none(),
            course_changed,
            course,
            &namespace,
            &same_reseller,
            lookup,
            &mut verdict,
        );
    }
    verdict
}

/// The end user's PHP version, when it chose one, is one its course allows.
fn check_php_choice(new: &EndUser, course: &Course, verdict: &mut Verdict) {
    let Some(version) = new.spec.web.as_ref().and_then(|w| w.php_version.as_deref()) else {
        return;
    };
    let course_name = &new.spec.course_ref.name;
    match &course.spec.services.web {
        None => verdict.deny(
            "spec.web.phpVersion",
            format!("course {course_name} has no web service, so there is no PHP version to choose"),
        ),
        Some(web) if !web.allows(version) => verdict.deny(
            "spec.web.phpVersion",
            format!(
                "PHP {version} is not among the versions course {course_name} allows ({}; services.web.phpVersion and allowedPhpVersions)",
                web.choices().join(", ")
            ),
        ),
        Some(_) => {}
    }
}

fn check_domains(
    new: &EndUser,
    me: &str,
    others: &[std::sync::Arc<EndUser>],
    lookup: &impl Lookup,
    verdict: &mut Verdict,
) {
    let mut taken: HashMap<String, ()> = HashMap::new();
    for other in others {
        for d in &other.spec.domains {
            taken.insert(normalise_domain(d), ());
        }
    }
    for r in lookup.reserved_domains() {
        if r.owner != me {
            taken.insert(normalise_domain(&r.domain), ());
        }
    }
    // The schema allows at most MAX_DOMAINS, but a request that never went through the API
    // server's schema (sent to the webhooks directly) must not make them check or claim an
    // unbounded list either.
    if new.spec.domains.len() > oem_crds::enduser::MAX_DOMAINS {
        verdict.deny(
            "spec.domains",
            format!(
                "{} domains exceed the most an end user may have ({})",
                new.spec.domains.len(),
                oem_crds::enduser::MAX_DOMAINS
            ),
        );
        return;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in new.spec.domains.iter().enumerate() {
        let field = format!("spec.domains[{i}]");
        let domain = normalise_domain(raw);
        if domain.parse::<std::net::IpAddr>().is_ok() {
            verdict.deny(
                &field,
                format!("{raw} is an IP address; an end user's domain must be a DNS name"),
            );
            continue;
        }
        if !is_dns_name(&domain) {
            verdict.deny(&field, format!("{raw} is not a valid DNS domain name"));
            continue;
        }
        if let Some(first) = seen.get(&domain) {
            verdict.deny(
                &field,
                format!("domain {domain} is listed twice (also spec.domains[{first}])"),
            );
            continue;
        }
        seen.insert(domain.clone(), i);
        if taken.contains_key(&domain) {
            verdict.deny(
                &field,
                format!("domain {domain} is already used by another end user"),
            );
        }
    }
}

fn check_password_secret(
    new: &EndUser,
    namespace: &str,
    name: &str,
    lookup: &impl Lookup,
    verdict: &mut Verdict,
) {
    let Some(reference) = &new.spec.password_secret_ref else {
        return;
    };
    let is_generated = reference.is_generated_for(name);
    match lookup.secret_keys(namespace, &reference.name) {
        SecretKeys::Found(keys) if keys.contains(&reference.key) => {}
        SecretKeys::Found(_) => verdict.deny(
            "spec.passwordSecretRef.key",
            format!(
                "Secret {} has no key {} (the password Secret must hold the password under that key)",
                reference.name, reference.key
            ),
        ),
        SecretKeys::Missing if is_generated => {}
        SecretKeys::Missing => verdict.deny(
            "spec.passwordSecretRef.name",
            format!(
                "Secret {} does not exist in namespace {namespace} (the password Secret must exist)",
                reference.name
            ),
        ),
        SecretKeys::Unknown(why) => verdict.warn(
            "spec.passwordSecretRef",
            format!(
                "Secret {} could not be checked ({why}); the operator will check it",
                reference.name
            ),
        ),
    }
}

/// One resource of the reseller quota: its name in messages, the course's amount, the total.
struct Resource {
    field: &'static str,
    per_course: fn(&Course) -> &str,
    total: String,
}

#[allow(clippy::too_many_arguments)]
fn check_quota(
    new: &EndUser,
    creating: bool,
    course_changed: bool,
    course: &Course,
    namespace: &str,
    same_reseller: &[&std::sync::Arc<EndUser>],
    lookup: &impl Lookup,
    verdict: &mut Verdict,
) {
    let Some(reseller_name) = reseller_of_namespace(namespace) else {
        verdict.warn(
            "metadata.namespace",
            format!(
                "{namespace} is not a reseller namespace (reseller-<name>); quotas not checked"
            ),
        );
        return;
    };
    let Some(reseller) = lookup.reseller(reseller_name) else {
        verdict.warn(
            "metadata.namespace",
            format!("reseller {reseller_name} is not known yet; quotas not checked"),
        );
        return;
    };
    let quota = &reseller.spec.quota;
    let count = same_reseller.len() + 1;
    if creating && count > quota.max_end_users.max(0) as usize {
        verdict.deny(
            "metadata.namespace",
            format!(
                "reseller {reseller_name} already has {} end users, its quota (quota.maxEndUsers) is {}",
                same_reseller.len(),
                quota.max_end_users
            ),
        );
    }
    let resources = [
        Resource {
            field: "quota.totalCpu",
            per_course: |c| &c.spec.resources.cpu.0,
            total: quota.total_cpu.0.clone(),
        },
        Resource {
            field: "quota.totalMemory",
            per_course: |c| &c.spec.resources.memory.0,
            total: quota.total_memory.0.clone(),
        },
        Resource {
            field: "quota.totalStorage",
            per_course: |c| &c.spec.resources.storage.0,
            total: quota.total_storage.0.clone(),
        },
    ];
    for r in resources {
        let Some(total) = quantity::value(&r.total) else {
            continue;
        };
        let in_use: f64 = same_reseller
            .iter()
            .filter_map(|e| lookup.course(namespace, &e.spec.course_ref.name))
            .filter_map(|c| quantity::value((r.per_course)(&c)))
            .sum();
        let needs_raw = (r.per_course)(course);
        let needs = quantity::value(needs_raw).unwrap_or(0.0);
        if in_use + needs > total * (1.0 + 1e-9) {
            let message = format!(
                "course {} needs {needs_raw}, which with the {} already used by the reseller's other end users exceeds reseller {reseller_name}'s {} of {}",
                new.spec.course_ref.name,
                show(in_use),
                r.field,
                r.total
            );
            if creating || course_changed {
                verdict.deny("spec.courseRef.name", message);
            } else {
                verdict.warn("spec.courseRef.name", message);
            }
        }
    }
}

/// A number for messages: binary units for large values, plain decimals otherwise.
pub(crate) fn show(v: f64) -> String {
    const GI: f64 = 1024.0 * 1024.0 * 1024.0;
    const MI: f64 = 1024.0 * 1024.0;
    if v >= GI {
        format!("{}Gi", trim(v / GI))
    } else if v >= MI {
        format!("{}Mi", trim(v / MI))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
#[path = "enduser_tests.rs"]
mod tests;
