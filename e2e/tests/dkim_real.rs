//! What an end user publishes in DNS, and mail signed with it, on the real node with nothing
//! standing in: the operator lists each domain's records in `status.dns` (the front door's
//! address, the MX, SPF and the DKIM key it made), the project's mail image signs outgoing mail
//! with that key and sends it through the provider's relay (a real SMTP server on the node's
//! address), and dkimpy — a verifier of its own — checks the signature against the published
//! TXT record. The mail pod is deleted and comes back: same key, same record, still verifying.
//!
//! Runs only inside a network and mount namespace of its own (scripts/test.sh does that).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use oem_crds::EndUser;
use oem_crds::enduser::{DnsPurpose, DnsRecord, DnsRecordType};
use oem_e2e::cluster::{DownOnDrop, repo_root};
use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::operator::{Operator, OperatorOptions, real_node_config};
use oem_e2e::prometheus::{SmtpSink, SmtpSinkOptions};
use oem_e2e::real_hosting::{
    active_on_the_real_node, cluster_ip, first_mail_account, import_images, pods_report, retrying,
    send_over_smtps,
};
use oem_e2e::{Cluster, wait};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(180);
/// The real node's own address (`e2e/cluster/node.sh`), which its pods reach.
const NODE_IP: &str = "10.250.0.1";
const SELECTOR: &str = "s2026";
const OUTSIDE: &str = "someone@elsewhere.example.com";
/// Debian's interpreter, for which python3-dkim is installed.
const PYTHON: &str = "/usr/bin/python3";

/// The `n`th message the relay received, once there.
async fn relayed(relay: &SmtpSink, n: usize) -> anyhow::Result<PathBuf> {
    let path = relay.dir.join(format!("{n:05}.eml"));
    wait::until(
        &format!("message {n} at the provider's relay"),
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            if path.exists() {
                Ok(())
            } else {
                Err(relay.log_tail(10))
            }
        },
    )
    .await?;
    Ok(path)
}

