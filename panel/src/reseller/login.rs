//! A reseller's sign-in, `/r/<reseller>/login`, with a login the provider issued: a key of the
//! Secret `oem-hosting-panel-<reseller>` in the provider's namespace (the operator generates
//! `admin` and fills any empty value). Checked as the end users' are (argon2id digest per
//! Secret version, decoy for an unknown login, per-login and per-address limits); the lock of
//! a reseller's login is held in memory and logged (the provider lifts it by waiting, or by
//! rotating the password, which ends the lock with the Secret's version).

use http::StatusCode;
use jiff::Timestamp;
use oem_crds::reseller::panel_accounts_secret;

use crate::app::{App, status_page};
use crate::auth::limiter::{LoginKey, Verdict};
use crate::auth::password::SecretKey;
use crate::auth::session::Owner;
use crate::html::url_segment;
use crate::i18n::Lang;
use crate::pages::login::{SignIn, form_token_ok};
use crate::web::{Reply, Request};

use super::texts;

/// The sign-in form.
pub fn form(app: &App, req: &Request, lang: Lang, reseller: &str) -> Reply {
    let base = lang.texts();
    let notice = match req.query_param("m").as_deref() {
        Some("out") => Some(base.logged_out),
        Some("ended") => Some(base.session_ended),
        _ => None,
    };
    render(app, lang, reseller, StatusCode::OK, "", notice, None)
}

fn render(
    app: &App,
    lang: Lang,
    reseller: &str,
    status: StatusCode,
    login: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Reply {
    let Some(found) = app.caches.reseller(reseller) else {
        return status_page(lang, StatusCode::NOT_FOUND);
    };
    let t = texts::of(lang);
    let path = format!("/r/{}/login", url_segment(reseller));
    SignIn {
        lang,
        reseller: &found,
        title: t.login_title,
        path: &path,
        login_label: t.login_id,
        login_max: 64,
    }
    .render(app, status, login, notice, error)
}

/// Checks a sign-in.
pub async fn submit(app: &App, req: &Request, lang: Lang, reseller: &str) -> Reply {
    if app.caches.reseller(reseller).is_none() {
        return status_page(lang, StatusCode::NOT_FOUND);
    }
    let form = req.form();
    let cookies = app.cookies();
    if !form_token_ok(app, req, &form) {
        return status_page(lang, StatusCode::FORBIDDEN);
    }
    let t = texts::of(lang);
    let login = form.get("login_id").map(|s| s.trim()).unwrap_or_default();
    let given = form.get("password").map(String::as_str).unwrap_or_default();
    // Keyed apart from the end users' logins of the same reseller (':' is in no login ID).
    let key = LoginKey {
        reseller: reseller.to_owned(),
        login_id: format!("panel:{login}"),
    };
    let address = req.client_ip(app.config.client_address_header.as_deref());
    let verdict = app
        .auth()
        .limiter
        .check(&key, address, None, Timestamp::now());
    if verdict != Verdict::Allowed {
        tracing::info!(%reseller, %login, ?verdict, "reseller sign-in refused: locked");
        return render(
            app,
            lang,
            reseller,
            StatusCode::TOO_MANY_REQUESTS,
            login,
            None,
            Some(t.locked_out),
        );
    }
    let secret = SecretKey {
        namespace: app.config.resellers.accounts_namespace.clone(),
        name: panel_accounts_secret(reseller),
        key: login.to_owned(),
    };
    let checked = if login.is_empty() || given.is_empty() {
        let _ = app.hasher.verify(given, &app.decoy).await;
        Ok(None)
    } else {
        crate::pages::login::check_secret_password(app, &secret, given).await
    };
    let version = match checked {
        Ok(version) => version,
        Err(()) => {
            return render(
                app,
                lang,
                reseller,
                StatusCode::SERVICE_UNAVAILABLE,
                login,
                None,
                Some(lang.texts().service_unavailable),
            );
        }
    };
    let Some(version) = version else {
        let locked = app.auth().limiter.failed(&key, address, Timestamp::now());
        tracing::info!(%reseller, %login, %address, "reseller sign-in refused: wrong password or login");
        if let Some(until) = locked {
            tracing::warn!(%reseller, %login, %until, "reseller login locked after repeated wrong passwords");
            return render(
                app,
                lang,
                reseller,
                StatusCode::TOO_MANY_REQUESTS,
                login,
                None,
                Some(t.locked_out),
            );
        }
        return render(
            app,
            lang,
            reseller,
            StatusCode::UNAUTHORIZED,
            login,
            None,
            Some(t.login_failed),
        );
    };
    let owner = Owner::reseller(reseller, login);
    let id = {
        let mut auth = app.auth();
        auth.limiter.succeeded(&key);
        auth.sessions.open(owner, version, Timestamp::now())
    };
    tracing::info!(%reseller, %login, "reseller signed in");
    let max_age = app.config.session.absolute.as_secs();
    Reply::redirect(&super::home_of(reseller))
        .with_cookie(cookies.set(cookies.session_name(), &id, Some(max_age)))
        .with_cookie(cookies.set(cookies.login_name(), "", None))
}
