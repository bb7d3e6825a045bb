//! Test servers of the incident tests, all on 127.0.0.1: the reseller's side of the webhook (a
//! receiver that records every POST and can answer 503 for a while) and a mail server
//! exporter serving `oem_mail_sent_total`. The database whose outage is the incident is the
//! real PostgreSQL of the probe tests (`operator/tests/probes_support`). The scenario of a hung
//! Prometheus is in `frozen.rs`.

pub mod frozen;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One POST the webhook receiver got, and what it answered.
#[derive(Debug, Clone)]
pub struct HookCall {
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub answered: u16,
}

/// The reseller's webhook endpoint.
pub struct Hooks {
    pub port: u16,
    pub calls: Arc<Mutex<Vec<HookCall>>>,
    /// While true, every POST is answered 503 (the receiver is down).
    pub down: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

async fn read_request(conn: &mut TcpStream) -> Option<(BTreeMap<String, String>, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let headers: BTreeMap<String, String> = text[..end]
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
            return Some((headers, body));
        }
    }
}

impl Hooks {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let calls: Arc<Mutex<Vec<HookCall>>> = Arc::default();
        let down: Arc<AtomicBool> = Arc::default();
        let (c, d) = (calls.clone(), down.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (calls, down) = (c.clone(), d.clone());
                tokio::spawn(async move {
                    let Some((headers, body)) = read_request(&mut conn).await else {
                        return;
                    };
                    let answered = if down.load(Ordering::SeqCst) {
                        503
                    } else {
                        200
                    };
                    if let Ok(mut calls) = calls.lock() {
                        calls.push(HookCall {
                            headers,
                            body,
                            answered,
                        });
                    }
                    let reply = format!(
                        "HTTP/1.1 {answered} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        if answered == 200 { "OK" } else { "Unavailable" }
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Ok(Self {
            port,
            calls,
            down,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/notify", self.port)
    }

    pub fn calls(&self) -> Vec<HookCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A tenant mail server's exporter: `oem_mail_sent_total{reseller,enduser}`, counting up
/// once per tick while `sending`.
pub struct MailExporter {
    pub port: u16,
    pub sending: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl MailExporter {
    pub async fn start(reseller: &str, enduser: &str, per_second: u64) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let sent: Arc<AtomicU64> = Arc::default();
        let sending: Arc<AtomicBool> = Arc::default();
        let (s, on) = (sent.clone(), sending.clone());
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                if on.load(Ordering::SeqCst) {
                    s.fetch_add(per_second.div_ceil(10), Ordering::SeqCst);
                }
            }
        });
        let s = sent.clone();
        let labels = format!("reseller=\"{reseller}\",enduser=\"{enduser}\"");
        let server = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (sent, labels) = (s.clone(), labels.clone());
                tokio::spawn(async move {
                    if read_request(&mut conn).await.is_none() {
                        return;
                    }
                    let body = format!(
                        "# TYPE oem_mail_sent_total counter\noem_mail_sent_total{{{labels}}} {}\n",
                        sent.load(Ordering::SeqCst)
                    );
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Ok(Self {
            port,
            sending,
            tasks: vec![ticker, server],
        })
    }
}

impl Drop for MailExporter {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A mail's text with quoted-printable soft breaks and `=3D` undone (enough for ASCII text).
pub fn unfold(mail: &str) -> String {
    mail.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}
