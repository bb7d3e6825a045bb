//! Why a probe found a service down: one variant per kind of failure, each saying what failed
//! and where, so its `Display` is the outcome's reason and `metric_label` a low-cardinality
//! name for `/metrics`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A probe's failure. The text is shown to SREs and resellers as the reason a service is down.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("invalid target: {0}")]
    InvalidTarget(String),
    #[error("resolving {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("{host} resolved to no address")]
    NoAddress { host: String },
    #[error("address {addr} not in allow-list")]
    NotAllowed { addr: IpAddr },
    #[error("refused: address {addr} belongs to another tenant")]
    OtherTenant { addr: IpAddr },
    #[error("refused: address {addr} belongs to the control plane")]
    ControlPlane { addr: IpAddr },
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("no answer within {} while {phase}", humantime::format_duration(*.after))]
    Timeout {
        phase: &'static str,
        after: Duration,
    },
    #[error("connection closed by the server while {phase}")]
    Closed { phase: &'static str },
    #[error("{phase}: {source}")]
    Io {
        phase: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{phase}: answer longer than {limit} bytes")]
    Oversized { phase: &'static str, limit: usize },
    #[error("{phase}: {message}")]
    Protocol {
        phase: &'static str,
        message: String,
    },
    #[error("{phase}: server refused: {message}")]
    Refused {
        phase: &'static str,
        message: String,
    },
    #[error("TLS handshake with {name}: {message}")]
    Tls { name: String, message: String },
    #[error("ping {addr}: {message}")]
    Ping { addr: IpAddr, message: String },
}

impl ProbeError {
    /// A low-cardinality name of the failure for metrics labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidTarget(_) => "invalid_target",
            Self::Resolve { .. } | Self::NoAddress { .. } => "dns",
            Self::NotAllowed { .. } => "not_allowed",
            Self::OtherTenant { .. } => "other_tenant",
            Self::ControlPlane { .. } => "control_plane",
            Self::Connect { .. } => "connect",
            Self::Timeout { .. } => "timeout",
            Self::Closed { .. } => "closed",
            Self::Io { .. } => "io",
            Self::Oversized { .. } => "oversized",
            Self::Protocol { .. } => "protocol",
            Self::Refused { .. } => "refused",
            Self::Tls { .. } => "tls",
            Self::Ping { .. } => "ping",
        }
    }

    /// A malformed or unexpected answer.
    pub(crate) fn protocol(phase: &'static str, message: impl Into<String>) -> Self {
        Self::Protocol {
            phase,
            message: message.into(),
        }
    }

    /// An I/O error while reading or writing; a premature end of stream is `Closed`.
    pub(crate) fn io(phase: &'static str, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe => Self::Closed { phase },
            _ => Self::Io { phase, source },
        }
    }
}

/// Shows server text inside a reason: quoted, control characters escaped, at most 120
/// characters, so a hostile server cannot flood logs or statuses.
pub(crate) fn quote(text: &str) -> String {
    const MAX: usize = 120;
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        match c {
            '"' | '\\' => out.extend(['\\', c]),
            c if c.is_control() => out.extend(c.escape_debug()),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_and_truncates() {
        assert_eq!(quote("a\"b\r\n"), "\"a\\\"b\\r\\n\"");
        let long = "x".repeat(500);
        assert_eq!(quote(&long).chars().count(), 123);
    }

    #[test]
    fn timeout_reason_names_phase_and_limit() {
        let e = ProbeError::Timeout {
            phase: "reading the greeting",
            after: Duration::from_millis(500),
        };
        assert_eq!(
            e.to_string(),
            "no answer within 500ms while reading the greeting"
        );
        assert_eq!(e.metric_label(), "timeout");
    }
}
