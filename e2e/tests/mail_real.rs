//! Mass mail on the real node (SPEC §7 level 1, "lock the account"), with nothing standing in:
//! the project's mail image runs what the operator provisions; a real Prometheus discovers
//! the mail pod with the chart's own scrape configuration
//! (`charts/oem-hosting/files/tenant-mail-scrape.yaml`, whose relabelling adds the reseller and
//! enduser labels; Debian's Prometheus lacks Kubernetes discovery, so the test lists the pods
//! the chart's selector matches and hands Prometheus their metadata as Kubernetes discovery
//! would) and loads the chart's alert rules (time-scaled). An end user exceeds its course's
//! `maxSendsPerHour` → its MTA refuses (451) → the exported counters make `HostingMassMail`
//! fire → the operator opens a MassMail incident, sets `status.mailLocked`, removes the SMTP
//! egress NetworkPolicy and restarts the mail container with `MAIL_LOCKED=true` → a relay is
//! refused by the lock (550) even below the hourly limit, while local mail still flows → the
//! reseller's contact is told by e-mail (a real SMTP server); the reseller lifts the lock and
//! the MTA relays again.
//!
//! Runs only inside a network and mount namespace of its own (scripts/test.sh does that).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use oem_crds::{EndUser, Incident};
use oem_e2e::cluster::{DownOnDrop, repo_root};
use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::operator::{Operator, OperatorOptions, real_node_config, sample};
use oem_e2e::prometheus::{Prometheus, PrometheusOptions, ScrapeTarget, SmtpSink, SmtpSinkOptions};
use oem_e2e::real_hosting::{
    Served, active_on_the_real_node, cluster_ip, curl, first_mail_account, import_images,
    pods_report, retrying, send_over_smtps,
};
use oem_e2e::tenant_scrape::{discover_pods, tenant_mail_scrape};
use oem_e2e::{Cluster, free_port, http_get, wait};
use oem_operator::alerting::rules;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(180);
/// The course's hourly limit: two mails out, the third refused.
const MAX_SENDS: u32 = 2;
const OUTSIDE: &str = "someone@elsewhere.example.com";

/// The chart's rules with the mass-mail window and delay scaled from 1 h and 5 min.
fn scaled_rules(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let values: BTreeMap<String, String> = [("massMailWindow", "30s"), ("massMailFor", "2s")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let text = rules::render(rules::DEFAULT_RULES, &values).map_err(anyhow::Error::msg)?;
    let path = dir.join("alert-rules.yaml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Waits until the mail pod runs a container with `MAIL_LOCKED` as wanted and
/// `MAX_SENDS_PER_HOUR` as given, Ready.
async fn mail_pod_with(
    client: &Client,
    ns: &str,
    locked: bool,
    max_sends: u32,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let result = wait::until(
        &format!("the mail pod Ready with MAIL_LOCKED={locked}, MAX_SENDS_PER_HOUR={max_sends}"),
        LIMIT,
        Duration::from_millis(500),
        || async {
            let pod = pods.get("mail-0").await.map_err(|e| e.to_string())?;
            let env: Vec<(String, Option<String>)> = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.env.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e.name, e.value))
                .collect();
            let has = |k: &str, v: &str| env.contains(&(k.to_owned(), Some(v.to_owned())));
            let is_locked = has("MAIL_LOCKED", "true");
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if is_locked == locked
                && has("MAX_SENDS_PER_HOUR", &max_sends.to_string())
                && ready
                && pod.metadata.deletion_timestamp.is_none()
            {
                Ok(())
            } else {
                Err(format!("locked {is_locked}, ready {ready}, env {env:?}"))
            }
        },
    )
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(e.context(format!("pods of {ns}:\n{}", pods_report(client, ns).await))),
    }
}

