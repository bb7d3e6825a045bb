//! Hosting that really serves, on the real node: the project's images (built from Debian
//! packages by `scripts/build-images.sh`) run what the operator provisions, as uid 10001 with
//! no capabilities, under the hosting namespace's `restricted` Pod Security. An end user
//! uploads `index.php` over FTPS with the account from its credentials Secret; the web Service
//! answers with the page rendered by the course's PHP version, reading a row from the end
//! user's own database with the credentials the operator injected; a change of the course's PHP
//! version is served by the other image with files and database kept; a PostgreSQL course works
//! the same way; a rotated database password reaches PHP and the database; an FTP password the
//! end user rotates in its panel logs in to the FTP daemon, and the old one is refused.
//!
//! Runs only inside a network and mount namespace of its own (scripts/test.sh does that), on
//! the real-node cluster of `real_node.rs`; whatever it needs and misses, it fails.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use oem_crds::EndUser;
use oem_e2e::cluster::DownOnDrop;
use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::operator::{Operator, OperatorOptions, real_node_config, sample};
use oem_e2e::panel::{Panel, PanelClient};
use oem_e2e::real_hosting::{
    Served, active_on_the_real_node, cluster_ip, curl, import_images, pods_report, retrying,
    secret_value, upload_over_ftps,
};
use oem_e2e::{Cluster, http_get, wait};
use serde_json::json;

/// Pulling nothing, but starting MariaDB or PostgreSQL for the first time takes a while.
const LIMIT: Duration = Duration::from_secs(240);
/// How long a daemon that just started may refuse a client.
const RETRY: Duration = Duration::from_secs(90);

