//! One customer (end user): its page with its state, form and actions; create, edit, suspend,
//! resume, delete, and lifting the mail lock and the panel login lock. Every write is a
//! server-side apply (or merge patch, for annotations) as the reseller (`act`).

use std::fmt::Write as _;

use http::StatusCode;
use kube::ResourceExt;
use oem_crds::EndUser;
use serde_json::{Map, Value, json};

use super::act::{self, Refusal, Unchanged};
use super::form::{Errors, Field, select};
use super::{ResellerRequest, csrf, page, who};
use crate::app::{App, status_page};
use crate::auth::limiter::LOCK_ANNOTATION;
use crate::html::{esc, url_segment};
use crate::pages::overview::{phase_label, state_label};
use crate::web::Reply;

/// The annotation that asks the operator to lift a mail lock (docs/incidents.md).
pub const MAIL_UNLOCK_ANNOTATION: &str = "hosting.oem.dev/mail-unlock";

/// The form's fields, by their spec path.
const FIELDS: &[&str] = &[
    "loginId",
    "contractName",
    "customerNumber",
    "contactEmail",
    "courseRef",
    "domains",
    "contractDate",
    "startDate",
];

/// The form's values: from the object, or from a submitted form.
struct Values {
    name: String,
    login_id: String,
    contract_name: String,
    customer_number: String,
    contact_email: String,
    course: String,
    domains: String,
    contract_date: String,
    start_date: String,
}

impl Values {
    fn of(eu: &EndUser) -> Self {
        Self {
            name: eu.name_any(),
            login_id: eu.spec.login_id.clone(),
            contract_name: eu.spec.contract_name.clone(),
            customer_number: eu.spec.customer_number.clone().unwrap_or_default(),
            contact_email: eu.spec.contact_email.clone(),
            course: eu.spec.course_ref.name.clone(),
            domains: eu.spec.domains.join("\n"),
            contract_date: eu.spec.contract_date.to_string(),
            start_date: eu.spec.start_date.to_string(),
        }
    }

    fn from_form(form: &std::collections::HashMap<String, String>) -> Self {
        let get = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        Self {
            name: get("name"),
            login_id: get("loginId"),
            contract_name: get("contractName"),
            customer_number: get("customerNumber"),
            contact_email: get("contactEmail"),
            course: get("courseRef"),
            domains: get("domains"),
            contract_date: get("contractDate"),
            start_date: get("startDate"),
        }
    }

    /// The spec fields the form sets (an empty optional field is null: not set).
    fn spec(&self) -> Map<String, Value> {
        let domains: Vec<&str> = self
            .domains
            .split(['\n', ',', ' '])
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        let text = |v: &str| {
            if v.is_empty() { Value::Null } else { json!(v) }
        };
        let mut spec = Map::new();
        spec.insert("loginId".into(), text(&self.login_id));
        spec.insert("contractName".into(), text(&self.contract_name));
        spec.insert("customerNumber".into(), text(&self.customer_number));
        spec.insert("contactEmail".into(), text(&self.contact_email));
        spec.insert(
            "courseRef".into(),
            if self.course.is_empty() {
                Value::Null
            } else {
                json!({"name": self.course})
            },
        );
        spec.insert("domains".into(), json!(domains));
        spec.insert("contractDate".into(), text(&self.contract_date));
        spec.insert("startDate".into(), text(&self.start_date));
        spec
    }

    /// Required fields left empty, by name (the API would refuse them too, less clearly).
    fn missing(&self, creating: bool, t: &super::texts::ResellerTexts) -> Errors {
        let mut errors = Errors::default();
        let mut need = vec![
            ("loginId", &self.login_id),
            ("contractName", &self.contract_name),
            ("contactEmail", &self.contact_email),
            ("courseRef", &self.course),
            ("contractDate", &self.contract_date),
            ("startDate", &self.start_date),
        ];
        if creating {
            need.push(("name", &self.name));
        }
        for (field, value) in need {
            if value.is_empty() {
                errors.field(field, t.required);
            }
        }
        errors
    }
}

