//! postgresql probe: a real protocol exchange. An SSLRequest (answered `S` or `N`), then a
//! StartupMessage answered by an authentication request (`R`) or an error (`E`); both mean
//! the server is alive, and the outcome says which. Errors that refuse every client (too many
//! connections, starting up, shutting down) are down.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::context::shutdown;
use super::error::quote;
use super::{Probe, ProbeContext, ProbeError};

/// SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/// Largest backend message body accepted.
pub const MAX_MESSAGE: usize = 8 * 1024;
/// The role the probe asks for; it need not exist (an error answer proves life too).
const PROBE_USER: &str = "oem_probe";

/// A backend message, as far as the probe needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    /// `R`: 0 means authenticated; otherwise the method asked for.
    Authentication { code: u32, mechanisms: Vec<String> },
    /// `E`: severity, SQLSTATE and message.
    Error {
        severity: String,
        code: String,
        message: String,
    },
    /// `S`: a run-time parameter such as `server_version`.
    ParameterStatus { name: String, value: String },
    /// `Z`: ready for a query.
    ReadyForQuery,
    /// `v`: the server supports an older minor protocol version.
    NegotiateProtocolVersion { newest_minor: u32 },
    /// Anything else (`K` key data, `N` notice, …).
    Other { tag: u8 },
}

/// Parses a message header: tag and the body length (the length field counts itself).
pub fn parse_message_header(header: [u8; 5]) -> Result<(u8, usize), String> {
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let body = usize::try_from(len)
        .ok()
        .and_then(|len| len.checked_sub(4))
        .ok_or_else(|| format!("message length {len} is invalid"))?;
    if body > MAX_MESSAGE {
        return Err(format!(
            "message of {body} bytes exceeds the {MAX_MESSAGE}-byte limit"
        ));
    }
    Ok((header[0], body))
}

/// Parses a backend message body.
pub fn parse_backend_message(tag: u8, body: &[u8]) -> Result<BackendMessage, String> {
    let int = |at: usize| -> Result<u32, String> {
        body.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("message '{}' truncated", tag as char))
    };
    Ok(match tag {
        b'R' => {
            let code = int(0)?;
            let mut mechanisms = Vec::new();
            if code == 10 {
                let mut rest = &body[4..];
                while let Some(name) = cstring(&mut rest)? {
                    mechanisms.push(name);
                }
            }
            BackendMessage::Authentication { code, mechanisms }
        }
        b'E' => {
            let (mut severity, mut code, mut message) =
                (String::new(), String::new(), String::new());
            let mut rest = body;
            while let Some((&field, after)) = rest.split_first() {
                if field == 0 {
                    break;
                }
                rest = after;
                let value = cstring(&mut rest)?.ok_or("error field without value")?;
                match field {
                    b'S' if severity.is_empty() => severity = value,
                    b'V' => severity = value,
                    b'C' => code = value,
                    b'M' => message = value,
                    _ => {}
                }
            }
            if code.is_empty() && message.is_empty() {
                return Err("error message without code or text".to_owned());
            }
            BackendMessage::Error {
                severity,
                code,
                message,
            }
        }
        b'S' => {
            let mut rest = body;
            let name = cstring(&mut rest)?.ok_or("parameter status without name")?;
            let value = cstring(&mut rest)?.ok_or("parameter status without value")?;
            BackendMessage::ParameterStatus { name, value }
        }
        b'Z' => BackendMessage::ReadyForQuery,
        b'v' => BackendMessage::NegotiateProtocolVersion {
            newest_minor: int(0)?,
        },
        other => BackendMessage::Other { tag: other },
    })
}

/// Takes one NUL-terminated string off `rest`; `None` at the list's closing NUL or the end.
fn cstring(rest: &mut &[u8]) -> Result<Option<String>, String> {
    match rest.first() {
        None | Some(0) => return Ok(None),
        Some(_) => {}
    }
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or("string without terminating NUL")?;
    let text = String::from_utf8_lossy(&rest[..end]).into_owned();
    *rest = &rest[end + 1..];
    Ok(Some(text))
}

