//! Monitoring and incidents on the real node (issue 13, step 4): the operator's monitor probes
//! the pods the operator provisioned, through their Services (`web.<hosting namespace>.svc`,
//! resolved by the cluster DNS as in the operator's pod), with the provider's certificate on
//! every TLS service: all 12 services and ping Up. A hung web server (its processes stopped on
//! the node) is Down → an Incident → a level-1 restart of the web StatefulSet → Up → resolved.
//! The web pod's sandbox stopped on the node again and again (so a restart cannot help) → level
//! 2 force-deletes the pod, which comes back → resolved. An end user whose image does not exist
//! on the node is probed once its startup grace is over: Down, an Incident, a remedy tried, the
//! reseller is told by mail. Times are scaled down (seconds, not minutes).
//!
//! Runs only inside a network and mount namespace of its own with the cluster DNS resolver
//! (scripts/test-in-netns.sh); whatever it needs and misses, it fails.

mod monitoring_real_support;

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;
use kube::api::Api;
use monitoring_real_support as support;
use oem_crds::policy::project_image;
use oem_e2e::cluster::DownOnDrop;
use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::operator::{Operator, OperatorOptions, sample};
use oem_e2e::prometheus::{SmtpSink, SmtpSinkOptions};
use oem_e2e::{Cluster, wait};
use serde_json::{Value, json};
use support::{Bench, all_up, events, field, incidents, secs, services};

/// Provisioning and a first start of MariaDB / PostgreSQL on the 2-CPU node.
const START: Duration = Duration::from_secs(300);
/// Detection, remediation and recovery of one outage.
const OUTAGE: Duration = Duration::from_secs(180);
/// The specification's 10 minutes of startup grace, scaled: long enough for the healthy end
/// users' first start, so only the broken one is probed while it waits.
const STARTUP_GRACE: &str = "150s";
/// The specification's 1 minute between restarts (and before level 2 follows a restart).
const RESTART_BACKOFF: &str = "75s";
/// The specification's 10 minutes before the reseller is told, scaled.
const NOTIFY_AFTER: &str = "30s";

const FULL: [&str; 11] = [
    "http", "https", "ftp", "ftps", "smtp", "smtps", "pop3", "pop3s", "imap", "imaps", "mysql",
];
const WEB: [&str; 4] = ["http", "https", "ftp", "ftps"];

