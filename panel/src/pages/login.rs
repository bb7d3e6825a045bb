//! Logging in and out. The login page of a reseller is `/login/<reseller>` (login IDs are unique
//! within a reseller only, and the page carries that reseller's brand). A wrong password and an
//! unknown login ID get the same answer after the same work (a decoy hash).

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;
use jiff::Timestamp;
use kube::ResourceExt;
use oem_crds::EndUser;

use crate::app::{App, password_secret, status_page};
use crate::auth::limiter::{LoginKey, Verdict};
use crate::auth::password::SecretKey;
use crate::auth::session::Owner;
use crate::auth::{random_token, same_secret};
use crate::html::{self, Frame, esc, url_segment};
use crate::i18n::Lang;
use crate::web::{Reply, Request};
use crate::writes;

/// The login form; `m` in the query picks a notice (logged out, password changed, session ended).
pub fn form(app: &App, req: &Request, lang: Lang, reseller: &str) -> Reply {
    let texts = lang.texts();
    let message = match req.query_param("m").as_deref() {
        Some("out") => Some(texts.logged_out),
        Some("changed") => Some(texts.password_changed_login_again),
        Some("ended") => Some(texts.session_ended),
        _ => None,
    };
    render(app, lang, reseller, StatusCode::OK, "", message, None)
}

/// The end users' form of `reseller`, in its brand.
#[allow(clippy::too_many_arguments)]
fn render(
    app: &App,
    lang: Lang,
    reseller: &str,
    status: StatusCode,
    login_id: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Reply {
    let Some(found) = app.caches.reseller(reseller) else {
        return status_page(lang, StatusCode::NOT_FOUND);
    };
    let texts = lang.texts();
    let path = format!("/login/{}", url_segment(reseller));
    SignIn {
        lang,
        reseller: &found,
        title: texts.login_title,
        path: &path,
        login_label: texts.login_id,
        login_max: 32,
    }
    .render(app, status, login_id, notice, error)
}

/// A sign-in page (the end users' and the resellers'): which form, under whose brand.
pub struct SignIn<'a> {
    pub lang: Lang,
    /// Whose brand the page carries.
    pub reseller: &'a oem_crds::Reseller,
    pub title: &'a str,
    /// The page's path, where the form posts too.
    pub path: &'a str,
    pub login_label: &'a str,
    /// The longest login ID the field takes.
    pub login_max: usize,
}

impl SignIn<'_> {
    /// The form with a fresh double-submit token (cookie and hidden field).
    pub fn render(
        &self,
        app: &App,
        status: StatusCode,
        login_id: &str,
        notice: Option<&str>,
        error: Option<&str>,
    ) -> Reply {
        let texts = self.lang.texts();
        let token = random_token();
        let error_html = match error {
            Some(e) => format!(
                "<p class=\"error\" role=\"alert\" id=\"login-error\">{}</p>",
                esc(e)
            ),
            None => String::new(),
        };
        let described = if error.is_some() {
            " aria-describedby=\"login-error\""
        } else {
            ""
        };
        let body = format!(
            "{notice}{error_html}\
             <form method=\"post\" action=\"{action}\" class=\"card\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
             <label for=\"login_id\">{l_id}</label>\
             <input id=\"login_id\" name=\"login_id\" autocomplete=\"username\" required \
             autocapitalize=\"none\" spellcheck=\"false\" maxlength=\"{max}\" value=\"{login_id}\"{described}>\
             <label for=\"password\">{l_pw}</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" \
             required maxlength=\"128\"{described}>\
             <button type=\"submit\">{submit}</button></form>",
            notice = super::notice(notice, "notice"),
            action = esc(self.path),
            token = esc(&token),
            l_id = esc(self.login_label),
            max = self.login_max,
            login_id = esc(login_id),
            l_pw = esc(texts.password),
            submit = esc(texts.login_button),
        );
        let frame = Frame {
            lang: self.lang,
            brand: &self.reseller.spec.display_name,
            reseller: Some(self.reseller),
            title: self.title,
            here: self.path,
            nav: Vec::new(),
            logout_csrf: None,
        };
        let cookies = app.cookies();
        Reply::html(status, html::page(&frame, &body)).with_cookie(cookies.set(
            cookies.login_name(),
            &token,
            Some(3600),
        ))
    }
}

