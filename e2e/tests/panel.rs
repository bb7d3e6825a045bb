//! The end user's panel end to end: the operator provisions end users on the local control
//! plane (issuing their login passwords and service credentials), the panel runs as its own
//! process under its own least-privilege role, and a cookie-keeping HTTP client uses it as a
//! browser would. Each test uses an end user of its own.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use oem_crds::EndUser;
use oem_e2e::hosting;
use oem_e2e::panel::PanelClient;
use oem_e2e::wait;

mod panel_support;
use panel_support::{Fixture, fixture, issued};

/// A browser logged in as `name`.
async fn logged_in(client: &Client, f: &Fixture, name: &str) -> anyhow::Result<PanelClient> {
    let (login, password) = issued(client, f, name).await?;
    let browser = PanelClient::new(&f.panel.url)?;
    let answer = browser.login(&f.reseller, &login, &password).await?;
    anyhow::ensure!(
        answer.status == 303 && answer.header("location") == format!("/u/{}/{name}", f.namespace),
        "login of {name}: {} {}\n{}",
        answer.status,
        answer.header("location"),
        f.panel.log_tail(20)
    );
    Ok(browser)
}

#[tokio::test]
async fn the_issued_password_logs_in_and_the_overview_shows_the_hosting() -> anyhow::Result<()> {
    let (_, client, f) = fixture().await?;
    let browser = logged_in(&client, f, "shop").await?;
    let page = browser.get(&format!("/u/{}/shop", f.namespace)).await?;
    assert_eq!(page.status, 200);
    for expected in [
        format!("{} hosting", f.reseller),
        "standard".to_owned(),
        format!("shop.{}.example.jp", f.namespace),
        "192.0.2.80".to_owned(),
        "10 mx.example.net.".to_owned(),
        "v=spf1 a mx ~all".to_owned(),
        format!("oem._domainkey.shop.{}.example.jp", f.namespace),
        "v=DKIM1; k=rsa; p=MIIBIjAN".to_owned(),
        "稼働中".to_owned(),
    ] {
        assert!(
            page.body.contains(&expected),
            "{expected} missing:\n{}",
            page.body
        );
    }
    for header in [
        "content-security-policy",
        "x-content-type-options",
        "referrer-policy",
    ] {
        assert!(!page.header(header).is_empty(), "{header} missing");
    }
    assert!(
        page.header("content-security-policy")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(page.header("cache-control"), "no-store");
    let (_, password) = issued(&client, f, "shop").await?;
    assert!(
        !f.panel.log().contains(&password),
        "the password is never logged"
    );
    // Figures (printed, never failing on time): the overview from the caches, 200 times.
    let mut took = Vec::new();
    for _ in 0..200 {
        let started = std::time::Instant::now();
        let answer = browser.get(&format!("/u/{}/shop", f.namespace)).await?;
        took.push(started.elapsed());
        assert_eq!(answer.status, 200);
    }
    took.sort();
    println!(
        "panel overview over loopback: p50 {:?}, p99 {:?}; panel RSS {} KiB",
        took[100],
        took[197],
        f.panel.rss_kib().unwrap_or_default()
    );
    Ok(())
}

#[tokio::test]
async fn another_end_users_page_is_404_and_a_form_without_csrf_is_403() -> anyhow::Result<()> {
    let (_, client, f) = fixture().await?;
    let browser = logged_in(&client, f, "cafe").await?;
    for path in ["", "/credentials", "/password"] {
        let other = browser
            .get(&format!("/u/{}/shop{path}", f.namespace))
            .await?;
        assert_eq!(other.status, 404, "shop{path}");
    }
    let forged = browser
        .post(
            &format!("/u/{}/cafe/password", f.namespace),
            &[("current_password", "x"), ("new_password", "y")],
        )
        .await?;
    assert_eq!(forged.status, 403);
    Ok(())
}

#[tokio::test]
async fn rotating_the_ftp_password_rewrites_the_secret_and_restarts_the_workload()
-> anyhow::Result<()> {
    let (_, client, f) = fixture().await?;
    let browser = logged_in(&client, f, "deli").await?;
    let eu: EndUser = Api::namespaced(client.clone(), &f.namespace)
        .get("deli")
        .await?;
    let hosting_ns = hosting::hosting_namespace(&eu)?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &hosting_ns);
    let ftp_password = |s: &Secret| {
        s.data
            .as_ref()
            .and_then(|d| d.get("ftp-password"))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_default()
    };
    let before = secrets.get("credentials").await?;
    let path = format!("/u/{}/deli/credentials", f.namespace);
    let page = browser.get(&path).await?;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&ftp_password(&before)),
        "the page shows the FTP password"
    );
    let csrf = page
        .field("csrf")
        .expect("the rotate form has a csrf field");
    let rotated = browser
        .post(&path, &[("csrf", &csrf), ("service", "ftp")])
        .await?;
    assert_eq!(rotated.status, 303, "{}", rotated.body);
    let after = secrets.get("credentials").await?;
    let new = ftp_password(&after);
    assert_ne!(new, ftp_password(&before));
    assert_eq!(new.len(), 24);
    assert!(browser.get(&path).await?.body.contains(&new));
    // The operator rolls the workloads: their pod templates carry the Secret's version.
    let version = after.resource_version().unwrap_or_default();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &hosting_ns);
    wait::until(
        "the workloads to carry the rotated credentials",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let list = sets
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let carried = list.items.iter().any(|s| {
                s.spec
                    .as_ref()
                    .and_then(|spec| spec.template.metadata.as_ref())
                    .and_then(|m| m.annotations.as_ref())
                    .and_then(|a| a.get("hosting.oem.dev/credentials-version"))
                    == Some(&version)
            });
            carried
                .then_some(())
                .ok_or_else(|| format!("not yet at {version}"))
        },
    )
    .await?;
    assert!(
        !f.panel.log().contains(&new),
        "the new password is never logged"
    );
    Ok(())
}