/// What an authentication request asks for.
fn auth_method(code: u32, mechanisms: &[String]) -> String {
    match code {
        0 => "none (trusted)".to_owned(),
        2 => "Kerberos V5".to_owned(),
        3 => "cleartext password".to_owned(),
        5 => "MD5 password".to_owned(),
        7 => "GSSAPI".to_owned(),
        9 => "SSPI".to_owned(),
        10 => format!("SASL {}", mechanisms.join(", ")),
        other => format!("method {other}"),
    }
}

/// Errors after which no client can connect: the service is down though the process answers.
fn refuses_every_client(sqlstate: &str) -> bool {
    sqlstate == "53300" || sqlstate.starts_with("57P")
}

fn startup_message() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for (key, value) in [
        ("user", PROBE_USER),
        ("database", "postgres"),
        ("application_name", "oem-hosting-probe"),
    ] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    message
}

async fn read_message(
    cx: &ProbeContext<'_>,
    stream: &mut TcpStream,
    phase: &'static str,
) -> Result<BackendMessage, ProbeError> {
    let mut header = [0u8; 5];
    cx.read_exact(stream, &mut header, phase).await?;
    let (tag, len) = parse_message_header(header).map_err(|m| ProbeError::protocol(phase, m))?;
    let mut body = vec![0u8; len];
    cx.read_exact(stream, &mut body, phase).await?;
    parse_backend_message(tag, &body).map_err(|m| ProbeError::protocol(phase, m))
}

pub struct PostgresqlProbe;

impl Probe for PostgresqlProbe {
    async fn check(&self, cx: &mut ProbeContext<'_>) -> Result<String, ProbeError> {
        let mut tcp = cx.connect().await?;
        cx.write_all(&mut tcp, &SSL_REQUEST, "sending SSLRequest")
            .await?;
        const SSL_PHASE: &str = "reading the answer to SSLRequest";
        let mut answer = [0u8; 1];
        cx.read_exact(&mut tcp, &mut answer, SSL_PHASE).await?;
        let ssl = match answer[0] {
            b'N' => 'N',
            b'S' => {
                // The server would speak TLS now; the startup goes over a fresh connection.
                shutdown(&mut tcp).await;
                tcp = cx.connect().await?;
                'S'
            }
            other => {
                return Err(ProbeError::protocol(
                    SSL_PHASE,
                    format!("unexpected answer byte 0x{other:02x}"),
                ));
            }
        };
        cx.write_all(&mut tcp, &startup_message(), "sending StartupMessage")
            .await?;
        const STARTUP: &str = "reading the answer to StartupMessage";
        let answer = match read_message(cx, &mut tcp, STARTUP).await? {
            BackendMessage::Authentication { code: 0, .. } => {
                let after = read_parameters(cx, &mut tcp).await;
                let _ = tcp.write_all(b"X\0\0\0\x04").await; // Terminate
                if let Some(version) = after.server_version {
                    cx.findings_mut().server_version = Some(version);
                }
                match after.error {
                    Some((code, message)) if refuses_every_client(&code) => {
                        return Err(ProbeError::Refused {
                            phase: "reading the session start",
                            message: format!("error {code} {}", quote(&message)),
                        });
                    }
                    Some((code, message)) => format!(
                        "authentication ok (trusted), then error {code} {}",
                        quote(&message)
                    ),
                    None => "authentication ok (trusted)".to_owned(),
                }
            }
            BackendMessage::Authentication { code, mechanisms } => format!(
                "authentication request ({})",
                auth_method(code, &mechanisms)
            ),
            BackendMessage::Error { code, message, .. } if refuses_every_client(&code) => {
                return Err(ProbeError::Refused {
                    phase: STARTUP,
                    message: format!("error {code} {}", quote(&message)),
                });
            }
            BackendMessage::Error {
                severity,
                code,
                message,
            } => format!("error {severity} {code} {}", quote(&message)),
            BackendMessage::NegotiateProtocolVersion { newest_minor } => {
                format!("protocol negotiation (3.{newest_minor})")
            }
            other => {
                return Err(ProbeError::protocol(
                    STARTUP,
                    format!("unexpected message {other:?}"),
                ));
            }
        };
        shutdown(&mut tcp).await;
        Ok(format!(
            "SSLRequest answered '{ssl}', StartupMessage answered with {answer}"
        ))
    }
}

