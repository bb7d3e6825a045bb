//! The resellers' panel (SPEC §2), under `/r/<reseller>/`: sign-in with the logins the
//! provider issues (`login`), customers (`customers`), courses (`courses`), incidents
//! (`incidents`) and usage with charts (`usage`). Pages are built from the caches, filtered to
//! the reseller's namespace that the session names (never the path); every write acts as the
//! reseller's panel user (`act`), so the API server's RBAC and webhooks judge it as the
//! reseller's own.

pub mod act;
pub mod courses;
pub mod customer;
pub mod customers;
pub mod form;
pub mod incidents;
pub mod login;
pub mod texts;
pub mod usage;

use std::sync::Arc;

use http::{Method, StatusCode};
use oem_crds::Reseller;
use oem_crds::reseller::NAMESPACE_PREFIX;

use crate::app::{App, status_page};
use crate::auth::session::{self, Session};
use crate::html::{self, Frame, url_segment};
use crate::i18n::Lang;
use crate::web::{Reply, Request};

/// A request of a signed-in reseller, checked: the session is a reseller's, of the reseller
/// the path names.
pub struct ResellerRequest<'a> {
    pub req: &'a Request,
    pub lang: Lang,
    pub session: Session,
    pub reseller: Arc<Reseller>,
    /// The reseller's name and namespace.
    pub name: String,
    pub namespace: String,
}

impl ResellerRequest<'_> {
    pub fn texts(&self) -> &'static texts::ResellerTexts {
        texts::of(self.lang)
    }

    /// A path of this reseller's panel.
    pub fn path(&self, rest: &str) -> String {
        format!("/r/{}/{rest}", url_segment(&self.name))
    }
}

/// The customer list, the reseller's home.
pub fn home_of(reseller: &str) -> String {
    format!("/r/{}/customers", url_segment(reseller))
}

/// Answers a path under `/r/<reseller>/`.
pub async fn route(app: &App, req: &Request, lang: Lang, reseller: &str, rest: &[&str]) -> Reply {
    match (&req.method, rest) {
        (&Method::GET, ["login"]) => return login::form(app, req, lang, reseller),
        (&Method::POST, ["login"]) => return login::submit(app, req, lang, reseller).await,
        _ => {}
    }
    let Some(session) = app.reseller_session(req) else {
        return match app.caches.reseller(reseller) {
            Some(_) => Reply::redirect(&format!("/r/{}/login?m=ended", url_segment(reseller))),
            None => status_page(lang, StatusCode::NOT_FOUND),
        };
    };
    // Another reseller's path is 404, as a path that means nothing.
    if session.owner.reseller_name() != reseller {
        return status_page(lang, StatusCode::NOT_FOUND);
    }
    if req.method == Method::POST
        && !session::csrf_ok(&session, req.form().get("csrf").map(String::as_str))
    {
        return status_page(lang, StatusCode::FORBIDDEN);
    }
    let Some(found) = app.caches.reseller(reseller) else {
        return status_page(lang, StatusCode::NOT_FOUND);
    };
    let r = ResellerRequest {
        req,
        lang,
        session,
        reseller: found,
        name: reseller.to_owned(),
        namespace: format!("{NAMESPACE_PREFIX}{reseller}"),
    };
    match (&req.method, rest) {
        (&Method::GET, [] | [""]) => Reply::redirect(&home_of(reseller)),
        (&Method::GET, ["customers"]) => customers::list(app, &r),
        (&Method::GET, ["customers", "new"]) => customer::new_form(app, &r),
        (&Method::POST, ["customers", "new"]) => customer::create(app, &r).await,
        (&Method::GET, ["customers", name]) => customer::detail(app, &r, name),
        (&Method::POST, ["customers", name]) => customer::update(app, &r, name).await,
        (&Method::POST, ["customers", name, action]) => customer::act(app, &r, name, action).await,
        (&Method::GET, ["courses"]) => courses::list(app, &r),
        (&Method::GET, ["courses", "new"]) => courses::new_form(app, &r),
        (&Method::POST, ["courses", "new"]) => courses::create(app, &r).await,
        (&Method::GET, ["courses", name]) => courses::detail(app, &r, name),
        (&Method::POST, ["courses", name]) => courses::update(app, &r, name).await,
        (&Method::GET, ["incidents"]) => incidents::list(app, &r),
        (&Method::GET, ["incidents", name]) => incidents::detail(app, &r, name),
        (&Method::POST, ["incidents", name]) => incidents::record(app, &r, name).await,
        (&Method::GET, ["usage"]) => usage::page(app, &r).await,
        _ => status_page(lang, StatusCode::NOT_FOUND),
    }
}

/// A whole reseller page: brand, navigation, logout.
pub fn page(r: &ResellerRequest<'_>, status: StatusCode, title: &str, body: &str) -> Reply {
    let t = r.texts();
    let frame = Frame {
        lang: r.lang,
        brand: &r.reseller.spec.display_name,
        reseller: Some(&r.reseller),
        title,
        here: &r.req.path,
        nav: vec![
            (r.path("customers"), t.customers),
            (r.path("courses"), t.courses),
            (r.path("incidents"), t.incidents),
            (r.path("usage"), t.usage),
        ],
        logout_csrf: Some(&r.session.csrf),
    };
    Reply::html(status, html::page(&frame, body))
}

/// The hidden CSRF field of this session's forms.
pub fn csrf(r: &ResellerRequest<'_>) -> String {
    crate::pages::csrf_field(&r.session.csrf)
}

/// A reseller's write as a log field: who acted on what (never a value).
pub fn who(r: &ResellerRequest<'_>) -> String {
    format!("{}/{}", r.name, r.session.owner.name)
}

#[cfg(test)]
mod flow_tests;
