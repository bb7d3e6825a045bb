//! A maintenance window and the monthly availability report (issue 17), end to end on the local
//! control plane with a real PostgreSQL and the real SMTP sink, time-shifted through the
//! operator's clock file (notifyAfter scaled to 15 s): a few minutes before the month ends a
//! window opens and the database server hangs inside it (SIGSTOP) — no incident, no notice,
//! the window records the fall and the service is marked for the availability rules; the window
//! ends with the server still hung — an incident whose outage starts at the window's end,
//! notified notifyAfter later; the server comes back. Once the clock is past the first business
//! day of the next month each contact gets one mail in its language with the report attached as
//! HTML, whose figures leave the window out; a restarted operator sends nothing twice.

#[path = "../../operator/tests/probes_support/mod.rs"]
mod probes_support;

use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use kube::Client;
use kube::api::{Api, DeleteParams};
use oem_crds::enduser::EndUser;
use oem_crds::incident::Incident;
use oem_crds::maintenance::Maintenance;
use oem_crds::reseller::Reseller;
use oem_e2e::hosting::{self, apply_enduser};
use oem_e2e::mail::{decode_words, header, parse};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::prometheus::{SmtpSink, SmtpSinkOptions};
use oem_e2e::{Cluster, free_port, wait};
use serde_json::json;

/// A report mail: recipient, subject, text and attached HTML.
#[derive(Debug)]
struct ReportMail {
    to: String,
    subject: String,
    text: String,
    file_name: String,
    html: String,
}