/// dkimpy's verdict on `message` against `record`, published for `domain` and [`SELECTOR`].
fn verify(message: &Path, domain: &str, record: &str) -> anyhow::Result<String> {
    let out = Command::new(PYTHON)
        .arg(repo_root().join("e2e/daemons/dkim_verify.py"))
        .arg(message)
        .args([domain, SELECTOR, record])
        .output()
        .context("running dkim_verify.py (python3-dkim)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "DKIM verification failed: {text}");
    Ok(text.trim().to_owned())
}

fn records_of(enduser: &EndUser) -> Vec<DnsRecord> {
    enduser
        .status
        .as_ref()
        .map(|s| s.dns.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_published_dkim_key_verifies_mail_sent_through_the_providers_relay_across_a_restart()
-> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(Cluster::real_node).await??;
    let guard = DownOnDrop(Some(cluster));
    let cluster = guard.0.as_ref().context("cluster")?;
    import_images(cluster, &[])?;

    // The provider's relay: a real SMTP server on the node's address.
    let relay = SmtpSink::start(SmtpSinkOptions {
        host: Some(NODE_IP.into()),
        ..SmtpSinkOptions::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let config = real_node_config(
        dir.path(),
        &format!(
            "frontDoor: {{ipv4: [192.0.2.25]}}\n\
             mail: {{dkimSelector: {SELECTOR}, relay: \"{NODE_IP}:{}\"}}\n",
            relay.port
        ),
    )?;
    let _operator = Operator::start(cluster, OperatorOptions::with_config(&config)).await?;
    let client = cluster.client().await?;

    let ns = hosting::reseller_with_namespace(&client, "realdkim", json!([])).await?;
    let mut course = hosting::course(
        &ns,
        "post",
        "512Mi",
        json!({"mail": {"maxSendsPerHour": 10}}),
    );
    course["spec"]["resources"]["cpu"] = json!("300m");
    apply_course(&client, course).await?;
    let enduser = apply_enduser(
        &client,
        hosting::enduser(&ns, "signer", "post", "2025-01-01", json!({})),
    )
    .await?;
    let served = active_on_the_real_node(&client, &enduser, LIMIT).await?;
    let domain = enduser.spec.domains.first().context("no domain")?.clone();
    eprintln!(
        "{domain} Active on the real node {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );

    // What the end user must set in DNS.
    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &ns);
    let records = records_of(&endusers.get("signer").await?);
    let listed: Vec<String> = records
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.type_.as_str(), r.value))
        .collect();
    let mail_host = format!("mail.{domain}");
    for (name, type_, value) in [
        (
            domain.as_str(),
            DnsRecordType::Mx,
            format!("10 {mail_host}."),
        ),
        (
            domain.as_str(),
            DnsRecordType::Txt,
            "v=spf1 a mx ~all".to_owned(),
        ),
        (
            mail_host.as_str(),
            DnsRecordType::A,
            "192.0.2.25".to_owned(),
        ),
    ] {
        ensure!(
            records
                .iter()
                .any(|r| r.name == name && r.type_ == type_ && r.value == value),
            "{name} {} {value} missing from status.dns: {listed:#?}",
            type_.as_str()
        );
    }
    let dkim_name = format!("{SELECTOR}._domainkey.{domain}");
    let dkim = records
        .iter()
        .find(|r| r.purpose == DnsPurpose::Dkim)
        .with_context(|| format!("no DKIM record in status.dns: {listed:#?}"))?;
    ensure!(
        dkim.name == dkim_name && dkim.type_ == DnsRecordType::Txt,
        "{dkim:?}"
    );
    ensure!(
        dkim.value.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"),
        "{dkim:?}"
    );
    let record = dkim.value.clone();
    // The private key stays in the hosting namespace's Secret, never in the status.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &served.ns);
    let key_secret = secrets.get("dkim").await?;
    let key_version = key_secret.resource_version();
    let status_text = serde_json::to_string(&endusers.get("signer").await?.status)?;
    ensure!(
        !status_text.contains("PRIVATE KEY"),
        "a private key in the status"
    );
    eprintln!(
        "status.dns lists {} records, among them {dkim_name}",
        records.len()
    );

    // Mail out, signed, through the relay; verified against the published record.
    let ip = cluster_ip(&client, &served.ns, "mail").await?;
    let account = first_mail_account(&served)?;
    let message = dir.path().join("message.eml");
    let write_message = |n: usize| {
        std::fs::write(
            &message,
            format!(
                "From: {0}\r\nTo: {OUTSIDE}\r\nSubject: signed #{n}\r\nMessage-ID: <{n}.{0}>\r\n\r\nsigned mail number {n}\r\n",
                account.0
            ),
        )
    };
    write_message(1)?;
    retrying("the first mail", Duration::from_secs(60), || {
        send_over_smtps(&ip, &account, OUTSIDE, &message.to_string_lossy())
    })
    .await?;
    let first = relayed(&relay, 1).await?;
    eprintln!("before the restart: {}", verify(&first, &domain, &record)?);
    // A record of another key (what a stale DNS entry would be) does not verify it.
    let mut forged = record.clone();
    forged.replace_range(forged.len() - 60..forged.len() - 40, "AAAAAAAAAAAAAAAAAAAA");
    ensure!(
        verify(&first, &domain, &forged).is_err(),
        "a changed public key verified the signature"
    );

    // The mail pod goes and comes back: the key survives, the record stays valid.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &served.ns);
    let before = pods.get("mail-0").await?.uid();
    pods.delete("mail-0", &DeleteParams::default()).await?;
    let restarted = wait::until(
        "a new mail pod Ready",
        LIMIT,
        Duration::from_millis(500),
        || async {
            let pod = pods.get("mail-0").await.map_err(|e| e.to_string())?;
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if pod.uid() != before && ready && pod.metadata.deletion_timestamp.is_none() {
                Ok(())
            } else {
                Err(format!("uid {:?}, ready {ready}", pod.uid()))
            }
        },
    )
    .await;
    if let Err(e) = restarted {
        bail!("{e:#}\n{}", pods_report(&client, &served.ns).await);
    }
    ensure!(
        secrets.get("dkim").await?.resource_version() == key_version,
        "the dkim Secret changed across the restart"
    );
    let after = records_of(&endusers.get("signer").await?);
    ensure!(
        after == records,
        "status.dns changed across the restart: {after:#?}"
    );
    write_message(2)?;
    retrying(
        "the mail after the restart",
        Duration::from_secs(60),
        || send_over_smtps(&ip, &account, OUTSIDE, &message.to_string_lossy()),
    )
    .await?;
    let second = relayed(&relay, 2).await?;
    eprintln!("after the restart: {}", verify(&second, &domain, &record)?);
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