/// Whether a sign-in form carries the double-submit token of its cookie.
pub fn form_token_ok(app: &App, req: &Request, form: &HashMap<String, String>) -> bool {
    let presented = form.get("csrf").map(String::as_str).unwrap_or_default();
    let expected = req.cookie(app.cookies().login_name()).unwrap_or_default();
    !expected.is_empty() && same_secret(presented.as_bytes(), expected.as_bytes())
}

/// Checks a login.
pub async fn submit(app: &App, req: &Request, lang: Lang, reseller: &str) -> Reply {
    if app.caches.reseller(reseller).is_none() {
        return status_page(lang, StatusCode::NOT_FOUND);
    }
    let form = req.form();
    let cookies = app.cookies();
    if !form_token_ok(app, req, &form) {
        return status_page(lang, StatusCode::FORBIDDEN);
    }
    let texts = lang.texts();
    let login_id = form.get("login_id").map(|s| s.trim()).unwrap_or_default();
    let given = form.get("password").map(String::as_str).unwrap_or_default();
    let key = LoginKey {
        reseller: reseller.to_owned(),
        login_id: login_id.to_owned(),
    };
    let address = req.client_ip(app.config.client_address_header.as_deref());
    let enduser = app.caches.enduser_by_login(reseller, login_id);
    let published = enduser.as_deref().and_then(writes::published_lock);
    let verdict = app
        .auth()
        .limiter
        .check(&key, address, published, Timestamp::now());
    if verdict != Verdict::Allowed {
        tracing::info!(%reseller, login = %login_id, ?verdict, "login refused: locked");
        let status = StatusCode::TOO_MANY_REQUESTS;
        return render(
            app,
            lang,
            reseller,
            status,
            login_id,
            None,
            Some(texts.login_locked),
        );
    }
    let checked = match &enduser {
        Some(eu) => check_password(app, eu, given).await,
        None => {
            // The same work as a wrong password; the answer is "wrong" either way.
            let _ = app.hasher.verify(given, &app.decoy).await;
            Ok(None)
        }
    };
    let version = match checked {
        Ok(version) => version,
        Err(()) => {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            return render(
                app,
                lang,
                reseller,
                status,
                login_id,
                None,
                Some(texts.service_unavailable),
            );
        }
    };
    let (Some(eu), Some(version)) = (enduser, version) else {
        let locked = app.auth().limiter.failed(&key, address, Timestamp::now());
        tracing::info!(%reseller, login = %login_id, %address, "login refused: wrong password or login ID");
        if let (Some(until), Some(eu)) = (locked, app.caches.enduser_by_login(reseller, login_id)) {
            tracing::warn!(%reseller, login = %login_id, %until, "login locked after repeated wrong passwords");
            publish_lock(app, eu, key.clone(), Some(until));
            let status = StatusCode::TOO_MANY_REQUESTS;
            return render(
                app,
                lang,
                reseller,
                status,
                login_id,
                None,
                Some(texts.login_locked),
            );
        }
        let status = StatusCode::UNAUTHORIZED;
        return render(
            app,
            lang,
            reseller,
            status,
            login_id,
            None,
            Some(texts.login_failed),
        );
    };
    let owner = Owner::end_user(&eu.namespace().unwrap_or_default(), &eu.name_any());
    let id = {
        let mut auth = app.auth();
        auth.limiter.succeeded(&key);
        auth.sessions.open(owner.clone(), version, Timestamp::now())
    };
    if published.is_some() {
        publish_lock(app, eu.clone(), key.clone(), None);
    }
    tracing::info!(enduser = %format!("{}/{}", owner.namespace, owner.name), "logged in");
    let max_age = app.config.session.absolute.as_secs();
    Reply::redirect(&super::home_of(&owner))
        .with_cookie(cookies.set(cookies.session_name(), &id, Some(max_age)))
        .with_cookie(cookies.set(cookies.login_name(), "", None))
}

