//! The front door on the real node, with nothing standing in: Traefik (built from the Go module
//! proxy, a pod on the node, `e2e/cluster/ingress.sh`) serves the operator's per-domain
//! Ingresses. An end user's uploaded site answers over HTTP and, once its hosting namespace
//! has a `tls` certificate for its domain (here from a test CA, as cert-manager would write
//! it), over HTTPS with that certificate, verified by curl; a domain added to the EndUser is
//! served without a hand, a domain removed is not.
//!
//! Runs only inside a network and mount namespace of its own (scripts/test.sh does that).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams, PostParams};
use oem_crds::EndUser;
use oem_e2e::cluster::DownOnDrop;
use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::operator::{Operator, OperatorOptions, real_node_config};
use oem_e2e::real_hosting::{
    active_on_the_real_node, import_images, secret_value, upload_over_ftps,
};
use oem_e2e::{Cluster, wait};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(180);
/// The ingress controller's Service address (`ingress_ip` in `e2e/cluster/ingress.sh`).
const INGRESS_IP: &str = "10.96.0.80";
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

/// A CA, and a certificate for `domain` it signs, as PEM files in `dir` (openssl).
fn issue(dir: &Path, domain: &str) -> anyhow::Result<(String, String)> {
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()?;
        ensure!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=oem test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ])?;
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        &format!("/CN={domain}"),
        "-addext",
        &format!("subjectAltName=DNS:{domain}"),
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-keyout",
        "site.key",
        "-out",
        "site.crt",
    ])?;
    Ok((
        std::fs::read_to_string(dir.join("site.crt"))?,
        std::fs::read_to_string(dir.join("site.key"))?,
    ))
}

#[tokio::test]
async fn the_ingress_controller_serves_each_domain_over_http_and_https_with_its_certificate()
-> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(Cluster::real_node).await??;
    let guard = DownOnDrop(Some(cluster));
    let cluster = guard.0.as_ref().context("cluster")?;
    import_images(cluster, &[])?;
    let dir = tempfile::tempdir()?;
    let config = real_node_config(
        dir.path(),
        "network: {ingressNamespace: traefik, ingressClass: traefik}\n",
    )?;
    let _operator = Operator::start(cluster, OperatorOptions::with_config(&config)).await?;
    let client = cluster.client().await?;

    let ns = hosting::reseller_with_namespace(&client, "realtls", json!([])).await?;
    let mut course = hosting::course(
        &ns,
        "web",
        "512Mi",
        json!({"web": {"phpVersion": "8.4"}, "ftp": {"tls": true}}),
    );
    course["spec"]["resources"]["cpu"] = json!("500m");
    apply_course(&client, course).await?;
    let value = hosting::enduser(&ns, "shop", "web", "2025-01-01", json!({}));
    let enduser = apply_enduser(&client, value.clone()).await?;
    let domain = enduser.spec.domains.first().context("no domain")?.clone();
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

    // HTTP through the front door, by host name.
    answers(&domain, "http", &[]).await?;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &served.ns);
    let published = wait::until(
        "the Ingress's status to name the front door",
        LIMIT,
        Duration::from_secs(1),
        || async {
            let list = ingresses
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let ip = list
                .items
                .first()
                .and_then(|i| i.status.as_ref())
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .and_then(|l| l.first())
                .and_then(|l| l.ip.clone())
                .unwrap_or_default();
            if ip == INGRESS_IP {
                Ok(ip)
            } else {
                Err(format!("status names {ip:?}"))
            }
        },
    )
    .await?;
    eprintln!(
        "http://{domain}/ served through Traefik ({published}) {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );

    // HTTPS: without the end user's certificate the controller's own is not trusted; with it
    // (the `tls` Secret, as cert-manager writes it), curl verifies the name and the chain.
    let ca = dir.path().join("ca.crt");
    let (cert, key) = issue(dir.path(), &domain)?;
    let ca_arg = ca.to_string_lossy().into_owned();
    let untrusted = through_the_front_door(&domain, "https", &["--cacert", &ca_arg]);
    ensure!(
        untrusted.is_err(),
        "trusted before the certificate: {untrusted:?}"
    );
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("tls".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            [("tls.crt", cert), ("tls.key", key)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), &served.ns)
        .create(&PostParams::default(), &secret)
        .await?;
    answers(&domain, "https", &["--cacert", &ca_arg]).await?;
    eprintln!(
        "https://{domain}/ verified with the end user's certificate {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );

    // A domain added to the EndUser is served without a hand; a domain removed is not.
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
    answers(&second, "http", &[]).await?;
    endusers
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(&domains(vec![&domain])),
        )
        .await?;
    eventually(&format!("http://{second}/ refused once removed"), || {
        let answer = through_the_front_door(&second, "http", &[]);
        ensure!(answer.is_err(), "still served: {answer:?}");
        Ok(())
    })
    .await?;
    ensure!(
        through_the_front_door(&domain, "https", &["--cacert", &ca_arg])?.contains("over https"),
        "the first domain stopped being served"
    );
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
