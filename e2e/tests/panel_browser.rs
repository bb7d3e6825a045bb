//! The end user's panel in a real browser: headless Chromium driven through WebDriver logs in
//! with the keyboard alone, sees its services, switches language, changes its password and
//! logs in with the new one; every page is written as a screenshot at a desktop and a phone
//! width, in Japanese and English: into the build folder (`target/panels/`), or into
//! docs/panels/ with `OEM_UPDATE_SCREENSHOTS=1`, so a test run leaves the tree as it was.

use std::path::PathBuf;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use oem_crds::EndUser;
use oem_crds::maintenance::Maintenance;
use oem_e2e::cluster::repo_root;
use oem_e2e::wait;
use oem_e2e::webdriver::{Browser, ENTER, TAB};
use serde_json::json;

mod panel_support;
use panel_support::{fixture, issued};

const DESKTOP: u32 = 1280;
/// A 16×16 PNG in the accent colour, base64: the test reseller's logo.
const LOGO_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAFklEQVR4nGPgzvMnCTGMahjVMHw1AAAQ/sgBnMi6gAAAAABJRU5ErkJggg==";
const PHONE: u32 = 390;

fn shots_dir() -> anyhow::Result<PathBuf> {
    let dir = if std::env::var_os("OEM_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        repo_root().join("docs/panels")
    } else {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"))
            .join("panels")
    };
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// What the monitor and the usage reporter would write (both are off in these tests): the
/// services' states, one down, and the usage, under a field manager of their own so the
/// operator's status writer keeps them.
async fn observed(client: &Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    let since = jiff::Timestamp::now().to_string();
    let service = |name: &str, state: &str, message: Option<&str>| {
        let mut entry =
            json!({"service": name, "state": state, "since": since, "lastProbe": since});
        if let Some(message) = message {
            entry["message"] = json!(message);
        }
        entry
    };
    let status = json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "EndUser",
        "metadata": {"name": name, "namespace": namespace},
        "status": {
            "services": [
                service("http", "Up", None), service("https", "Up", None),
                service("ftp", "Up", None), service("smtp", "Down", Some("connection refused")),
                service("imap", "Up", None), service("mysql", "Up", None),
            ],
            "usage": {"disk": "2Gi", "memory": "300Mi", "networkIn": "1200Mi",
                      "networkOut": "3Gi", "updatedAt": since}
        }
    });
    Api::<EndUser>::namespaced(client.clone(), namespace)
        .patch_status(
            name,
            &PatchParams::apply("e2e-monitor").force(),
            &Patch::Apply(&status),
        )
        .await?;
    // A window the reseller planned for this end user, two days ahead.
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48);
    let window = json!({
        "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Maintenance",
        "metadata": {"name": format!("{name}-upgrade"), "namespace": namespace},
        "spec": {
            "targets": [{"endUser": name, "services": ["http", "https"]}],
            "start": start.to_string(),
            "end": (start + jiff::SignedDuration::from_hours(2)).to_string(),
            "reason": {"ja": "ウェブサーバーの更新", "en": "web server upgrade"}
        }
    });
    Api::<Maintenance>::namespaced(client.clone(), namespace)
        .patch(
            &format!("{name}-upgrade"),
            &PatchParams::apply("e2e-reseller").force(),
            &Patch::Apply(&window),
        )
        .await?;
    Ok(())
}

/// The id of the focused element.
async fn focused(browser: &Browser) -> anyhow::Result<String> {
    Ok(browser
        .script("return document.activeElement ? document.activeElement.id : ''")
        .await?
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Presses Tab until the element `id` has the focus (at most `limit` times).
async fn tab_to(browser: &Browser, id: &str, limit: usize) -> anyhow::Result<()> {
    for _ in 0..limit {
        if focused(browser).await? == id {
            return Ok(());
        }
        browser.keys(TAB).await?;
    }
    anyhow::ensure!(focused(browser).await? == id, "Tab never reached #{id}");
    Ok(())
}

/// Waits until the page's path is `path`.
async fn at(browser: &Browser, path: &str) -> anyhow::Result<String> {
    wait::until(
        &format!("the browser at {path}"),
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let url = browser.current_url().await.map_err(|e| e.to_string())?;
            let here = url.split_once("://").map(|(_, r)| r).unwrap_or(&url);
            let here = &here[here.find('/').unwrap_or(here.len())..];
            if here.split('?').next() == Some(path) {
                Ok(url)
            } else {
                Err(url)
            }
        },
    )
    .await
}

/// Opens `url` until its source contains `text` (the panel's caches catch up), bounded.
async fn shows(browser: &Browser, url: &str, text: &str, limit: Duration) -> anyhow::Result<()> {
    wait::until(
        &format!("{url} to show {text}"),
        limit,
        Duration::from_millis(500),
        || async {
            browser.goto(url).await.map_err(|e| e.to_string())?;
            let source = browser.source().await.map_err(|e| e.to_string())?;
            source
                .contains(text)
                .then_some(())
                .ok_or_else(|| "not yet".to_owned())
        },
    )
    .await
}

/// Waits until the current page's source contains `text` (a form's answer arrived).
async fn shows_now(browser: &Browser, text: &str) -> anyhow::Result<()> {
    wait::until(
        &format!("the page to show {text}"),
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let source = browser.source().await.map_err(|e| e.to_string())?;
            source
                .contains(text)
                .then_some(())
                .ok_or_else(|| "not yet".to_owned())
        },
    )
    .await
}