/// What follows a trusted login: the version, or the error that ended the session.
#[derive(Default)]
struct SessionStart {
    server_version: Option<String>,
    error: Option<(String, String)>,
}

/// After a trusted login, reads up to ReadyForQuery (or an error) for the version.
async fn read_parameters(cx: &ProbeContext<'_>, tcp: &mut TcpStream) -> SessionStart {
    let mut start = SessionStart::default();
    for _ in 0..64 {
        match read_message(cx, tcp, "reading the session start").await {
            Ok(BackendMessage::ParameterStatus { name, value }) if name == "server_version" => {
                start.server_version = Some(value);
            }
            Ok(BackendMessage::Error { code, message, .. }) => {
                start.error = Some((code, message));
                break;
            }
            Ok(BackendMessage::ReadyForQuery) | Err(_) => break,
            Ok(_) => {}
        }
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_authentication_requests() {
        let mut sasl = 10u32.to_be_bytes().to_vec();
        sasl.extend_from_slice(b"SCRAM-SHA-256\0SCRAM-SHA-256-PLUS\0\0");
        assert_eq!(
            parse_backend_message(b'R', &sasl).unwrap(),
            BackendMessage::Authentication {
                code: 10,
                mechanisms: vec!["SCRAM-SHA-256".into(), "SCRAM-SHA-256-PLUS".into()]
            }
        );
        assert_eq!(
            parse_backend_message(b'R', &5u32.to_be_bytes()).unwrap(),
            BackendMessage::Authentication {
                code: 5,
                mechanisms: vec![]
            }
        );
    }

    #[test]
    fn parses_error_messages() {
        let body = b"SFATAL\0VFATAL\0C28000\0Mrole \"oem_probe\" does not exist\0\0";
        assert_eq!(
            parse_backend_message(b'E', body).unwrap(),
            BackendMessage::Error {
                severity: "FATAL".into(),
                code: "28000".into(),
                message: "role \"oem_probe\" does not exist".into()
            }
        );
    }

    #[test]
    fn rejects_truncated_and_malformed_messages() {
        assert!(parse_backend_message(b'R', &[0, 0]).is_err());
        assert!(parse_backend_message(b'E', b"SFATAL").is_err());
        assert!(parse_backend_message(b'E', b"\0").is_err());
        assert!(parse_backend_message(b'S', b"server_version\0").is_err());
        assert!(parse_backend_message(b'v', &[]).is_err());
    }

    #[test]
    fn rejects_bad_lengths() {
        assert!(parse_message_header([b'R', 0, 0, 0, 3]).is_err());
        assert!(parse_message_header([b'R', 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(parse_message_header([b'E', 0, 1, 0, 0]).is_err());
        assert_eq!(parse_message_header([b'R', 0, 0, 0, 8]).unwrap(), (b'R', 4));
    }

    #[test]
    fn overload_and_shutdown_errors_refuse_every_client() {
        assert!(refuses_every_client("53300"));
        assert!(refuses_every_client("57P03"));
        assert!(!refuses_every_client("28000"));
        assert!(!refuses_every_client("3D000"));
    }

    #[test]
    fn startup_message_is_length_prefixed() {
        let message = startup_message();
        let len = u32::from_be_bytes([message[0], message[1], message[2], message[3]]);
        assert_eq!(len as usize, message.len());
        assert_eq!(&message[4..8], &[0, 3, 0, 0]);
        assert_eq!(message.last(), Some(&0));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bodies(tag in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_backend_message(tag, &body);
        }
    }
}
