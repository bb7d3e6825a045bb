//! mysql (MariaDB) probe: reads and parses the initial handshake packet (protocol 10, server
//! version), then answers it with a login as `oem_probe` without password and reads the
//! server's answer, so the connection ends as a completed exchange rather than an aborted
//! handshake (MariaDB blocks hosts after `max_connect_errors` of those).
//!
//! An ERR packet instead of the handshake (too many connections, host blocked) is DOWN: no
//! client can use the server then. Any answer to the login (OK, access denied, auth switch)
//! is up: the handshake already proved the server alive.

use tokio::net::TcpStream;

use super::context::shutdown;
use super::error::quote;
use super::{Probe, ProbeContext, ProbeError};

/// Largest packet accepted (a handshake is about 100 bytes).
pub const MAX_PACKET: usize = 16 * 1024;
const PROBE_USER: &str = "oem_probe";

const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;

/// The first packet a server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MysqlGreeting {
    Handshake {
        server_version: String,
        connection_id: u32,
        capabilities: u32,
    },
    Error {
        code: u16,
        message: String,
    },
}

/// Parses a packet header: payload length and sequence id.
pub fn parse_packet_header(header: [u8; 4]) -> Result<(usize, u8), String> {
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if len > MAX_PACKET {
        return Err(format!(
            "packet of {len} bytes exceeds the {MAX_PACKET}-byte limit"
        ));
    }
    Ok((len, header[3]))
}

/// Parses the initial packet: a protocol-10 handshake or an ERR packet.
pub fn parse_mysql_greeting(payload: &[u8]) -> Result<MysqlGreeting, String> {
    match payload.first() {
        None => Err("empty packet".to_owned()),
        Some(0xff) => parse_err(payload),
        Some(10) => {
            let rest = &payload[1..];
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or("server version without terminating NUL")?;
            let server_version = String::from_utf8_lossy(&rest[..end]).into_owned();
            let rest = &rest[end + 1..];
            // connection id (4), auth data part 1 (8), filler (1), capabilities low (2)
            if rest.len() < 15 {
                return Err("handshake packet truncated".to_owned());
            }
            let connection_id = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let low = u32::from(u16::from_le_bytes([rest[13], rest[14]]));
            // charset (1), status (2), capabilities high (2), when present
            let high = rest
                .get(18..20)
                .map_or(0, |b| u32::from(u16::from_le_bytes([b[0], b[1]])));
            Ok(MysqlGreeting::Handshake {
                server_version,
                connection_id,
                capabilities: low | high << 16,
            })
        }
        Some(&other) => Err(format!("unsupported protocol version {other}")),
    }
}

/// Parses an ERR packet: 0xff, code, optional `#` and SQLSTATE, message.
fn parse_err(payload: &[u8]) -> Result<MysqlGreeting, String> {
    let code = payload
        .get(1..3)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or("ERR packet truncated")?;
    let mut message = &payload[3..];
    if message.first() == Some(&b'#') && message.len() >= 6 {
        message = &message[6..];
    }
    Ok(MysqlGreeting::Error {
        code,
        message: String::from_utf8_lossy(message).into_owned(),
    })
}

/// A HandshakeResponse41 logging in as the probe user with an empty password.
fn login_packet(server_capabilities: u32, sequence: u8) -> Vec<u8> {
    let plugin = server_capabilities & CLIENT_PLUGIN_AUTH;
    let capabilities =
        CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | plugin;
    let mut payload = Vec::with_capacity(96);
    payload.extend_from_slice(&capabilities.to_le_bytes());
    payload.extend_from_slice(&(16u32 << 20).to_le_bytes()); // max packet size
    payload.push(45); // utf8mb4_general_ci
    payload.extend_from_slice(&[0; 23]);
    payload.extend_from_slice(PROBE_USER.as_bytes());
    payload.push(0);
    payload.push(0); // empty auth response
    if plugin != 0 {
        payload.extend_from_slice(b"mysql_native_password\0");
    }
    let len = payload.len() as u32;
    let mut packet = len.to_le_bytes()[..3].to_vec();
    packet.push(sequence);
    packet.extend_from_slice(&payload);
    packet
}

async fn read_packet(
    cx: &ProbeContext<'_>,
    tcp: &mut TcpStream,
    phase: &'static str,
) -> Result<(Vec<u8>, u8), ProbeError> {
    let mut header = [0u8; 4];
    cx.read_exact(tcp, &mut header, phase).await?;
    let (len, sequence) =
        parse_packet_header(header).map_err(|m| ProbeError::protocol(phase, m))?;
    let mut payload = vec![0u8; len];
    cx.read_exact(tcp, &mut payload, phase).await?;
    Ok((payload, sequence))
}

pub struct MysqlProbe;

