//! Validate (pure): an EndUser and its Course become a `HostingPlan`, or a spec error naming
//! the field at fault.

use kube::ResourceExt;
use oem_crds::course::{Course, DatabaseEngine};
use oem_crds::enduser::{DeletionPolicy, EndUser};

use crate::apply::quantity_value;
use crate::error::Error;
use crate::hosting::{DatabasePlan, DbEngine, FtpPlan, HostingPlan, WebPlan};
use crate::naming;
use oem_crds::policy::SecurityPolicy;

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
        if quantity_value(&value).is_none_or(|v| v <= 0.0) {
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
        Some(w) => Some(WebPlan {
            php_version: w.php_version.clone(),
            image: policy
                .php_image(&w.php_version)
                .ok_or_else(|| {
                    no_image(
                        "course.spec.services.web.phpVersion",
                        format!("PHP {}", w.php_version),
                    )
                })?
                .to_owned(),
        }),
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
