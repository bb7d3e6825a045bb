//! ftp and ftps probes: a 220 greeting, then QUIT; ftps upgrades first with explicit
//! `AUTH TLS` (234) and a completed, verified TLS handshake, and sends QUIT inside TLS.

use super::line::LineConn;
use super::{Probe, ProbeContext, ProbeError};

pub struct FtpProbe {
    pub tls: bool,
}

impl Probe for FtpProbe {
    async fn check(&self, cx: &mut ProbeContext<'_>) -> Result<String, ProbeError> {
        let tcp = cx.connect().await?;
        let mut conn = LineConn::new(tcp);
        let greeting = conn
            .read_coded_reply(cx, "reading the greeting")
            .await?
            .expect(220, "reading the greeting")?;
        cx.findings_mut().server_version = Some(greeting.text().to_owned());
        if !self.tls {
            conn.close_with(cx, "QUIT").await;
            return Ok("220 greeting".to_owned());
        }
        conn.send(cx, "sending AUTH TLS", "AUTH TLS").await?;
        conn.read_coded_reply(cx, "reading the reply to AUTH TLS")
            .await?
            .expect(234, "reading the reply to AUTH TLS")?;
        let tcp = conn.into_stream("reading the reply to AUTH TLS")?;
        let tls = cx.start_tls(tcp).await?;
        LineConn::new(tls).close_with(cx, "QUIT").await;
        Ok("220 greeting, 234 to AUTH TLS, TLS handshake completed".to_owned())
    }
}
