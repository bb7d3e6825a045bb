//! Courses (SPEC §2): the list, and a form to create or edit one within the reseller's quota;
//! the webhook's refusal (a course beyond the quota, a PHP version the provider does not
//! allow) shows next to the field it names.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use http::StatusCode;
use kube::ResourceExt;
use oem_crds::Course;
use serde_json::{Map, Value, json};

use super::act::{self, Unchanged};
use super::form::{Errors, Field, select};
use super::{ResellerRequest, csrf, page, who};
use crate::app::{App, status_page};
use crate::html::{esc, url_segment};
use crate::web::Reply;

/// The form's fields, by spec path.
const FIELDS: &[&str] = &[
    "displayName",
    "price.amount",
    "price.currency",
    "resources.cpu",
    "resources.memory",
    "resources.storage",
    "resources.bandwidth",
    "limits.domains",
    "limits.mailAccounts",
    "limits.databases",
    "limits.ftpAccounts",
    "services.web.phpVersion",
    "services.mail.maxSendsPerHour",
    "services.ftp",
    "services.ftp.tls",
    "services.database.engine",
    "services.database.version",
    // Where a message names a group rather than a field.
    "price",
    "resources",
    "limits",
    "services",
];

/// The list.
pub fn list(app: &App, r: &ResellerRequest<'_>) -> Reply {
    let t = r.texts();
    let mut body = format!(
        "<p><a class=\"button\" href=\"{}\">{}</a></p>",
        r.path("courses/new"),
        esc(t.new_course)
    );
    let courses = app.caches.courses_in(&r.namespace);
    if courses.is_empty() {
        let _ = write!(body, "<p>{}</p>", esc(t.no_courses));
        return page(r, StatusCode::OK, t.courses, &body);
    }
    let _ = write!(
        body,
        "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
         <th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
         <th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        esc(t.display_name),
        esc(t.services),
        esc(t.cpu),
        esc(t.memory),
        esc(t.storage),
        esc(t.price_amount),
        esc(t.end_users)
    );
    for course in courses {
        let name = course.name_any();
        let price = course
            .spec
            .price
            .as_ref()
            .map(|p| format!("{} {}", p.amount, p.currency))
            .unwrap_or_else(|| "-".to_owned());
        let _ = write!(
            body,
            "<tr><td><a href=\"{href}\">{display}</a> ({name})</td><td>{services}</td><td>{cpu}</td>\
             <td>{memory}</td><td>{storage}</td><td>{price}</td><td>{users}</td></tr>",
            href = r.path(&format!("courses/{}", url_segment(&name))),
            display = esc(&course.spec.display_name),
            name = esc(&name),
            services = esc(&course.spec.services.summary()),
            cpu = esc(&course.spec.resources.cpu.0),
            memory = esc(&course.spec.resources.memory.0),
            storage = esc(&course.spec.resources.storage.0),
            price = esc(&price),
            users = course
                .status
                .as_ref()
                .and_then(|s| s.end_users)
                .unwrap_or(0),
        );
    }
    body.push_str("</tbody></table></div>");
    page(r, StatusCode::OK, t.courses, &body)
}

/// The form's values by field name, from a course.
fn values_of(course: &Course) -> HashMap<String, String> {
    let spec = serde_json::to_value(&course.spec).unwrap_or(Value::Null);
    let mut values = HashMap::new();
    for field in FIELDS {
        let pointer = format!("/{}", field.replace('.', "/"));
        let text = match spec.pointer(&pointer) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => if *b { "on" } else { "" }.to_owned(),
            Some(Value::Object(_)) => "on".to_owned(),
            _ => String::new(),
        };
        values.insert((*field).to_owned(), text);
    }
    values.insert("name".to_owned(), course.name_any());
    values
}

