//! pop3 and pop3s probes: a `+OK` greeting (inside implicit TLS for pop3s), then QUIT.

use tokio::io::{AsyncRead, AsyncWrite};

use super::error::quote;
use super::line::LineConn;
use super::{Probe, ProbeContext, ProbeError};

/// What a POP3 status line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pop3Status<'a> {
    Ok(&'a str),
    Err(&'a str),
}

/// Parses a POP3 status line: `+OK text` or `-ERR text`.
pub fn parse_pop3_status(line: &str) -> Result<Pop3Status<'_>, String> {
    if let Some(text) = status_text(line, "+OK") {
        Ok(Pop3Status::Ok(text))
    } else if let Some(text) = status_text(line, "-ERR") {
        Ok(Pop3Status::Err(text))
    } else {
        Err(format!("expected +OK, got {}", quote(line)))
    }
}

/// The text after `indicator` and a space, or empty when the line is the indicator alone.
fn status_text<'a>(line: &'a str, indicator: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(indicator)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix(' ')
    }
}

pub struct Pop3Probe {
    pub tls: bool,
}

impl Probe for Pop3Probe {
    async fn check(&self, cx: &mut ProbeContext<'_>) -> Result<String, ProbeError> {
        let tcp = cx.connect().await?;
        if self.tls {
            let tls = cx.start_tls(tcp).await?;
            converse(cx, LineConn::new(tls)).await?;
            Ok("TLS handshake completed, +OK greeting".to_owned())
        } else {
            converse(cx, LineConn::new(tcp)).await?;
            Ok("+OK greeting".to_owned())
        }
    }
}

async fn converse<S>(cx: &mut ProbeContext<'_>, mut conn: LineConn<S>) -> Result<(), ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    const PHASE: &str = "reading the greeting";
    let line = conn.read_line(cx, PHASE).await?;
    match parse_pop3_status(&line).map_err(|m| ProbeError::protocol(PHASE, m))? {
        Pop3Status::Ok(text) => cx.findings_mut().server_version = Some(text.to_owned()),
        Pop3Status::Err(text) => {
            return Err(ProbeError::Refused {
                phase: PHASE,
                message: format!("-ERR {}", quote(text)),
            });
        }
    }
    conn.close_with(cx, "QUIT").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ok_and_err() {
        assert_eq!(
            parse_pop3_status("+OK Dovecot ready.").unwrap(),
            Pop3Status::Ok("Dovecot ready.")
        );
        assert_eq!(parse_pop3_status("+OK").unwrap(), Pop3Status::Ok(""));
        assert_eq!(
            parse_pop3_status("-ERR go away").unwrap(),
            Pop3Status::Err("go away")
        );
    }

    #[test]
    fn rejects_other_greetings() {
        for bad in [
            "",
            "+OKAY",
            "* OK imap",
            "220 smtp",
            "+ok lowercase",
            "-ERRx",
        ] {
            assert!(parse_pop3_status(bad).is_err(), "{bad:?} accepted");
        }
    }
}
