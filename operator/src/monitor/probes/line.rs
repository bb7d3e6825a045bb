//! The line protocols' shared reader (ftp, smtp, pop3, imap, and HTTP's status and header
//! lines): read one CRLF line or one coded multi-line reply before the deadline, each line
//! bounded, and send commands. Written once so every text protocol fails the same precise way
//! on slow, truncated, oversized or malformed answers.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::context::{ProbeContext, shutdown};
use super::error::{ProbeError, quote};

/// Longest reply line accepted, CRLF included.
pub const MAX_LINE: usize = 8 * 1024;
/// Most lines accepted in one multi-line reply (or one HTTP header block).
pub const MAX_LINES: usize = 64;

/// One line of a coded reply (`250-PIPELINING`, `220 ready`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodedLine<'a> {
    pub code: u16,
    /// `true` for `ddd-text`: more lines follow.
    pub continued: bool,
    pub text: &'a str,
}

/// Parses one line of an SMTP/FTP reply: three digits, the first 1–5, then end of line, a
/// space or a hyphen.
pub fn parse_coded_line(line: &str) -> Result<CodedLine<'_>, String> {
    let bytes = line.as_bytes();
    let digits = bytes.get(..3).filter(|d| d.iter().all(u8::is_ascii_digit));
    let Some(digits) = digits else {
        return Err(format!("reply {} has no 3-digit code", quote(line)));
    };
    if !(b'1'..=b'5').contains(&digits[0]) {
        return Err(format!("reply {} has no valid code", quote(line)));
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let (continued, text) = match bytes.get(3) {
        None => (false, ""),
        Some(b' ') => (false, &line[4..]),
        Some(b'-') => (true, &line[4..]),
        Some(_) => return Err(format!("reply {} is malformed after its code", quote(line))),
    };
    Ok(CodedLine {
        code,
        continued,
        text,
    })
}

/// A complete coded reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodedReply {
    pub code: u16,
    /// The text of each line, code stripped where it had one.
    pub lines: Vec<String>,
}

impl CodedReply {
    /// The first line's text.
    pub fn text(&self) -> &str {
        self.lines.first().map_or("", String::as_str)
    }

    /// `Ok` when the reply has the `expected` code; otherwise the server refused (4xx, 5xx)
    /// or answered out of protocol.
    pub fn expect(self, expected: u16, phase: &'static str) -> Result<Self, ProbeError> {
        if self.code == expected {
            return Ok(self);
        }
        let message = format!(
            "expected {expected}, got {} {}",
            self.code,
            quote(self.text())
        );
        Err(if self.code >= 400 {
            ProbeError::Refused { phase, message }
        } else {
            ProbeError::protocol(phase, message)
        })
    }
}

