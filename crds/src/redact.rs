//! How a URL that may carry a secret is shown: in status, logs, events and admission messages.
//! Chat-style webhook URLs carry their secret in the path (`/services/T0/B0/XXXX`), and any URL
//! may carry credentials in its user info or query, so only the scheme, host and port are
//! shown, with a digest of the path and query that tells two URLs of one host apart without
//! revealing them.

use sha2::{Digest, Sha256};

/// `scheme://host[:port]/` followed, when the URL has a path or query beyond `/`, by
/// `<path sha256:XXXXXXXXXXXXXXXX>` (64 bits of the SHA-256 of path and query). User info and
/// fragment are dropped. Something that is not `scheme://authority…` shows as `<invalid URL>`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return INVALID.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !scheme_ok || !host_ok {
        return INVALID.to_owned();
    }
    let (scheme, host) = (scheme.to_ascii_lowercase(), host.to_ascii_lowercase());
    let path_and_query = tail.split('#').next().unwrap_or_default();
    if path_and_query.is_empty() || path_and_query == "/" {
        return format!("{scheme}://{host}/");
    }
    let digest = Sha256::digest(path_and_query.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{scheme}://{host}/<path sha256:{hex}>")
}

const INVALID: &str = "<invalid URL>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_in_a_chat_webhook_path_is_never_shown() {
        let url = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX";
        let shown = redact_url(url);
        assert!(
            shown.starts_with("https://hooks.slack.com/<path sha256:"),
            "{shown}"
        );
        assert!(
            !shown.contains("XXXXsecretXXXX") && !shown.contains("services"),
            "{shown}"
        );
        assert_eq!(shown, redact_url(url), "stable");
        assert_ne!(
            shown,
            redact_url("https://hooks.slack.com/services/T000/B000/other")
        );
    }

    #[test]
    fn credentials_query_and_fragment_are_never_shown() {
        let shown = redact_url("https://user:pw@Hooks.Example:8443/in/abc?token=s3cret#x");
        assert!(
            shown.starts_with("https://hooks.example:8443/<path sha256:"),
            "{shown}"
        );
        for secret in ["user", "pw", "s3cret", "abc"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(redact_url("http://user:pw@prom:9090"), "http://prom:9090/");
        assert_eq!(
            redact_url("https://hooks.example/"),
            "https://hooks.example/"
        );
    }

    #[test]
    fn what_is_not_a_url_shows_as_invalid() {
        for bad in ["not a url", "https://", "://host/x", "https://ho st/x"] {
            assert_eq!(redact_url(bad), "<invalid URL>", "{bad}");
        }
    }
}
