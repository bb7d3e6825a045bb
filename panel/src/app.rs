//! The panel's state and its router: which path is which page, and the checks every end-user
//! page passes first (a live session, of this end user, with the CSRF token on a POST).
//! Anything else is 404, including another end user's page.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use http::{Method, StatusCode};
use jiff::Timestamp;
use kube::Client;
use oem_crds::EndUser;
use oem_crds::enduser::PasswordSecretRef;
use oem_crds::reseller::{NAMESPACE_PREFIX, panel_accounts_secret, panel_user};

use crate::auth::limiter::Limiter;
use crate::auth::password::{Digest, Hasher, Hashes, SecretKey};
use crate::auth::session::{self, Owner, Role, Session, Sessions};
use crate::cache::Caches;
use crate::config::Config;
use crate::html::{self, Frame};
use crate::i18n::{LANG_COOKIE, Lang};
use crate::pages;
use crate::web::{Cookies, Reply, Request};

/// The stylesheet, served from the binary.
const CSS: &str = include_str!("../static/panel.css");

/// What the limiter, the sessions and the hashes share; locked briefly, never across an await.
pub struct AuthState {
    pub limiter: Limiter,
    pub sessions: Sessions,
    pub hashes: Hashes,
}

/// Everything a request may need.
pub struct App {
    pub config: Config,
    pub caches: Caches,
    pub client: Client,
    auth: Arc<Mutex<AuthState>>,
    ready: AtomicBool,
    /// The argon2id workers.
    pub hasher: Hasher,
    /// A digest of no one's password (see `Digest::decoy`).
    pub decoy: Digest,
    /// The panel's own connection settings, from which the clients acting as resellers are made.
    kube_config: Option<kube::Config>,
    acting: Mutex<HashMap<String, Client>>,
}

/// A request of a logged-in end user, checked.
pub struct UserRequest<'a> {
    pub req: &'a Request,
    pub lang: Lang,
    pub session: Session,
    pub enduser: Arc<EndUser>,
}

impl App {
    pub fn new(config: Config, caches: Caches, client: Client, hasher: Hasher) -> Self {
        let auth = AuthState {
            limiter: Limiter::new(&config.lockout),
            sessions: Sessions::new(&config.session),
            hashes: Hashes::default(),
        };
        Self {
            config,
            caches,
            client,
            auth: Arc::new(Mutex::new(auth)),
            ready: AtomicBool::new(false),
            hasher,
            decoy: Digest::decoy(),
            kube_config: None,
            acting: Mutex::new(HashMap::new()),
        }
    }

