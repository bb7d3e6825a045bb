//! Course rules: runtime versions allowed by the security policy (past end of life refused for
//! new choices, warned for existing ones); storage not shrunk below what an end user on the
//! course uses, and no service removed while end users are on it, unless forced; no resource
//! raised beyond what the reseller's quota leaves for the end users on the course.

use kube::ResourceExt;
use oem_crds::Course;
use oem_crds::course::DatabaseEngine;

use crate::lookup::{Lookup, reseller_of_namespace};
use crate::policy::Support;
use crate::rules::enduser::show;
use crate::verdict::{FORCE_ANNOTATION, Verdict};
use oem_crds::quantity;

/// Days before end of life from which an allowed version draws a warning.
const EOL_WARNING_DAYS: i64 = 90;

/// Validates a course being created (`old` is `None`) or updated.
pub fn validate_course(new: &Course, old: Option<&Course>, lookup: &impl Lookup) -> Verdict {
    let mut verdict = Verdict::default();
    check_runtimes(new, old, lookup, &mut verdict);
    if let Some(old) = old {
        check_shrinking(new, old, lookup, &mut verdict);
        check_pool(new, old, lookup, &mut verdict);
    }
    verdict
}

/// One pooled resource: its name, the quota field, the course's amount, the reseller's total.
type Pooled<'a> = (&'a str, &'a str, fn(&Course) -> &str, &'a str);

/// A raised cpu, memory or storage applies to every end user on the course at once: refused
/// when (end users on the course × the new amount) + what the reseller's other end users'
/// courses take exceeds the reseller's total. Not forceable: the quota is the provider's.
fn check_pool(new: &Course, old: &Course, lookup: &impl Lookup, verdict: &mut Verdict) {
    let namespace = new.namespace().unwrap_or_default();
    let name = new.name_any();
    let Some(reseller_name) = reseller_of_namespace(&namespace) else {
        return;
    };
    let Some(reseller) = lookup.reseller(reseller_name) else {
        return;
    };
    let quota = &reseller.spec.quota;
    let end_users: Vec<_> = lookup
        .end_users()
        .into_iter()
        .filter(|e| e.namespace().as_deref() == Some(namespace.as_str()))
        .collect();
    let on_course = end_users
        .iter()
        .filter(|e| e.spec.course_ref.name == name)
        .count();
    if on_course == 0 {
        return;
    }
    let resources: [Pooled; 3] = [
        (
            "cpu",
            "quota.totalCpu",
            |c| &c.spec.resources.cpu.0,
            &quota.total_cpu.0,
        ),
        (
            "memory",
            "quota.totalMemory",
            |c| &c.spec.resources.memory.0,
            &quota.total_memory.0,
        ),
        (
            "storage",
            "quota.totalStorage",
            |c| &c.spec.resources.storage.0,
            &quota.total_storage.0,
        ),
    ];
    for (resource, quota_field, of, total_raw) in resources {
        let (Some(wanted), Some(total)) = (quantity::value(of(new)), quantity::value(total_raw))
        else {
            continue;
        };
        let before = quantity::value(of(old)).unwrap_or(0.0);
        if wanted <= before {
            continue;
        }
        let others: f64 = end_users
            .iter()
            .filter(|e| e.spec.course_ref.name != name)
            .filter_map(|e| lookup.course(&namespace, &e.spec.course_ref.name))
            .filter_map(|c| quantity::value(of(&c)))
            .sum();
        let sum = wanted * on_course as f64 + others;
        if sum > total * (1.0 + 1e-9) {
            verdict.deny(
                &format!("spec.resources.{resource}"),
                format!(
                    "raising {resource} from {} to {} for the {on_course} end users on this course makes reseller {reseller_name}'s total {} ({on_course} × {} + {} of its other end users), over its {quota_field} of {total_raw}",
                    of(old),
                    of(new),
                    show(sum),
                    of(new),
                    show(others),
                ),
            );
        }
    }
}

fn check_runtimes(new: &Course, old: Option<&Course>, lookup: &impl Lookup, verdict: &mut Verdict) {
    let today = lookup.today();
    let policy = lookup.policy();
    if let Some(web) = &new.spec.services.web {
        let unchanged = old
            .and_then(|o| o.spec.services.web.as_ref())
            .is_some_and(|w| w.php_version == web.php_version);
        let support = policy.php(&web.php_version, today);
        judge(
            verdict,
            "spec.services.web.phpVersion",
            &format!("PHP {}", web.php_version),
            support,
            unchanged,
            today,
        );
        let before: Vec<&String> = old
            .and_then(|o| o.spec.services.web.as_ref())
            .map(|w| w.allowed_php_versions.iter().collect())
            .unwrap_or_default();
        for (i, version) in web.allowed_php_versions.iter().enumerate() {
            judge(
                verdict,
                &format!("spec.services.web.allowedPhpVersions[{i}]"),
                &format!("PHP {version}"),
                policy.php(version, today),
                before.contains(&version),
                today,
            );
        }
    }
    if let Some(db) = &new.spec.services.database
        && let Some(version) = &db.version
    {
        let unchanged = old
            .and_then(|o| o.spec.services.database.as_ref())
            .is_some_and(|d| d.engine == db.engine && d.version == db.version);
        let engine = match db.engine {
            DatabaseEngine::Mariadb => "MariaDB",
            DatabaseEngine::Postgresql => "PostgreSQL",
        };
        judge(
            verdict,
            "spec.services.database.version",
            &format!("{engine} {version}"),
            policy.database(db.engine, version, today),
            unchanged,
            today,
        );
    }
}