fn form_html(
    app: &App,
    r: &ResellerRequest<'_>,
    values: &Values,
    errors: &Errors,
    locked: &std::collections::BTreeMap<String, String>,
    creating: bool,
) -> String {
    let t = r.texts();
    let action = if creating {
        r.path("customers/new")
    } else {
        r.path(&format!("customers/{}", url_segment(&values.name)))
    };
    let by = |f: &str| locked.get(f).map(String::as_str);
    let mut out = format!(
        "{summary}<form method=\"post\" action=\"{action}\" class=\"card\">{csrf}",
        summary = errors.summary(t.refused),
        csrf = csrf(r)
    );
    if creating {
        out.push_str(
            &Field::new("name", t.name, &values.name)
                .required()
                .hint("a-z 0-9 -")
                .render(errors, t.managed_by),
        );
    }
    let login = Field::new("loginId", t.login_id, &values.login_id).required();
    // The login ID is immutable once created.
    let login = if creating {
        login
    } else {
        login.read_only().hint(t.immutable)
    };
    out.push_str(&login.render(errors, t.managed_by));
    for (field, label, value, kind, required) in [
        (
            "contractName",
            t.contract_name,
            &values.contract_name,
            "text",
            true,
        ),
        (
            "customerNumber",
            t.customer_number,
            &values.customer_number,
            "text",
            false,
        ),
        (
            "contactEmail",
            t.contact_email,
            &values.contact_email,
            "email",
            true,
        ),
    ] {
        let mut f = Field::new(field, label, value)
            .kind(kind)
            .managed_by(by(field));
        if required {
            f = f.required();
        }
        out.push_str(&f.render(errors, t.managed_by));
    }
    let courses: Vec<(String, String)> = app
        .caches
        .courses_in(&r.namespace)
        .iter()
        .map(|c| {
            (
                c.name_any(),
                format!("{} ({})", c.spec.display_name, c.name_any()),
            )
        })
        .collect();
    out.push_str(&select(
        "courseRef",
        t.course,
        &courses,
        &values.course,
        errors,
    ));
    out.push_str(
        &Field::new("domains", t.domains, &values.domains)
            .kind("textarea")
            .hint(t.domains_hint)
            .managed_by(by("domains"))
            .render(errors, t.managed_by),
    );
    for (field, label, value) in [
        ("contractDate", t.contract_date, &values.contract_date),
        ("startDate", t.start_date, &values.start_date),
    ] {
        out.push_str(
            &Field::new(field, label, value)
                .kind("date")
                .required()
                .managed_by(by(field))
                .render(errors, t.managed_by),
        );
    }
    let _ = write!(
        out,
        "<button type=\"submit\">{}</button></form>",
        esc(if creating { t.create } else { t.save })
    );
    out
}

/// The empty form.
pub fn new_form(app: &App, r: &ResellerRequest<'_>) -> Reply {
    let t = r.texts();
    let values = Values::from_form(&Default::default());
    let body = form_html(
        app,
        r,
        &values,
        &Errors::default(),
        &Default::default(),
        true,
    );
    page(r, StatusCode::OK, t.new_customer, &body)
}

/// Creates an end user (server-side apply as the reseller).
pub async fn create(app: &App, r: &ResellerRequest<'_>) -> Reply {
    let t = r.texts();
    let values = Values::from_form(&r.req.form());
    let mut errors = values.missing(true, t);
    if errors.is_empty() && app.caches.enduser(&r.namespace, &values.name).is_some() {
        errors.field("name", t.already_exists);
    }
    if errors.is_empty() {
        let spec = values.spec();
        let spec: Map<String, Value> = spec.into_iter().filter(|(_, v)| !v.is_null()).collect();
        match act::apply::<EndUser>(app, r, &values.name, spec, None).await {
            Ok(()) => {
                tracing::info!(reseller = %who(r), enduser = %values.name, "end user created through the panel");
                return Reply::redirect(&r.path(&format!(
                    "customers/{}?m=created",
                    url_segment(&values.name)
                )));
            }
            Err(refusal) => errors = refused(refusal, t),
        }
    }
    let body = form_html(app, r, &values, &errors, &Default::default(), true);
    page(r, StatusCode::UNPROCESSABLE_ENTITY, t.new_customer, &body)
}

/// The API server's refusal at the form's fields (a name taken at the name field).
fn refused(refusal: Refusal, t: &super::texts::ResellerTexts) -> Errors {
    if refusal.code == 409 && refusal.message.contains("already exists") {
        let mut errors = Errors::default();
        errors.field("name", t.already_exists);
        return errors;
    }
    Errors::from_refusal(&refusal.message, FIELDS)
}

