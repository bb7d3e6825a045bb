//! The panel's request flow on hand-filled caches, through the real warp routes: login,
//! lockout, authorisation of every end-user page, CSRF, the headers. No API server is
//! reachable: the password hash is pre-derived for the cached Secret version, and the lock
//! annotation's write fails in the background (logged), which the in-memory lock covers.

use std::sync::Arc;

use http::StatusCode;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use oem_crds::{Course, EndUser, Reseller};
use serde_json::json;

use super::App;
use crate::auth::password::SecretKey;
use crate::cache;
use crate::server::routes;
use crate::test_support::{Response, body, get, panel_with, post, set_cookie};

const NS: &str = "reseller-sakura";
const PASSWORD: &str = "issued-password-1";

fn enduser(name: &str, login: &str) -> EndUser {
    serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "EndUser",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"loginId": login, "contractName": "<b>Tanaka</b>", "contactEmail": "a@example.jp",
                 "courseRef": {"name": "basic"}, "domains": ["shop.example.jp"],
                 "contractDate": "2026-01-01", "startDate": "2026-01-01"},
        "status": {"phase": "Active", "services": [{"service": "http", "state": "Up"}]}
    }))
    .unwrap()
}

fn secret_meta(name: &str) -> PartialObjectMeta<Secret> {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "1"}
    }))
    .unwrap()
}

/// A panel with reseller sakura (brand さくらウェブ), end users shop and cafe, and the
/// hash of shop's and cafe's password for Secret version 1.
async fn panel() -> Arc<App> {
    panel_and_writers().await.0
}

/// The panel and the writers of its caches, to play the watches.
async fn panel_and_writers() -> (Arc<App>, cache::Writers) {
    let (caches, mut w) = cache::stores();
    let reseller: Reseller = serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Reseller",
        "metadata": {"name": "sakura"},
        "spec": {"displayName": "さくらウェブ", "contacts": [{"name": "desk", "email": "d@example.jp"}],
                 "quota": {"maxEndUsers": 10, "totalCpu": "4", "totalMemory": "8Gi", "totalStorage": "100Gi"}}
    }))
    .unwrap();
    let course: Course = serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Course",
        "metadata": {"name": "basic", "namespace": NS},
        "spec": {"displayName": "ベーシック", "resources": {"cpu": "1", "memory": "1Gi", "storage": "10Gi"},
                 "services": {"web": {"phpVersion": "8.2"}, "mail": {"maxSendsPerHour": 100}}}
    }))
    .unwrap();
    w.resellers.apply_watcher_event(&Event::Apply(reseller));
    w.courses.apply_watcher_event(&Event::Apply(course));
    for (name, login) in [("shop", "shop"), ("cafe", "cafe")] {
        w.endusers
            .apply_watcher_event(&Event::Apply(enduser(name, login)));
        w.secrets
            .apply_watcher_event(&Event::Apply(secret_meta(&format!("{name}-login"))));
    }
    let keys = ["shop", "cafe"]
        .map(|name| SecretKey {
            namespace: NS.into(),
            name: format!("{name}-login"),
            key: "password".into(),
        })
        .to_vec();
    let app = panel_with(caches, keys, PASSWORD).await;
    (app, w)
}

/// Logs in as `login` with `password`: the response.
async fn login(app: &Arc<App>, login: &str, password: &str) -> Response {
    let form = get(app, "/login/sakura", "").await;
    let token = set_cookie(&form, "__Host-oem_panel_login").unwrap();
    assert!(body(&form).contains(&format!("value=\"{token}\"")));
    post(
        app,
        "/login/sakura",
        &format!("__Host-oem_panel_login={token}"),
        &format!("csrf={token}&login_id={login}&password={password}"),
    )
    .await
}