/// Waits until the mail metrics on `ip:9154` satisfy `check`; returns the text.
async fn mail_metrics(
    ip: &str,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let url = format!("http://{ip}:9154/metrics");
    wait::until(
        what,
        Duration::from_secs(60),
        Duration::from_secs(1),
        || async {
            match http_get(&url).await {
                Ok((200, text)) if check(&text) => Ok(text),
                Ok((status, text)) => Err(format!("{status}: {text}")),
                Err(e) => Err(format!("{e:#}")),
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn mass_mail_on_the_real_node_is_refused_alerted_locked_in_the_mta_and_told()
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

    // The reseller's contact desk is a real SMTP server with STARTTLS and AUTH.
    let dir = tempfile::tempdir()?;
    let smtp = SmtpSink::start(SmtpSinkOptions {
        tls: true,
        user: Some(("notify".into(), "mail-secret".into())),
        fail_first: 0,
        host: None,
    })
    .await?;
    let password_file = dir.path().join("smtp-password");
    std::fs::write(&password_file, "mail-secret\n")?;
    let ca_file = dir.path().join("smtp-ca.pem");
    std::fs::write(&ca_file, smtp.ca_pem().unwrap_or_default())?;

    // Prometheus: the operator (the course's limit) and the tenants' mail pods (discovered).
    let op_addr = format!("127.0.0.1:{}", free_port()?);
    let targets = dir.path().join("tenant-mail-targets.json");
    let (tenant_mail, selector) = tenant_mail_scrape(&targets)?;
    let prometheus = Prometheus::start(PrometheusOptions {
        scrape: vec![ScrapeTarget::new("oem-operator", &op_addr), tenant_mail],
        rule_files: vec![scaled_rules(dir.path())?],
        ..Default::default()
    })
    .await?;

    let config = real_node_config(dir.path(), "")?;
    let notify = json!({
        "smtpHost": "127.0.0.1", "smtpPort": smtp.port, "starttls": "required",
        "from": "noc@provider.example", "username": "notify",
        "passwordFile": password_file, "smtpCaFile": ca_file,
        "timeout": "5s", "maxAttempts": 30, "backoffBase": "1s", "backoffMax": "2s"
    });
    let env: Vec<(String, String)> = [
        ("OEM_CONFIG", config.to_string_lossy().into_owned()),
        ("OEM_HTTP_ADDR", op_addr.clone()),
        ("OEM_MONITOR_ENABLED", "false".into()),
        ("OEM_RESYNC_INTERVAL", "10s".into()),
        ("OEM_SPEC_RETRY", "3s".into()),
        ("OEM_PROMETHEUS_URL", prometheus.url()),
        ("OEM_ALERT_POLL_INTERVAL", "1s".into()),
        ("OEM_NOTIFY", notify.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let operator = Operator::start(cluster, OperatorOptions::with_env(env)).await?;
    let client = cluster.client().await?;

    let reseller = "realmail";
    let mut spec = hosting::reseller(reseller, json!([]));
    spec["spec"]["contacts"] =
        json!([{"name": "desk", "email": "desk@realmail.example.jp", "language": "en"}]);
    let ns = hosting::apply_reseller(&client, spec).await?;
    let mut course = hosting::course(
        &ns,
        "post",
        "512Mi",
        json!({"mail": {"maxSendsPerHour": MAX_SENDS}}),
    );
    course["spec"]["resources"]["cpu"] = json!("300m");
    apply_course(&client, course.clone()).await?;
    let mailer = apply_enduser(
        &client,
        hosting::enduser(&ns, "mailer", "post", "2025-01-01", json!({})),
    )
    .await?;
    let served = active_on_the_real_node(&client, &mailer, LIMIT).await?;
    let ip = cluster_ip(&client, &served.ns, "mail").await?;
    let account = first_mail_account(&served)?;
    let message = dir.path().join("message.eml");
    std::fs::write(
        &message,
        format!(
            "From: {0}\r\nTo: {OUTSIDE}\r\nSubject: offer\r\n\r\nmass mail from the real node\r\n",
            account.0
        ),
    )?;
    let message = message.to_string_lossy().into_owned();

    // The counters reach Prometheus through the chart's scrape job, with the rule's labels.
    let discovered = Instant::now();
    ensure!(
        discover_pods(&client, &selector, &targets).await? == 1,
        "the chart's selector {selector} matches the one mail pod"
    );
    let labels = format!("reseller=\"{reseller}\",enduser=\"mailer\"");
    for series in [
        format!("oem_mail_sent_total{{{labels}}}"),
        format!("oem_course_mail_rate_limit_per_hour{{{labels}}}"),
    ] {
        wait::until(
            &format!("{series} in Prometheus"),
            Duration::from_secs(90),
            Duration::from_secs(1),
            || async {
                match prometheus.query(&series).await {
                    Ok(found) if !found.is_empty() => Ok(found),
                    Ok(_) => Err("no sample yet".to_owned()),
                    Err(e) => Err(format!("{e:#}")),
                }
            },
        )
        .await
        .map_err(|e| e.context(format!("Prometheus log:\n{}", prometheus.log_tail(20))))?;
    }
    eprintln!(
        "mail pod discovered and scraped with reseller/enduser labels in {:.1} s",
        discovered.elapsed().as_secs_f64()
    );

    // Exceed maxSendsPerHour: two mails out are taken, the third is refused by the MTA.
    for n in 1..=MAX_SENDS {
        retrying(&format!("relay #{n}"), Duration::from_secs(60), || {
            send_over_smtps(&ip, &account, OUTSIDE, &message)
        })
        .await?;
    }
    let refused = send_over_smtps(&ip, &account, OUTSIDE, &message)
        .err()
        .context("a send over the hourly limit was accepted")?;
    let burst = Instant::now();
    ensure!(
        format!("{refused:#}").contains("451"),
        "expected 451 over the limit: {refused:#}"
    );
    eprintln!("{MAX_SENDS} mails relayed, the next refused by the MTA with 451");

    // The rule fires on the exported counts.
    let firing = wait::until(
        "HostingMassMail firing",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let alerts = prometheus.alerts().await.map_err(|e| format!("{e:#}"))?;
            alerts
                .into_iter()
                .find(|a| {
                    a.labels.get("alertname").map(String::as_str) == Some(rules::MASS_MAIL)
                        && a.labels.get("enduser").map(String::as_str) == Some("mailer")
                        && a.state == "firing"
                })
                .ok_or_else(|| "not firing".to_owned())
        },
    )
    .await?;
    ensure!(firing.labels.get("reseller").map(String::as_str) == Some(reseller));
    let fired_after = burst.elapsed();

    // The operator locks: incident, status, NetworkPolicy, and the MTA itself.
    let context = |e: anyhow::Error| e.context(format!("operator log:\n{}", operator.log_tail(40)));
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let incident = wait::until(
        "a MassMail incident with MailLocked",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let list = incidents
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .into_iter()
                .find(|i| {
                    let v = serde_json::to_value(i).unwrap_or_default();
                    v["spec"]["kind"] == "MassMail"
                        && v["status"]["timeline"]
                            .as_array()
                            .is_some_and(|t| t.iter().any(|e| e["event"] == "MailLocked"))
                })
                .ok_or_else(|| "not yet".to_owned())
        },
    )
    .await
    .map_err(context)?;
    let locked_after = burst.elapsed();
    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &ns);
    let eu = endusers.get("mailer").await?;
    ensure!(
        eu.status.as_ref().is_some_and(|s| s.mail_locked),
        "status.mailLocked"
    );
    // The reseller is told by e-mail.
    let told = wait::until(
        "the mail-lock notice at the reseller's desk",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let mails = smtp.messages().map_err(|e| format!("{e:#}"))?;
            mails
                .into_iter()
                .find(|m| {
                    m.contains("X-Sink-Rcpt-To: desk@realmail.example.jp")
                        && m.contains("Outbound mail locked")
                })
                .ok_or_else(|| "no notice yet".to_owned())
        },
    )
    .await
    .map_err(context)?;
    let told_after = burst.elapsed();
    let told = told.replace("=\r\n", "").replace("=\n", "");
    ensure!(
        told.contains("mailer"),
        "the notice names the end user: {told}"
    );

    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &served.ns);
    wait::until(
        "allow-smtp-egress removed",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            match policies.get_opt("allow-smtp-egress").await {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err("still there".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    mail_pod_with(&client, &served.ns, true, MAX_SENDS).await?;
    let mta_locked_after = burst.elapsed();

    // The lock is the MTA's: raise the course's limit far above what was sent, and a relay is
    // still refused, by the lock (550), while mail to the end user's own address flows.
    apply_course(&client, {
        let mut c = course.clone();
        c["spec"]["services"]["mail"]["maxSendsPerHour"] = json!(100);
        c
    })
    .await?;
    mail_pod_with(&client, &served.ns, true, 100).await?;
    let refused = retrying(
        "a relay refused by the lock",
        Duration::from_secs(60),
        || match send_over_smtps(&ip, &account, OUTSIDE, &message) {
            Ok(_) => bail!("a relay was accepted while locked"),
            Err(e) if format!("{e:#}").contains("550") => Ok(format!("{e:#}")),
            Err(e) => Err(e),
        },
    )
    .await?;
    // Exim's reject log reaches the container log within a second or so.
    wait::until(
        "Exim's log to say why",
        Duration::from_secs(15),
        Duration::from_secs(1),
        || async {
            let log = cluster
                .kubectl_ok(&["logs", "-n", &served.ns, "mail-0", "-c", "mail"], None)
                .map_err(|e| format!("{e:#}"))?;
            if log.contains("outbound mail of this account is locked") {
                Ok(())
            } else {
                Err(format!("the MTA refused ({refused}); its log:\n{log}"))
            }
        },
    )
    .await?;
    send_over_smtps(&ip, &account, &account.0, &message).context("local mail while locked")?;
    let text = mail_metrics(&ip, "the lock in the mail metrics", |t| {
        sample(t, "oem_mail_outbound_locked", &[]) == Some(1.0)
            && sample(t, "oem_mail_locked_refused_total", &[]) == Some(1.0)
    })
    .await?;
    ensure!(
        sample(&text, "oem_mail_sends_last_hour", &[]) == Some(f64::from(MAX_SENDS))
            && sample(&text, "oem_mail_sends_limit_per_hour", &[]) == Some(100.0),
        "below the hourly limit, and the window kept across restarts: {text}"
    );
    eprintln!(
        "while locked: relay refused with 550 ({MAX_SENDS} of 100 sent this hour), local mail delivered"
    );
    read_back_locally(&served, &ip).await?;

    // The reseller lifts the lock (docs/incidents.md): the MTA relays again, egress reopens.
    let lifted = Instant::now();
    cluster.kubectl_ok(
        &[
            "annotate",
            "enduser",
            "mailer",
            "-n",
            &ns,
            "hosting.oem.dev/mail-unlock=yes",
        ],
        None,
    )?;
    mail_pod_with(&client, &served.ns, false, 100).await?;
    retrying(
        "a relay after the lock is lifted",
        Duration::from_secs(60),
        || send_over_smtps(&ip, &account, OUTSIDE, &message),
    )
    .await?;
    ensure!(
        policies.get_opt("allow-smtp-egress").await?.is_some(),
        "SMTP egress open again"
    );
    ensure!(
        !endusers
            .get("mailer")
            .await?
            .status
            .is_some_and(|s| s.mail_locked),
        "mailLocked lifted"
    );
    eprintln!(
        "lock lifted by the reseller: relaying again {:.1} s after the annotation",
        lifted.elapsed().as_secs_f64()
    );

    eprintln!(
        "mass mail: alert firing {:.1} s, incident + mailLocked {:.1} s, MTA locked (pod \
         restarted) {:.1} s, reseller told {:.1} s after the refused send; incident {}",
        fired_after.as_secs_f64(),
        locked_after.as_secs_f64(),
        mta_locked_after.as_secs_f64(),
        told_after.as_secs_f64(),
        incident.name_any()
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &served.ns);
    ensure!(secrets.get_opt("credentials").await?.is_some());
    drop(operator);
    eprintln!(
        "mass mail on the real node: {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The local mail sent while locked is in the mailbox (IMAPS).
async fn read_back_locally(served: &Served, ip: &str) -> anyhow::Result<()> {
    let (address, password) = first_mail_account(served)?;
    let user = format!("{address}:{password}");
    retrying(
        "reading the local mail over IMAPS",
        Duration::from_secs(30),
        || {
            let text = curl(&["--user", &user, &format!("imaps://{ip}:993/INBOX;UID=1")])?;
            ensure!(
                text.contains("mass mail from the real node"),
                "not there: {text}"
            );
            Ok(())
        },
    )
    .await
}

#[test]
fn the_chart_scrape_configuration_keeps_the_metrics_port_and_labels_tenants() {
    let path = repo_root().join("charts/oem-hosting/files/tenant-mail-scrape.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let items: Vec<serde_yaml::Value> = serde_yaml::from_str(&text).unwrap();
    let relabel = serde_yaml::to_string(&items[0]["relabel_configs"]).unwrap();
    for want in [
        "__meta_kubernetes_pod_label_hosting_oem_dev_reseller",
        "__meta_kubernetes_pod_label_hosting_oem_dev_enduser",
        "regex: metrics",
    ] {
        assert!(relabel.contains(want), "{want} in {relabel}");
    }
}