/// An end user's page: its state, its form, its actions.
pub fn detail(app: &App, r: &ResellerRequest<'_>, name: &str) -> Reply {
    let Some(eu) = app.caches.enduser(&r.namespace, name) else {
        return status_page(r.lang, StatusCode::NOT_FOUND);
    };
    let notice = match r.req.query_param("m").as_deref() {
        Some("created") => Some(r.texts().created),
        Some("saved") => Some(r.texts().saved),
        Some("lifted") => Some(r.texts().lifted),
        _ => None,
    };
    render_detail(
        app,
        r,
        &eu,
        &Values::of(&eu),
        &Errors::default(),
        notice,
        StatusCode::OK,
    )
}

fn render_detail(
    app: &App,
    r: &ResellerRequest<'_>,
    eu: &EndUser,
    values: &Values,
    errors: &Errors,
    notice: Option<&str>,
    status: StatusCode,
) -> Reply {
    let t = r.texts();
    let base = r.lang.texts();
    let tz = crate::pages::time_zone(app, &r.namespace);
    let name = eu.name_any();
    let here = r.path(&format!("customers/{}", url_segment(&name)));
    let mut body = crate::pages::notice(notice, "notice");
    let st = eu.status.as_ref();
    let phase_text = st
        .and_then(|s| s.phase)
        .map(|p| phase_label(base, p))
        .unwrap_or("-");
    let _ = write!(
        body,
        "<section aria-labelledby=\"h-state\"><h2 id=\"h-state\">{}</h2><p>{}: <strong>{}</strong></p>",
        esc(base.services),
        esc(t.phase),
        esc(phase_text)
    );
    let services = st.map(|s| s.services.as_slice()).unwrap_or(&[]);
    if !services.is_empty() {
        let _ = write!(
            body,
            "<table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
            esc(t.service),
            esc(base.state),
            esc(base.since)
        );
        for s in services {
            let (class, label) = state_label(base, s.state);
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{}</td></tr>",
                esc(s.service.as_str()),
                esc(label),
                crate::pages::when(s.since.as_ref(), &tz)
            );
        }
        body.push_str("</tbody></table>");
    }
    if let Some(usage) = st.and_then(|s| s.usage.as_ref()) {
        let q = |v: &Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
            esc(v.as_ref().map(|q| q.0.as_str()).unwrap_or("-"))
        };
        let _ = write!(
            body,
            "<p>{}: {} · {}: {} · {}: {} · {}: {}</p>",
            esc(t.disk),
            q(&usage.disk),
            esc(t.memory),
            q(&usage.memory),
            esc(t.traffic_in),
            q(&usage.network_in),
            esc(t.traffic_out),
            q(&usage.network_out)
        );
    }
    body.push_str("</section>");
    // What its domains need in DNS, as its own panel shows it.
    let web = app
        .caches
        .course(&r.namespace, &eu.spec.course_ref.name)
        .is_some_and(|c| c.spec.services.web.is_some());
    let records = st.map(|s| s.dns.as_slice()).unwrap_or(&[]);
    body.push_str(&crate::pages::dns::section(
        base,
        &eu.spec.domains,
        records,
        web,
    ));
    // Actions: suspend or resume, lift locks, delete.
    let suspended = eu.spec.suspended;
    let _ = write!(
        body,
        "<section aria-labelledby=\"h-actions\" class=\"actions\"><h2 id=\"h-actions\">{title}</h2>\
         <form method=\"post\" action=\"{here}/{action}\" class=\"inline\">{csrf}<button type=\"submit\">{label}</button></form>",
        title = esc(t.actions),
        action = if suspended { "unsuspend" } else { "suspend" },
        csrf = csrf(r),
        label = esc(if suspended { t.unsuspend } else { t.suspend }),
    );
    if st.is_some_and(|s| s.mail_locked) {
        let _ = write!(
            body,
            "<p class=\"error\">{}</p><form method=\"post\" action=\"{here}/mail-unlock\" class=\"inline\">{}<button type=\"submit\">{}</button></form>",
            esc(t.mail_locked),
            csrf(r),
            esc(t.mail_unlock)
        );
    }
    if let Some(until) = crate::writes::published_lock(eu) {
        let _ = write!(
            body,
            "<p class=\"error\">{} ({})</p><form method=\"post\" action=\"{here}/login-unlock\" class=\"inline\">{}<button type=\"submit\">{}</button></form>",
            esc(t.login_locked),
            esc(&until
                .to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string()),
            csrf(r),
            esc(t.login_unlock)
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{here}/delete\" class=\"card\">{csrf}\
         <input type=\"checkbox\" id=\"confirm-delete\" name=\"confirm\" value=\"yes\" required>\
         <label for=\"confirm-delete\">{confirm}</label>\
         <button type=\"submit\" class=\"danger\">{delete}</button></form></section>",
        csrf = csrf(r),
        confirm = esc(t.delete_confirm),
        delete = esc(t.delete),
    );
    let locked = act::locked_fields(&eu.metadata);
    body.push_str(&form_html(app, r, values, errors, &locked, false));
    let title = format!("{} ({})", eu.spec.contract_name, eu.spec.login_id);
    page(r, status, &title, &body)
}