/// A version already in use is only warned about: refusing it would block every other edit
/// of the course; the provider migrates such courses deliberately.
fn judge(
    verdict: &mut Verdict,
    field: &str,
    what: &str,
    support: Support,
    unchanged: bool,
    today: jiff::civil::Date,
) {
    match support {
        Support::Supported {
            end_of_life: Some(eol),
        } if (eol - today).get_days() <= EOL_WARNING_DAYS as i32 => verdict.warn(
            field,
            format!("{what} reaches end of life on {eol} (security policy); plan an upgrade"),
        ),
        Support::Supported { .. } => {}
        Support::PastEndOfLife(eol) if unchanged => verdict.warn(
            field,
            format!("{what} reached end of life on {eol} (security policy); upgrade this course"),
        ),
        Support::PastEndOfLife(eol) => verdict.deny(
            field,
            format!(
                "{what} reached end of life on {eol} and is not allowed for new courses or changes (security policy)"
            ),
        ),
        Support::NoImage if unchanged => verdict.warn(
            field,
            format!("{what} has no image in the security policy, so it is not served; upgrade this course"),
        ),
        Support::NoImage => verdict.deny(
            field,
            format!("{what} has no image in the security policy, so it cannot be served"),
        ),
        Support::NotListed if unchanged => verdict.warn(
            field,
            format!("{what} is no longer allowed by the security policy; upgrade this course"),
        ),
        Support::NotListed => verdict.deny(
            field,
            format!("{what} is not allowed by the security policy"),
        ),
    }
}

fn check_shrinking(new: &Course, old: &Course, lookup: &impl Lookup, verdict: &mut Verdict) {
    let namespace = new.namespace().unwrap_or_default();
    let name = new.name_any();
    let forced = new
        .annotations()
        .get(FORCE_ANNOTATION)
        .is_some_and(|v| v == "true");
    let on_course: Vec<_> = lookup
        .end_users()
        .into_iter()
        .filter(|e| {
            e.namespace().as_deref() == Some(namespace.as_str()) && e.spec.course_ref.name == name
        })
        .collect();
    if on_course.is_empty() {
        return;
    }
    let override_hint = format!("annotate {FORCE_ANNOTATION}: \"true\" to override");

    let new_storage = quantity::value(&new.spec.resources.storage.0);
    let old_storage = quantity::value(&old.spec.resources.storage.0);
    if let (Some(new_storage), Some(old_storage)) = (new_storage, old_storage)
        && new_storage < old_storage
    {
        let biggest = on_course
            .iter()
            .filter_map(|e| {
                let disk = e.status.as_ref()?.usage.as_ref()?.disk.as_ref()?;
                Some((quantity::value(&disk.0)?, disk.0.clone(), e.name_any()))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        match biggest {
            Some((used, shown, user)) if used > new_storage => {
                let message = format!(
                    "storage {} is less than the {shown} end user {user} uses on this course (shrinking below usage)",
                    new.spec.resources.storage.0
                );
                if forced {
                    verdict.warn("spec.resources.storage", format!("{message}; forced"));
                } else {
                    verdict.deny(
                        "spec.resources.storage",
                        format!("{message} is refused; {override_hint}"),
                    );
                }
            }
            Some(_) => {}
            None => verdict.warn(
                "spec.resources.storage",
                format!(
                    "storage shrinks while {} end users are on this course and their disk usage is not known yet",
                    on_course.len()
                ),
            ),
        }
    }

    let services = &new.spec.services;
    let before = &old.spec.services;
    let removed = [
        ("web", before.web.is_some() && services.web.is_none()),
        ("mail", before.mail.is_some() && services.mail.is_none()),
        ("ftp", before.ftp.is_some() && services.ftp.is_none()),
        (
            "database",
            before.database.is_some() && services.database.is_none(),
        ),
    ];
    for (service, gone) in removed {
        if !gone {
            continue;
        }
        let field = format!("spec.services.{service}");
        let message = format!(
            "removing {service} deletes it, and its data, for the {} end users on this course",
            on_course.len()
        );
        if forced {
            verdict.warn(&field, format!("{message}; forced"));
        } else {
            verdict.deny(
                &field,
                format!("{message}, which is refused while end users are on it; {override_hint}"),
            );
        }
    }
}

#[cfg(test)]
#[path = "course_tests.rs"]
mod tests;