/// The site the end user uploads: which PHP runs it, and a row of its own database.
const INDEX_PHP: &str = r#"<?php
$engine = getenv('DB_ENGINE');
$driver = $engine === 'postgresql' ? 'pgsql' : 'mysql';
$dsn = sprintf('%s:host=%s;port=%s;dbname=%s', $driver, getenv('DB_HOST'), getenv('DB_PORT'), getenv('DB_NAME'));
$db = new PDO($dsn, getenv('DB_USER'), getenv('DB_PASSWORD'), [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
$db->exec('CREATE TABLE IF NOT EXISTS greeting (message VARCHAR(64))');
if ((int) $db->query('SELECT COUNT(*) FROM greeting')->fetchColumn() === 0) {
    $db->exec("INSERT INTO greeting (message) VALUES ('kept in " . $engine . "')");
}
printf("php %d.%d: %s\n", PHP_MAJOR_VERSION, PHP_MINOR_VERSION, $db->query('SELECT message FROM greeting')->fetchColumn());
"#;

/// Waits until the site of `ns` answers 200 with a body containing `want`; on failure, says
/// what its pods are doing.
async fn site_of_says(
    client: &Client,
    ns: &str,
    ip: &str,
    want: &str,
    limit: Duration,
) -> anyhow::Result<String> {
    match site_says(ip, want, limit).await {
        Ok(body) => Ok(body),
        Err(e) => Err(e.context(format!("pods of {ns}:\n{}", pods_report(client, ns).await))),
    }
}

/// Waits until the site answers 200 with a body containing `want`; returns the body.
async fn site_says(ip: &str, want: &str, limit: Duration) -> anyhow::Result<String> {
    let url = format!("http://{ip}:80/index.php");
    wait::until(
        &format!("{url} to say {want:?}"),
        limit,
        Duration::from_secs(1),
        || async {
            match http_get(&url).await {
                Ok((200, body)) if body.contains(want) => Ok(body),
                Ok((status, body)) => Err(format!(
                    "{status}: {}",
                    body.chars().take(300).collect::<String>()
                )),
                Err(e) => Err(format!("{e:#}")),
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uploaded_site_is_served_by_the_courses_php_reading_its_own_database()
-> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(Cluster::real_node).await??;
    let guard = DownOnDrop(Some(cluster));
    let cluster = guard.0.as_ref().context("cluster")?;
    eprintln!(
        "real-node cluster up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    import_images(cluster, &[])?;

    let dir = tempfile::tempdir()?;
    let config = real_node_config(dir.path(), "")?;
    let _operator = Operator::start(cluster, OperatorOptions::with_config(&config)).await?;
    let client = cluster.client().await?;
    let reseller = "realhost";
    let ns = hosting::reseller_with_namespace(
        &client,
        reseller,
        json!([{"kind": "User", "name": "realhost-admin"}]),
    )
    .await?;
    // Half a CPU each: both end users, their restarts and CoreDNS fit the 2-CPU node at once.
    let site_course = |name: &str, php: &str, engine: &str| {
        let services = json!({
            "web": {"phpVersion": php}, "ftp": {"tls": true}, "database": {"engine": engine}
        });
        let mut course = hosting::course(&ns, name, "1Gi", services);
        course["spec"]["resources"]["cpu"] = json!("500m");
        course
    };
    apply_course(&client, site_course("site", "8.2", "mariadb")).await?;
    apply_course(&client, site_course("site-pg", "8.4", "postgresql")).await?;
    let maria = apply_enduser(
        &client,
        hosting::enduser(&ns, "maria", "site", "2025-01-01", json!({})),
    )
    .await?;
    let pg = apply_enduser(
        &client,
        hosting::enduser(&ns, "pg", "site-pg", "2025-01-01", json!({})),
    )
    .await?;

    // 1. FTPS upload → PHP 8.2 renders it, reading a row of its MariaDB.
    let site = active_on_the_real_node(&client, &maria, LIMIT).await?;
    let ftp_password = secret_value(&site.credentials, "ftp-password")?;
    upload_over_ftps(
        &site.web_ip,
        &site.login,
        &ftp_password,
        "index.php",
        INDEX_PHP,
    )
    .await?;
    let body = site_of_says(
        &client,
        &site.ns,
        &site.web_ip,
        "php 8.2: kept in mariadb",
        LIMIT,
    )
    .await?;
    eprintln!("maria answered: {}", body.trim());

    // 2. The course moves to PHP 8.4 → the same site, files and database kept.
    let moved = Instant::now();
    apply_course(&client, site_course("site", "8.4", "mariadb")).await?;
    let body = site_of_says(
        &client,
        &site.ns,
        &site.web_ip,
        "php 8.4: kept in mariadb",
        LIMIT,
    )
    .await?;
    eprintln!(
        "after the PHP change ({:.1} s): {}",
        moved.elapsed().as_secs_f64(),
        body.trim()
    );

    // 3. A rotated database password reaches the database and PHP (both restart with it).
    let rotated = Instant::now();
    let patch = json!({"stringData": {"db-password": "Rotated-0123456789abcdef"}});
    Api::<Secret>::namespaced(client.clone(), &site.ns)
        .patch(
            "credentials",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    restarted_with_the_credentials(&client, &site.ns).await?;
    let body = site_of_says(
        &client,
        &site.ns,
        &site.web_ip,
        "php 8.4: kept in mariadb",
        LIMIT,
    )
    .await?;
    eprintln!(
        "after rotating the database password ({:.1} s): {}",
        rotated.elapsed().as_secs_f64(),
        body.trim()
    );

    // 3b. The end user rotates its FTP password in its panel: the new one logs in to the FTP
    //     daemon, the old one is refused.
    let rotated = Instant::now();
    ftp_rotated_in_the_panel(cluster, &client, reseller, &maria, &site).await?;
    eprintln!(
        "an FTP password rotated in the panel logs in ({:.1} s)",
        rotated.elapsed().as_secs_f64()
    );

    // 4. PostgreSQL works the same way.
    let site = active_on_the_real_node(&client, &pg, LIMIT).await?;
    let ftp_password = secret_value(&site.credentials, "ftp-password")?;
    upload_over_ftps(
        &site.web_ip,
        &site.login,
        &ftp_password,
        "index.php",
        INDEX_PHP,
    )
    .await?;
    let body = site_of_says(
        &client,
        &site.ns,
        &site.web_ip,
        "php 8.4: kept in postgresql",
        LIMIT,
    )
    .await?;
    eprintln!("pg answered: {}", body.trim());

    // 5. Mail: submission with authentication to the end user's own address, read over IMAPS
    //    and POP3S; the hourly limit refuses the second mail to another domain, and the mail
    //    service's own metrics count both.
    apply_course(&client, mail_course(&ns)).await?;
    let mailer = apply_enduser(
        &client,
        hosting::enduser(&ns, "mailer", "post", "2025-01-01", json!({})),
    )
    .await?;
    mail_round_trip(&client, &mailer).await?;

    eprintln!(
        "hosting on the real node: {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Waits until every pod of the hosting namespace `ns` runs with the current version of its
/// `credentials` Secret and is Ready (the operator rolls them on a change).
async fn restarted_with_the_credentials(client: &Client, ns: &str) -> anyhow::Result<()> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    wait::until(
        "the pods to restart with the new credentials",
        LIMIT,
        Duration::from_secs(1),
        || async {
            let version = secrets
                .get("credentials")
                .await
                .map_err(|e| e.to_string())?
                .resource_version();
            let list = pods
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let current = |p: &Pod| {
                p.annotations()
                    .get("hosting.oem.dev/credentials-version")
                    .is_some_and(|v| Some(v) == version.as_ref())
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            };
            let done = list.items.iter().filter(|p| current(p)).count();
            if done == list.items.len() && done >= 2 {
                Ok(())
            } else {
                Err(format!(
                    "{done} of {} pods restarted and ready",
                    list.items.len()
                ))
            }
        },
    )
    .await
}

/// The end user signs in to its panel with the issued password and rotates its FTP password
/// there; the FTP daemon then takes the new password and refuses the old one.
async fn ftp_rotated_in_the_panel(
    cluster: &Cluster,
    client: &Client,
    reseller: &str,
    enduser: &EndUser,
    site: &Served,
) -> anyhow::Result<()> {
    let panel = Panel::start(cluster, "").await?;
    let reseller_ns = enduser.namespace().unwrap_or_default();
    let name = enduser.name_any();
    let issued: Secret = Api::namespaced(client.clone(), &reseller_ns)
        .get(&format!("{name}-login"))
        .await?;
    let browser = PanelClient::new(&panel.url)?;
    let answer = browser
        .login(
            reseller,
            &enduser.spec.login_id,
            &secret_value(&issued, "password")?,
        )
        .await?;
    ensure!(
        answer.status == 303,
        "login: {} {}",
        answer.status,
        panel.log_tail(20)
    );
    let secrets = Api::<Secret>::namespaced(client.clone(), &site.ns);
    let old = secret_value(&secrets.get("credentials").await?, "ftp-password")?;
    let path = format!("/u/{reseller_ns}/{name}/credentials");
    let csrf = browser
        .get(&path)
        .await?
        .field("csrf")
        .context("the credentials page has no form")?;
    let rotated = browser
        .post(&path, &[("csrf", &csrf), ("service", "ftp")])
        .await?;
    ensure!(
        rotated.status == 303,
        "rotation: {} {}",
        rotated.status,
        rotated.body
    );
    let new = secret_value(&secrets.get("credentials").await?, "ftp-password")?;
    ensure!(new != old, "the FTP password did not change");
    restarted_with_the_credentials(client, &site.ns).await?;
    upload_over_ftps(&site.web_ip, &site.login, &new, "rotated.txt", "rotated\n").await?;
    let refused = curl(&[
        "--ssl-reqd",
        "--user",
        &format!("{}:{old}", site.login),
        &format!("ftp://{}:21/", site.web_ip),
    ]);
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("(67)")),
        "the old FTP password should be refused (curl 67, login denied): {refused:?}"
    );
    Ok(())
}

/// A course with mail only, at most one mail per hour to other domains.
fn mail_course(ns: &str) -> serde_json::Value {
    let mut course = hosting::course(ns, "post", "512Mi", json!({"mail": {"maxSendsPerHour": 1}}));
    course["spec"]["resources"]["cpu"] = json!("300m");
    course
}

async fn mail_round_trip(client: &Client, enduser: &EndUser) -> anyhow::Result<()> {
    let site = active_on_the_real_node(client, enduser, LIMIT).await?;
    let ip = cluster_ip(client, &site.ns, "mail").await?;
    let accounts = secret_value(&site.credentials, "mail-accounts")?;
    let (address, password) = accounts
        .lines()
        .next()
        .and_then(|l| l.split_once(':'))
        .context("mail-accounts has no address:password line")?;
    let user = format!("{address}:{password}");
    let dir = tempfile::tempdir()?;
    let message = dir.path().join("message.eml");
    std::fs::write(
        &message,
        format!(
            "From: {address}\r\nTo: {address}\r\nSubject: real node\r\n\r\ndelivered on the real node\r\n"
        ),
    )?;
    let message_s = message.to_string_lossy().into_owned();
    retrying("submission with STARTTLS and AUTH", RETRY, || {
        curl(&[
            "--ssl-reqd",
            "--user",
            &user,
            "--mail-from",
            address,
            "--mail-rcpt",
            address,
            "-T",
            &message_s,
            &format!("smtp://{ip}:587"),
        ])
    })
    .await?;
    let imap = retrying("reading the mail over IMAPS", RETRY, || {
        let text = curl(&["--user", &user, &format!("imaps://{ip}:993/INBOX;UID=1")])?;
        ensure!(
            text.contains("delivered on the real node"),
            "not there yet: {text}"
        );
        Ok(text)
    })
    .await?;
    let pop = curl(&["--user", &user, &format!("pop3s://{ip}:995/1")])?;
    ensure!(pop.contains("delivered on the real node"), "POP3S: {pop}");
    eprintln!(
        "mail for {address}: submitted, read over IMAPS ({} bytes) and POP3S",
        imap.len()
    );

    // The hourly limit is 1: the first mail to another domain is taken, the second refused.
    let outside = "someone@elsewhere.example.com";
    curl(&[
        "--ssl-reqd",
        "--user",
        &user,
        "--mail-from",
        address,
        "--mail-rcpt",
        outside,
        "-T",
        &message_s,
        &format!("smtps://{ip}:465"),
    ])?;
    let refused = curl(&[
        "--ssl-reqd",
        "--user",
        &user,
        "--mail-from",
        address,
        "--mail-rcpt",
        outside,
        "-T",
        &message_s,
        &format!("smtps://{ip}:465"),
    ]);
    let refused = refused
        .err()
        .context("a second mail within the hour was accepted")?;
    ensure!(
        format!("{refused:#}").contains("451"),
        "expected 451 for the mail over the limit: {refused:#}"
    );
    let (status, metrics) = http_get(&format!("http://{ip}:9154/metrics")).await?;
    ensure!(status == 200, "mail metrics answered {status}");
    ensure!(
        sample(&metrics, "oem_mail_sent_total", &[]) == Some(1.0)
            && sample(&metrics, "oem_mail_refused_total", &[]) == Some(1.0),
        "mail metrics: {metrics}"
    );
    eprintln!("hourly limit: 1 sent, 1 refused with 451, both counted by the mail service");
    Ok(())
}