/// A text-protocol connection: the stream and what was read but not yet consumed.
pub struct LineConn<S> {
    stream: S,
    buffered: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> LineConn<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buffered: Vec::new(),
        }
    }

    /// Reads one line (without its CRLF, lossily decoded) before the deadline.
    pub async fn read_line(
        &mut self,
        cx: &ProbeContext<'_>,
        phase: &'static str,
    ) -> Result<String, ProbeError> {
        cx.step(phase, self.next_line(phase)).await
    }

    async fn next_line(&mut self, phase: &'static str) -> Result<String, ProbeError> {
        let mut chunk = [0u8; 2048];
        loop {
            if let Some(end) = self.buffered.iter().position(|&b| b == b'\n') {
                if end + 1 > MAX_LINE {
                    return Err(ProbeError::Oversized {
                        phase,
                        limit: MAX_LINE,
                    });
                }
                let mut line: Vec<u8> = self.buffered.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buffered.len() >= MAX_LINE {
                return Err(ProbeError::Oversized {
                    phase,
                    limit: MAX_LINE,
                });
            }
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| ProbeError::io(phase, e))?;
            if n == 0 {
                return Err(if self.buffered.is_empty() {
                    ProbeError::Closed { phase }
                } else {
                    ProbeError::protocol(
                        phase,
                        format!(
                            "truncated line {} (connection closed before its end)",
                            quote(&String::from_utf8_lossy(&self.buffered))
                        ),
                    )
                });
            }
            self.buffered.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads one SMTP/FTP reply, following `ddd-` continuation lines until `ddd ` (FTP allows
    /// uncoded lines in between; they are kept as text).
    pub async fn read_coded_reply(
        &mut self,
        cx: &ProbeContext<'_>,
        phase: &'static str,
    ) -> Result<CodedReply, ProbeError> {
        let first = self.read_line(cx, phase).await?;
        let parsed = parse_coded_line(&first).map_err(|m| ProbeError::protocol(phase, m))?;
        let code = parsed.code;
        let mut reply = CodedReply {
            code,
            lines: vec![parsed.text.to_owned()],
        };
        let mut continued = parsed.continued;
        while continued {
            if reply.lines.len() >= MAX_LINES {
                return Err(ProbeError::protocol(
                    phase,
                    format!("reply {code} longer than {MAX_LINES} lines"),
                ));
            }
            let line = self.read_line(cx, phase).await?;
            match parse_coded_line(&line) {
                Ok(next) if next.code == code => {
                    continued = next.continued;
                    reply.lines.push(next.text.to_owned());
                }
                Ok(next) if !next.continued => {
                    return Err(ProbeError::protocol(
                        phase,
                        format!("reply {code} ended with code {}", next.code),
                    ));
                }
                _ => reply.lines.push(line),
            }
        }
        Ok(reply)
    }

    /// Sends `command` and CRLF.
    pub async fn send(
        &mut self,
        cx: &ProbeContext<'_>,
        phase: &'static str,
        command: &str,
    ) -> Result<(), ProbeError> {
        let line = format!("{command}\r\n");
        cx.write_all(&mut self.stream, line.as_bytes(), phase).await
    }

    /// Sends a closing command (QUIT, LOGOUT) and waits briefly for one answer line, then
    /// closes. The service was already found up: nothing here can make it down.
    pub async fn close_with(mut self, cx: &ProbeContext<'_>, command: &str) {
        if self.send(cx, "closing", command).await.is_ok() {
            let brief = std::time::Duration::from_secs(1);
            let _ = tokio::time::timeout(brief, self.read_line(cx, "closing")).await;
        }
        shutdown(&mut self.stream).await;
    }

    /// Closes without a closing command.
    pub async fn close(mut self) {
        shutdown(&mut self.stream).await;
    }

    /// The stream, for a TLS upgrade. Bytes the server sent ahead of the handshake would be
    /// taken as if they came over TLS (the STARTTLS injection flaw), so they fail the probe.
    pub fn into_stream(self, phase: &'static str) -> Result<S, ProbeError> {
        if self.buffered.is_empty() {
            Ok(self.stream)
        } else {
            Err(ProbeError::protocol(
                phase,
                format!(
                    "{} unexpected bytes before the TLS handshake",
                    self.buffered.len()
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_final_and_continued_lines() {
        assert_eq!(
            parse_coded_line("220 mail.example ESMTP").unwrap(),
            CodedLine {
                code: 220,
                continued: false,
                text: "mail.example ESMTP"
            }
        );
        let cont = parse_coded_line("250-PIPELINING").unwrap();
        assert!(cont.continued);
        assert_eq!(cont.text, "PIPELINING");
        assert_eq!(parse_coded_line("221").unwrap().code, 221);
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            "",
            "22",
            "abc ready",
            "+OK",
            "* OK",
            "2200 x",
            "22a x",
            "650 x",
            "099 x",
        ] {
            assert!(parse_coded_line(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn expect_tells_refusal_from_protocol_error() {
        let reply = |code| CodedReply {
            code,
            lines: vec!["text".into()],
        };
        assert!(reply(220).expect(220, "x").is_ok());
        let refused = reply(554).expect(220, "reading the greeting").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "reading the greeting: server refused: expected 220, got 554 \"text\""
        );
        assert!(matches!(
            reply(250).expect(220, "x"),
            Err(ProbeError::Protocol { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_lines(line in ".{0,64}") {
            let _ = parse_coded_line(&line);
        }

        #[test]
        fn round_trips_valid_codes(code in 100u16..600, cont in any::<bool>(), text in "[ -~]{0,40}") {
            let line = format!("{code}{}{text}", if cont { '-' } else { ' ' });
            let parsed = parse_coded_line(&line).unwrap();
            prop_assert_eq!(parsed.code, code);
            prop_assert_eq!(parsed.continued, cont);
            prop_assert_eq!(parsed.text, text.as_str());
        }
    }
}