/// A logged-in session of shop: (cookie header, csrf token).
async fn shop_session(app: &Arc<App>) -> (String, String) {
    let r = login(app, "shop", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", body(&r));
    assert_eq!(r.headers()["location"], "/u/reseller-sakura/shop");
    let id = set_cookie(&r, "__Host-oem_panel_session").unwrap();
    let cookie = format!("__Host-oem_panel_session={id}");
    let page = get(app, "/u/reseller-sakura/shop", &cookie).await;
    let html = body(&page);
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

#[tokio::test]
async fn the_issued_password_logs_in_with_a_secure_session_cookie() {
    let app = panel().await;
    let r = login(&app, "shop", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let header = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-oem_panel_session="))
        .unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(header.contains(attribute), "{header}");
    }
    assert_eq!(
        set_cookie(&r, "__Host-oem_panel_session").unwrap().len(),
        64
    );
}

#[tokio::test]
async fn the_overview_shows_the_brand_and_escapes_what_users_wrote() {
    let app = panel().await;
    let (cookie, _) = shop_session(&app).await;
    let r = get(&app, "/u/reseller-sakura/shop", &cookie).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = body(&r);
    assert!(html.contains("さくらウェブ"));
    assert!(html.contains("shop.example.jp"));
    assert!(html.contains("ベーシック"));
    assert!(!html.contains("<b>Tanaka"));
    assert!(!html.contains("<script") && !html.contains("style="));
}

#[tokio::test]
async fn a_wrong_password_five_times_locks_the_login() {
    let app = panel().await;
    for attempt in 1..=5 {
        let r = login(&app, "shop", "wrong-password").await;
        let expected = if attempt < 5 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(r.status(), expected, "attempt {attempt}");
        assert!(
            !body(&r).contains("wrong-password"),
            "the password is never echoed"
        );
    }
    let r = login(&app, "shop", PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "locked even with the right password"
    );
    // Another login of the same reseller is not locked.
    assert_eq!(
        login(&app, "cafe", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn an_unknown_login_id_gets_the_same_answer_as_a_wrong_password() {
    let app = panel().await;
    let unknown = login(&app, "nobody", PASSWORD).await;
    let wrong = login(&app, "shop", "nope").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn another_end_users_pages_are_404() {
    let app = panel().await;
    let (cookie, _) = shop_session(&app).await;
    for path in [
        "/u/reseller-sakura/cafe",
        "/u/reseller-sakura/cafe/credentials",
        "/u/reseller-sakura/cafe/password",
        "/u/reseller-other/shop",
        "/u/reseller-sakura/nobody",
    ] {
        assert_eq!(
            get(&app, path, &cookie).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_403() {
    let app = panel().await;
    let (cookie, csrf) = shop_session(&app).await;
    let path = "/u/reseller-sakura/shop/password";
    let missing = post(&app, path, &cookie, "current_password=x&new_password=y").await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let wrong = post(&app, path, &cookie, "csrf=00&current_password=x").await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let logout = post(&app, "/logout", &cookie, "").await;
    assert_eq!(logout.status(), StatusCode::FORBIDDEN);
    // With the token the form is processed (here: the current password is wrong).
    let ok = post(
        &app,
        path,
        &cookie,
        &format!("csrf={csrf}&current_password=x"),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // The login form's token is checked too.
    let login = post(&app, "/login/sakura", "", "login_id=shop&password=x").await;
    assert_eq!(login.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = panel().await;
    let (cookie, csrf) = shop_session(&app).await;
    let r = post(&app, "/logout", &cookie, &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let after = get(&app, "/u/reseller-sakura/shop", &cookie).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(after.headers()["location"], "/login/sakura?m=ended");
}

#[tokio::test]
async fn a_changed_password_secret_ends_the_session() {
    let (app, mut writers) = panel_and_writers().await;
    let (cookie, _) = shop_session(&app).await;
    // The reseller writes a new password with kubectl: the watch shows a new version.
    let mut changed = secret_meta("shop-login");
    changed.metadata.resource_version = Some("2".into());
    writers.secrets.apply_watcher_event(&Event::Apply(changed));
    let r = get(&app, "/u/reseller-sakura/shop", &cookie).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.auth().sessions.len(), 0, "the session was revoked");
}

#[tokio::test]
async fn a_lock_lifted_by_the_reseller_lets_the_login_in_again() {
    let (app, mut writers) = panel_and_writers().await;
    for _ in 0..5 {
        login(&app, "shop", "wrong").await;
    }
    // The lock as published on the EndUser (the write fails here: no API server, so it is
    // reported written by hand, long enough ago for the cache to have caught up).
    let until = {
        let mut auth = app.auth();
        let key = crate::auth::limiter::LoginKey {
            reseller: "sakura".into(),
            login_id: "shop".into(),
        };
        let now = jiff::Timestamp::now();
        let until = match auth
            .limiter
            .check(&key, "127.0.0.1".parse().unwrap(), None, now)
        {
            crate::auth::limiter::Verdict::LoginLocked(until) => until,
            other => panic!("not locked: {other:?}"),
        };
        let then = now - crate::auth::limiter::CACHE_CATCH_UP - jiff::SignedDuration::from_secs(1);
        auth.limiter.written(&key, until, then);
        until
    };
    let mut shown = enduser("shop", "shop");
    shown.metadata.annotations = Some(
        [(
            crate::auth::limiter::LOCK_ANNOTATION.to_owned(),
            until.to_string(),
        )]
        .into(),
    );
    writers.endusers.apply_watcher_event(&Event::Apply(shown));
    assert_eq!(
        login(&app, "shop", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // kubectl annotate enduser shop hosting.oem.dev/panel-locked-until-
    writers
        .endusers
        .apply_watcher_event(&Event::Apply(enduser("shop", "shop")));
    assert_eq!(
        login(&app, "shop", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn unauthenticated_pages_redirect_to_the_login_and_unknown_paths_are_404() {
    let app = panel().await;
    let r = get(&app, "/u/reseller-sakura/shop", "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        get(&app, "/u/reseller-nobody/x", "").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/login/nobody", "").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/etc/passwd", "").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn every_response_has_the_security_headers() {
    let app = panel().await;
    for path in ["/login/sakura", "/nothing", "/static/panel.css", "/healthz"] {
        let r = get(&app, path, "").await;
        let h = r.headers();
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(h.contains_key("strict-transport-security"), "{path}");
    }
}

#[tokio::test]
async fn the_language_follows_the_browser_and_the_switch() {
    let app = panel().await;
    let en = warp::test::request()
        .path("/login/sakura")
        .header("accept-language", "en-GB,en;q=0.9")
        .reply(&routes(app.clone()))
        .await;
    assert!(body(&en).contains("<html lang=\"en\">"));
    assert!(body(&en).contains("Login ID"));
    let ja = get(&app, "/login/sakura", "oem_panel_lang=ja").await;
    assert!(body(&ja).contains("ログインID"));
    let switch = get(&app, "/lang/en?next=%2Flogin%2Fsakura", "").await;
    assert_eq!(switch.status(), StatusCode::SEE_OTHER);
    assert_eq!(switch.headers()["location"], "/login/sakura");
    assert_eq!(set_cookie(&switch, "oem_panel_lang").as_deref(), Some("en"));
}

#[tokio::test]
async fn form_fields_are_labelled() {
    let app = panel().await;
    let (cookie, _) = shop_session(&app).await;
    for path in ["/login/sakura", "/u/reseller-sakura/shop/password"] {
        let html = body(&get(&app, path, &cookie).await);
        for id in html.split("<input id=\"").skip(1) {
            let id = id.split('"').next().unwrap();
            assert!(
                html.contains(&format!("<label for=\"{id}\">")),
                "{path}: {id} has no label"
            );
        }
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_or_idling_is_cut_off() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = panel().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let timeouts = crate::config::ServerTimeouts {
        header_read: Duration::from_millis(300),
        max_connection_age: Duration::from_secs(60),
    };
    tokio::spawn(crate::server::serve_on(listener, app, timeouts));
    for request in [
        &b"GET /healthz HTTP/1.1\r\nHost: x\r\n"[..],
        &b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"[..],
    ] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let started = std::time::Instant::now();
        let mut seen = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut seen))
            .await
            .expect("the server closes the connection")
            .ok();
        assert!(started.elapsed() < Duration::from_secs(3));
        let text = String::from_utf8_lossy(&seen);
        // The complete request is answered (with the headers), then the idle connection closed.
        if request.ends_with(b"\r\n\r\n") {
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            assert!(
                text.to_ascii_lowercase()
                    .contains("content-security-policy")
            );
        }
    }
}

#[tokio::test]
async fn the_overview_tells_of_planned_work_on_this_end_user_or_on_everyone() {
    let (app, mut w) = panel_and_writers().await;
    let now = jiff::Timestamp::now();
    let at = |hours: i64| (now + jiff::SignedDuration::from_hours(hours)).to_string();
    let window = |name: &str, end_user: &str, start: i64, end: i64, ja: &str| {
        serde_json::from_value::<oem_crds::maintenance::Maintenance>(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Maintenance",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"targets": [{"endUser": end_user, "services": ["http"]}],
                     "start": at(start), "end": at(end), "reason": {"ja": ja}}
        }))
        .unwrap()
    };
    for m in [
        window("shop-web", "shop", 48, 50, "ウェブサーバーの<更新>"),
        window("cafe-web", "cafe", 24, 26, "カフェの作業"),
        window("shop-past", "shop", -5, -3, "終わった作業"),
    ] {
        w.maintenances.apply_watcher_event(&Event::Apply(m));
    }
    let everyone: oem_crds::maintenance::ClusterMaintenance = serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "ClusterMaintenance",
        "metadata": {"name": "storage"},
        "spec": {"targets": [{"allEndUsers": true}], "start": at(-1), "end": at(1),
                 "reason": {"en": "storage firmware"}}
    }))
    .unwrap();
    w.cluster_maintenances
        .apply_watcher_event(&Event::Apply(everyone));
    let (cookie, _) = shop_session(&app).await;
    let html = body(&get(&app, "/u/reseller-sakura/shop", &cookie).await);
    let section = html
        .split("id=\"h-maintenance\"")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .unwrap_or_default();
    assert!(
        section.contains("ウェブサーバーの&lt;更新&gt;"),
        "{section}"
    );
    assert!(
        section.contains("storage firmware"),
        "falls back to English: {section}"
    );
    assert!(section.contains("すべてのサービス"), "{section}");
    assert!(
        section.contains("作業中") && section.contains("予定"),
        "{section}"
    );
    assert!(
        !section.contains("カフェ"),
        "another end user's window: {section}"
    );
    assert!(!section.contains("終わった"), "an ended window: {section}");
    let under_way = section.find("storage firmware").unwrap_or(usize::MAX);
    let later = section.find("ウェブサーバー").unwrap_or(0);
    assert!(under_way < later, "soonest first: {section}");
}

#[tokio::test]
async fn the_php_choice_offers_only_what_the_course_allows() {
    let (app, mut w) = panel_and_writers().await;
    let (cookie, csrf) = shop_session(&app).await;
    let path = "/u/reseller-sakura/shop/php";
    // A course of one version: shown, nothing to choose.
    let page = body(&get(&app, path, &cookie).await);
    assert!(
        page.contains("PHP 8.2") && !page.contains("<select"),
        "{page}"
    );
    // The course lets end users choose 8.4 as well: a labelled select of the two.
    let course: Course = serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Course",
        "metadata": {"name": "basic", "namespace": NS},
        "spec": {"displayName": "ベーシック", "resources": {"cpu": "1", "memory": "1Gi", "storage": "10Gi"},
                 "services": {"web": {"phpVersion": "8.2", "allowedPhpVersions": ["8.4"]}}}
    }))
    .unwrap();
    w.courses.apply_watcher_event(&Event::Apply(course));
    let page = body(&get(&app, path, &cookie).await);
    assert!(page.contains("<label for=\"php_version\">"), "{page}");
    assert!(
        page.contains("<option value=\"8.2\" selected>") && page.contains("<option value=\"8.4\">")
    );
    // A version the course does not offer is refused before anything is written.
    let refused = post(&app, path, &cookie, &format!("csrf={csrf}&php_version=7.4")).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body(&refused).contains("id=\"php_version-error\""));
    // Without the session's CSRF token: nothing at all.
    let forged = post(&app, path, &cookie, "php_version=8.4").await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}
