//! ping probe (host liveness): ICMP echo over an unprivileged ICMP socket, or a raw one where
//! the process may open it, falling back to a TCP connect to the target's port when ICMP is
//! not permitted or gets no reply (NetworkPolicies commonly drop ICMP). A refused TCP
//! connection proves the host answers too. The outcome says which method was used.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;

use super::{Probe, ProbeContext, ProbeError};

/// Payload of our echo requests, to recognise the replies.
const PAYLOAD: &[u8; 16] = b"oem-hosting-ping";

/// How ping reached the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingMethod {
    /// ICMP echo over an unprivileged (`SOCK_DGRAM`) ICMP socket.
    IcmpDatagram,
    /// ICMP echo over a raw ICMP socket (needs `CAP_NET_RAW`).
    IcmpRaw,
    /// A TCP connection attempt to this port.
    TcpConnect { port: u16 },
}

impl PingMethod {
    fn socket(self) -> &'static str {
        match self {
            Self::IcmpDatagram => "unprivileged ICMP socket",
            Self::IcmpRaw => "raw ICMP socket",
            Self::TcpConnect { .. } => "TCP connect",
        }
    }

    /// A low-cardinality name for labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IcmpDatagram => "icmp",
            Self::IcmpRaw => "icmp-raw",
            Self::TcpConnect { .. } => "tcp",
        }
    }
}

/// An ICMP or ICMPv6 echo request; the checksum is filled in for ICMP (the kernel computes
/// ICMPv6's, which covers a pseudo-header).
pub fn echo_request(v6: bool, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    packet.extend_from_slice(&ident.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(payload);
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `packet` is the reply to our request. Raw IPv4 sockets deliver the IP header too;
/// unprivileged sockets rewrite the identifier, so it is only checked on raw ones.
pub fn is_echo_reply(packet: &[u8], v6: bool, raw: bool, ident: u16, seq: u16) -> bool {
    let icmp = if raw && !v6 {
        let header = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
        match packet.get(header..) {
            Some(icmp) if header >= 20 => icmp,
            _ => return false,
        }
    } else {
        packet
    };
    let reply_type = if v6 { 129 } else { 0 };
    icmp.len() >= 8 + PAYLOAD.len()
        && icmp[0] == reply_type
        && icmp[1] == 0
        && (!raw || icmp[4..6] == ident.to_be_bytes())
        && icmp[6..8] == seq.to_be_bytes()
        && icmp[8..8 + PAYLOAD.len()] == PAYLOAD[..]
}

/// Opens an ICMP socket: unprivileged first, then raw; the error says why neither opened.
fn open_icmp(ip: IpAddr) -> Result<(Socket, PingMethod), String> {
    let (domain, protocol) = match ip {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let dgram = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(socket) => return Ok((socket, PingMethod::IcmpDatagram)),
        Err(err) => err,
    };
    match Socket::new(domain, Type::RAW, Some(protocol)) {
        Ok(socket) => Ok((socket, PingMethod::IcmpRaw)),
        Err(raw) => Err(format!(
            "ICMP not permitted (unprivileged socket: {dgram}; raw socket: {raw})"
        )),
    }
}

/// Sends one echo request and waits for its reply. The ICMP socket is driven as a tokio
/// `UdpSocket`: only `send` and `recv` are used, which work on any datagram or raw socket.
async fn echo(socket: Socket, ip: IpAddr, method: PingMethod) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    socket.connect(&SocketAddr::new(ip, 0).into())?;
    let socket = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(socket))?;
    let (v6, raw) = (ip.is_ipv6(), method == PingMethod::IcmpRaw);
    let (ident, seq) = (rand::random::<u16>(), 1);
    socket.send(&echo_request(v6, ident, seq, PAYLOAD)).await?;
    let mut buf = [0u8; 1500];
    loop {
        let n = socket.recv(&mut buf).await?;
        if is_echo_reply(&buf[..n], v6, raw, ident, seq) {
            return Ok(());
        }
    }
}

pub struct PingProbe;

