//! The end user's overview, all from the caches: its phase and each service's state
//! (`status.services`), the maintenance planned for it, its course and limits, usage against the course, its domains with the
//! DNS records they need, and the incidents that concern it.

use std::fmt::Write;

use http::StatusCode;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use oem_crds::course::Course;
use oem_crds::enduser::{EndUserPhase, HealthState};
use oem_crds::incident::{IncidentKind, IncidentPhase};
use oem_crds::quantity;

use super::{dns, time_zone, user_page, when};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::app::{App, UserRequest};
use crate::cache::PlannedWork;
use crate::html::esc;
use crate::i18n::{Lang, Texts};
use crate::web::Reply;

pub fn page(app: &App, user: &UserRequest<'_>) -> Reply {
    let texts = user.lang.texts();
    let eu = &user.enduser;
    let ns = &user.session.owner.namespace;
    let tz = time_zone(app, ns);
    let course = app.caches.course(ns, &eu.spec.course_ref.name);
    let status = eu.status.clone().unwrap_or_default();
    let mut body = String::new();

    let (phase_class, phase) = status
        .phase
        .map(|p| (format!("{p:?}").to_ascii_lowercase(), phase_label(texts, p)))
        .unwrap_or_else(|| ("none".into(), "-"));
    let _ = write!(
        body,
        "<section aria-labelledby=\"h-services\"><h2 id=\"h-services\">{}</h2>\
         <p>{}: <strong class=\"phase phase-{}\">{}</strong></p>",
        esc(texts.services),
        esc(texts.phase),
        esc(&phase_class),
        esc(phase)
    );
    if status.services.is_empty() {
        let _ = write!(body, "<p>{}</p>", esc(texts.not_probed_yet));
    } else {
        let _ = write!(
            body,
            "<table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
             <th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
            esc(texts.service),
            esc(texts.state),
            esc(texts.since),
            esc(texts.detail)
        );
        for s in &status.services {
            let (class, label) = state_label(texts, s.state);
            let _ = write!(
                body,
                "<tr><th scope=\"row\">{}</th><td><span class=\"state {class}\">{}</span></td>\
                 <td>{}</td><td>{}</td></tr>",
                esc(s.service.as_str()),
                esc(label),
                when(s.since.as_ref(), &tz),
                esc(s.message.as_deref().unwrap_or(""))
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");

    let planned = app
        .caches
        .maintenance_for(ns, &user.session.owner.name, jiff::Timestamp::now());
    body.push_str(&maintenance_section(texts, user.lang, &planned, &tz));
    let chosen_php = eu.spec.web.as_ref().and_then(|w| w.php_version.as_deref());
    body.push_str(&course_section(texts, course.as_deref(), chosen_php));
    body.push_str(&usage_section(texts, course.as_deref(), &status.usage, &tz));

    let web = course
        .as_ref()
        .is_some_and(|c| c.spec.services.web.is_some());
    body.push_str(&dns::section(texts, &eu.spec.domains, &status.dns, web));

    let incidents = app.caches.incidents_of(ns, &user.session.owner.name);
    let (open, past): (Vec<_>, Vec<_>) = incidents.iter().partition(|i| is_open(i));
    for (id, title, list) in [
        ("h-open", texts.incidents_open, open),
        ("h-past", texts.incidents_past, past),
    ] {
        let _ = write!(
            body,
            "<section aria-labelledby=\"{id}\"><h2 id=\"{id}\">{}</h2>",
            esc(title)
        );
        if list.is_empty() {
            let _ = write!(body, "<p>{}</p>", esc(texts.none));
        } else {
            let _ = write!(
                body,
                "<table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
                 <th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
                esc(texts.service),
                esc(texts.state),
                esc(texts.started),
                esc(texts.resolved)
            );
            for i in list {
                let st = i.status.clone().unwrap_or_default();
                let phase = st.phase.map(|p| incident_label(texts, p)).unwrap_or("-");
                let _ = write!(
                    body,
                    "<tr><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(i.spec.service.as_str()),
                    esc(kind_label(texts, i.spec.kind)),
                    esc(phase),
                    when(st.started_at.as_ref(), &tz),
                    when(st.resolved_at.as_ref(), &tz)
                );
            }
            body.push_str("</tbody></table>");
        }
        body.push_str("</section>");
    }
    user_page(app, user, StatusCode::OK, texts.overview, &body)
}

/// The maintenance windows that concern the end user, told in advance (SPEC §3).
fn maintenance_section(
    texts: &Texts,
    lang: Lang,
    planned: &[PlannedWork],
    tz: &jiff::tz::TimeZone,
) -> String {
    let mut out = format!(
        "<section aria-labelledby=\"h-maintenance\"><h2 id=\"h-maintenance\">{}</h2>",
        esc(texts.maintenance_title)
    );
    if planned.is_empty() {
        let _ = write!(out, "<p>{}</p></section>", esc(texts.maintenance_none));
        return out;
    }
    let _ = write!(
        out,
        "<table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
         <th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        esc(texts.maintenance_start),
        esc(texts.maintenance_end),
        esc(texts.service),
        esc(texts.maintenance_work),
        esc(texts.state)
    );
    for work in planned {
        let services = if work.services.is_empty() {
            texts.maintenance_every_service.to_owned()
        } else {
            work.services
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (first, second) = match lang {
            Lang::Ja => (&work.reason_ja, &work.reason_en),
            Lang::En => (&work.reason_en, &work.reason_ja),
        };
        let reason = first.as_deref().or(second.as_deref()).unwrap_or("-");
        let (class, state) = if work.open {
            ("down", texts.maintenance_open)
        } else {
            ("unknown", texts.maintenance_scheduled)
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td><span class=\"state {class}\">{}</span></td></tr>",
            when(Some(&Time(work.start)), tz),
            when(Some(&Time(work.end)), tz),
            esc(&services),
            esc(reason),
            esc(state)
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

/// A service's state: its CSS class and its words (the same in both panels).
pub fn state_label(texts: &Texts, state: HealthState) -> (&'static str, &'static str) {
    match state {
        HealthState::Up => ("up", texts.up),
        HealthState::Down => ("down", texts.down),
        HealthState::Unknown => ("unknown", texts.unknown),
    }
}

pub fn phase_label(texts: &Texts, phase: EndUserPhase) -> &'static str {
    match phase {
        EndUserPhase::Scheduled => texts.phase_scheduled,
        EndUserPhase::Provisioning => texts.phase_provisioning,
        EndUserPhase::Active => texts.phase_active,
        EndUserPhase::Suspended => texts.phase_suspended,
        EndUserPhase::Degraded => texts.phase_degraded,
        EndUserPhase::Terminating => texts.phase_terminating,
    }
}

/// Whether an incident is still open (neither resolved nor reported).
pub fn is_open(incident: &oem_crds::Incident) -> bool {
    !matches!(
        incident.status.as_ref().and_then(|s| s.phase),
        Some(IncidentPhase::Resolved | IncidentPhase::Reported)
    )
}

/// An incident's phase in the page's language.
pub fn incident_label(texts: &Texts, phase: IncidentPhase) -> &'static str {
    match phase {
        IncidentPhase::Open => texts.incident_open,
        IncidentPhase::Notified => texts.incident_notified,
        IncidentPhase::Remediating => texts.incident_remediating,
        IncidentPhase::Resolved => texts.incident_resolved,
        IncidentPhase::Reported => texts.incident_reported,
    }
}

/// An incident's kind in the page's language.
pub fn kind_label(texts: &Texts, kind: IncidentKind) -> &'static str {
    match kind {
        IncidentKind::ServiceDown => texts.kind_service_down,
        IncidentKind::HostDown => texts.kind_host_down,
        IncidentKind::MassMail => texts.kind_mass_mail,
    }
}

/// The course, with the PHP version the end user runs (its choice, else the course's).
fn course_section(texts: &Texts, course: Option<&Course>, chosen_php: Option<&str>) -> String {
    let mut out = format!(
        "<section aria-labelledby=\"h-course\"><h2 id=\"h-course\">{}</h2>",
        esc(texts.course)
    );
    let Some(course) = course else {
        let _ = write!(out, "<p>-</p></section>");
        return out;
    };
    let spec = &course.spec;
    let php = spec
        .services
        .web
        .as_ref()
        .map(|w| chosen_php.unwrap_or(&w.php_version).to_owned())
        .unwrap_or_else(|| "-".into());
    let _ = write!(
        out,
        "<p class=\"course-name\">{}</p><dl>\
         <dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd>\
         <dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd>\
         <dt>{}</dt><dd>{} <small>{}</small></dd></dl></section>",
        esc(&spec.display_name),
        esc(texts.cpu),
        esc(&spec.resources.cpu.0),
        esc(texts.memory),
        esc(&spec.resources.memory.0),
        esc(texts.disk),
        esc(&spec.resources.storage.0),
        esc(texts.bandwidth),
        esc(&spec.resources.bandwidth.0),
        esc(texts.domains),
        spec.limits.domains,
        esc(texts.mail_accounts),
        spec.limits.mail_accounts,
        esc(texts.databases),
        spec.limits.databases,
        esc(texts.ftp_accounts),
        spec.limits.ftp_accounts,
        esc(texts.php_version),
        esc(&php),
        esc(texts.php_note),
    );
    out
}

fn usage_section(
    texts: &Texts,
    course: Option<&Course>,
    usage: &Option<oem_crds::Usage>,
    tz: &jiff::tz::TimeZone,
) -> String {
    let usage = usage.clone().unwrap_or_default();
    let mut out = format!(
        "<section aria-labelledby=\"h-usage\"><h2 id=\"h-usage\">{}</h2>\
         <table><thead><tr><th scope=\"col\"></th><th scope=\"col\">{}</th>\
         <th scope=\"col\">{}</th></tr></thead><tbody>",
        esc(texts.usage),
        esc(texts.used),
        esc(texts.allowed)
    );
    let resources = course.map(|c| &c.spec.resources);
    let rows = [
        (texts.disk, &usage.disk, resources.map(|r| &r.storage)),
        (texts.memory, &usage.memory, resources.map(|r| &r.memory)),
        (texts.traffic_in, &usage.network_in, None),
        (texts.traffic_out, &usage.network_out, None),
    ];
    for (label, used, allowed) in rows {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td></tr>",
            esc(label),
            used_cell(texts, used.as_ref(), allowed),
            esc(allowed.map(|q| q.0.as_str()).unwrap_or("-"))
        );
    }
    let _ = write!(
        out,
        "</tbody></table><p class=\"muted\">{}: {}</p></section>",
        esc(texts.measured_at),
        super::when(usage.updated_at.as_ref(), tz)
    );
    out
}

/// `3.2Gi (6%)` with a meter when there is a limit.
fn used_cell(texts: &Texts, used: Option<&Quantity>, allowed: Option<&Quantity>) -> String {
    let Some(used) = used else {
        return esc(texts.not_measured);
    };
    let percent = allowed
        .and_then(|a| quantity::value(&a.0))
        .filter(|a| *a > 0.0)
        .and_then(|a| quantity::value(&used.0).map(|u| (u / a * 100.0).round()));
    match percent {
        Some(p) => format!(
            "{} ({p}%) <meter min=\"0\" max=\"100\" value=\"{}\">{p}%</meter>",
            esc(&used.0),
            p.min(100.0)
        ),
        None => esc(&used.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_shows_the_share_of_the_limit() {
        let texts = crate::i18n::Lang::En.texts();
        let cell = used_cell(
            texts,
            Some(&Quantity("5Gi".into())),
            Some(&Quantity("50Gi".into())),
        );
        assert!(cell.starts_with("5Gi (10%)"), "{cell}");
        assert_eq!(used_cell(texts, None, None), "not measured");
        assert_eq!(
            used_cell(texts, Some(&Quantity("<b>".into())), None),
            "&lt;b&gt;"
        );
    }
}
