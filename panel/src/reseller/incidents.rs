//! Incidents: the list (open first), an incident with its timeline, and the two things a
//! reseller records (docs/incidents.md): the cause, which sends the report, and a deferral of
//! the report with its reason.

use std::fmt::Write as _;

use http::StatusCode;
use kube::ResourceExt;
use oem_crds::Incident;
use serde_json::{Map, json};

use super::act::{self, Unchanged};
use super::form::{Errors, Field};
use super::{ResellerRequest, csrf, page, who};
use crate::app::{App, status_page};
use crate::html::{esc, url_segment};
use crate::i18n::Texts;
use crate::pages::overview::{incident_label, is_open, kind_label};
use crate::pages::when;
use crate::web::Reply;

const FIELDS: &[&str] = &["cause", "reportDeferral"];

/// The incident's phase in the page's language, `-` before the operator set one.
fn phase_text(base: &Texts, incident: &Incident) -> &'static str {
    incident
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .map(|p| incident_label(base, p))
        .unwrap_or("-")
}

/// The list.
pub fn list(app: &App, r: &ResellerRequest<'_>) -> Reply {
    let t = r.texts();
    let base = r.lang.texts();
    let tz = crate::pages::time_zone(app, &r.namespace);
    let mut incidents = app.caches.incidents_in(&r.namespace);
    // Open ones first, each group newest first (the cache's order).
    incidents.sort_by_key(|i| !is_open(i));
    if incidents.is_empty() {
        let body = format!("<p>{}</p>", esc(t.no_incidents));
        return page(r, StatusCode::OK, t.incidents, &body);
    }
    let mut body = format!(
        "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
         <th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
         <th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        esc(t.end_user),
        esc(t.service),
        esc(t.kind),
        esc(t.phase),
        esc(t.started),
        esc(t.resolved),
        esc(t.report_due)
    );
    for incident in incidents {
        let st = incident.status.as_ref();
        let _ = write!(
            body,
            "<tr><td><a href=\"{href}\">{enduser}</a></td><td>{service}</td><td>{kind}</td>\
             <td class=\"{class}\">{phase}</td><td>{started}</td><td>{resolved}</td><td>{due}</td></tr>",
            href = r.path(&format!("incidents/{}", url_segment(&incident.name_any()))),
            enduser = esc(&incident.spec.end_user),
            service = esc(incident.spec.service.as_str()),
            kind = esc(kind_label(base, incident.spec.kind)),
            class = if is_open(&incident) { "down" } else { "up" },
            phase = esc(phase_text(base, &incident)),
            started = when(st.and_then(|s| s.started_at.as_ref()), &tz),
            resolved = when(st.and_then(|s| s.resolved_at.as_ref()), &tz),
            due = when(st.and_then(|s| s.report_due_by.as_ref()), &tz),
        );
    }
    body.push_str("</tbody></table></div>");
    page(r, StatusCode::OK, t.incidents, &body)
}

/// One incident.
pub fn detail(app: &App, r: &ResellerRequest<'_>, name: &str) -> Reply {
    let Some(incident) = app.caches.incident(&r.namespace, name) else {
        return status_page(r.lang, StatusCode::NOT_FOUND);
    };
    let notice = (r.req.query_param("m").as_deref() == Some("saved")).then_some(r.texts().saved);
    render(
        app,
        r,
        &incident,
        &Errors::default(),
        notice,
        StatusCode::OK,
        None,
    )
}