/// Writes (or, with None, withdraws) the lock annotation in the background (the answer does
/// not wait for it), and tells the limiter once it is written.
pub fn publish_lock(app: &App, enduser: Arc<EndUser>, key: LoginKey, until: Option<Timestamp>) {
    let client = app.client.clone();
    let auth = app.auth_handle();
    tokio::spawn(async move {
        match writes::publish_lock(&client, &enduser, until).await {
            Ok(()) => {
                if let Some(until) = until {
                    let mut auth = auth.lock().unwrap_or_else(|p| p.into_inner());
                    auth.limiter.written(&key, until, Timestamp::now());
                }
            }
            Err(error) => tracing::warn!(%error, "publishing the login lock failed"),
        }
    });
}

/// Whether `given` is the end user's password: `Ok(Some(version))` with the version of the
/// password Secret the session will be tied to, `Ok(None)` when wrong (or no password is set),
/// `Err` when the API server could not be asked. Hashes at most once per Secret version.
pub async fn check_password(
    app: &App,
    enduser: &EndUser,
    given: &str,
) -> Result<Option<String>, ()> {
    check_secret_password(app, &password_secret(enduser), given).await
}

/// Whether `given` is the password in `secret` (see [`check_password`]); also the resellers'
/// logins, each a key of their panel accounts Secret.
pub async fn check_secret_password(
    app: &App,
    secret: &SecretKey,
    given: &str,
) -> Result<Option<String>, ()> {
    let secret = secret.clone();
    let cached = app.caches.secret_version(&secret.namespace, &secret.name);
    let known = cached.as_ref().and_then(|v| {
        app.auth()
            .hashes
            .get(&secret, v)
            .map(|digest| (v.clone(), digest))
    });
    let (read_version, digest) = match known {
        Some(found) => found,
        None => {
            let read = writes::read_secret(&app.client, &secret.namespace, &secret.name).await;
            let (version, values) = match read {
                Ok(Some(found)) => found,
                Ok(None) => return Ok(None),
                Err(error) => {
                    tracing::warn!(%error, "reading the password Secret failed");
                    return Err(());
                }
            };
            let Some(plain) = values.get(&secret.key) else {
                return Ok(None);
            };
            let digest = app
                .hasher
                .hash(plain)
                .await
                .map_err(|error| tracing::error!(%error, "hashing failed"))?;
            drop(values);
            app.auth()
                .hashes
                .insert(secret.clone(), version.clone(), digest.clone());
            (version, digest)
        }
    };
    let ok = app
        .hasher
        .verify(given, &digest)
        .await
        .map_err(|error| tracing::error!(%error, "hashing failed"))?;
    // Tied to the version the cache shows (the one a later change is compared with), or the
    // one just read when the cache has not seen the Secret yet.
    Ok(ok.then(|| cached.unwrap_or(read_version)))
}

/// Ends the session (CSRF-checked; the logout form is on every page).
pub fn logout(app: &App, req: &Request) -> Reply {
    let cookies = app.cookies();
    let lang = app.lang(req);
    let session = match (app.session(req), app.reseller_session(req)) {
        (Some((session, _)), _) => session,
        (None, Some(session)) => session,
        (None, None) => return status_page(lang, StatusCode::FORBIDDEN),
    };
    let presented = req.form().get("csrf").cloned();
    if !crate::auth::session::csrf_ok(&session, presented.as_deref()) {
        return status_page(lang, StatusCode::FORBIDDEN);
    }
    if let Some(id) = req.cookie(cookies.session_name()) {
        app.auth().sessions.revoke(id);
    }
    let reseller = url_segment(session.owner.reseller_name());
    let login_page = match session.owner.role {
        crate::auth::session::Role::EndUser => format!("/login/{reseller}?m=out"),
        crate::auth::session::Role::Reseller => format!("/r/{reseller}/login?m=out"),
    };
    Reply::redirect(&login_page).with_cookie(cookies.set(cookies.session_name(), "", None))
}
