//! The end-to-end harness: finds or starts the local control plane (`e2e/cluster/cluster.sh`),
//! hands tests a client for it, and waits with bounded loops.

pub mod certificates;
pub mod cluster;
pub mod dashboards;
pub mod hosting;
pub mod lan;
pub mod mail;
pub mod operator;
pub mod panel;
pub mod process;
pub mod prometheus;
pub mod real_hosting;
pub mod relay;
pub mod tenant_scrape;
pub mod wait;
pub mod webdriver;
pub mod webhooks;

pub use cluster::Cluster;

/// A loopback port free at the time of the call.
pub fn free_port() -> anyhow::Result<u16> {
    use anyhow::Context;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A plain HTTP/1.1 GET to a loopback address: (status, body). Enough for /metrics and health.
pub async fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    use anyhow::Context;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are supported")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(host),
    )
    .await
    .context("connect timed out")??;
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut buf),
    )
    .await
    .context("read timed out")??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status line")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