fn render(
    app: &App,
    r: &ResellerRequest<'_>,
    incident: &Incident,
    errors: &Errors,
    notice: Option<&str>,
    status: StatusCode,
    typed: Option<(&str, &str)>,
) -> Reply {
    let t = r.texts();
    let base = r.lang.texts();
    let tz = crate::pages::time_zone(app, &r.namespace);
    let st = incident.status.as_ref();
    let name = incident.name_any();
    let mut body = crate::pages::notice(notice, "notice");
    let _ = write!(
        body,
        "<dl><dt>{}</dt><dd><a href=\"{}\">{}</a></dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd>\
         <dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd>\
         <dt>{}</dt><dd>{}</dd></dl>",
        esc(t.end_user),
        r.path(&format!(
            "customers/{}",
            url_segment(&incident.spec.end_user)
        )),
        esc(&incident.spec.end_user),
        esc(t.service),
        esc(incident.spec.service.as_str()),
        esc(t.kind),
        esc(kind_label(base, incident.spec.kind)),
        esc(t.phase),
        esc(phase_text(base, incident)),
        esc(t.started),
        when(st.and_then(|s| s.started_at.as_ref()), &tz),
        esc(t.resolved),
        when(st.and_then(|s| s.resolved_at.as_ref()), &tz),
        esc(t.report_due),
        when(st.and_then(|s| s.report_due_by.as_ref()), &tz),
        esc(t.report_sent),
        when(st.and_then(|s| s.report_sent_at.as_ref()), &tz),
    );
    let _ = write!(
        body,
        "<section aria-labelledby=\"h-timeline\"><h2 id=\"h-timeline\">{}</h2><table><thead><tr>\
         <th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        esc(t.timeline),
        esc(t.time),
        esc(t.event),
        esc(t.message)
    );
    for entry in st.map(|s| s.timeline.as_slice()).unwrap_or(&[]) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            when(Some(&entry.time), &tz),
            esc(&entry.event),
            esc(entry.message.as_deref().unwrap_or(""))
        );
    }
    body.push_str("</tbody></table></section>");
    let here = r.path(&format!("incidents/{}", url_segment(&name)));
    let cause = typed
        .filter(|(what, _)| *what == "cause")
        .map(|(_, v)| v)
        .or(incident.spec.cause.as_deref())
        .unwrap_or_default();
    let deferral = typed
        .filter(|(what, _)| *what == "reportDeferral")
        .map(|(_, v)| v)
        .or(incident
            .spec
            .report_deferral
            .as_ref()
            .map(|d| d.reason.as_str()))
        .unwrap_or_default();
    let locked = act::locked_fields(&incident.metadata);
    let _ = write!(
        body,
        "{summary}<form method=\"post\" action=\"{here}\" class=\"card\">{csrf}\
         <input type=\"hidden\" name=\"what\" value=\"cause\">{field}<button type=\"submit\">{label}</button></form>",
        summary = errors.summary(t.refused),
        csrf = csrf(r),
        field = Field::new("cause", t.cause, cause)
            .kind("textarea")
            .required()
            .managed_by(locked.get("cause").map(String::as_str))
            .render(errors, t.managed_by),
        label = esc(t.record_cause),
    );
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{here}\" class=\"card\">{csrf}\
         <input type=\"hidden\" name=\"what\" value=\"reportDeferral\">{field}<button type=\"submit\">{label}</button></form>",
        csrf = csrf(r),
        field = Field::new("reportDeferral", t.deferral, deferral)
            .kind("textarea")
            .required()
            .managed_by(locked.get("reportDeferral").map(String::as_str))
            .render(errors, t.managed_by),
        label = esc(t.defer),
    );
    let title = format!(
        "{} / {}",
        incident.spec.end_user,
        incident.spec.service.as_str()
    );
    page(r, status, &title, &body)
}

/// Records the cause or the deferral.
pub async fn record(app: &App, r: &ResellerRequest<'_>, name: &str) -> Reply {
    let Some(incident) = app.caches.incident(&r.namespace, name) else {
        return status_page(r.lang, StatusCode::NOT_FOUND);
    };
    let t = r.texts();
    let form = r.req.form();
    let what = form.get("what").map(String::as_str).unwrap_or_default();
    let text = form
        .get(what)
        .map(|v| v.replace("\r\n", "\n").trim().to_owned())
        .unwrap_or_default();
    let mut wanted = Map::new();
    match what {
        "cause" => wanted.insert("cause".into(), json!(text)),
        "reportDeferral" => wanted.insert("reportDeferral".into(), json!({"reason": text})),
        _ => return status_page(r.lang, StatusCode::NOT_FOUND),
    };
    let mut errors = Errors::default();
    if text.is_empty() {
        errors.field(what, t.required);
    } else {
        let written = act::change::<Incident>(app, r, name, &wanted, None)
            .await
            .map_err(|unchanged| match unchanged {
                Unchanged::OwnedElsewhere(fields) => Errors::owned_elsewhere(fields, t.managed_by),
                Unchanged::Refused(refusal) => Errors::from_refusal(&refusal.message, FIELDS),
            });
        match written {
            Ok(()) => {
                tracing::info!(reseller = %who(r), incident = %name, %what, "recorded through the panel");
                return Reply::redirect(
                    &r.path(&format!("incidents/{}?m=saved", url_segment(name))),
                );
            }
            Err(e) => errors = e,
        }
    }
    render(
        app,
        r,
        &incident,
        &errors,
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some((what, &text)),
    )
}
