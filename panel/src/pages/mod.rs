//! The pages: login (`login`), the end user's overview (`overview`, with `dns` for the records
//! its domains need), its service credentials (`credentials`) and its password (`password`).
//! Every value that is not a literal here goes through `html::esc`.

pub mod credentials;
pub mod dns;
pub mod login;
pub mod overview;
pub mod password;
pub mod php;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::app::{App, UserRequest};
use crate::auth::session::Owner;
use crate::html::{self, Frame, url_segment};
use crate::web::Reply;

/// The overview's path.
pub fn home_of(owner: &Owner) -> String {
    format!(
        "/u/{}/{}",
        url_segment(&owner.namespace),
        url_segment(&owner.name)
    )
}

/// A whole end-user page with the brand, the navigation and the logout form.
pub fn user_page(
    app: &App,
    user: &UserRequest<'_>,
    status: http::StatusCode,
    title: &str,
    body: &str,
) -> Reply {
    let texts = user.lang.texts();
    let home = home_of(&user.session.owner);
    let reseller = app.caches.reseller_of(&user.session.owner.namespace);
    let brand = brand(app, &user.session.owner.namespace);
    let frame = Frame {
        lang: user.lang,
        brand: &brand,
        reseller: reseller.as_deref(),
        title,
        here: &user.req.path,
        nav: vec![
            (home.clone(), texts.overview),
            (format!("{home}/credentials"), texts.credentials),
            (format!("{home}/php"), texts.php_title),
            (format!("{home}/password"), texts.change_password),
        ],
        logout_csrf: Some(&user.session.csrf),
    };
    Reply::html(status, html::page(&frame, body))
}

/// The reseller's brand name for pages in its namespace; empty when unknown (never the
/// provider's name).
pub fn brand(app: &App, namespace: &str) -> String {
    app.caches
        .reseller_of(namespace)
        .map(|r| r.spec.display_name.clone())
        .unwrap_or_default()
}

/// The time zone of the reseller's business calendar (Asia/Tokyo by default).
pub fn time_zone(app: &App, namespace: &str) -> jiff::tz::TimeZone {
    app.caches
        .reseller_of(namespace)
        .and_then(|r| jiff::tz::TimeZone::get(&r.spec.business_calendar.time_zone).ok())
        .or_else(|| jiff::tz::TimeZone::get("Asia/Tokyo").ok())
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

/// A time as `2026-12-03 19:05 JST`, escaped.
pub fn when(time: Option<&Time>, tz: &jiff::tz::TimeZone) -> String {
    match time {
        Some(t) => html::esc(
            &t.0.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string(),
        ),
        None => "-".to_owned(),
    }
}

/// A notice paragraph (`role="status"` so screen readers announce it), or nothing.
pub fn notice(text: Option<&str>, class: &str) -> String {
    match text {
        Some(t) => format!("<p class=\"{class}\" role=\"status\">{}</p>", html::esc(t)),
        None => String::new(),
    }
}

/// The hidden CSRF field of a form.
pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        html::esc(token)
    )
}

/// The end user's name as a log field (never a value of a Secret).
pub fn who(user: &UserRequest<'_>) -> String {
    format!(
        "{}/{}",
        user.enduser.namespace().unwrap_or_default(),
        user.enduser.name_any()
    )
}