/// The spec the form describes, or the fields it cannot read.
fn spec_of(values: &HashMap<String, String>) -> Result<Map<String, Value>, Errors> {
    let get = |k: &str| values.get(k).map(|v| v.trim()).unwrap_or_default();
    let mut errors = Errors::default();
    let mut int = |k: &str| -> Option<i64> {
        let v = get(k);
        if v.is_empty() {
            return None;
        }
        match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.field(k, format!("spec.{k}: {v:?} is not a whole number"));
                None
            }
        }
    };
    let price = int("price.amount");
    let limits: Vec<(&str, Option<i64>)> = ["domains", "mailAccounts", "databases", "ftpAccounts"]
        .into_iter()
        .map(|k| (k, int(&format!("limits.{k}"))))
        .collect();
    let mail_rate = int("services.mail.maxSendsPerHour");
    let mut spec = Map::new();
    spec.insert("displayName".into(), json!(get("displayName")));
    if let Some(amount) = price {
        spec.insert(
            "price".into(),
            json!({"amount": amount, "currency": get("price.currency")}),
        );
    } else {
        spec.insert("price".into(), Value::Null);
    }
    let mut resources = Map::new();
    for k in ["cpu", "memory", "storage", "bandwidth"] {
        let v = get(&format!("resources.{k}"));
        if !v.is_empty() {
            resources.insert(k.into(), json!(v));
        }
    }
    spec.insert("resources".into(), Value::Object(resources));
    let limits: Map<String, Value> = limits
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), json!(v))))
        .collect();
    spec.insert("limits".into(), Value::Object(limits));
    let mut services = Map::new();
    let php = get("services.web.phpVersion");
    if !php.is_empty() {
        services.insert("web".into(), json!({"phpVersion": php}));
    }
    if let Some(rate) = mail_rate {
        services.insert("mail".into(), json!({"maxSendsPerHour": rate}));
    }
    if get("services.ftp") == "on" {
        services.insert(
            "ftp".into(),
            json!({"tls": get("services.ftp.tls") == "on"}),
        );
    }
    let engine = get("services.database.engine");
    if !engine.is_empty() {
        let mut db = Map::new();
        db.insert("engine".into(), json!(engine));
        let version = get("services.database.version");
        if !version.is_empty() {
            db.insert("version".into(), json!(version));
        }
        services.insert("database".into(), Value::Object(db));
    }
    spec.insert("services".into(), Value::Object(services));
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(errors)
    }
}