#[tokio::test]
async fn changing_the_password_ends_the_sessions_and_the_new_one_logs_in() -> anyhow::Result<()> {
    let (_, client, f) = fixture().await?;
    let (login, old) = issued(&client, f, "inn").await?;
    let browser = logged_in(&client, f, "inn").await?;
    let other_session = logged_in(&client, f, "inn").await?;
    let path = format!("/u/{}/inn/password", f.namespace);
    let form = browser.get(&path).await?;
    let csrf = form.field("csrf").expect("csrf field");
    let new = "a-new-long-password-1";
    let changed = browser
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("current_password", &old),
                ("new_password", new),
                ("confirm_password", new),
            ],
        )
        .await?;
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert_eq!(
        issued(&client, f, "inn").await?.1,
        new,
        "the Secret holds the new password"
    );
    let home = format!("/u/{}/inn", f.namespace);
    assert_eq!(
        other_session.get(&home).await?.status,
        303,
        "other sessions ended"
    );
    let fresh = PanelClient::new(&f.panel.url)?;
    assert_eq!(fresh.login(&f.reseller, &login, &old).await?.status, 401);
    // The panel's Secret cache may take a moment to see the new version.
    wait::until(
        "a login with the new password",
        Duration::from_secs(20),
        Duration::from_millis(500),
        || async {
            let answer = fresh
                .login(&f.reseller, &login, new)
                .await
                .map_err(|e| e.to_string())?;
            (answer.status == 303)
                .then_some(())
                .ok_or_else(|| format!("{}", answer.status))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_login_until_the_reseller_lifts_it() -> anyhow::Result<()> {
    let (cluster, client, f) = fixture().await?;
    let (login, password) = issued(&client, f, "bar").await?;
    let browser = PanelClient::new(&f.panel.url)?;
    for attempt in 1..=5 {
        let answer = browser
            .login(&f.reseller, &login, "not-the-password")
            .await?;
        let expected = if attempt < 5 { 401 } else { 429 };
        assert_eq!(answer.status, expected, "attempt {attempt}");
    }
    assert_eq!(
        browser.login(&f.reseller, &login, &password).await?.status,
        429
    );
    // The reseller sees the lock on the EndUser...
    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &f.namespace);
    wait::until(
        "the lock annotation",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || async {
            let eu = endusers.get("bar").await.map_err(|e| e.to_string())?;
            eu.annotations()
                .get("hosting.oem.dev/panel-locked-until")
                .cloned()
                .ok_or_else(|| "not yet".to_owned())
        },
    )
    .await?;
    // ...and lifts it by removing the annotation.
    cluster.kubectl_ok(
        &[
            "annotate",
            "enduser",
            "bar",
            "-n",
            &f.namespace,
            "hosting.oem.dev/panel-locked-until-",
        ],
        None,
    )?;
    // The panel's memory lock yields to the annotation 10 s after writing it.
    wait::until(
        "a login after the lift",
        Duration::from_secs(40),
        Duration::from_millis(500),
        || async {
            let answer = browser
                .login(&f.reseller, &login, &password)
                .await
                .map_err(|e| e.to_string())?;
            (answer.status == 303)
                .then_some(())
                .ok_or_else(|| format!("{}", answer.status))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn an_end_user_chooses_a_php_version_its_course_allows_and_the_web_runs_it()
-> anyhow::Result<()> {
    let (_, client, f) = fixture().await?;
    // The reseller lets end users on the course choose 8.2 besides the course's 8.4.
    let courses: Api<oem_crds::Course> = Api::namespaced(client.clone(), &f.namespace);
    courses
        .patch(
            "standard",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"spec": {"services": {"web": {"allowedPhpVersions": ["8.2"]}}}}),
            ),
        )
        .await?;
    let browser = logged_in(&client, f, "cafe").await?;
    let path = format!("/u/{}/cafe/php", f.namespace);
    let page = wait::until(
        "the panel's cache of the course",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            let page = browser.get(&path).await.map_err(|e| e.to_string())?;
            page.body
                .contains("<option value=\"8.2\">")
                .then_some(page)
                .ok_or_else(|| "no choice yet".to_owned())
        },
    )
    .await?;
    let csrf = page.field("csrf").expect("the PHP form has a csrf field");
    let refused = browser
        .post(&path, &[("csrf", &csrf), ("php_version", "7.4")])
        .await?;
    assert_eq!(refused.status, 422, "a version the course does not offer");
    let chosen = browser
        .post(&path, &[("csrf", &csrf), ("php_version", "8.2")])
        .await?;
    assert_eq!(
        chosen.status,
        303,
        "{}\n{}",
        chosen.body,
        f.panel.log_tail(20)
    );
    let eu: EndUser = Api::namespaced(client.clone(), &f.namespace)
        .get("cafe")
        .await?;
    assert_eq!(
        eu.spec.web.as_ref().and_then(|w| w.php_version.as_deref()),
        Some("8.2")
    );
    let owner = eu
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:web").is_some())
        })
        .and_then(|m| m.manager.clone());
    assert_eq!(owner.as_deref(), Some("oem-hosting-enduser"));
    // The operator serves it with the PHP 8.2 image.
    let hosting_ns = hosting::hosting_namespace(&eu)?;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &hosting_ns);
    wait::until(
        "the web to run PHP 8.2",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let list = sets
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let images: Vec<String> = list
                .items
                .iter()
                .filter_map(|s| s.spec.as_ref())
                .flat_map(|s| s.template.spec.iter().flat_map(|p| p.containers.iter()))
                .filter(|c| c.name == "web")
                .filter_map(|c| c.image.clone())
                .collect();
            images
                .iter()
                .any(|i| i.contains("web-php8.2"))
                .then_some(())
                .ok_or_else(|| format!("web images: {images:?}"))
        },
    )
    .await?;
    let overview = browser.get(&format!("/u/{}/cafe", f.namespace)).await?;
    assert!(
        overview.body.contains("8.2"),
        "the overview shows the chosen version"
    );
    Ok(())
}
