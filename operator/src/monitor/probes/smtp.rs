//! smtp and smtps probes: a 220 greeting and a 250 to EHLO (multi-line `250-` replies), then
//! QUIT; smtps does the same inside implicit TLS.

use tokio::io::{AsyncRead, AsyncWrite};

use super::line::LineConn;
use super::{Probe, ProbeContext, ProbeError};

/// The name the probe introduces itself with.
const EHLO_NAME: &str = "probe.oem-hosting.invalid";

pub struct SmtpProbe {
    pub tls: bool,
}

impl Probe for SmtpProbe {
    async fn check(&self, cx: &mut ProbeContext<'_>) -> Result<String, ProbeError> {
        let tcp = cx.connect().await?;
        if self.tls {
            let tls = cx.start_tls(tcp).await?;
            let summary = converse(cx, LineConn::new(tls)).await?;
            Ok(format!("TLS handshake completed, {summary}"))
        } else {
            converse(cx, LineConn::new(tcp)).await
        }
    }
}

async fn converse<S>(cx: &mut ProbeContext<'_>, mut conn: LineConn<S>) -> Result<String, ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let greeting = conn
        .read_coded_reply(cx, "reading the greeting")
        .await?
        .expect(220, "reading the greeting")?;
    cx.findings_mut().server_version = Some(greeting.text().to_owned());
    conn.send(cx, "sending EHLO", &format!("EHLO {EHLO_NAME}"))
        .await?;
    let ehlo = conn
        .read_coded_reply(cx, "reading the reply to EHLO")
        .await?
        .expect(250, "reading the reply to EHLO")?;
    conn.close_with(cx, "QUIT").await;
    Ok(format!(
        "220 greeting, 250 to EHLO ({} extensions)",
        ehlo.lines.len().saturating_sub(1)
    ))
}
