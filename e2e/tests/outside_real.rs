//! Mail and FTP from outside the cluster, with nothing standing in: with
//! `network.loadBalancer` on, MetalLB (layer 2, `e2e/cluster/loadbalancer.sh`) gives each end
//! user's mail service and FTP server an address of its own on the provider's LAN, and
//! `status.dns` says so (`mail.<domain>` and `ftp.<domain>` A records). A client outside the
//! cluster — a network namespace of its own on that LAN, knowing only the records — sends mail
//! to `info@<domain>` on port 25 (STARTTLS, the certificate verified for the mail host) and
//! uploads over FTPS on port 21 (passive ports through the same address), for two end users of
//! two resellers at once: each message lands in its own mailbox only (read back over IMAPS on
//! the public address), each file in its own document root (fetched through the front door),
//! one's MTA refuses to relay for the other's domain and one's FTP login fails on the other's
//! server. The quota allows the operator's two LoadBalancers and not one more, and no NodePort.
//!
//! Runs only inside a network and mount namespace of its own (scripts/test-in-netns.sh).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::{ResourceQuota, Service};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use oem_crds::EndUser;
use oem_crds::enduser::DnsRecordType;
use oem_e2e::certificates::issued_for;
use oem_e2e::cluster::DownOnDrop;
use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::lan::LanClient;
use oem_e2e::operator::{Operator, OperatorOptions, real_node_config};
use oem_e2e::real_hosting::{
    Served, active_on_the_real_node, curl, first_mail_account, import_images, retrying,
    secret_value,
};
use oem_e2e::{Cluster, wait};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(240);
const RETRY: Duration = Duration::from_secs(60);
/// The ingress controller's Service address (`ingress_ip` in `e2e/cluster/ingress.sh`).
const INGRESS_IP: &str = "10.96.0.80";

/// One end user as the outside sees it.
struct Tenant {
    served: Served,
    domain: String,
    mail_host: String,
    ftp_host: String,
    mail_ip: IpAddr,
    ftp_ip: IpAddr,
    /// `info@<domain>` and its password.
    mailbox: (String, String),
    ftp_password: String,
}

/// The A record of `name` in the end user's `status.dns`, once listed.
async fn address_of(client: &Client, enduser: &EndUser, name: &str) -> anyhow::Result<IpAddr> {
    let api: Api<EndUser> = Api::namespaced(
        client.clone(),
        &enduser
            .namespace()
            .context("end user without a namespace")?,
    );
    let eu = enduser.name_any();
    wait::until(
        &format!("status.dns to list an A record for {name}"),
        LIMIT,
        Duration::from_secs(2),
        || {
            let api = api.clone();
            let eu = eu.clone();
            async move {
                let now = api.get(&eu).await.map_err(|e| e.to_string())?;
                let records = now.status.map(|s| s.dns).unwrap_or_default();
                records
                    .iter()
                    .find(|r| r.name == name && r.type_ == DnsRecordType::A)
                    .and_then(|r| r.value.parse().ok())
                    .ok_or_else(|| format!("records: {records:?}"))
            }
        },
    )
    .await
}

async fn tenant(client: &Client, reseller: &str) -> anyhow::Result<Tenant> {
    let ns = hosting::reseller_with_namespace(client, reseller, json!([])).await?;
    let mut course = hosting::course(
        &ns,
        "full",
        "1Gi",
        json!({"web": {"phpVersion": "8.4"}, "ftp": {"tls": true}, "mail": {"maxSendsPerHour": 10}}),
    );
    course["spec"]["resources"]["cpu"] = json!("600m");
    apply_course(client, course).await?;
    let enduser = apply_enduser(
        client,
        hosting::enduser(&ns, "shop", "full", "2025-01-01", json!({})),
    )
    .await?;
    let domain = enduser.spec.domains.first().context("no domain")?.clone();
    let served = active_on_the_real_node(client, &enduser, LIMIT).await?;
    let mail_host = format!("mail.{domain}");
    let ftp_host = format!("ftp.{domain}");
    let mail_ip = address_of(client, &enduser, &mail_host).await?;
    let ftp_ip = address_of(client, &enduser, &ftp_host).await?;
    let mailbox = first_mail_account(&served)?;
    let ftp_password = secret_value(&served.credentials, "ftp-password")?;
    Ok(Tenant {
        served,
        domain,
        mail_host,
        ftp_host,
        mail_ip,
        ftp_ip,
        mailbox,
        ftp_password,
    })
}

