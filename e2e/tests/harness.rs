//! The alerting harness itself, without a cluster: Prometheus loads backfilled series and a
//! rule, sends the alert to Alertmanager, and Alertmanager posts it to a receiver in this test;
//! the SMTP sink speaks STARTTLS. If a daemon is missing, this fails.

use std::time::Duration;

use oem_e2e::prometheus::{Alertmanager, Prometheus, PrometheusOptions, SmtpSink, SmtpSinkOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn prometheus_alertmanager_and_smtp_run_on_loopback() -> anyhow::Result<()> {
    // A receiver for Alertmanager's webhook: records each POST body.
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_addr = receiver.local_addr()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(8);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = receiver.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                // Read until the body announced by Content-Length is in.
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            let _ = socket
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                                .await;
                            let _ = tx.send(body.to_owned()).await;
                            break;
                        }
                    }
                }
            });
        }
    });
    let alertmanager = Alertmanager::start(&format!(
        "route:\n  receiver: test\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: http://{receiver_addr}/alerts\n"
    ))
    .await?;

    let now = jiff::Timestamp::now().as_second();
    let mut series = String::from("# TYPE harness_backfilled gauge\n");
    for i in (0..10).rev() {
        series.push_str(&format!(
            "harness_backfilled{{tenant=\"a\"}} 42 {}\n",
            now - i * 30
        ));
    }
    series.push_str("# EOF\n");
    let dir = tempfile::tempdir()?;
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "groups:\n  - name: harness\n    rules:\n      - alert: HarnessAlways\n        expr: vector(1)\n        labels:\n          tenant: a\n",
    )?;
    let prometheus = Prometheus::start(PrometheusOptions {
        rule_files: vec![rules],
        alertmanagers: vec![alertmanager.addr.clone()],
        backfill_openmetrics: Some(series),
        ..Default::default()
    })
    .await?;
    let got = prometheus.query("harness_backfilled").await?;
    assert_eq!(got.len(), 1, "backfilled series: {got:?}");
    assert_eq!(got[0].labels["tenant"], "a");
    assert_eq!(got[0].value, 42.0);

    let body = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "no alert reached the receiver in 30 s:\n{}\n{}",
                prometheus.log_tail(20),
                alertmanager.log_tail(20)
            )
        })?
        .ok_or_else(|| anyhow::anyhow!("receiver closed"))?;
    let payload: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(payload["alerts"][0]["labels"]["alertname"], "HarnessAlways");
    let alerts = prometheus.alerts().await?;
    assert!(
        alerts
            .iter()
            .any(|a| a.labels["alertname"] == "HarnessAlways" && a.state == "firing")
    );

    let smtp = SmtpSink::start(SmtpSinkOptions {
        tls: true,
        ..Default::default()
    })
    .await?;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", smtp.port)).await?;
    socket.write_all(b"EHLO harness\r\n").await?;
    let mut banner = vec![0u8; 1024];
    let mut text = String::new();
    while !text.contains("250 ") {
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut banner)).await??;
        anyhow::ensure!(n > 0, "smtp closed early: {text}");
        text.push_str(&String::from_utf8_lossy(&banner[..n]));
    }
    assert!(text.starts_with("220"), "{text}");
    assert!(text.contains("STARTTLS"), "{text}");
    assert!(smtp.ca_pem().is_some());
    assert!(smtp.messages()?.is_empty());
    Ok(())
}