fn report_mails(smtp: &SmtpSink, reseller_domain: &str) -> anyhow::Result<Vec<ReportMail>> {
    let mut out = Vec::new();
    for raw in smtp.messages()? {
        let (head, parts) = parse(&raw);
        let to = header(&head, "X-Sink-Rcpt-To");
        let subject = decode_words(&header(&head, "Subject"));
        if !to.ends_with(reseller_domain)
            || !(subject.contains("稼働率レポート") || subject.contains("Availability report"))
        {
            continue;
        }
        let text = parts
            .iter()
            .find(|p| header(&p.head, "Content-Type").starts_with("text/plain"))
            .map(|p| p.body.clone())
            .unwrap_or_default();
        let attachment = parts
            .iter()
            .find(|p| header(&p.head, "Content-Disposition").starts_with("attachment"));
        out.push(ReportMail {
            to,
            subject,
            text,
            file_name: attachment
                .map(|p| header(&p.head, "Content-Disposition"))
                .unwrap_or_default(),
            html: attachment.map(|p| p.body.clone()).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// `notifyAfter`, scaled from 10 minutes.
const NOTIFY_AFTER: SignedDuration = SignedDuration::from_secs(15);

async fn start_operator(cluster: &Cluster, smtp: &SmtpSink) -> anyhow::Result<Operator> {
    let notify = json!({
        "smtpHost": "127.0.0.1", "smtpPort": smtp.port, "starttls": "none",
        "from": "noc@provider.example", "timeout": "5s",
        "maxAttempts": 10, "backoffBase": "1s", "backoffMax": "2s"
    });
    let env = [
        ("OEM_HTTP_ADDR", format!("127.0.0.1:{}", free_port()?)),
        ("OEM_PROBE_INTERVAL", "2s".into()),
        ("OEM_PROBE_RETRY_INTERVAL", "1s".into()),
        ("OEM_PROBE_TIMEOUT", "1s".into()),
        ("OEM_PROBE_ALLOW", "127.0.0.0/8".into()),
        ("OEM_ALERT_POLL_INTERVAL", "1s".into()),
        ("OEM_RESYNC_INTERVAL", "20s".into()),
        // The 10-minute notice scaled; no restart in these minutes (the pods are kwok's).
        ("OEM_NOTIFY_AFTER", format!("{}s", NOTIFY_AFTER.as_secs())),
        ("OEM_RESTART_BACKOFF", "1h".into()),
        ("OEM_FLAP_WINDOW", "0s".into()),
        ("OEM_NOTIFY", notify.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Operator::start(cluster, OperatorOptions::with_env(env)).await
}

/// The shift that makes the operator's "now" `target`.
fn shift_to(target: Timestamp) -> String {
    format!("{:+}s", target.duration_since(Timestamp::now()).as_secs())
}

/// Availability in percent rounded down to three decimals, as the report writes it.
fn percent(down: SignedDuration, measured: SignedDuration) -> String {
    let ratio = 1.0 - down.as_secs_f64() / measured.as_secs_f64();
    format!("{:.3}", (ratio * 100.0 * 1000.0).floor() / 1000.0)
}

#[tokio::test]
async fn a_window_holds_an_outage_its_end_opens_it_and_the_months_report_goes_once()
-> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let client: Client = cluster.client().await?;
    let smtp = SmtpSink::start(SmtpSinkOptions::default()).await?;
    let postgres = probes_support::daemons::postgres();
    let mut operator = start_operator(cluster, &smtp).await?;

    let id = std::process::id() % 100000;
    let name = format!("rep{id}");
    let domain = format!("@{name}.example.jp");
    let mut spec = hosting::reseller(&name, json!([]));
    spec["spec"]["displayName"] = json!("うめホスティング");
    spec["spec"]["contacts"] = json!([
        {"name": "desk", "email": format!("desk{domain}"), "language": "ja"},
        {"name": "night", "email": format!("night{domain}"), "language": "en"}
    ]);
    let ns = hosting::apply_reseller(&client, spec).await?;
    hosting::apply_postgresql_course(&client, &ns).await?;
    let endpoints = json!({"monitoring": {"endpoints": [
        {"service": "postgresql", "host": "127.0.0.1", "port": postgres},
        {"service": "ping", "host": "127.0.0.1"}
    ]}});
    apply_enduser(
        &client,
        hosting::enduser(&ns, "shop", "db", "2025-01-01", endpoints),
    )
    .await?;
    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &ns);
    let db_state = || async {
        let eu = endusers.get("shop").await.map_err(|e| e.to_string())?;
        let v = serde_json::to_value(&eu).map_err(|e| e.to_string())?;
        Ok::<_, String>(
            v["status"]["services"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["service"] == "postgresql")
                .map(|s| s["state"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default(),
        )
    };
    wait::until(
        "postgresql Up",
        Duration::from_secs(90),
        Duration::from_millis(300),
        || async {
            match db_state().await? {
                s if s == "Up" => Ok(()),
                s => Err(s),
            }
        },
    )
    .await
    .map_err(|e| e.context(operator.log_tail(40)))?;

    // Six minutes before the end of the month the end user began in (Tokyo).
    let tokyo = TimeZone::get("Asia/Tokyo")?;
    let created = endusers
        .get("shop")
        .await?
        .metadata
        .creation_timestamp
        .map(|t| t.0)
        .unwrap_or_else(Timestamp::now);
    let first_of_month = created.to_zoned(tokyo.clone()).date().first_of_month();
    let next_month = first_of_month.checked_add(1.month())?;
    let month_end = next_month.to_zoned(tokyo.clone())?.timestamp();
    anyhow::ensure!(
        month_end - SignedDuration::from_mins(6) > Timestamp::now(),
        "the month ends in less than six minutes; run again"
    );
    let shift = shift_to(month_end - SignedDuration::from_mins(6));
    operator.shift_clock(&shift)?;
    let shifted_now = month_end - SignedDuration::from_mins(6);

    let shifted_at = Instant::now();

    // The window: from 20 s to 60 s after the shift. The database hangs inside it (at 30 s) and
    // is still hung when it ends.
    let windows: Api<Maintenance> = Api::namespaced(client.clone(), &ns);
    let window_start =
        Timestamp::from_second((shifted_now + SignedDuration::from_secs(20)).as_second())?;
    let window_end = window_start + SignedDuration::from_secs(40);
    hosting::apply(
        &windows,
        json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Maintenance",
            "metadata": {"name": "db-upgrade", "namespace": ns},
            "spec": {
                "targets": [{"endUser": "shop", "services": ["postgresql"]}],
                "start": window_start.to_string(),
                "end": window_end.to_string(),
                "reason": {"ja": "データベースの更新", "en": "database upgrade"}
            }
        }),
    )
    .await?;
    tokio::time::sleep_until((shifted_at + Duration::from_secs(30)).into()).await;
    let hung = probes_support::daemons::hang_postgres().map_err(anyhow::Error::msg)?;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let shops = || async {
        Ok::<_, String>(
            incidents
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .filter(|i| i.spec.end_user == "shop")
                .collect::<Vec<Incident>>(),
        )
    };
    wait::until(
        "postgresql Down inside the window",
        Duration::from_secs(15),
        Duration::from_millis(300),
        || async {
            match db_state().await? {
                s if s == "Down" => Ok(()),
                s => Err(s),
            }
        },
    )
    .await
    .map_err(|e| e.context(operator.log_tail(40)))?;

    // Held while the window is open: no incident, no notice; the window records the fall and
    // the operator marks the service for the availability rules.
    let mut held_checks = 0;
    let mut marked = false;
    while shifted_at.elapsed() < Duration::from_secs(57) {
        let open = shops().await.map_err(anyhow::Error::msg)?;
        assert!(open.is_empty(), "an incident inside the window: {open:?}");
        let metrics = operator.metrics().await?;
        marked |= metrics.lines().any(|l| {
            l.starts_with("oem_maintenance_active{")
                && l.contains(&format!("reseller=\"{name}\""))
                && l.contains("service=\"postgresql\"")
                && l.ends_with(" 1")
        });
        held_checks += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(held_checks >= 10, "{held_checks} checks inside the window");
    assert!(marked, "oem_maintenance_active marks the held service");
    let window_status = windows.get("db-upgrade").await?.status.unwrap_or_default();
    assert!(
        window_status.first_down_at.is_some(),
        "the window recorded the fall: {window_status:?}"
    );

    // Still down at the window's end: an incident whose outage starts there, and its notice
    // notifyAfter later.
    let incident = wait::until(
        "the incident after the window",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            match shops().await?.as_slice() {
                [one] if one.status.as_ref().is_some_and(|s| s.notified_at.is_some()) => {
                    Ok(one.clone())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .map_err(|e| e.context(operator.log_tail(40)))?;
    let status = incident.status.clone().unwrap_or_default();
    let started = status.started_at.as_ref().map(|t| t.0);
    assert_eq!(
        started,
        Some(window_end),
        "the outage counts from the window's end"
    );
    let notified = status.notified_at.as_ref().map(|t| t.0);
    assert!(
        notified.is_some_and(|n| n.duration_since(window_end) >= NOTIFY_AFTER),
        "notified at {notified:?}, the window ended at {window_end}"
    );
    hung.resume().map_err(anyhow::Error::msg)?;
    let incident = wait::until(
        "the postgresql incident resolved",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            match shops().await?.as_slice() {
                [one] if one.status.as_ref().is_some_and(|s| s.resolved_at.is_some()) => {
                    Ok(one.clone())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .map_err(|e| e.context(operator.log_tail(40)))?;
    let status = incident.status.clone().unwrap_or_default();
    let down_at = status
        .timeline
        .iter()
        .find(|e| e.event == "Down")
        .map(|e| e.time.0)
        .ok_or_else(|| anyhow::anyhow!("no Down in {:?}", status.timeline))?;
    let up_at = status
        .timeline
        .iter()
        .rfind(|e| e.event == "Recovered")
        .map(|e| e.time.0)
        .ok_or_else(|| anyhow::anyhow!("no Recovered in {:?}", status.timeline))?;
    assert_eq!(down_at, window_end);
    assert!(
        up_at > window_end && up_at <= month_end,
        "recovered at {up_at}"
    );

    // Nothing before the report is due.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        report_mails(&smtp, &domain)?.is_empty(),
        "no report before it is due"
    );

    // The 15th of the next month, noon in Tokyo: past its first business day.
    let fifteenth = next_month
        .checked_add(14.days())?
        .at(12, 0, 0, 0)
        .to_zoned(tokyo.clone())?
        .timestamp();
    operator.shift_clock(&shift_to(fifteenth))?;
    let mails = wait::until(
        "one report mail per contact",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || async {
            let mails = report_mails(&smtp, &domain).map_err(|e| e.to_string())?;
            if mails.len() >= 2 {
                Ok(mails)
            } else {
                Err(format!("{} report mails", mails.len()))
            }
        },
    )
    .await
    .map_err(|e| e.context(operator.log_tail(40)))?;

    // The figures: postgresql measured from creation to the month's end less the window, down
    // from the window's end to the recovery; ping never went down.
    let measured_from = created.max(first_of_month.to_zoned(tokyo.clone())?.timestamp());
    let window = window_end.duration_since(window_start);
    let db_measured = month_end.duration_since(measured_from) - window;
    let db_down = up_at.duration_since(down_at);
    let db_percent = percent(db_down, db_measured);
    let services = endusers
        .get("shop")
        .await?
        .status
        .map(|s| s.services.len())
        .unwrap_or_default();
    let total_measured = month_end.duration_since(measured_from) * services as i32 - window;
    let total_percent = percent(db_down, total_measured);
    let month_label = format!("{}-{:02}", first_of_month.year(), first_of_month.month());

    let ja = mails
        .iter()
        .find(|m| m.to == format!("desk{domain}"))
        .ok_or_else(|| anyhow::anyhow!("no mail to desk: {mails:?}"))?;
    let month_ja = format!("{}年{}月", first_of_month.year(), first_of_month.month());
    assert_eq!(
        ja.subject,
        format!("【うめホスティング】{month_ja}の稼働率レポート")
    );
    assert!(
        ja.text
            .contains(&format!("全体の稼働率: {total_percent} %")),
        "{}",
        ja.text
    );
    assert!(
        ja.file_name
            .contains(&format!("availability-{month_label}.html")),
        "{}",
        ja.file_name
    );
    let row = format!("<td>ushop</td><td>postgresql</td><td class=\"num\">{db_percent} %</td>");
    assert!(ja.html.contains(&row), "{row} in\n{}", ja.html);
    assert!(
        ja.html.contains(&format!(
            "<dd class=\"total\" id=\"total\">{total_percent} %</dd>"
        )),
        "{}",
        ja.html
    );
    assert!(
        ja.html
            .contains(&incident.metadata.name.clone().unwrap_or_default())
    );
    assert!(ja.html.contains("<td>サービス停止</td>"), "{}", ja.html);
    let en = mails
        .iter()
        .find(|m| m.to == format!("night{domain}"))
        .ok_or_else(|| anyhow::anyhow!("no mail to night: {mails:?}"))?;
    assert!(
        en.subject.contains("Availability report for"),
        "{}",
        en.subject
    );
    assert!(en.html.contains("<html lang=\"en\">"));
    assert!(en.html.contains(&row), "{}", en.html);

    let resellers: Api<Reseller> = Api::all(client.clone());
    let recorded = resellers
        .get(&name)
        .await?
        .status
        .unwrap_or_default()
        .reports;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].month, month_label);
    assert_eq!(recorded[0].availability_percent, total_percent);
    assert_eq!(recorded[0].incidents, 1);
    assert_eq!(recorded[0].downtime_seconds, db_down.as_secs());
    assert!(
        recorded[0]
            .deliveries
            .iter()
            .all(|d| format!("{:?}", d.state) == "Sent" && d.attempts == 1),
        "{:?}",
        recorded[0].deliveries
    );

    // `OEM_WRITE_EXAMPLES=1` refreshes the documented example from this run.
    if std::env::var_os("OEM_WRITE_EXAMPLES").is_some() {
        let docs = oem_e2e::cluster::repo_root().join("docs");
        std::fs::write(docs.join("availability-report-example.html"), &ja.html)?;
    }

    // A restart on the same day: nothing is sent again.
    operator.kill()?;
    let operator = start_operator(cluster, &smtp).await?;
    operator.shift_clock(&shift_to(fifteenth))?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let again = report_mails(&smtp, &domain)?;
    assert_eq!(
        again.len(),
        2,
        "one report per contact across a restart: {again:?}"
    );

    windows
        .delete("db-upgrade", &DeleteParams::default())
        .await?;
    endusers.delete("shop", &DeleteParams::default()).await?;
    Ok(())
}