/// Screenshots of the whole page at the desktop and the phone width, `<stem>-desktop.png` and
/// `<stem>-phone.png` in `dir`; the window is back at the desktop size after.
async fn shoot(browser: &Browser, dir: &std::path::Path, stem: &str) -> anyhow::Result<()> {
    for (width, size) in [(DESKTOP, "desktop"), (PHONE, "phone")] {
        browser
            .screenshot(width, &dir.join(format!("{stem}-{size}.png")))
            .await?;
    }
    browser.set_window(DESKTOP, 900).await
}

/// Opens `path` in `lang` through the language switch, and checks that every field has a
/// label and every button a name a screen reader can say.
async fn open_labelled(
    browser: &Browser,
    base: &str,
    lang: &str,
    path: &str,
) -> anyhow::Result<()> {
    browser
        .goto(&format!(
            "{base}/lang/{lang}?next={}",
            path.replace('/', "%2F")
        ))
        .await?;
    at(browser, path).await?;
    let unlabelled = browser
        .script(
            "return Array.from(document.querySelectorAll('input:not([type=hidden]), textarea, select'))\
             .filter(e => e.labels.length === 0).map(e => e.name)\
             .concat(Array.from(document.querySelectorAll('button'))\
             .filter(e => e.textContent.trim() === '').map(e => 'button'))",
        )
        .await?;
    anyhow::ensure!(
        unlabelled == json!([]),
        "unlabelled controls on {path}: {unlabelled}"
    );
    Ok(())
}