    /// The connection settings the clients acting as resellers start from.
    pub fn with_kube_config(mut self, config: kube::Config) -> Self {
        self.kube_config = Some(config);
        self
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn auth(&self) -> MutexGuard<'_, AuthState> {
        // A panic while holding the lock leaves consistent maps: keep serving.
        self.auth
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The shared state, for a background task that reports back (the lock's write).
    pub fn auth_handle(&self) -> Arc<Mutex<AuthState>> {
        self.auth.clone()
    }

    pub fn cookies(&self) -> Cookies {
        Cookies {
            secure: self.config.session.secure_cookies,
        }
    }

    pub fn lang(&self, req: &Request) -> Lang {
        Lang::negotiate(req.cookie(LANG_COOKIE), req.header("accept-language"))
    }

    /// The live session the request's cookie names, if its end user still exists and its
    /// password Secret has not changed since login (a change ends the session).
    pub fn session(&self, req: &Request) -> Option<(Session, Arc<EndUser>)> {
        let (id, session) = self.cookie_session(req, Role::EndUser)?;
        let owner = &session.owner;
        let enduser = self.caches.enduser(&owner.namespace, &owner.name);
        let current = enduser.as_ref().and_then(|eu| {
            let secret = password_secret(eu);
            self.caches.secret_version(&secret.namespace, &secret.name)
        });
        let session = self.unchanged(id, session, current)?;
        Some((session, enduser?))
    }

    /// The live reseller's session the request's cookie names, if its panel logins Secret has
    /// not changed since login (a change, e.g. a rotated password, ends the session).
    pub fn reseller_session(&self, req: &Request) -> Option<Session> {
        let (id, session) = self.cookie_session(req, Role::Reseller)?;
        let accounts = panel_accounts_secret(session.owner.reseller_name());
        let current = self
            .caches
            .secret_version(&self.config.resellers.accounts_namespace, &accounts);
        self.unchanged(id, session, current)
    }

    /// The unexpired session of `role` the request's cookie names, with its ID.
    fn cookie_session<'r>(&self, req: &'r Request, role: Role) -> Option<(&'r str, Session)> {
        let id = req.cookie(self.cookies().session_name())?;
        let session = self.auth().sessions.get(id, Timestamp::now())?;
        (session.owner.role == role).then_some((id, session))
    }

    /// The session, if the version of the Secret that holds its password is still the one it
    /// was opened with; otherwise (or with no such Secret) the session is ended.
    fn unchanged(&self, id: &str, session: Session, current: Option<String>) -> Option<Session> {
        if current.as_deref() == Some(session.secret_version.as_str()) {
            Some(session)
        } else {
            self.auth().sessions.revoke(id);
            None
        }
    }

    /// A client acting as the reseller's panel user (impersonation), so a reseller's request
    /// can do no more than the reseller could with kubectl. One per reseller, made on first use.
    pub fn acting_as(&self, reseller: &str) -> Result<Client, String> {
        let mut clients = self
            .acting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(reseller) {
            return Ok(client.clone());
        }
        let Some(base) = &self.kube_config else {
            return Err("no Kubernetes configuration to act as a reseller".to_owned());
        };
        let mut config = base.clone();
        config.auth_info.impersonate = Some(panel_user(reseller));
        config.auth_info.impersonate_groups = None;
        let client = Client::try_from(config)
            .map_err(|error| format!("a client acting as reseller {reseller}: {error}"))?;
        clients.insert(reseller.to_owned(), client.clone());
        Ok(client)
    }

    /// The reply's finishing touches shared by every page.
    pub fn finish(&self, mut reply: Reply) -> Reply {
        reply.hsts = self.config.session.secure_cookies;
        reply
    }
}

/// The Secret key holding an end user's login password.
pub fn password_secret(enduser: &EndUser) -> SecretKey {
    let name = kube::ResourceExt::name_any(enduser);
    let reference = enduser
        .spec
        .password_secret_ref
        .clone()
        .unwrap_or_else(|| PasswordSecretRef::generated(&name));
    SecretKey {
        namespace: kube::ResourceExt::namespace(enduser).unwrap_or_default(),
        name: reference.name,
        key: reference.key,
    }
}

/// The plain page for an error status, in the request's language, under a neutral title.
pub fn status_page(lang: Lang, status: StatusCode) -> Reply {
    let title = status.canonical_reason().unwrap_or("Error");
    let frame = Frame {
        lang,
        brand: "",
        reseller: None,
        title,
        here: "/",
        nav: Vec::new(),
        logout_csrf: None,
    };
    Reply::html(status, html::page(&frame, ""))
}

/// A local path to come back to: starts with one `/`, no scheme or host.
pub fn local_path(next: Option<String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/".to_owned())
}

/// Answers one request.
pub async fn handle(app: Arc<App>, req: Request) -> Reply {
    let reply = route(&app, &req).await;
    app.finish(reply)
}

async fn route(app: &App, req: &Request) -> Reply {
    let lang = app.lang(req);
    let path = req.path.trim_start_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    match (&req.method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => Reply::text(StatusCode::OK, "ok"),
        (&Method::GET, ["readyz"]) if app.ready.load(Ordering::Acquire) => {
            Reply::text(StatusCode::OK, "ok")
        }
        (&Method::GET, ["readyz"]) => Reply::text(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
        (&Method::GET, ["static", "panel.css"]) => Reply {
            content_type: "text/css; charset=utf-8",
            cacheable: true,
            ..Reply::text(StatusCode::OK, CSS)
        },
        (&Method::GET, [""]) => match (app.session(req), app.reseller_session(req)) {
            (Some((session, _)), _) => Reply::redirect(&pages::home_of(&session.owner)),
            (None, Some(session)) => {
                Reply::redirect(&crate::reseller::home_of(session.owner.reseller_name()))
            }
            (None, None) => status_page(lang, StatusCode::NOT_FOUND),
        },
        (&Method::GET, ["lang", code]) => match Lang::from_code(code) {
            Some(chosen) => {
                Reply::redirect(&local_path(req.query_param("next"))).with_cookie(format!(
                    "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax{}",
                    chosen.code(),
                    if app.cookies().secure { "; Secure" } else { "" }
                ))
            }
            None => status_page(lang, StatusCode::NOT_FOUND),
        },
        // A reseller's look, public like its sign-in pages (which carry it).
        (&Method::GET, ["brand", reseller, "style.css"]) => match app.caches.reseller(reseller) {
            Some(found) => Reply {
                content_type: "text/css; charset=utf-8",
                cacheable: true,
                ..Reply::text(StatusCode::OK, &crate::brand::stylesheet(&found))
            },
            None => status_page(lang, StatusCode::NOT_FOUND),
        },
        (&Method::GET, ["brand", reseller, "logo"]) => {
            match app
                .caches
                .reseller(reseller)
                .as_deref()
                .and_then(crate::brand::logo)
            {
                Some((content_type, bytes)) => Reply::asset(content_type, bytes),
                None => status_page(lang, StatusCode::NOT_FOUND),
            }
        }
        (&Method::GET, ["login", reseller]) => pages::login::form(app, req, lang, reseller),
        (&Method::POST, ["login", reseller]) => {
            pages::login::submit(app, req, lang, reseller).await
        }
        (&Method::POST, ["logout"]) => pages::login::logout(app, req),
        (_, ["u", namespace, name, rest @ ..]) => {
            enduser_page(app, req, lang, namespace, name, rest).await
        }
        (_, ["r", reseller, rest @ ..]) => {
            crate::reseller::route(app, req, lang, reseller, rest).await
        }
        _ => status_page(lang, StatusCode::NOT_FOUND),
    }
}

/// An end user's page: its own only (anything else 404), CSRF-checked when it changes something.
async fn enduser_page(
    app: &App,
    req: &Request,
    lang: Lang,
    namespace: &str,
    name: &str,
    rest: &[&str],
) -> Reply {
    let Some((session, enduser)) = app.session(req) else {
        // Not logged in: to the login of the reseller the path names (as with a wrong name,
        // this says nothing about whether the end user exists).
        return match namespace.strip_prefix(NAMESPACE_PREFIX) {
            Some(reseller) if app.caches.reseller(reseller).is_some() => {
                Reply::redirect(&format!("/login/{}?m=ended", html::url_segment(reseller)))
            }
            _ => status_page(lang, StatusCode::NOT_FOUND),
        };
    };
    let asked = Owner::end_user(namespace, name);
    if session.owner != asked {
        return status_page(lang, StatusCode::NOT_FOUND);
    }
    if req.method == Method::POST
        && !session::csrf_ok(&session, req.form().get("csrf").map(String::as_str))
    {
        return status_page(lang, StatusCode::FORBIDDEN);
    }
    let user = UserRequest {
        req,
        lang,
        session,
        enduser,
    };
    match (&req.method, rest) {
        (&Method::GET, [] | [""]) => pages::overview::page(app, &user),
        (&Method::GET, ["credentials"]) => pages::credentials::page(app, &user).await,
        (&Method::POST, ["credentials"]) => pages::credentials::rotate(app, &user).await,
        (&Method::GET, ["php"]) => pages::php::form(app, &user),
        (&Method::POST, ["php"]) => pages::php::submit(app, &user).await,
        (&Method::GET, ["password"]) => pages::password::form(app, &user, None),
        (&Method::POST, ["password"]) => pages::password::submit(app, &user).await,
        _ => status_page(lang, StatusCode::NOT_FOUND),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_the_language_switch() {
        assert_eq!(local_path(Some("/u/a/b".into())), "/u/a/b");
        assert_eq!(local_path(Some("//evil.example/".into())), "/");
        assert_eq!(local_path(Some("https://evil.example/".into())), "/");
        assert_eq!(local_path(Some("/\\evil.example".into())), "/");
        assert_eq!(local_path(None), "/");
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod flow_tests;