#[tokio::test(flavor = "multi_thread")]
async fn real_pods_are_probed_restarted_recreated_and_a_broken_end_user_is_alerted()
-> anyhow::Result<()> {
    let started = Instant::now();
    oem_e2e::real_hosting::require_cluster_dns()?;
    let cluster = tokio::task::spawn_blocking(Cluster::real_node).await??;
    let guard = DownOnDrop(Some(cluster));
    let cluster = guard.0.as_ref().context("cluster")?.clone();
    eprintln!("real-node cluster up in {}", secs(started.elapsed()));
    oem_e2e::real_hosting::import_images(&cluster, &[])?;

    let reseller = "realmon";
    let domains: Vec<String> = ["full", "pg", "broken"]
        .iter()
        .map(|e| format!("{e}.example.jp"))
        .collect();
    let dir = tempfile::tempdir()?;
    let pki = support::pki(dir.path(), &domains)?;
    let smtp = SmtpSink::start(SmtpSinkOptions {
        tls: false,
        user: None,
        fail_first: 0,
        host: None,
    })
    .await?;
    // PHP 8.2 names an image the node does not have: the broken end user's course uses it.
    let config = dir.path().join("operator.yaml");
    let policy = json!({
        "placement": {"nodeSelector": {"type": "real"}},
        "securityPolicy": {
            "php": [
                {"version": "8.2", "image": "oem.local/oem-hosting/web-php-missing:0"},
                {"version": "8.4", "image": project_image("web-php8.4")}
            ],
            "mariadb": [{"version": "10.11", "image": project_image("mariadb")}],
            "postgresql": [{"version": "15", "image": project_image("postgresql")}]
        }
    });
    std::fs::write(&config, serde_yaml::to_string(&policy)?)?;
    let notify = json!({
        "smtpHost": "127.0.0.1", "smtpPort": smtp.port, "starttls": "none",
        "from": "noc@provider.example", "timeout": "5s",
        "maxAttempts": 10, "backoffBase": "1s", "backoffMax": "2s"
    });
    let env: Vec<(String, String)> = [
        ("OEM_CONFIG", config.to_string_lossy().into_owned()),
        ("OEM_RESYNC_INTERVAL", "10s".into()),
        ("OEM_SPEC_RETRY", "3s".into()),
        ("OEM_PROBE_INTERVAL", "5s".into()),
        ("OEM_PROBE_RETRY_INTERVAL", "1s".into()),
        ("OEM_PROBE_TIMEOUT", "3s".into()),
        (
            "OEM_PROBE_CA_FILE",
            pki.ca_file.to_string_lossy().into_owned(),
        ),
        ("OEM_PROBE_STARTUP_GRACE", STARTUP_GRACE.into()),
        ("OEM_ALERT_POLL_INTERVAL", "1s".into()),
        ("OEM_NOTIFY_AFTER", NOTIFY_AFTER.into()),
        ("OEM_ALERT_FOR", NOTIFY_AFTER.into()),
        // A stopped nginx holds its pod's stop for the image's 20 s stop timeout: a restart
        // takes about a minute, which the backoff lets it have before level 2.
        ("OEM_RESTART_BACKOFF", RESTART_BACKOFF.into()),
        ("OEM_REPORT_LEAD_TIME", "1h".into()),
        // Every fall its own Incident: the steps below read one outage's remediation, and a
        // fall while the pods first start (a certificate rollout) would otherwise be reopened
        // by the hung web server's, with its level-2 recreation in the timeline.
        ("OEM_FLAP_WINDOW", "0s".into()),
        ("OEM_NOTIFY", notify.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let operator = Operator::start(&cluster, OperatorOptions::with_env(env)).await?;
    let client = cluster.client().await?;
    let ns = hosting::reseller_with_namespace(&client, reseller, json!([])).await?;
    let bench = Bench {
        cluster,
        client: client.clone(),
        operator,
        ns: ns.clone(),
    };

    // Courses sized for the 2-CPU node: every service kind between the two healthy ones.
    let course = |name: &str, cpu: &str, memory: &str, services: Value| {
        let mut course = hosting::course(&ns, name, memory, services);
        course["spec"]["resources"]["cpu"] = json!(cpu);
        course["spec"]["limits"]["mailAccounts"] = json!(1);
        course
    };
    let everything = json!({
        "web": {"phpVersion": "8.4"}, "ftp": {"tls": true},
        "mail": {"maxSendsPerHour": 100}, "database": {"engine": "mariadb"}
    });
    apply_course(&client, course("full", "800m", "1536Mi", everything)).await?;
    apply_course(
        &client,
        course(
            "pg",
            "300m",
            "512Mi",
            json!({"database": {"engine": "postgresql"}}),
        ),
    )
    .await?;
    apply_course(
        &client,
        course(
            "broken",
            "200m",
            "256Mi",
            json!({"web": {"phpVersion": "8.2"}}),
        ),
    )
    .await?;
    let broken_at = Instant::now();
    for name in ["broken", "full", "pg"] {
        let extra = json!({"domains": [format!("{name}.example.jp")]});
        apply_enduser(
            &client,
            hosting::enduser(&ns, name, name, "2025-01-01", extra),
        )
        .await?;
    }
    for name in ["broken", "full", "pg"] {
        support::provide_certificate(&client, &bench.hosting_ns(name), &pki).await?;
    }

    // 1. Every service of both healthy end users Up on the real pods, and ping.
    let up_started = Instant::now();
    let full = bench
        .wait_services(
            "full",
            "full: 11 services Up, Active",
            START,
            |found, phase| all_up(found, &FULL) && phase == "Active",
        )
        .await?;
    bench
        .wait_services("pg", "pg: postgresql Up, Active", START, |found, phase| {
            all_up(found, &["postgresql"]) && phase == "Active"
        })
        .await?;
    eprintln!(
        "all 12 service kinds Up in {}: {:?}",
        secs(up_started.elapsed()),
        services(&full)
    );
    let metrics = wait::until(
        "every hosting pod and the node answering ping, every service of full passing",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || async {
            let m = bench.operator.metrics().await.map_err(|e| e.to_string())?;
            let pings: Vec<&str> = m
                .lines()
                .filter(|l| l.starts_with("oem_probe_success{") && l.contains("service=\"ping\""))
                .filter(|l| !l.contains("enduser=\"broken\""))
                .collect();
            let pods = pings
                .iter()
                .filter(|l| {
                    l.contains("host=\"web-0\"")
                        || l.contains("host=\"mail-0\"")
                        || l.contains("host=\"db-0\"")
                })
                .count();
            // And every service of `full` passing at this scrape: one probe timing out on a
            // busy machine is retried, not taken for the state.
            let services_up = FULL.iter().all(|service| {
                sample(
                    &m,
                    "oem_probe_success",
                    &[("enduser", "full"), ("service", service)],
                ) == Some(1.0)
            });
            if pods >= 4
                && services_up
                && pings.iter().all(|l| l.ends_with(" 1"))
                && pings.iter().any(|l| l.contains("host=\"real-node-1\""))
            {
                Ok(m)
            } else {
                Err(format!("{pings:?}"))
            }
        },
    )
    .await?;
    for service in FULL {
        let value = sample(
            &metrics,
            "oem_probe_success",
            &[("enduser", "full"), ("service", service)],
        );
        ensure!(
            value == Some(1.0),
            "oem_probe_success of full/{service}: {value:?}"
        );
    }
    ensure!(
        sample(
            &metrics,
            "oem_tls_cert_expiry_seconds",
            &[("enduser", "full"), ("service", "imaps")]
        )
        .is_some_and(|left| left > 0.0),
        "the provider's certificate's expiry is exported"
    );

    // 2. The web server hangs (its processes stopped on the node): the pod stays Ready (its
    //    TCP probes are answered by the kernel), only the monitor sees it → level 1.
    // A fall while the pods first started (the provider's certificate rolls them) is an
    // incident of its own: wait until every such one is resolved, and leave them out below.
    let earlier: Vec<String> = wait::until(
        "full's earlier incidents resolved",
        OUTAGE,
        Duration::from_secs(1),
        || async {
            let all = incidents(&client, &ns, "full")
                .await
                .map_err(|e| e.to_string())?;
            if all
                .iter()
                .all(|i| !field(i, &["status", "resolvedAt"]).is_empty())
            {
                Ok(all
                    .iter()
                    .map(|i| field(i, &["metadata", "name"]))
                    .collect())
            } else {
                Err(format!("{} incidents, not all resolved", all.len()))
            }
        },
    )
    .await?;
    let new = |i: &Value| !earlier.contains(&field(i, &["metadata", "name"]));
    let web_ns = bench.hosting_ns("full");
    let nginx = support::container_processes(&bench.cluster, &web_ns, "web-0", "web", "nginx")?;
    let hung = Instant::now();
    support::signal(&nginx, "-STOP")?;
    eprintln!("nginx processes {nginx:?} of {web_ns}/web-0 stopped");
    bench
        .wait_services("full", "http Down", OUTAGE, |found, _| {
            found.get("http").is_some_and(|(s, _)| s == "Down")
        })
        .await?;
    let to_down = hung.elapsed();
    let restarted = bench
        .wait_incident(
            "full",
            "http",
            "a level-1 restart of the http incident",
            OUTAGE,
            |i| new(i) && events(i).contains(&"Restarted".to_owned()),
        )
        .await?;
    let to_restart = hung.elapsed();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &web_ns);
    let web = sets.get("web").await?;
    let restarted_at = web
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get("kubectl.kubernetes.io/restartedAt").cloned());
    ensure!(
        restarted_at.is_some(),
        "the web StatefulSet carries no restartedAt"
    );
    ensure!(
        !events(&restarted).contains(&"Recreated".to_owned()),
        "level 2 acted on a Ready pod: {restarted}"
    );
    bench
        .wait_services("full", "the web services Up again", OUTAGE, |found, _| {
            all_up(found, &WEB)
        })
        .await?;
    let to_up = hung.elapsed();
    // One incident per web service, each resolved; one rollout restart served them all.
    let mut rollouts = 0;
    let mut timeline = Vec::new();
    for service in WEB {
        let incident = bench
            .wait_incident(
                "full",
                service,
                &format!("the {service} incident resolved"),
                OUTAGE,
                |i| new(i) && !field(i, &["status", "resolvedAt"]).is_empty(),
            )
            .await?;
        let entries = incident["status"]["timeline"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for entry in &entries {
            let message = field(entry, &["message"]);
            if field(entry, &["event"]) == "Restarted" && !message.contains("already") {
                rollouts += 1;
            }
        }
        ensure!(
            !events(&incident).contains(&"Recreated".to_owned()),
            "level 2 acted: {incident}"
        );
        if service == "http" {
            timeline = events(&incident);
        }
    }
    ensure!(
        rollouts == 1,
        "{rollouts} rollout restarts of the web StatefulSet, not 1"
    );
    eprintln!(
        "hung web server: Down after {}, restarted (level 1, restartedAt {}) after {}, Up after {}, \
         all 4 incidents resolved after {}, {rollouts} rollout; http timeline {timeline:?}",
        secs(to_down),
        restarted_at.unwrap_or_default(),
        secs(to_restart),
        secs(to_up),
        secs(hung.elapsed()),
    );
    let before: Vec<String> = incidents(&client, &ns, "full")
        .await?
        .iter()
        .map(|i| field(i, &["metadata", "name"]))
        .collect();

    // 3. The web pod's sandbox stopped on the node, again whenever the kubelet brings it back:
    //    a restart cannot help, level 2 force-deletes the pod and its StatefulSet makes a new one.
    let old = bench.web_pod("full").await?;
    let old_uid = old.uid().context("web-0 has no uid")?;
    let killed = Instant::now();
    let mut stops = 0;
    let recreated = loop {
        stops += support::stop_pod_sandbox(&bench.cluster, &old_uid)?;
        let all = incidents(&client, &ns, "full").await?;
        let found = all.iter().find(|i| {
            !before.contains(&field(i, &["metadata", "name"]))
                && events(i).contains(&"Recreated".to_owned())
        });
        if let Some(found) = found {
            break found.clone();
        }
        ensure!(
            killed.elapsed() < OUTAGE,
            "no level 2 within {OUTAGE:?} ({stops} sandbox stops): {:?}\n{}",
            all.iter()
                .map(|i| (field(i, &["spec", "service"]), events(i)))
                .collect::<Vec<_>>(),
            bench.operator.log_tail(30)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let to_recreate = killed.elapsed();
    let new_uid = bench.web_pod("full").await.ok().and_then(|p| p.uid());
    ensure!(
        new_uid.as_deref() != Some(old_uid.as_str()),
        "web-0 was not recreated"
    );
    bench
        .wait_services(
            "full",
            "the web services Up after level 2",
            OUTAGE,
            |found, _| all_up(found, &WEB),
        )
        .await?;
    let to_up2 = killed.elapsed();
    let service = field(&recreated, &["spec", "service"]);
    let resolved = bench
        .wait_incident(
            "full",
            &service,
            "the level-2 incident resolved",
            OUTAGE,
            |i| {
                events(i).contains(&"Recreated".to_owned())
                    && !field(i, &["status", "resolvedAt"]).is_empty()
            },
        )
        .await?;
    eprintln!(
        "web pod sandbox stopped {stops} times: level 2 (pod recreated, uid {old_uid} -> {new_uid:?}) after {}, web Up after {}, resolved after {}; {service} incident timeline {:?}",
        secs(to_recreate),
        secs(to_up2),
        secs(killed.elapsed()),
        events(&resolved)
    );

    // 4. The broken end user (an image the node does not have) is probed once its startup grace
    //    is over: Down, an incident, a remedy tried, and the reseller is told.
    let broken = bench
        .wait_services(
            "broken",
            "broken: http Down while Provisioning",
            START,
            |found, phase| {
                phase == "Provisioning" && found.get("http").is_some_and(|(s, _)| s == "Down")
            },
        )
        .await?;
    let to_seen = broken_at.elapsed();
    let notified = bench
        .wait_incident(
            "broken",
            "http",
            "the broken end user's incident notified",
            OUTAGE,
            |i| events(i).contains(&"Notified".to_owned()),
        )
        .await?;
    let to_notice = broken_at.elapsed();
    // Level 2 when the flow found its pod not Ready (it never is), level 1 when the pod could
    // not be read at that moment; either way a remedy was tried.
    let tried = events(&notified);
    ensure!(
        tried.iter().any(|e| e == "Recreated" || e == "Restarted"),
        "no remediation tried: {notified}\n{}",
        support::pods_report(&client, &bench.hosting_ns("broken")).await
    );
    let mails = wait::until(
        "the outage notice mail",
        Duration::from_secs(30),
        Duration::from_secs(1),
        || async {
            let mails = smtp.messages().map_err(|e| e.to_string())?;
            let found: Vec<String> = mails.into_iter().filter(|m| m.contains("broken")).collect();
            if found.is_empty() {
                Err("none yet".to_owned())
            } else {
                Ok(found)
            }
        },
    )
    .await?;
    ensure!(
        mails[0].contains(&format!("noc@{reseller}.example.jp")),
        "notice not to the reseller: {}",
        mails[0]
    );
    eprintln!(
        "broken end user: {} — Down seen {} after it was created (grace {STARTUP_GRACE}), incident {} notified {} after; timeline {:?}",
        services(&broken)
            .get("http")
            .map(|(_, m)| m.clone())
            .unwrap_or_default(),
        secs(to_seen),
        field(&notified, &["metadata", "name"]),
        secs(to_notice),
        events(&notified)
    );
    eprintln!(
        "pods of the broken end user: {}",
        support::pods_report(&client, &bench.hosting_ns("broken")).await
    );
    let metrics = bench.operator.metrics().await?;
    ensure!(
        sample(
            &metrics,
            "oem_probe_success",
            &[("enduser", "broken"), ("service", "http")]
        ) == Some(0.0),
        "the broken end user's http is exported as failing"
    );
    eprintln!(
        "monitoring on the real node: {} in all",
        secs(started.elapsed())
    );
    Ok(())
}
