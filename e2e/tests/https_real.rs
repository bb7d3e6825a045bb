//! The front door on the real node, with nothing standing in. Traefik (a pod on the node,
//! `e2e/cluster/ingress.sh`) serves the operator's per-domain Ingresses; cert-manager's ACME
//! controllers obtain each end user's certificate from pebble, the local ACME server
//! (`e2e/cluster/certificates.sh`), over HTTP-01: pebble resolves the domain through the
//! cluster DNS (which points it at Traefik, as a real A record points at the provider's front
//! door) and fetches the token from cert-manager's solver pod in the hosting namespace, inside
//! its quota. The certificate is the operator's: a `Certificate` for the end user's domains
//! and its mail host, written to the `tls` Secret.
//!
//! Shown here: the site over HTTP and then over HTTPS with pebble's certificate (curl verifies
//! it against pebble's root); the mail service's SMTPS and the FTP service's AUTH TLS present
//! the same certificate for their names; the monitor reads its expiry (a 6-day certificate,
//! pebble's short-lived profile), Prometheus evaluating the chart's rules raises
//! HostingCertExpiring for the end user, and the SRE dashboard's certificate panel lists it;
//! a domain added gets a certificate without a hand, a domain removed is left out of the next.
//!
//! Runs only inside a network and mount namespace of its own, with the cluster DNS resolver
//! (scripts/test-in-netns.sh).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams};
use oem_crds::EndUser;
use oem_e2e::certificates::{issued_for, verified_tls};
use oem_e2e::cluster::DownOnDrop;
use oem_e2e::dashboards::{self, CERTIFICATE_METRIC};
use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::operator::{Operator, OperatorOptions, real_node_config};
use oem_e2e::prometheus::{Prometheus, PrometheusOptions, ScrapeTarget};
use oem_e2e::real_hosting::{
    active_on_the_real_node, cluster_ip, import_images, require_cluster_dns, secret_value,
    upload_over_ftps,
};
use oem_e2e::{Cluster, free_port, wait};
use oem_operator::alerting::rules;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(180);
/// The ingress controller's Service address (`ingress_ip` in `e2e/cluster/ingress.sh`).
const INGRESS_IP: &str = "10.96.0.80";
/// pebble's short-lived profile: 6 days, under the 14 days of HostingCertExpiring.
const ISSUER: &str = "local-acme-short";
const SITE: &str = r#"<?php
printf("served for %s over %s\n", $_SERVER['HTTP_HOST'], $_SERVER['HTTP_X_FORWARDED_PROTO'] ?? 'direct');
"#;

/// curl through the ingress controller to `domain` (resolved to it, as DNS would), with its
/// error when it fails.
fn through_the_front_door(domain: &str, scheme: &str, extra: &[&str]) -> anyhow::Result<String> {
    let port = if scheme == "https" { 443 } else { 80 };
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--fail-with-body"])
        .args(["--resolve", &format!("{domain}:{port}:{INGRESS_IP}")])
        .args(extra)
        .arg(format!("{scheme}://{domain}/index.php"))
        .output()
        .context("running curl")?;
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "curl {scheme}://{domain}/ (exit {:?}): {}{body}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(body)
}

/// Waits until `check` passes (at most [`LIMIT`], every second); returns its value.
async fn eventually<T>(
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    wait::until(what, LIMIT, Duration::from_secs(1), || {
        let result = check().map_err(|e| format!("{e:#}"));
        async move { result }
    })
    .await
}