impl Probe for MysqlProbe {
    async fn check(&self, cx: &mut ProbeContext<'_>) -> Result<String, ProbeError> {
        const PHASE: &str = "reading the handshake";
        let mut tcp = cx.connect().await?;
        let (payload, sequence) = read_packet(cx, &mut tcp, PHASE).await?;
        let greeting =
            parse_mysql_greeting(&payload).map_err(|m| ProbeError::protocol(PHASE, m))?;
        let (version, capabilities) = match greeting {
            MysqlGreeting::Error { code, message } => {
                return Err(ProbeError::Refused {
                    phase: PHASE,
                    message: format!("ERR {code} {}", quote(&message)),
                });
            }
            MysqlGreeting::Handshake {
                server_version,
                capabilities,
                ..
            } => (server_version, capabilities),
        };
        cx.findings_mut().server_version = Some(version.clone());
        let login = if capabilities & CLIENT_PROTOCOL_41 == 0 {
            "no login attempted (server predates protocol 4.1)".to_owned()
        } else {
            match log_in(cx, &mut tcp, capabilities, sequence).await {
                Ok(answer) => answer,
                Err(err) => format!("login unanswered ({err})"),
            }
        };
        shutdown(&mut tcp).await;
        Ok(format!("handshake v10 from {}, {login}", quote(&version)))
    }
}

/// Logs in as the probe user; says how the server answered.
async fn log_in(
    cx: &ProbeContext<'_>,
    tcp: &mut TcpStream,
    capabilities: u32,
    sequence: u8,
) -> Result<String, ProbeError> {
    let packet = login_packet(capabilities, sequence.wrapping_add(1));
    cx.write_all(tcp, &packet, "sending the login").await?;
    let (answer, _) = read_packet(cx, tcp, "reading the answer to the login").await?;
    Ok(match answer.first() {
        Some(0x00) => {
            // COM_QUIT, a new command: sequence 0.
            let _ = cx.write_all(tcp, &[1, 0, 0, 0, 0x01], "quitting").await;
            "login accepted".to_owned()
        }
        Some(0xff) => match parse_err(&answer) {
            Ok(MysqlGreeting::Error { code, message }) => {
                format!("login answered with ERR {code} {}", quote(&message))
            }
            _ => "login answered with a truncated ERR packet".to_owned(),
        },
        Some(0xfe) => "login answered with an authentication switch".to_owned(),
        Some(other) => format!("login answered with packet type 0x{other:02x}"),
        None => "login answered with an empty packet".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A MariaDB 10.11 handshake payload, abridged after the capabilities.
    fn handshake() -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(b"5.5.5-10.11.6-MariaDB-0+deb12u1\0");
        p.extend_from_slice(&42u32.to_le_bytes());
        p.extend_from_slice(b"abcdefgh\0");
        p.extend_from_slice(&0xf7feu16.to_le_bytes());
        p.push(45);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&0x81ffu16.to_le_bytes());
        p
    }

    #[test]
    fn parses_a_handshake() {
        assert_eq!(
            parse_mysql_greeting(&handshake()).unwrap(),
            MysqlGreeting::Handshake {
                server_version: "5.5.5-10.11.6-MariaDB-0+deb12u1".into(),
                connection_id: 42,
                capabilities: 0x81ff_f7fe,
            }
        );
    }

    #[test]
    fn parses_an_err_greeting() {
        let mut p = vec![0xff];
        p.extend_from_slice(&1130u16.to_le_bytes());
        p.extend_from_slice(b"Host '10.0.0.9' is not allowed to connect");
        assert_eq!(
            parse_mysql_greeting(&p).unwrap(),
            MysqlGreeting::Error {
                code: 1130,
                message: "Host '10.0.0.9' is not allowed to connect".into()
            }
        );
        let mut with_state = vec![0xff, 0x10, 0x04];
        with_state.extend_from_slice(b"#08004Too many connections");
        assert!(matches!(
            parse_mysql_greeting(&with_state).unwrap(),
            MysqlGreeting::Error { code: 1040, message } if message == "Too many connections"
        ));
    }

    #[test]
    fn rejects_malformed_greetings() {
        assert!(parse_mysql_greeting(&[]).is_err());
        assert!(parse_mysql_greeting(&[9, b'x', 0]).is_err());
        assert!(parse_mysql_greeting(b"\x0a5.5.5-no-nul").is_err());
        assert!(parse_mysql_greeting(&handshake()[..40]).is_err());
        assert!(parse_mysql_greeting(&[0xff, 1]).is_err());
        assert!(parse_mysql_greeting(b"SSH-2.0-OpenSSH").is_err());
    }

    #[test]
    fn rejects_oversized_packets() {
        assert!(parse_packet_header([0xff, 0xff, 0xff, 0]).is_err());
        assert_eq!(parse_packet_header([78, 0, 0, 0]).unwrap(), (78, 0));
    }

    #[test]
    fn login_packet_has_its_length_and_sequence() {
        let packet = login_packet(CLIENT_PROTOCOL_41 | CLIENT_PLUGIN_AUTH, 1);
        let (len, sequence) =
            parse_packet_header([packet[0], packet[1], packet[2], packet[3]]).unwrap();
        assert_eq!(len, packet.len() - 4);
        assert_eq!(sequence, 1);
        assert!(packet.ends_with(b"oem_probe\0\0mysql_native_password\0"));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_payloads(payload in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_mysql_greeting(&payload);
        }
    }
}
