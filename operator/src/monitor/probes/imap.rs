//! imap and imaps probes: an untagged `* OK` greeting (inside implicit TLS for imaps), then
//! `a1 LOGOUT`.

use tokio::io::{AsyncRead, AsyncWrite};

use super::error::quote;
use super::line::LineConn;
use super::{Probe, ProbeContext, ProbeError};

/// What an IMAP server greets with (RFC 9051 §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImapGreeting<'a> {
    /// `* OK`: ready for login.
    Ok(&'a str),
    /// `* PREAUTH`: already authenticated (alive all the same).
    Preauth(&'a str),
    /// `* BYE`: the server refuses the connection.
    Bye(&'a str),
}

/// Parses the greeting line; the status word is case-insensitive.
pub fn parse_imap_greeting(line: &str) -> Result<ImapGreeting<'_>, String> {
    let malformed = || format!("expected \"* OK\" greeting, got {}", quote(line));
    let rest = line.strip_prefix("* ").ok_or_else(malformed)?;
    let (word, text) = rest.split_once(' ').unwrap_or((rest, ""));
    if word.eq_ignore_ascii_case("OK") {
        Ok(ImapGreeting::Ok(text))
    } else if word.eq_ignore_ascii_case("PREAUTH") {
        Ok(ImapGreeting::Preauth(text))
    } else if word.eq_ignore_ascii_case("BYE") {
        Ok(ImapGreeting::Bye(text))
    } else {
        Err(malformed())
    }
}

pub struct ImapProbe {
    pub tls: bool,
}

impl Probe for ImapProbe {
    async fn check(&self, cx: &mut ProbeContext<'_>) -> Result<String, ProbeError> {
        let tcp = cx.connect().await?;
        if self.tls {
            let tls = cx.start_tls(tcp).await?;
            let greeting = converse(cx, LineConn::new(tls)).await?;
            Ok(format!("TLS handshake completed, {greeting}"))
        } else {
            converse(cx, LineConn::new(tcp)).await
        }
    }
}

async fn converse<S>(cx: &mut ProbeContext<'_>, mut conn: LineConn<S>) -> Result<String, ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    const PHASE: &str = "reading the greeting";
    let line = conn.read_line(cx, PHASE).await?;
    let summary = match parse_imap_greeting(&line).map_err(|m| ProbeError::protocol(PHASE, m))? {
        ImapGreeting::Ok(text) => {
            cx.findings_mut().server_version = Some(text.to_owned());
            "* OK greeting"
        }
        ImapGreeting::Preauth(text) => {
            cx.findings_mut().server_version = Some(text.to_owned());
            "* PREAUTH greeting"
        }
        ImapGreeting::Bye(text) => {
            return Err(ProbeError::Refused {
                phase: PHASE,
                message: format!("* BYE {}", quote(text)),
            });
        }
    };
    conn.close_with(cx, "a1 LOGOUT").await;
    Ok(summary.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_greetings() {
        assert_eq!(
            parse_imap_greeting("* OK [CAPABILITY IMAP4rev1] Dovecot ready.").unwrap(),
            ImapGreeting::Ok("[CAPABILITY IMAP4rev1] Dovecot ready.")
        );
        assert_eq!(parse_imap_greeting("* ok").unwrap(), ImapGreeting::Ok(""));
        assert_eq!(
            parse_imap_greeting("* PREAUTH hi").unwrap(),
            ImapGreeting::Preauth("hi")
        );
        assert_eq!(
            parse_imap_greeting("* BYE too many").unwrap(),
            ImapGreeting::Bye("too many")
        );
    }

    #[test]
    fn rejects_other_greetings() {
        for bad in [
            "", "*", "* ", "OK ready", "+OK pop3", "220 smtp", "a1 OK", "* NO x",
        ] {
            assert!(parse_imap_greeting(bad).is_err(), "{bad:?} accepted");
        }
    }
}