/// curl in the outside client's namespace, with the name resolved as its DNS record says and
/// the certificate verified against pebble's root.
fn outside_curl(
    outside: &LanClient,
    root: &str,
    host: &str,
    port: u16,
    ip: IpAddr,
    args: &[&str],
) -> anyhow::Result<String> {
    let resolve = format!("{host}:{port}:{ip}");
    let mut all = vec![
        "-sS",
        "--max-time",
        "20",
        "--resolve",
        &resolve,
        "--cacert",
        root,
    ];
    all.extend(args);
    outside.exec_ok("curl", &all)
}

#[tokio::test]
async fn mail_and_ftps_reach_each_end_user_from_outside_through_its_own_addresses()
-> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(Cluster::real_node).await??;
    let guard = DownOnDrop(Some(cluster));
    let cluster = guard.0.as_ref().context("cluster")?;
    import_images(cluster, &[])?;
    let root = cluster.state_dir.join("acme-root.pem");
    let root = root.to_string_lossy().into_owned();
    let dir = tempfile::tempdir()?;
    let config = real_node_config(
        dir.path(),
        "network: {ingressNamespace: traefik, ingressClass: traefik, loadBalancer: {enabled: true}}\n\
         certificates: {issuer: {name: local-acme}}\n",
    )?;
    let _operator = Operator::start(cluster, OperatorOptions::with_config(&config)).await?;
    let client = cluster.client().await?;

    let a = tenant(&client, "outa").await?;
    let b = tenant(&client, "outb").await?;
    ensure!(
        a.mail_ip != b.mail_ip && a.ftp_ip != b.ftp_ip && a.mail_ip != a.ftp_ip,
        "addresses shared: a {}/{}, b {}/{}",
        a.mail_ip,
        a.ftp_ip,
        b.mail_ip,
        b.ftp_ip
    );
    for t in [&a, &b] {
        issued_for(
            &client,
            &t.served.ns,
            &[&t.domain, &t.mail_host, &t.ftp_host],
        )
        .await?;
    }
    eprintln!(
        "{}: mail {} ftp {}; {}: mail {} ftp {}; certificates issued {:.1} s after the start",
        a.domain,
        a.mail_ip,
        a.ftp_ip,
        b.domain,
        b.mail_ip,
        b.ftp_ip,
        started.elapsed().as_secs_f64()
    );

    // The client outside: on the LAN, no route to anything else.
    let outside = LanClient::join("10.251.0.2", 0)?;
    let unreachable = outside.exec(
        "curl",
        &["-sS", "--max-time", "3", &format!("http://{INGRESS_IP}/")],
    )?;
    ensure!(
        !unreachable.status.success(),
        "the outside client reaches the cluster's Service range"
    );

    // Mail to info@<domain> on port 25, STARTTLS with the mail host's certificate.
    let message = dir.path().join("message.eml");
    for t in [&a, &b] {
        let token = format!("for {} from outside", t.domain);
        std::fs::write(
            &message,
            format!(
                "From: someone@elsewhere.example\r\nTo: {}\r\nSubject: {token}\r\n\r\n{token}\r\n",
                t.mailbox.0
            ),
        )?;
        let message = message.to_string_lossy().into_owned();
        let url = format!("smtp://{}:25", t.mail_host);
        retrying(
            &format!("mail to {} on port 25", t.mailbox.0),
            RETRY,
            || {
                outside_curl(
                    &outside,
                    &root,
                    &t.mail_host,
                    25,
                    t.mail_ip,
                    &[
                        "--ssl-reqd",
                        "--mail-from",
                        "someone@elsewhere.example",
                        "--mail-rcpt",
                        &t.mailbox.0,
                        "-T",
                        &message,
                        &url,
                    ],
                )
            },
        )
        .await?;
    }
    // No relaying: a's MTA takes no mail for b's domain.
    let message_s = message.to_string_lossy().into_owned();
    let relay = outside_curl(
        &outside,
        &root,
        &a.mail_host,
        25,
        a.mail_ip,
        &[
            "--ssl-reqd",
            "--mail-from",
            "someone@elsewhere.example",
            "--mail-rcpt",
            &b.mailbox.0,
            "-T",
            &message_s,
            &format!("smtp://{}:25", a.mail_host),
        ],
    );
    ensure!(
        relay.is_err(),
        "{}'s MTA relayed to {}",
        a.domain,
        b.mailbox.0
    );
    // Each mailbox holds its own message, read over IMAPS on the public address.
    for (t, other) in [(&a, &b), (&b, &a)] {
        let user = format!("{}:{}", t.mailbox.0, t.mailbox.1);
        let url = format!("imaps://{}:993/INBOX;UID=1", t.mail_host);
        let text = retrying(
            &format!("{}'s mailbox over IMAPS", t.mailbox.0),
            RETRY,
            || {
                let text = outside_curl(
                    &outside,
                    &root,
                    &t.mail_host,
                    993,
                    t.mail_ip,
                    &["--user", &user, &url],
                )?;
                ensure!(
                    text.contains(&format!("for {} from outside", t.domain)),
                    "not there yet: {text}"
                );
                Ok(text)
            },
        )
        .await?;
        ensure!(
            !text.contains(&format!("for {} from outside", other.domain)),
            "{}'s mailbox holds {}'s mail",
            t.domain,
            other.domain
        );
        let uid2 = format!("imaps://{}:993/INBOX;UID=2", t.mail_host);
        ensure!(
            outside_curl(
                &outside,
                &root,
                &t.mail_host,
                993,
                t.mail_ip,
                &["--user", &user, &uid2]
            )
            .is_err(),
            "{}'s mailbox holds a second message",
            t.domain
        );
    }
    eprintln!(
        "mail from outside delivered to each mailbox only {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );

    // FTPS on port 21 (AUTH TLS, passive data through the same address).
    let upload = dir.path().join("from-outside.txt");
    for t in [&a, &b] {
        std::fs::write(&upload, format!("uploaded to {} from outside\n", t.domain))?;
        let upload = upload.to_string_lossy().into_owned();
        let user = format!("{}:{}", t.served.login, t.ftp_password);
        let url = format!("ftp://{}:21/from-outside.txt", t.ftp_host);
        retrying(&format!("FTPS upload to {}", t.ftp_host), RETRY, || {
            outside_curl(
                &outside,
                &root,
                &t.ftp_host,
                21,
                t.ftp_ip,
                &["--ssl-reqd", "--user", &user, "-T", &upload, &url],
            )
        })
        .await?;
    }
    // a's login on b's server: refused.
    let wrong = outside_curl(
        &outside,
        &root,
        &b.ftp_host,
        21,
        b.ftp_ip,
        &[
            "--ssl-reqd",
            "--user",
            &format!("{}:{}", a.served.login, a.ftp_password),
            &format!("ftp://{}:21/", b.ftp_host),
        ],
    );
    ensure!(
        wrong.is_err(),
        "{}'s login worked on {}'s FTP server",
        a.domain,
        b.domain
    );
    // Each file is in its own document root: the site serves it through the front door.
    for t in [&a, &b] {
        let page = curl(&[
            "--resolve",
            &format!("{}:80:{INGRESS_IP}", t.domain),
            &format!("http://{}/from-outside.txt", t.domain),
        ])?;
        ensure!(
            page == format!("uploaded to {} from outside\n", t.domain),
            "{}'s document root serves {page:?}",
            t.domain
        );
    }
    eprintln!(
        "FTPS uploads from outside in each document root only {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );

    // The quota: the operator's two LoadBalancers, not one more; no NodePort.
    let quota: Api<ResourceQuota> = Api::namespaced(client.clone(), &a.served.ns);
    let hard: BTreeMap<String, String> = quota
        .get("course-limits")
        .await?
        .spec
        .and_then(|s| s.hard)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    ensure!(
        hard.get("services.loadbalancers").map(String::as_str) == Some("2")
            && hard.get("services.nodeports").map(String::as_str) == Some("0"),
        "quota: {hard:?}"
    );
    let services: Api<Service> = Api::namespaced(client.clone(), &a.served.ns);
    let extra: Service = serde_json::from_value(json!({
        "metadata": {"name": "tenant-lb"},
        "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                 "selector": {"app.kubernetes.io/name": "web"}, "ports": [{"port": 8080}]}
    }))?;
    let refused = services.create(&PostParams::default(), &extra).await;
    ensure!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.message.contains("services.loadbalancers")),
        "a third LoadBalancer in the hosting namespace: {refused:?}"
    );
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
