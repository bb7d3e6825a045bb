//! Validate (pure): an EndUser and its Course become a `HostingPlan`, or a spec error naming
//! the field at fault.

use kube::ResourceExt;
use oem_crds::course::{Course, DatabaseEngine};
use oem_crds::enduser::{DeletionPolicy, EndUser};

use crate::error::Error;
use crate::hosting::{DatabasePlan, DbEngine, FtpPlan, HostingPlan, WebPlan};
use crate::naming;
use oem_crds::policy::SecurityPolicy;
use oem_crds::quantity;

/// Resolves the plan of `enduser` (in the namespace of `reseller`) on `course`, with the images
/// the security policy names for the course's runtime versions.
pub fn hosting_plan(
    reseller: &str,
    enduser: &EndUser,
    course: &Course,
    policy: &SecurityPolicy,
) -> Result<HostingPlan, Error> {
    let name = enduser.name_any();
    let object = format!(
        "enduser {}/{}",
        enduser.namespace().unwrap_or_default(),
        name
    );
    let res = &course.spec.resources;
    for (field, value) in [
        ("course.spec.resources.cpu", quantity(&res.cpu)),
        ("course.spec.resources.memory", quantity(&res.memory)),
        ("course.spec.resources.storage", quantity(&res.storage)),
    ] {
        if quantity::value(&value).is_none_or(|v| v <= 0.0) {
            return Err(Error::InvalidSpec {
                object,
                field,
                message: format!("{value:?} is not a positive quantity"),
            });
        }
    }
    let services = &course.spec.services;
    let no_image = |field: &'static str, what: String| Error::InvalidSpec {
        object: object.clone(),
        field,
        message: format!("{what} has no image in the security policy, so it cannot be served"),
    };
    let web = match &services.web {
        Some(w) => {
            // The end user's choice, when it made one, within what the course allows.
            let chosen = enduser
                .spec
                .web
                .as_ref()
                .and_then(|web| web.php_version.as_deref());
            let version = match chosen {
                Some(version) if !w.allows(version) => {
                    return Err(Error::InvalidSpec {
                        object,
                        field: "spec.web.phpVersion",
                        message: format!(
                            "PHP {version} is not among the versions course {} allows ({})",
                            enduser.spec.course_ref.name,
                            w.choices().join(", ")
                        ),
                    });
                }
                Some(version) => version,
                None => w.php_version.as_str(),
            };
            let field = if chosen.is_some() {
                "course.spec.services.web.allowedPhpVersions"
            } else {
                "course.spec.services.web.phpVersion"
            };
            Some(WebPlan {
                php_version: version.to_owned(),
                image: policy
                    .php_image(version)
                    .ok_or_else(|| no_image(field, format!("PHP {version}")))?
                    .to_owned(),
            })
        }
        None => None,
    };
    let database = match &services.database {
        Some(d) => {
            let engine = match d.engine {
                DatabaseEngine::Mariadb => DbEngine::MariaDb,
                DatabaseEngine::Postgresql => DbEngine::PostgreSql,
            };
            let image = policy
                .database_image(d.engine, d.version.as_deref())
                .ok_or_else(|| {
                    no_image(
                        "course.spec.services.database.version",
                        format!(
                            "{} {}",
                            engine.name(),
                            d.version.as_deref().unwrap_or("(default)")
                        ),
                    )
                })?;
            Some(DatabasePlan {
                engine,
                image: image.to_owned(),
            })
        }
        None => None,
    };
    let owner = naming::HostingOwner {
        reseller: reseller.to_owned(),
        enduser_namespace: enduser.namespace().unwrap_or_default(),
        enduser: name.clone(),
    };
    let recorded = enduser
        .status
        .as_ref()
        .and_then(|s| s.hosting_namespace.as_deref());
    Ok(HostingPlan {
        reseller: reseller.to_owned(),
        enduser: name.clone(),
        enduser_namespace: enduser.namespace().unwrap_or_default(),
        namespace: owner.namespace_in_use(recorded),
        cpu: quantity(&res.cpu),
        memory: quantity(&res.memory),
        storage: quantity(&res.storage),
        bandwidth: quantity(&res.bandwidth),
        login_id: enduser.spec.login_id.clone(),
        web,
        ftp: services.ftp.as_ref().map(|f| FtpPlan { tls: f.tls }),
        mail: services
            .mail
            .as_ref()
            .map(|m| u32::try_from(m.max_sends_per_hour).unwrap_or(0)),
        database,
        domains: enduser.spec.domains.clone(),
        suspended: enduser.spec.suspended,
        mail_locked: enduser.status.as_ref().is_some_and(|s| s.mail_locked),
        retain_data: enduser.spec.deletion_policy == DeletionPolicy::Retain,
        credentials_version: None,
        tls_version: None,
    })
}

fn quantity(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> String {
    q.0.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn course(allowed: serde_json::Value) -> Course {
        serde_json::from_value(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Course",
            "metadata": {"name": "standard", "namespace": "reseller-sakura"},
            "spec": {"displayName": "Standard", "resources": {"cpu": "1", "memory": "1Gi", "storage": "10Gi"},
                     "services": {"web": {"phpVersion": "8.4", "allowedPhpVersions": allowed}}}
        }))
        .unwrap()
    }

    fn enduser(web: serde_json::Value) -> EndUser {
        serde_json::from_value(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "EndUser",
            "metadata": {"name": "shop", "namespace": "reseller-sakura"},
            "spec": {"loginId": "shop", "contractName": "Shop", "contactEmail": "a@example.jp",
                     "courseRef": {"name": "standard"}, "contractDate": "2026-01-01",
                     "startDate": "2026-01-01", "web": web}
        }))
        .unwrap()
    }

    fn web_of(enduser: &EndUser, course: &Course) -> Result<WebPlan, Error> {
        hosting_plan("sakura", enduser, course, &SecurityPolicy::builtin())
            .map(|plan| plan.web.expect("the course has web"))
    }

    #[test]
    fn the_end_user_runs_the_php_version_it_chose_among_the_courses() {
        let course = course(json!(["8.2"]));
        let chosen = web_of(&enduser(json!({"phpVersion": "8.2"})), &course).unwrap();
        assert_eq!(chosen.php_version, "8.2");
        assert!(chosen.image.contains("web-php8.2"), "{}", chosen.image);
        let default = web_of(&enduser(json!({})), &course).unwrap();
        assert_eq!(default.php_version, "8.4");
        assert!(default.image.contains("web-php8.4"), "{}", default.image);
    }

    #[test]
    fn a_php_version_beyond_the_course_is_a_spec_error_naming_the_field() {
        let error = web_of(&enduser(json!({"phpVersion": "8.2"})), &course(json!([])))
            .expect_err("8.2 is not allowed by a course of 8.4 only");
        match error {
            Error::InvalidSpec { field, message, .. } => {
                assert_eq!(field, "spec.web.phpVersion");
                assert!(
                    message.contains("PHP 8.2") && message.contains("(8.4)"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