/// Saves the form: the fields changed, plus the panel's own; a changed field another applier
/// owns is refused by name, and nothing is written.
pub async fn update(app: &App, r: &ResellerRequest<'_>, name: &str) -> Reply {
    let Some(eu) = app.caches.enduser(&r.namespace, name) else {
        return status_page(r.lang, StatusCode::NOT_FOUND);
    };
    let t = r.texts();
    let mut values = Values::from_form(&r.req.form());
    values.name = name.to_owned();
    values.login_id = eu.spec.login_id.clone();
    let mut errors = values.missing(false, t);
    if errors.is_empty() {
        match change(app, r, &eu, values.spec(), None).await {
            Ok(()) => {
                tracing::info!(reseller = %who(r), enduser = %name, "end user saved through the panel");
                return Reply::redirect(
                    &r.path(&format!("customers/{}?m=saved", url_segment(name))),
                );
            }
            Err(e) => errors = e,
        }
    }
    render_detail(
        app,
        r,
        &eu,
        &values,
        &errors,
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}

/// Applies `wanted` over the end user as it is now (see [`act::change`]).
async fn change(
    app: &App,
    r: &ResellerRequest<'_>,
    eu: &EndUser,
    wanted: Map<String, Value>,
    annotations: Option<Map<String, Value>>,
) -> Result<(), Errors> {
    let t = r.texts();
    act::change::<EndUser>(app, r, &eu.name_any(), &wanted, annotations)
        .await
        .map_err(|unchanged| match unchanged {
            Unchanged::OwnedElsewhere(fields) => Errors::owned_elsewhere(fields, t.managed_by),
            Unchanged::Refused(refusal) => refused(refusal, t),
        })
}

/// Suspend, resume, delete, lift the mail lock or the login lock.
pub async fn act(app: &App, r: &ResellerRequest<'_>, name: &str, action: &str) -> Reply {
    let Some(eu) = app.caches.enduser(&r.namespace, name) else {
        return status_page(r.lang, StatusCode::NOT_FOUND);
    };
    let t = r.texts();
    let done =
        |m: &str| Reply::redirect(&r.path(&format!("customers/{}?m={m}", url_segment(name))));
    let result = match action {
        "suspend" | "unsuspend" => {
            let mut wanted = Map::new();
            wanted.insert("suspended".into(), json!(action == "suspend"));
            change(app, r, &eu, wanted, None)
                .await
                .map(|()| done("saved"))
        }
        "mail-unlock" => {
            let mut annotations = Map::new();
            annotations.insert(MAIL_UNLOCK_ANNOTATION.into(), json!("yes"));
            annotate(app, r, name, annotations)
                .await
                .map(|()| done("lifted"))
        }
        "login-unlock" => {
            let mut annotations = Map::new();
            annotations.insert(LOCK_ANNOTATION.into(), Value::Null);
            annotate(app, r, name, annotations)
                .await
                .map(|()| done("lifted"))
        }
        "delete" => {
            if r.req.form().get("confirm").map(String::as_str) != Some("yes") {
                Err(Errors::general(t.delete_confirm))
            } else {
                act::delete::<EndUser>(app, r, name)
                    .await
                    .map(|()| Reply::redirect(&format!("{}?m=deleted", r.path("customers"))))
                    .map_err(|refusal| refused(refusal, t))
            }
        }
        _ => return status_page(r.lang, StatusCode::NOT_FOUND),
    };
    match result {
        Ok(reply) => {
            tracing::info!(reseller = %who(r), enduser = %name, %action, "done through the panel");
            reply
        }
        Err(errors) => render_detail(
            app,
            r,
            &eu,
            &Values::of(&eu),
            &errors,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    }
}

async fn annotate(
    app: &App,
    r: &ResellerRequest<'_>,
    name: &str,
    annotations: Map<String, Value>,
) -> Result<(), Errors> {
    act::annotate::<EndUser>(app, r, name, annotations)
        .await
        .map_err(|refusal| refused(refusal, r.texts()))
}
