//! http and https probes: an HTTP/1.1 `GET /` with the end user's first domain as `Host` (and
//! TLS server name for https), up when the status is below 500. Redirects are not followed, so
//! no second address is ever contacted. https also reports the certificate's expiry.

use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncWrite};

use super::error::quote;
use super::line::{LineConn, MAX_LINES};
use super::{Probe, ProbeContext, ProbeError, Target};

/// A parsed HTTP/1.x status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine<'a> {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub code: u16,
    pub reason: &'a str,
}

/// Parses `HTTP/1.x ddd reason`.
pub fn parse_status_line(line: &str) -> Result<StatusLine<'_>, String> {
    let malformed = || format!("malformed status line {}", quote(line));
    let rest = line.strip_prefix("HTTP/1.").ok_or_else(malformed)?;
    let mut chars = rest.char_indices();
    let minor = match chars.next() {
        Some((_, c @ ('0' | '1'))) => c as u8 - b'0',
        _ => return Err(malformed()),
    };
    let rest = rest[1..].strip_prefix(' ').ok_or_else(malformed)?;
    let digits = rest
        .get(..3)
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
    let code: u16 = digits.and_then(|d| d.parse().ok()).ok_or_else(malformed)?;
    if !(100..=599).contains(&code) {
        return Err(format!("status code {code} out of range"));
    }
    let reason = match rest.as_bytes().get(3) {
        None => "",
        Some(b' ') => &rest[4..],
        Some(_) => return Err(malformed()),
    };
    Ok(StatusLine {
        minor_version: minor,
        code,
        reason,
    })
}

/// The `Host` header for `target`: its domain, with the port when not the scheme's default.
fn host_header(target: &Target, tls: bool) -> Result<String, ProbeError> {
    let name = target.server_name();
    let is_ip = name.parse::<IpAddr>().is_ok();
    let valid_name = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !is_ip && !valid_name {
        return Err(ProbeError::InvalidTarget(format!(
            "{} is not a domain name",
            quote(name)
        )));
    }
    let host = match name.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => name.to_owned(),
    };
    let default_port = if tls { 443 } else { 80 };
    Ok(match target.port {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host,
    })
}

pub struct HttpProbe {
    pub tls: bool,
}

impl Probe for HttpProbe {
    async fn check(&self, cx: &mut ProbeContext<'_>) -> Result<String, ProbeError> {
        let host = host_header(cx.target(), self.tls)?;
        let tcp = cx.connect().await?;
        if self.tls {
            let tls = cx.start_tls(tcp).await?;
            let status = get(cx, LineConn::new(tls), &host).await?;
            Ok(format!("TLS handshake completed, {status}"))
        } else {
            get(cx, LineConn::new(tcp), &host).await
        }
    }
}

async fn get<S>(
    cx: &mut ProbeContext<'_>,
    mut conn: LineConn<S>,
    host: &str,
) -> Result<String, ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: oem-hosting-probe/{}\r\n\
         Accept: */*\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    conn.send(cx, "sending the request", &request).await?;
    const STATUS: &str = "reading the status line";
    let line = conn.read_line(cx, STATUS).await?;
    let status = parse_status_line(&line).map_err(|m| ProbeError::protocol(STATUS, m))?;
    let (code, reason) = (status.code, status.reason.to_owned());
    const HEADERS: &str = "reading the response headers";
    let mut header_lines = 0;
    loop {
        let header = conn.read_line(cx, HEADERS).await?;
        if header.is_empty() {
            break;
        }
        header_lines += 1;
        if header_lines > MAX_LINES * 2 {
            return Err(ProbeError::protocol(
                HEADERS,
                format!("more than {} header lines", MAX_LINES * 2),
            ));
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("server")
        {
            cx.findings_mut().server_version = Some(value.trim().to_owned());
        }
    }
    conn.close().await;
    if code >= 500 {
        return Err(ProbeError::Refused {
            phase: "GET /",
            message: format!("HTTP {code} {}", quote(&reason)),
        });
    }
    Ok(format!("HTTP {code} {reason}").trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::ServiceName;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_status_lines() {
        let ok = parse_status_line("HTTP/1.1 200 OK").unwrap();
        assert_eq!((ok.minor_version, ok.code, ok.reason), (1, 200, "OK"));
        let bare = parse_status_line("HTTP/1.0 404").unwrap();
        assert_eq!((bare.minor_version, bare.code, bare.reason), (0, 404, ""));
        assert_eq!(
            parse_status_line("HTTP/1.1 503 Service Unavailable")
                .unwrap()
                .reason,
            "Service Unavailable"
        );
    }

    #[test]
    fn rejects_malformed_status_lines() {
        for bad in [
            "",
            "HTTP/1.1",
            "HTTP/1.1 ",
            "HTTP/1.1 20 OK",
            "HTTP/1.1 2000 OK",
            "HTTP/2 200 OK",
            "HTTP/1.2 200 OK",
            "http/1.1 200 OK",
            "SSH-2.0-OpenSSH_9.2",
            "HTTP/1.1 099 Low",
            "HTTP/1.1 600 High",
            "HTTP/1.1 2x0 OK",
        ] {
            assert!(parse_status_line(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn host_header_adds_non_default_ports_only() {
        let target =
            |port| Target::new(ServiceName::Http, "10.0.0.1", port).with_domain("shop.example.jp");
        assert_eq!(
            host_header(&target(None), false).unwrap(),
            "shop.example.jp"
        );
        assert_eq!(
            host_header(&target(Some(80)), false).unwrap(),
            "shop.example.jp"
        );
        assert_eq!(
            host_header(&target(Some(8080)), false).unwrap(),
            "shop.example.jp:8080"
        );
        assert_eq!(
            host_header(&target(Some(443)), true).unwrap(),
            "shop.example.jp"
        );
        let v6 = Target::new(ServiceName::Http, "::1", Some(8080));
        assert_eq!(host_header(&v6, false).unwrap(), "[::1]:8080");
    }

    #[test]
    fn host_header_refuses_injection() {
        let target =
            Target::new(ServiceName::Http, "10.0.0.1", None).with_domain("a.jp\r\nX-Evil: 1");
        assert!(matches!(
            host_header(&target, false),
            Err(ProbeError::InvalidTarget(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_status_lines(line in "(HTTP/1\\.)?.{0,40}") {
            let _ = parse_status_line(&line);
        }
    }
}
