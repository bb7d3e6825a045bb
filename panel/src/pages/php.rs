//! The end user's PHP version (SPEC §3, "change what the course allows"): among the course's
//! `phpVersion` and `allowedPhpVersions`, written to the EndUser's `spec.web.phpVersion` under
//! the end user's own field manager (`writes::choose_php`). A version the course does not
//! offer is refused before anything is written (and by the admission webhook and the operator
//! besides); a version the reseller's GitOps applies is left to it.

use std::fmt::Write as _;

use http::StatusCode;

use super::{csrf_field, notice, user_page, who};
use crate::app::{App, UserRequest};
use crate::html::esc;
use crate::web::Reply;
use crate::writes;

/// What went wrong with a choice.
enum Refused {
    NotAllowed,
    ManagedElsewhere,
    Unavailable,
}

/// The form.
pub fn form(app: &App, user: &UserRequest<'_>) -> Reply {
    let saved = user.req.query_param("m").as_deref() == Some("saved");
    render(app, user, StatusCode::OK, saved, None)
}

fn render(
    app: &App,
    user: &UserRequest<'_>,
    status: StatusCode,
    saved: bool,
    refused: Option<Refused>,
) -> Reply {
    let texts = user.lang.texts();
    let ns = &user.session.owner.namespace;
    let eu = &user.enduser;
    let course = app.caches.course(ns, &eu.spec.course_ref.name);
    let web = course.as_ref().and_then(|c| c.spec.services.web.clone());
    let chosen = eu.spec.web.as_ref().and_then(|w| w.php_version.clone());
    let current = chosen
        .or_else(|| web.as_ref().map(|w| w.php_version.clone()))
        .unwrap_or_else(|| "-".to_owned());
    let mut body = notice(saved.then_some(texts.php_saved), "notice");
    let _ = write!(
        body,
        "<p>{}: <strong>PHP {}</strong></p>",
        esc(texts.php_current),
        esc(&current)
    );
    let choices = web.as_ref().map(|w| w.choices()).unwrap_or_default();
    if choices.len() < 2 {
        let _ = write!(body, "<p>{}</p>", esc(texts.php_only_one));
        return user_page(app, user, status, texts.php_title, &body);
    }
    let (error, described) = match refused {
        Some(why) => {
            let message = match why {
                Refused::NotAllowed => texts.php_not_allowed,
                Refused::ManagedElsewhere => texts.php_managed_elsewhere,
                Refused::Unavailable => texts.service_unavailable,
            };
            (
                format!(
                    "<p class=\"error\" role=\"alert\" id=\"php_version-error\">{}</p>",
                    esc(message)
                ),
                " aria-invalid=\"true\" aria-describedby=\"php_version-error\"",
            )
        }
        None => (String::new(), ""),
    };
    let mut options = String::new();
    for version in choices {
        let selected = if version == current { " selected" } else { "" };
        let _ = write!(
            options,
            "<option value=\"{v}\"{selected}>PHP {v}</option>",
            v = esc(version)
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{action}\" class=\"card\">{csrf}\
         <label for=\"php_version\">{label}</label>\
         <select id=\"php_version\" name=\"php_version\"{described}>{options}</select>{error}\
         <button type=\"submit\">{save}</button></form>",
        action = esc(&user.req.path),
        csrf = csrf_field(&user.session.csrf),
        label = esc(texts.php_choose),
        save = esc(texts.php_save),
    );
    user_page(app, user, status, texts.php_title, &body)
}

/// Writes the choice.
pub async fn submit(app: &App, user: &UserRequest<'_>) -> Reply {
    let ns = &user.session.owner.namespace;
    let eu = &user.enduser;
    let version = user
        .req
        .form()
        .get("php_version")
        .cloned()
        .unwrap_or_default();
    let allowed = app
        .caches
        .course(ns, &eu.spec.course_ref.name)
        .and_then(|c| c.spec.services.web.clone())
        .is_some_and(|w| w.allows(&version));
    if !allowed {
        return render(
            app,
            user,
            StatusCode::UNPROCESSABLE_ENTITY,
            false,
            Some(Refused::NotAllowed),
        );
    }
    match writes::choose_php(&app.client, eu, &version).await {
        Ok(()) => {
            tracing::info!(enduser = %who(user), %version, "PHP version chosen in the panel");
            Reply::redirect(&format!(
                "{}/php?m=saved",
                super::home_of(&user.session.owner)
            ))
        }
        Err(error) => {
            tracing::warn!(enduser = %who(user), %error, "choosing the PHP version failed");
            let why = if error.is_conflict() {
                Refused::ManagedElsewhere
            } else {
                Refused::Unavailable
            };
            let status = if error.is_conflict() {
                StatusCode::CONFLICT
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            render(app, user, status, false, Some(why))
        }
    }
}