/// Waits until `domain` is served through the front door over `scheme` (the site says so).
async fn answers(domain: &str, scheme: &str, extra: &[&str]) -> anyhow::Result<()> {
    let want = format!("served for {domain} over {scheme}");
    eventually(&format!("{scheme}://{domain}/ through Traefik"), || {
        let body = through_the_front_door(domain, scheme, extra)?;
        ensure!(body.contains(&want), "{body}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn each_domain_gets_its_certificate_from_the_acme_server_and_is_served_over_https()
-> anyhow::Result<()> {
    let started = Instant::now();
    require_cluster_dns()?;
    let cluster = tokio::task::spawn_blocking(Cluster::real_node).await??;
    let guard = DownOnDrop(Some(cluster));
    let cluster = guard.0.as_ref().context("cluster")?;
    import_images(cluster, &[])?;
    let root = cluster.state_dir.join("acme-root.pem");
    ensure!(root.exists(), "no pebble root at {}", root.display());
    let root_arg = root.to_string_lossy().into_owned();
    let dir = tempfile::tempdir()?;
    let config = real_node_config(
        dir.path(),
        &format!(
            "network: {{ingressNamespace: traefik, ingressClass: traefik}}\n\
             certificates: {{issuer: {{name: {ISSUER}}}}}\n\
             probes: {{caFile: {root_arg}}}\n"
        ),
    )?;
    // The monitor on, probing every 5 s: it reads each TLS service's certificate.
    let http_addr = format!("127.0.0.1:{}", free_port()?);
    let mut options = OperatorOptions::with_config(&config);
    options.env.retain(|(k, _)| k != "OEM_MONITOR_ENABLED");
    options.env.extend(
        [
            ("OEM_HTTP_ADDR", http_addr.as_str()),
            ("OEM_PROBE_INTERVAL", "5s"),
            ("OEM_PROBE_RETRY_INTERVAL", "2s"),
            ("OEM_PROBE_TIMEOUT", "3s"),
            ("OEM_PROBE_STARTUP_GRACE", "60s"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    // Prometheus evaluates the chart's rules with HostingCertExpiring firing at once.
    let values: BTreeMap<String, String> = [("certExpiringFor".to_owned(), "0s".to_owned())].into();
    let rules_file = dir.path().join("alert-rules.yaml");
    std::fs::write(
        &rules_file,
        rules::render(rules::DEFAULT_RULES, &values).map_err(anyhow::Error::msg)?,
    )?;
    let prometheus = Prometheus::start(PrometheusOptions {
        scrape: vec![ScrapeTarget::new("oem-operator", &http_addr)],
        rule_files: vec![rules_file],
        ..PrometheusOptions::default()
    })
    .await?;
    let operator = Operator::start(cluster, options).await?;
    let client = cluster.client().await?;

    let ns = hosting::reseller_with_namespace(&client, "realtls", json!([])).await?;
    let mut course = hosting::course(
        &ns,
        "web",
        "1Gi",
        json!({"web": {"phpVersion": "8.4"}, "ftp": {"tls": true}, "mail": {"maxSendsPerHour": 10}}),
    );
    course["spec"]["resources"]["cpu"] = json!("800m");
    apply_course(&client, course).await?;
    let value = hosting::enduser(&ns, "shop", "web", "2025-01-01", json!({}));
    let enduser = apply_enduser(&client, value.clone()).await?;
    let domain = enduser.spec.domains.first().context("no domain")?.clone();
    let mail_host = format!("mail.{domain}");
    let served = active_on_the_real_node(&client, &enduser, LIMIT).await?;
    let ftp_password = secret_value(&served.credentials, "ftp-password")?;
    upload_over_ftps(
        &served.web_ip,
        &served.login,
        &ftp_password,
        "index.php",
        SITE,
    )
    .await?;
    answers(&domain, "http", &[]).await?;
    eprintln!(
        "http://{domain}/ served through Traefik {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );

    // The certificate: pebble's, for the domain and the mail host, in the tls Secret.
    let issued = issued_for(&client, &served.ns, &[&domain, &mail_host]).await?;
    eprintln!(
        "certificate from pebble for {:?} (until {}) {:.1} s after the start",
        issued.names,
        issued.not_after,
        started.elapsed().as_secs_f64()
    );
    answers(&domain, "https", &["--cacert", &root_arg]).await?;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &served.ns);
    let front = ingresses.list(&Default::default()).await?;
    ensure!(
        front.items.iter().all(|i| i
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .is_some_and(|l| l.iter().any(|a| a.ip.as_deref() == Some(INGRESS_IP)))),
        "an Ingress's status does not name the front door: {:?}",
        front.items.iter().map(|i| &i.status).collect::<Vec<_>>()
    );
    eprintln!(
        "https://{domain}/ verified against pebble's root {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );

    // The mail and FTP services present it too, once their pods roll onto it.
    let mail_ip = cluster_ip(&client, &served.ns, "mail").await?;
    eventually("SMTPS with the certificate for the mail host", || {
        verified_tls(&mail_ip, 465, None, &mail_host, &root)
    })
    .await?;
    eventually("FTP's AUTH TLS with the certificate for the domain", || {
        verified_tls(&served.web_ip, 21, Some("ftp"), &domain, &root)
    })
    .await?;
    eprintln!(
        "SMTPS and FTPS verified {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );

    // The monitor's expiry, the alert, the dashboard panel.
    // Until the pods roll onto it, a service may still show the image's own certificate: the
    // monitor records whatever is served, trusted or not.
    let expiry = wait::until(
        "the monitor to report the 6-day certificate on https, smtps and ftps",
        LIMIT,
        Duration::from_secs(2),
        || async {
            let samples = prometheus
                .query(&format!("{CERTIFICATE_METRIC}{{enduser=\"shop\"}}"))
                .await
                .map_err(|e| format!("{e:#}"))?;
            let days: BTreeMap<String, f64> = samples
                .iter()
                .filter_map(|s| Some((s.labels.get("service")?.clone(), s.value / 86400.0)))
                .collect();
            let six_days =
                |service: &str| days.get(service).is_some_and(|d| (5.9..=6.01).contains(d));
            if ["https", "smtps", "ftps"].into_iter().all(six_days) {
                Ok(days)
            } else {
                Err(format!("days left {days:?}"))
            }
        },
    )
    .await
    .map_err(|e| e.context(format!("operator log:\n{}", operator.log_tail(20))))?;
    let alert = wait::until(
        "HostingCertExpiring to fire for the end user",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || async {
            let alerts = prometheus.alerts().await.map_err(|e| format!("{e:#}"))?;
            alerts
                .into_iter()
                .find(|a| {
                    a.state == "firing"
                        && a.labels.get("alertname").map(String::as_str)
                            == Some("HostingCertExpiring")
                        && a.labels.get("enduser").map(String::as_str) == Some("shop")
                })
                .ok_or_else(|| "not firing yet".to_owned())
        },
    )
    .await?;
    let sre = dashboards::load(&dashboards::dashboards_dir().join("sre-overview.json"))?;
    let (panel, _, expr) = dashboards::queries(&sre)
        .into_iter()
        .find(|(_, _, expr)| expr.contains(CERTIFICATE_METRIC))
        .context("no certificate panel on the SRE dashboard")?;
    let rows = prometheus
        .query(&dashboards::substitute(
            &expr,
            &dashboards::builtin_variables(),
        ))
        .await?;
    ensure!(
        rows.iter()
            .any(|r| r.labels.get("enduser").map(String::as_str) == Some("shop")),
        "the panel {panel:?} does not list the end user: {rows:?}"
    );
    eprintln!(
        "days left {expiry:?}; {} fired for service {:?}; panel {panel:?} lists {} rows; {:.1} s after the start",
        alert.labels["alertname"],
        alert.labels.get("service"),
        rows.len(),
        started.elapsed().as_secs_f64()
    );

    // A domain added gets its certificate without a hand; a domain removed is left out.
    let second = format!("www.{domain}");
    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &ns);
    let domains = |list: Vec<&str>| json!({"spec": {"domains": list}});
    endusers
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(&domains(vec![&domain, &second])),
        )
        .await?;
    issued_for(&client, &served.ns, &[&domain, &second, &mail_host]).await?;
    answers(&second, "https", &["--cacert", &root_arg]).await?;
    eprintln!(
        "{second} added: certified and served over HTTPS {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );
    endusers
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(&domains(vec![&second])),
        )
        .await?;
    let mail_host = format!("mail.{second}");
    issued_for(&client, &served.ns, &[&second, &mail_host]).await?;
    eventually(&format!("http://{domain}/ refused once removed"), || {
        let answer = through_the_front_door(&domain, "http", &[]);
        ensure!(answer.is_err(), "still served: {answer:?}");
        Ok(())
    })
    .await?;
    answers(&second, "https", &["--cacert", &root_arg]).await?;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