impl Probe for PingProbe {
    async fn check(&self, cx: &mut ProbeContext<'_>) -> Result<String, ProbeError> {
        let fallback_port = cx.target().port;
        let resolved = cx.resolve(fallback_port.unwrap_or(0)).await?;
        let Some(ip) = resolved.first().map(SocketAddr::ip) else {
            return Err(ProbeError::NoAddress {
                host: cx.target().host.clone(),
            });
        };
        cx.permit(ip)?;
        cx.findings_mut().address = Some(ip);
        let mut why_tcp = "ICMP disabled by configuration".to_owned();
        if cx.icmp_enabled() {
            match open_icmp(ip) {
                Ok((socket, method)) => {
                    cx.findings_mut().ping_method = Some(method);
                    // With a fallback, ICMP gets half the time: a silent ICMP path is then
                    // told apart from a dead host by the TCP attempt.
                    let until = match fallback_port {
                        Some(_) => cx.deadline() - cx.timeout() / 2,
                        None => cx.deadline(),
                    };
                    let phase = "waiting for the ICMP echo reply";
                    let reply = async {
                        echo(socket, ip, method)
                            .await
                            .map_err(|e| ProbeError::Ping {
                                addr: ip,
                                message: format!("ICMP echo: {e}"),
                            })
                    };
                    match cx.step_before(until, phase, reply).await {
                        Ok(()) => {
                            return Ok(format!("ICMP echo reply from {ip} ({})", method.socket()));
                        }
                        Err(err) if fallback_port.is_none() => return Err(err),
                        Err(err) => why_tcp = err.to_string(),
                    }
                }
                Err(forbidden) => why_tcp = forbidden,
            }
        }
        let Some(port) = fallback_port else {
            return Err(ProbeError::Ping {
                addr: ip,
                message: format!("{why_tcp}, and no TCP port to fall back to"),
            });
        };
        cx.findings_mut().ping_method = Some(PingMethod::TcpConnect { port });
        let addr = SocketAddr::new(ip, port);
        let connect = async {
            match TcpStream::connect(addr).await {
                Ok(_) => Ok("accepted"),
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                    Ok("refused, so the host answers")
                }
                Err(source) => Err(ProbeError::Connect { addr, source }),
            }
        };
        let answer = cx.step("connecting", connect).await?;
        Ok(format!("TCP connect to {addr} {answer} ({why_tcp})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_request_verifies_to_zero() {
        let packet = echo_request(false, 0x1234, 1, PAYLOAD);
        assert_eq!(packet[0], 8);
        assert_eq!(checksum(&packet), 0);
        assert_eq!(checksum(&[0xff]), 0x00ff);
    }

    fn reply(v6: bool, ident: u16, seq: u16) -> Vec<u8> {
        let mut packet = echo_request(v6, ident, seq, PAYLOAD);
        packet[0] = if v6 { 129 } else { 0 };
        packet
    }

    #[test]
    fn recognises_replies_on_each_socket_kind() {
        assert!(is_echo_reply(&reply(false, 7, 1), false, false, 99, 1));
        assert!(is_echo_reply(&reply(true, 7, 1), true, true, 7, 1));
        let mut with_ip_header = vec![0x45; 1];
        with_ip_header.extend_from_slice(&[0; 19]);
        with_ip_header.extend_from_slice(&reply(false, 7, 1));
        assert!(is_echo_reply(&with_ip_header, false, true, 7, 1));
    }

    #[test]
    fn ignores_requests_strangers_and_garbage() {
        let request = echo_request(false, 7, 1, PAYLOAD);
        assert!(!is_echo_reply(&request, false, false, 7, 1));
        assert!(!is_echo_reply(&reply(false, 8, 1), false, true, 7, 1));
        assert!(!is_echo_reply(&reply(false, 7, 2), false, false, 7, 1));
        assert!(!is_echo_reply(&[], false, true, 7, 1));
        assert!(!is_echo_reply(&[0x41, 0, 0], false, true, 7, 1));
        assert!(!is_echo_reply(
            &reply(false, 7, 1)[..12],
            false,
            false,
            7,
            1
        ));
    }
}
