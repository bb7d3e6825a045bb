//! The HTTP vocabulary of the panel: a request as the pages see it (cookies, form fields, the
//! client's address), a reply, the security headers every reply carries, and the cookies.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

/// The TCP peer of a connection, put into each request by the server.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// A request, read whole (bodies are small forms, limited by the server).
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: Option<SocketAddr>,
}

impl Request {
    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find_map(|(k, v)| (k == name).then_some(v))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The form fields of an `application/x-www-form-urlencoded` body.
    pub fn form(&self) -> HashMap<String, String> {
        decode_form(&String::from_utf8_lossy(&self.body))
    }

    /// One query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        decode_form(&self.query).remove(name)
    }

    /// The client's address: the first entry of the trusted header when one is configured,
    /// else the TCP peer.
    pub fn client_ip(&self, trusted_header: Option<&str>) -> IpAddr {
        trusted_header
            .and_then(|h| self.header(h))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
            .or(self.peer.map(|p| p.ip()))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// Decodes `a=1&b=x+y%21` into fields; a repeated field keeps its first value.
pub fn decode_form(text: &str) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        fields
            .entry(percent_decode(k))
            .or_insert_with(|| percent_decode(v));
    }
    fields
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A reply; [`warp::Reply`] adds the security headers.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
    pub headers: Vec<(HeaderName, String)>,
    /// Static assets may be cached; pages (which may show credentials) never.
    pub cacheable: bool,
    /// `Strict-Transport-Security` is sent (the panel is served over https).
    pub hsts: bool,
}

impl Reply {
    pub fn html(status: StatusCode, body: String) -> Self {
        Self {
            status,
            content_type: "text/html; charset=utf-8",
            body: Bytes::from(body),
            headers: Vec::new(),
            cacheable: false,
            hsts: false,
        }
    }

    /// Bytes of `content_type` (an image), cacheable.
    pub fn asset(content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            content_type,
            body: Bytes::from(body),
            cacheable: true,
            ..Self::html(StatusCode::OK, String::new())
        }
    }

    pub fn text(status: StatusCode, body: &str) -> Self {
        Self {
            content_type: "text/plain; charset=utf-8",
            ..Self::html(status, body.to_owned())
        }
    }

    /// 303 See Other to a path of this panel.
    pub fn redirect(location: &str) -> Self {
        let mut reply = Self::text(StatusCode::SEE_OTHER, "");
        reply.headers.push((header::LOCATION, location.to_owned()));
        reply
    }

    pub fn with_cookie(mut self, cookie: String) -> Self {
        self.headers.push((header::SET_COOKIE, cookie));
        self
    }
}

/// The Content-Security-Policy of every reply: nothing inline, nothing from elsewhere, no
/// framing.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

impl warp::Reply for Reply {
    fn into_response(self) -> warp::reply::Response {
        let mut response = warp::reply::Response::new(self.body.into());
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        let fixed = [
            (header::CONTENT_TYPE, self.content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CACHE_CONTROL,
                if self.cacheable {
                    "public, max-age=3600"
                } else {
                    "no-store"
                },
            ),
        ];
        for (name, value) in fixed {
            headers.insert(name, HeaderValue::from_static(value));
        }
        if self.hsts {
            headers.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            );
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(name, value);
            }
        }
        response
    }
}

/// Names and attributes of the panel's cookies. With `secure`, the `__Host-` prefix makes the
/// browser refuse them unless Secure, host-only and for the whole path.
#[derive(Debug, Clone, Copy)]
pub struct Cookies {
    pub secure: bool,
}

impl Cookies {
    pub fn session_name(self) -> &'static str {
        if self.secure {
            "__Host-oem_panel_session"
        } else {
            "oem_panel_session"
        }
    }

    /// The double-submit token of the login form (there is no session yet).
    pub fn login_name(self) -> &'static str {
        if self.secure {
            "__Host-oem_panel_login"
        } else {
            "oem_panel_login"
        }
    }

    /// A `Set-Cookie` value; `max_age` None deletes the cookie.
    pub fn set(self, name: &str, value: &str, max_age: Option<u64>) -> String {
        let age = max_age.unwrap_or(0);
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; Max-Age={age}; HttpOnly; SameSite=Strict{secure}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&'static str, &str)]) -> Request {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        Request {
            method: Method::GET,
            path: "/".into(),
            query: String::new(),
            headers: map,
            body: Bytes::new(),
            peer: Some("198.51.100.7:4000".parse().unwrap()),
        }
    }

    #[test]
    fn forms_are_percent_decoded() {
        let f = decode_form("login_id=shop&password=a+b%26c%3D%25&x=%zz&empty=");
        assert_eq!(f["login_id"], "shop");
        assert_eq!(f["password"], "a b&c=%");
        assert_eq!(f["x"], "%zz");
        assert_eq!(f["empty"], "");
        assert_eq!(decode_form("a=%E3%81%82")["a"], "あ");
        assert_eq!(decode_form("a=%4")["a"], "%4");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let r = request(&[("cookie", "a=1; oem_panel_session=abc"), ("cookie", "b=2")]);
        assert_eq!(r.cookie("oem_panel_session"), Some("abc"));
        assert_eq!(r.cookie("b"), Some("2"));
        assert_eq!(r.cookie("c"), None);
    }

    #[test]
    fn the_client_address_header_is_used_only_when_trusted() {
        let r = request(&[("x-forwarded-for", "203.0.113.9, 10.0.0.1")]);
        assert_eq!(r.client_ip(None).to_string(), "198.51.100.7");
        assert_eq!(
            r.client_ip(Some("x-forwarded-for")).to_string(),
            "203.0.113.9"
        );
    }

    #[test]
    fn secure_cookies_use_the_host_prefix() {
        let secure = Cookies { secure: true };
        assert_eq!(secure.session_name(), "__Host-oem_panel_session");
        let set = secure.set("n", "v", Some(60));
        assert_eq!(
            set,
            "n=v; Path=/; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        let dev = Cookies { secure: false };
        assert!(!dev.set("n", "", None).contains("Secure"));
    }

    #[test]
    fn every_reply_carries_the_security_headers() {
        use warp::Reply as _;
        let response = Reply::text(StatusCode::NOT_FOUND, "x").into_response();
        let h = response.headers();
        assert_eq!(h["content-security-policy"], CSP);
        assert!(CSP.contains("frame-ancestors 'none'"));
        assert!(!CSP.contains("unsafe-inline"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "no-store");
    }
}