fn form_html(
    r: &ResellerRequest<'_>,
    values: &HashMap<String, String>,
    errors: &Errors,
    locked: &BTreeMap<String, String>,
    creating: bool,
) -> String {
    let t = r.texts();
    let get = |k: &str| values.get(k).map(String::as_str).unwrap_or_default();
    let by = |f: &str| {
        let group = f.split('.').next().unwrap_or(f);
        locked.get(group).map(String::as_str)
    };
    let action = if creating {
        r.path("courses/new")
    } else {
        r.path(&format!("courses/{}", url_segment(get("name"))))
    };
    let mut out = format!(
        "{}<form method=\"post\" action=\"{action}\" class=\"card\">{}",
        errors.summary(t.refused),
        csrf(r)
    );
    if creating {
        out.push_str(
            &Field::new("name", t.name, get("name"))
                .required()
                .hint("a-z 0-9 -")
                .render(errors, t.managed_by),
        );
    }
    let text_fields = [
        ("displayName", t.display_name, "text", true),
        ("price.amount", t.price_amount, "number", false),
        ("price.currency", t.price_currency, "text", false),
        ("resources.cpu", t.cpu, "text", true),
        ("resources.memory", t.memory, "text", true),
        ("resources.storage", t.storage, "text", true),
        ("resources.bandwidth", t.bandwidth, "text", false),
        ("limits.domains", t.limit_domains, "number", false),
        ("limits.mailAccounts", t.limit_mail, "number", false),
        ("limits.databases", t.limit_databases, "number", false),
        ("limits.ftpAccounts", t.limit_ftp, "number", false),
        ("services.web.phpVersion", t.php_version, "text", false),
        (
            "services.mail.maxSendsPerHour",
            t.mail_rate,
            "number",
            false,
        ),
    ];
    for (field, label, kind, required) in text_fields {
        let mut f = Field::new(field, label, get(field))
            .kind(kind)
            .managed_by(by(field));
        if required {
            f = f.required();
        }
        out.push_str(&f.render(errors, t.managed_by));
    }
    for (field, label) in [("services.ftp", t.ftp), ("services.ftp.tls", t.ftp_tls)] {
        let id = super::form::id_of(field);
        let checked = if get(field) == "on" { " checked" } else { "" };
        let error = errors
            .by_field
            .get(field)
            .map(|e| {
                format!(
                    "<p class=\"error\" role=\"alert\" id=\"{id}-error\">{}</p>",
                    esc(e)
                )
            })
            .unwrap_or_default();
        let _ = write!(
            out,
            "<div class=\"check\"><input type=\"checkbox\" id=\"{id}\" name=\"{field}\" value=\"on\"{checked}>\
             <label for=\"{id}\">{}</label></div>{error}",
            esc(label)
        );
    }
    let engines = [
        (String::new(), t.none_option.to_owned()),
        ("mariadb".to_owned(), "MariaDB".to_owned()),
        ("postgresql".to_owned(), "PostgreSQL".to_owned()),
    ];
    out.push_str(&select(
        "services.database.engine",
        t.database_engine,
        &engines,
        get("services.database.engine"),
        errors,
    ));
    out.push_str(
        &Field::new(
            "services.database.version",
            t.database_version,
            get("services.database.version"),
        )
        .managed_by(by("services"))
        .render(errors, t.managed_by),
    );
    let _ = write!(
        out,
        "<button type=\"submit\">{}</button></form>",
        esc(if creating { t.create } else { t.save })
    );
    out
}