#[tokio::test]
async fn an_end_user_uses_the_panel_in_chromium_with_the_keyboard() -> anyhow::Result<()> {
    let (_, client, f) = fixture().await?;
    let (login, password) = issued(&client, f, "web").await?;
    observed(&client, &f.namespace, "web").await?;
    let browser = Browser::start(DESKTOP, 900, "ja,en;q=0.5").await?;
    let base = &f.panel.url;
    let login_path = format!("/login/{}", f.reseller);
    let home = format!("/u/{}/web", f.namespace);
    let dir = shots_dir()?;

    // Keyboard only: from the top of the login page, Tab to the fields, type, Enter.
    browser.goto(&format!("{base}{login_path}")).await?;
    let source = browser.source().await?;
    assert!(
        source.contains("<html lang=\"ja\">"),
        "the browser's language"
    );
    // English, then back to Japanese with the switch.
    for lang in ["en", "ja"] {
        browser
            .goto(&format!(
                "{base}/lang/{lang}?next=%2Flogin%2F{}",
                f.reseller
            ))
            .await?;
        at(&browser, &login_path).await?;
        shoot(&browser, &dir, &format!("login-{lang}")).await?;
    }
    tab_to(&browser, "login_id", 8).await?;
    browser.keys(&login).await?;
    browser.keys(TAB).await?;
    assert_eq!(focused(&browser).await?, "password");
    browser.keys(&password).await?;
    browser.keys(ENTER).await?;
    at(&browser, &home).await?;
    let overview = browser.source().await?;
    assert!(
        overview.contains(&format!("web.{}.example.jp", f.namespace)),
        "the domain is shown"
    );
    assert!(
        overview.contains(&format!("{} hosting", f.reseller)),
        "the brand is shown"
    );
    // The panel's cache shows what the monitor wrote (each service's state, the usage) and the
    // maintenance the reseller planned.
    for expected in [
        "稼働中",
        "停止中",
        "connection refused",
        "2Gi (20%)",
        "3Gi",
        "ウェブサーバーの更新",
    ] {
        assert!(
            overview.contains(expected),
            "{expected} missing from the overview"
        );
    }

    // Every page, in both languages, at both widths.
    for lang in ["en", "ja"] {
        for page in ["", "/credentials", "/php", "/password"] {
            let path = format!("{home}{page}");
            open_labelled(&browser, base, lang, &path).await?;
            let name = if page.is_empty() {
                "overview"
            } else {
                &page[1..]
            };
            shoot(&browser, &dir, &format!("{name}-{lang}")).await?;
        }
    }
    // The end user rotates its FTP password with the button: the Secret the FTP daemon
    // reads changes (hosting_real.rs logs in to the real daemon with a rotated one).
    let credentials = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
        client.clone(),
        &oem_e2e::hosting::hosting_namespace(
            &Api::<EndUser>::namespaced(client.clone(), &f.namespace)
                .get("web")
                .await?,
        )?,
    );
    let ftp_password = |s: &k8s_openapi::api::core::v1::Secret| {
        s.data
            .as_ref()
            .and_then(|d| d.get("ftp-password"))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
    };
    let before = ftp_password(&credentials.get("credentials").await?);
    browser.goto(&format!("{base}{home}/credentials")).await?;
    browser
        .click("form:has(input[name=service][value=ftp]) button")
        .await?;
    let rotated = wait::until(
        "the FTP password rotated from the browser",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || async {
            let now = ftp_password(
                &credentials
                    .get("credentials")
                    .await
                    .map_err(|e| e.to_string())?,
            );
            (now != before)
                .then_some(now)
                .ok_or_else(|| "unchanged".to_owned())
        },
    )
    .await?;
    let shown = browser.source().await?;
    assert!(
        rotated.as_deref().is_some_and(|p| shown.contains(p)),
        "the page shows the new FTP password"
    );

    // Five wrong passwords lock a login, in the browser too.
    let (inn, _) = issued(&client, f, "inn").await?;
    for attempt in 1..=5 {
        browser.goto(&format!("{base}{login_path}")).await?;
        browser.type_into("#login_id", &inn).await?;
        browser.type_into("#password", "not-the-password").await?;
        browser.click("form.card button[type=submit]").await?;
        let expected = if attempt < 5 {
            "login-error"
        } else {
            "しばらくログインできません"
        };
        shows_now(&browser, expected).await?;
    }

    // The phone layout does not scroll sideways.
    browser.set_window(PHONE, 900).await?;
    browser.goto(&format!("{base}{home}")).await?;
    let overflow = browser
        .script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
        )
        .await?
        .as_i64()
        .unwrap_or_default();
    assert!(
        overflow <= 0,
        "the overview scrolls sideways by {overflow}px at {PHONE}px"
    );
    browser.set_window(DESKTOP, 900).await?;

    // Change the password with the form (Japanese is the current language).
    browser.goto(&format!("{base}{home}/password")).await?;
    let new = "browser-changed-password-1";
    browser.type_into("#current_password", &password).await?;
    browser.type_into("#new_password", new).await?;
    browser.type_into("#confirm_password", new).await?;
    browser.click("form.card button[type=submit]").await?;
    at(&browser, &login_path).await?;
    let notice = browser.source().await?;
    assert!(
        notice.contains("パスワードを変更しました"),
        "the changed notice is shown"
    );
    // The old session is gone; the new password logs in.
    browser.goto(&format!("{base}{home}")).await?;
    at(&browser, &login_path).await?;
    wait::until(
        "a browser login with the new password",
        Duration::from_secs(20),
        Duration::from_millis(500),
        || async {
            let attempt = async {
                browser.goto(&format!("{base}{login_path}")).await?;
                browser.type_into("#login_id", &login).await?;
                browser.type_into("#password", new).await?;
                browser.click("form.card button[type=submit]").await?;
                at(&browser, &home).await
            };
            attempt.await.map(drop).map_err(|e| e.to_string())
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_reseller_uses_its_panel_in_chromium() -> anyhow::Result<()> {
    let (_, client, f) = fixture().await?;
    observed(&client, &f.namespace, "shop").await?;
    let password = oem_e2e::panel::issued_reseller_password(&client, &f.reseller).await?;
    let browser = Browser::start(DESKTOP, 900, "ja,en;q=0.5").await?;
    let base = &f.panel.url;
    let r = format!("/r/{}", f.reseller);
    let dir = shots_dir()?;
    // The reseller's look: its accent colour and a 16×16 logo, served by the panel under the
    // pages' Content-Security-Policy, take effect in the browser.
    Api::<oem_crds::Reseller>::all(client.clone())
        .patch(
            &f.reseller,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"branding": {"accentColor": "#0B6E4F", "logo": {
                "mediaType": "image/png", "data": LOGO_PNG}}}}),
            ),
        )
        .await?;
    wait::until(
        "the reseller's look in the browser",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            browser
                .goto(&format!("{base}{r}/login"))
                .await
                .map_err(|e| e.to_string())?;
            let look = browser
                .script(
                    "const img = document.querySelector('header img.logo');\
                     return [getComputedStyle(document.querySelector('form button')).backgroundColor,\
                             img && img.complete ? img.naturalWidth : 0]",
                )
                .await
                .map_err(|e| e.to_string())?;
            (look == json!(["rgb(11, 110, 79)", 16]))
                .then_some(())
                .ok_or_else(|| format!("colour and logo width: {look}"))
        },
    )
    .await?;
    shoot(&browser, &dir, "reseller-login-ja").await?;
    // The keyboard alone signs in.
    tab_to(&browser, "login_id", 8).await?;
    browser.keys("admin").await?;
    browser.keys(TAB).await?;
    browser.keys(&password).await?;
    browser.keys(ENTER).await?;
    at(&browser, &format!("{r}/customers")).await?;
    let list = browser.source().await?;
    assert!(
        list.contains("shop") && list.contains("契約名"),
        "the customer list"
    );

    // A customer through the form: bad input first, shown at its field; then right.
    browser.goto(&format!("{base}{r}/customers/new")).await?;
    browser.type_into("#f-name", "browser").await?;
    browser.type_into("#f-loginId", "browser").await?;
    browser.type_into("#f-contractName", "ブラウザ商会").await?;
    browser.type_into("#f-contactEmail", "b@example.jp").await?;
    browser.type_into("#f-domains", "Not_A_Host").await?;
    browser
        .script(
            "document.getElementById('f-contractDate').value='2025-01-01';\
             document.getElementById('f-startDate').value='2025-01-01'; return 0",
        )
        .await?;
    browser.click("form.card button[type=submit]").await?;
    // The answer comes back to the same address, so wait for its message, not for the URL.
    let refused = wait::until(
        "the refusal at the domains field",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let text = browser
                .script(
                    "const e = document.getElementById('f-domains-error'); return e ? e.textContent : ''",
                )
                .await
                .map_err(|e| e.to_string())?;
            let text = text.as_str().unwrap_or_default().to_owned();
            (!text.is_empty()).then_some(text).ok_or_else(|| "no message yet".to_owned())
        },
    )
    .await?;
    assert!(
        refused.contains("spec.domains"),
        "{refused}\n{}",
        f.panel.log_tail(20)
    );
    shoot(&browser, &dir, "reseller-refused-ja").await?;
    browser
        .script(
            "document.getElementById('f-domains').value='browser.example.jp';\
             document.getElementById('f-contractDate').value='2025-01-01';\
             document.getElementById('f-startDate').value='2025-01-01'; return 0",
        )
        .await?;
    browser.click("form.card button[type=submit]").await?;
    at(&browser, &format!("{r}/customers/browser")).await?;
    // The reseller sees it turn Active on its page, then suspends it with the button.
    let customer = format!("{base}{r}/customers/browser");
    shows(
        &browser,
        &customer,
        "状態: <strong>稼働中</strong>",
        Duration::from_secs(120),
    )
    .await?;
    browser.click("form[action$='/suspend'] button").await?;
    oem_e2e::hosting::wait_phase(
        &client,
        &f.namespace,
        "browser",
        "Suspended",
        Duration::from_secs(120),
    )
    .await?;
    shows(
        &browser,
        &customer,
        "状態: <strong>停止中(契約による)</strong>",
        Duration::from_secs(30),
    )
    .await?;

    // An incident of the customer: the reseller records its cause in the form.
    let incident = "browser-http-e2e";
    Api::<oem_crds::Incident>::namespaced(client.clone(), &f.namespace)
        .patch(
            incident,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(json!({
                "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Incident",
                "metadata": {"name": incident, "namespace": f.namespace},
                "spec": {"endUser": "browser", "service": "http", "kind": "ServiceDown"}
            })),
        )
        .await?;
    shows(
        &browser,
        &format!("{base}{r}/incidents/{incident}"),
        "id=\"f-cause\"",
        Duration::from_secs(30),
    )
    .await?;
    let cause = "the web server ran out of workers during a traffic spike";
    browser.type_into("#f-cause", cause).await?;
    browser
        .click("form.card:has(#f-cause) button[type=submit]")
        .await?;
    wait::until(
        "the cause recorded",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || async {
            let recorded = Api::<oem_crds::Incident>::namespaced(client.clone(), &f.namespace)
                .get(incident)
                .await
                .map_err(|e| e.to_string())?
                .spec
                .cause;
            (recorded.as_deref() == Some(cause))
                .then_some(())
                .ok_or_else(|| format!("cause {recorded:?}"))
        },
    )
    .await?;

    // Every page, in both languages, at both widths, every control labelled.
    for lang in ["en", "ja"] {
        for (page, name) in [
            ("customers", "customers"),
            ("customers/shop", "customer"),
            ("courses", "courses"),
            ("courses/standard", "course"),
            ("incidents", "incidents"),
            ("usage", "usage"),
        ] {
            let path = format!("{r}/{page}");
            open_labelled(&browser, base, lang, &path).await?;
            shoot(&browser, &dir, &format!("reseller-{name}-{lang}")).await?;
        }
    }
    Ok(())
}
