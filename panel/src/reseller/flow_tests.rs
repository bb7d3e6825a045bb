//! The resellers' panel's request flow on hand-filled caches, through the real warp routes:
//! sign-in with a provider-issued login, pages scoped to the session's reseller (another
//! reseller's path is 404, whatever the URL says), CSRF, search and sort, lockout, and a
//! rotated login ending the session. Writes need the API server: `e2e/tests/panel_reseller.rs`.

use std::sync::Arc;

use http::StatusCode;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use oem_crds::{EndUser, Reseller};
use serde_json::json;

use crate::app::App;
use crate::auth::password::SecretKey;
use crate::cache;
use crate::test_support::{Response, body, get, panel_with, post, set_cookie};

const ACCOUNTS_NS: &str = "oem-hosting-system";
const PASSWORD: &str = "provider-issued-1";

fn reseller(name: &str, brand: &str) -> Reseller {
    serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Reseller",
        "metadata": {"name": name},
        "spec": {"displayName": brand, "contacts": [{"name": "desk", "email": "d@example.jp"}],
                 "quota": {"maxEndUsers": 10, "totalCpu": "4", "totalMemory": "8Gi", "totalStorage": "100Gi"}}
    }))
    .unwrap()
}

fn enduser(namespace: &str, name: &str, contract: &str, domain: &str) -> EndUser {
    serde_json::from_value(json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "EndUser",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"loginId": name, "contractName": contract, "contactEmail": "a@example.jp",
                 "courseRef": {"name": "basic"}, "domains": [domain, "www.example.jp"],
                 "contractDate": "2026-01-01", "startDate": "2026-02-01", "customerNumber": "C-7"},
        "status": {"phase": "Active", "services": [{"service": "http", "state": "Up"}, {"service": "ftp", "state": "Down"}],
                   "dns": [{"name": domain, "type": "MX", "value": "10 mx.example.net.", "purpose": "Mail"},
                           {"name": format!("oem._domainkey.{domain}"), "type": "TXT", "value": "v=DKIM1; k=rsa; p=KEY", "purpose": "Dkim"}]}
    }))
    .unwrap()
}

fn accounts(reseller: &str, version: &str) -> PartialObjectMeta<Secret> {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("oem-hosting-panel-{reseller}"), "namespace": ACCOUNTS_NS,
                     "resourceVersion": version}
    }))
    .unwrap()
}

/// Resellers sakura (end users shop, cafe) and ume (end user tea), each with an `admin`
/// login whose digest is known for Secret version 1.
async fn panel() -> (Arc<App>, cache::Writers) {
    let (caches, mut w) = cache::stores();
    w.resellers
        .apply_watcher_event(&Event::Apply(reseller("sakura", "さくらウェブ")));
    w.resellers
        .apply_watcher_event(&Event::Apply(reseller("ume", "梅ホスティング")));
    for (ns, name, contract, domain) in [
        (
            "reseller-sakura",
            "shop",
            "Tanaka Shoten",
            "shop.example.jp",
        ),
        ("reseller-sakura", "cafe", "Cafe Mori", "cafe.example.jp"),
        ("reseller-ume", "tea", "Ocha Ya", "tea.example.jp"),
    ] {
        w.endusers
            .apply_watcher_event(&Event::Apply(enduser(ns, name, contract, domain)));
    }
    for r in ["sakura", "ume"] {
        w.secrets
            .apply_watcher_event(&Event::Apply(accounts(r, "1")));
    }
    let keys = ["sakura", "ume"]
        .map(|r| SecretKey {
            namespace: ACCOUNTS_NS.into(),
            name: format!("oem-hosting-panel-{r}"),
            key: "admin".into(),
        })
        .to_vec();
    let app = panel_with(caches, keys, PASSWORD).await;
    (app, w)
}