/// The empty form, with the usual limits.
pub fn new_form(_app: &App, r: &ResellerRequest<'_>) -> Reply {
    let t = r.texts();
    let values: HashMap<String, String> = [
        ("limits.domains", "1"),
        ("limits.mailAccounts", "10"),
        ("limits.databases", "1"),
        ("limits.ftpAccounts", "1"),
        ("price.currency", "JPY"),
        ("services.ftp.tls", "on"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let body = form_html(r, &values, &Errors::default(), &BTreeMap::new(), true);
    page(r, StatusCode::OK, t.new_course, &body)
}

fn form_values(r: &ResellerRequest<'_>) -> HashMap<String, String> {
    r.req.form()
}

async fn write(
    app: &App,
    r: &ResellerRequest<'_>,
    name: &str,
    spec: Map<String, Value>,
) -> Result<(), Errors> {
    act::apply::<Course>(app, r, name, spec, None)
        .await
        .map_err(|refusal| Errors::from_refusal(&refusal.message, FIELDS))
}

/// Creates a course.
pub async fn create(app: &App, r: &ResellerRequest<'_>) -> Reply {
    let t = r.texts();
    let values = form_values(r);
    let name = values
        .get("name")
        .map(|n| n.trim().to_owned())
        .unwrap_or_default();
    let result = if name.is_empty() {
        let mut errors = Errors::default();
        errors.field("name", t.required);
        Err(errors)
    } else if app.caches.course(&r.namespace, &name).is_some() {
        let mut errors = Errors::default();
        errors.field("name", t.already_exists);
        Err(errors)
    } else {
        match spec_of(&values) {
            Ok(spec) => {
                let spec = spec.into_iter().filter(|(_, v)| !v.is_null()).collect();
                write(app, r, &name, spec).await
            }
            Err(errors) => Err(errors),
        }
    };
    match result {
        Ok(()) => {
            tracing::info!(reseller = %who(r), course = %name, "course created through the panel");
            Reply::redirect(&r.path(&format!("courses/{}?m=created", url_segment(&name))))
        }
        Err(errors) => {
            let body = form_html(r, &values, &errors, &BTreeMap::new(), true);
            page(r, StatusCode::UNPROCESSABLE_ENTITY, t.new_course, &body)
        }
    }
}

/// A course's page: its form.
pub fn detail(app: &App, r: &ResellerRequest<'_>, name: &str) -> Reply {
    let Some(course) = app.caches.course(&r.namespace, name) else {
        return status_page(r.lang, StatusCode::NOT_FOUND);
    };
    let t = r.texts();
    let notice = match r.req.query_param("m").as_deref() {
        Some("created") => Some(t.created),
        Some("saved") => Some(t.saved),
        _ => None,
    };
    let locked = act::locked_fields(&course.metadata);
    let body = format!(
        "{}{}",
        crate::pages::notice(notice, "notice"),
        form_html(r, &values_of(&course), &Errors::default(), &locked, false)
    );
    page(r, StatusCode::OK, &course.spec.display_name, &body)
}

/// Saves a course.
pub async fn update(app: &App, r: &ResellerRequest<'_>, name: &str) -> Reply {
    let Some(course) = app.caches.course(&r.namespace, name) else {
        return status_page(r.lang, StatusCode::NOT_FOUND);
    };
    let t = r.texts();
    let mut values = form_values(r);
    values.insert("name".to_owned(), name.to_owned());
    let result = match spec_of(&values) {
        Ok(wanted) => act::change::<Course>(app, r, name, &wanted, None)
            .await
            .map_err(|unchanged| match unchanged {
                Unchanged::OwnedElsewhere(fields) => {
                    let mut errors = Errors::default();
                    for (field, managers) in fields {
                        errors
                            .general
                            .push(format!("spec.{field}: {}{managers}", t.managed_by));
                    }
                    errors
                }
                Unchanged::Refused(refusal) => Errors::from_refusal(&refusal.message, FIELDS),
            }),
        Err(errors) => Err(errors),
    };
    match result {
        Ok(()) => {
            tracing::info!(reseller = %who(r), course = %name, "course saved through the panel");
            Reply::redirect(&r.path(&format!("courses/{}?m=saved", url_segment(name))))
        }
        Err(errors) => {
            let locked = act::locked_fields(&course.metadata);
            let body = form_html(r, &values, &errors, &locked, false);
            page(
                r,
                StatusCode::UNPROCESSABLE_ENTITY,
                &course.spec.display_name,
                &body,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_reads_back_what_it_shows() {
        let course: Course = serde_json::from_value(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Course",
            "metadata": {"name": "basic", "namespace": "reseller-sakura"},
            "spec": {"displayName": "ベーシック", "price": {"amount": 1500, "currency": "JPY"},
                     "resources": {"cpu": "1", "memory": "1Gi", "storage": "10Gi", "bandwidth": "100M"},
                     "limits": {"domains": 3, "mailAccounts": 10, "databases": 1, "ftpAccounts": 1},
                     "services": {"web": {"phpVersion": "8.2"}, "mail": {"maxSendsPerHour": 200},
                                  "ftp": {"tls": true}, "database": {"engine": "mariadb"}}}
        }))
        .unwrap();
        let values = values_of(&course);
        assert_eq!(values["services.ftp"], "on");
        assert_eq!(values["resources.memory"], "1Gi");
        let spec = spec_of(&values).unwrap();
        assert_eq!(
            Value::Object(spec),
            serde_json::to_value(&course.spec).unwrap()
        );
    }

    #[test]
    fn a_number_that_is_not_one_is_named() {
        let values: HashMap<String, String> = [("limits.domains", "many"), ("displayName", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let errors = spec_of(&values).unwrap_err();
        assert!(errors.by_field["limits.domains"].contains("\"many\""));
    }
}