async fn sign_in(app: &Arc<App>, reseller: &str, login: &str, password: &str) -> Response {
    let form = get(app, &format!("/r/{reseller}/login"), "").await;
    assert_eq!(form.status(), StatusCode::OK);
    let token = set_cookie(&form, "__Host-oem_panel_login").unwrap();
    post(
        app,
        &format!("/r/{reseller}/login"),
        &format!("__Host-oem_panel_login={token}"),
        &format!("csrf={token}&login_id={login}&password={password}"),
    )
    .await
}

/// sakura's admin signed in: the session cookie header.
async fn sakura(app: &Arc<App>) -> String {
    let r = sign_in(app, "sakura", "admin", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", body(&r));
    assert_eq!(r.headers()["location"], "/r/sakura/customers");
    let id = set_cookie(&r, "__Host-oem_panel_session").unwrap();
    format!("__Host-oem_panel_session={id}")
}

#[tokio::test]
async fn the_customer_list_shows_the_specs_columns_of_this_reseller_only() {
    let (app, _w) = panel().await;
    let cookie = sakura(&app).await;
    let r = get(&app, "/r/sakura/customers", &cookie).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = body(&r);
    for column in [
        "ログインID",
        "契約名",
        "顧客番号",
        "ドメイン",
        "ディスク",
        "契約日",
        "利用開始日",
        "状態",
        "稼働",
    ] {
        assert!(html.contains(column), "{column} missing");
    }
    assert!(html.contains("Tanaka Shoten") && html.contains("Cafe Mori"));
    assert!(html.contains("shop.example.jp (+1)"), "{html}");
    assert!(html.contains("1/2"), "health of shop");
    assert!(!html.contains("Ocha Ya"), "another reseller's end user");
    assert!(html.contains("さくらウェブ") && !html.contains("梅ホスティング"));
}

#[tokio::test]
async fn the_customer_page_shows_what_its_domains_need_in_dns() {
    let (app, _w) = panel().await;
    let cookie = sakura(&app).await;
    let html = body(&get(&app, "/r/sakura/customers/shop", &cookie).await);
    for want in [
        "<td>shop.example.jp</td><td>MX</td><td><code>10 mx.example.net.</code>",
        "<td>oem._domainkey.shop.example.jp</td><td>TXT</td><td><code>v=DKIM1; k=rsa; p=KEY</code>",
    ] {
        assert!(html.contains(want), "{want} missing:\n{html}");
    }
}

#[tokio::test]
async fn search_and_sort_come_from_the_query() {
    let (app, _w) = panel().await;
    let cookie = sakura(&app).await;
    let html = body(&get(&app, "/r/sakura/customers?q=cafe", &cookie).await);
    assert!(html.contains("Cafe Mori") && !html.contains("Tanaka Shoten"));
    let html = body(&get(&app, "/r/sakura/customers?sort=contract&dir=desc", &cookie).await);
    let (tanaka, cafe) = (
        html.find("Tanaka Shoten").unwrap(),
        html.find("Cafe Mori").unwrap(),
    );
    assert!(tanaka < cafe, "descending by contract name");
    assert!(html.contains("aria-sort=\"descending\""));
}

#[tokio::test]
async fn another_resellers_pages_are_not_found_whatever_the_url_says() {
    let (app, _w) = panel().await;
    let cookie = sakura(&app).await;
    for path in [
        "/r/ume/customers",
        "/r/ume/customers/tea",
        "/r/ume/courses",
        "/r/ume/incidents",
        "/r/ume/usage",
        "/r/sakura/customers/tea",
        "/r/sakura/customers/..%2F..%2Fume%2Fcustomers%2Ftea",
    ] {
        let r = get(&app, path, &cookie).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!body(&r).contains("Ocha Ya"), "{path}");
    }
    // Nor the end users' pages: a reseller's session is not an end user's.
    let r = get(&app, "/u/reseller-sakura/shop", &cookie).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // And a form without this session's CSRF token is refused before anything is done.
    let r = post(
        &app,
        "/r/sakura/customers/shop/suspend",
        &cookie,
        "csrf=nope",
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn without_a_session_a_reseller_page_leads_to_the_sign_in() {
    let (app, _w) = panel().await;
    let r = get(&app, "/r/sakura/customers", "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/r/sakura/login?m=ended");
    let r = get(&app, "/r/nobody/customers", "").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn wrong_passwords_lock_the_resellers_login() {
    let (app, _w) = panel().await;
    for attempt in 1..=5 {
        let r = sign_in(&app, "sakura", "admin", "wrong-password").await;
        let expected = if attempt < 5 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(r.status(), expected, "attempt {attempt}");
    }
    let r = sign_in(&app, "sakura", "admin", PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "locked even with the right one"
    );
    // The end users' login of the same name is counted apart.
    let r = sign_in(&app, "ume", "admin", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_changed_logins_secret_ends_the_resellers_sessions() {
    let (app, mut w) = panel().await;
    let cookie = sakura(&app).await;
    assert_eq!(
        get(&app, "/r/sakura/courses", &cookie).await.status(),
        StatusCode::OK
    );
    w.secrets
        .apply_watcher_event(&Event::Apply(accounts("sakura", "2")));
    let r = get(&app, "/r/sakura/courses", &cookie).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_reseller_page_is_labelled_and_has_no_inline_script_or_style() {
    let (app, _w) = panel().await;
    let cookie = sakura(&app).await;
    for path in [
        "/r/sakura/customers",
        "/r/sakura/customers/new",
        "/r/sakura/customers/shop",
        "/r/sakura/courses",
        "/r/sakura/courses/new",
        "/r/sakura/incidents",
        "/r/sakura/usage",
    ] {
        let r = get(&app, path, &cookie).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let html = body(&r);
        assert!(
            !html.contains("<script") && !html.contains("style="),
            "{path}"
        );
        let inputs = html.matches("<input id=\"").count()
            + html.matches("<textarea id=\"").count()
            + html.matches("<select id=\"").count();
        let labels = html.matches("<label for=\"").count();
        assert!(
            labels >= inputs,
            "{path}: {labels} labels for {inputs} fields"
        );
        assert!(
            r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }
}

#[tokio::test]
async fn the_resellers_colour_and_logo_are_served_and_carried_by_its_pages() {
    let (app, mut w) = panel().await;
    let mut branded = reseller("sakura", "さくらウェブ");
    branded.spec.branding = serde_json::from_value(json!({
        "accentColor": "#0B6E4F",
        "logo": {"mediaType": "image/png", "data": "iVBORw0KGgo="}
    }))
    .unwrap();
    w.resellers.apply_watcher_event(&Event::Apply(branded));
    // Its pages (the sign-in included, before any session) carry both.
    let login = body(&get(&app, "/r/sakura/login", "").await);
    assert!(
        login.contains("<link rel=\"stylesheet\" href=\"/brand/sakura/style.css?v="),
        "{login}"
    );
    assert!(
        login.contains("<img class=\"logo\" src=\"/brand/sakura/logo?v="),
        "{login}"
    );
    let end_users_login = body(&get(&app, "/login/sakura", "").await);
    assert!(end_users_login.contains("/brand/sakura/style.css"));
    let style = get(&app, "/brand/sakura/style.css", "").await;
    assert_eq!(style.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(body(&style), ":root { --accent: #0b6e4f; }\n");
    let logo = get(&app, "/brand/sakura/logo", "").await;
    assert_eq!(logo.status(), StatusCode::OK);
    assert_eq!(logo.headers()["content-type"], "image/png");
    assert_eq!(logo.body().as_ref(), b"\x89PNG\r\n\x1a\n");
    assert!(
        logo.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    // Another reseller's pages carry none of it; a reseller without a logo has none to serve.
    let plain = body(&get(&app, "/r/ume/login", "").await);
    assert!(!plain.contains("/brand/"), "{plain}");
    assert_eq!(
        get(&app, "/brand/ume/logo", "").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/brand/nobody/style.css", "").await.status(),
        StatusCode::NOT_FOUND
    );
}
