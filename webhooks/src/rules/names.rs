//! Syntax of the names the rules check: DNS domain names, email addresses, https URLs.

/// A domain as it is compared and stored: lower case, without a trailing dot.
pub fn normalise_domain(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A fully qualified DNS name (after normalisation): labels of 1–63 letters, digits and
/// hyphens, not starting or ending with a hyphen, at least two labels, at most 253 characters,
/// the top-level label starting with a letter (so an IP address is not a DNS name).
pub fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_lowercase()))
        && name.split('.').count() >= 2
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// An email address an SMTP server will accept: `local@domain`, the local part dot-atom text,
/// the domain a DNS name.
pub fn is_email(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    const SPECIALS: &[u8] = b"!#$%&'*+/=?^_`{|}~-.";
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || SPECIALS.contains(&b))
        && is_dns_name(&domain.to_ascii_lowercase())
}

/// Why a notification webhook URL is unusable, if it is.
pub fn https_url_problem(url: &str) -> Option<&'static str> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Some("webhook URLs must use https");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Some("webhook URL has no host");
    }
    if url.chars().any(char::is_whitespace) {
        return Some("webhook URL contains whitespace");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn domains_normalise_to_lower_case_without_trailing_dot() {
        assert_eq!(normalise_domain("Shop.Example.JP."), "shop.example.jp");
    }

    #[test]
    fn dns_names_are_checked_label_by_label() {
        assert!(is_dns_name("shop.example.jp"));
        assert!(is_dns_name("xn--r8jz45g.jp"));
        assert!(!is_dns_name("localhost"));
        assert!(!is_dns_name("-bad.example.jp"));
        assert!(!is_dns_name("a..example.jp"));
        assert!(!is_dns_name("under_score.example.jp"));
        assert!(!is_dns_name("192.0.2.1"), "an IP address is not a domain");
        assert!(!is_dns_name("shop.example.123"));
    }

    #[test]
    fn emails_need_a_local_part_and_a_domain() {
        assert!(is_email("noc+alerts@reseller.example.jp"));
        assert!(!is_email("noc@localhost"));
        assert!(!is_email("noc.reseller.example.jp"));
        assert!(!is_email("a b@example.jp"));
        assert!(!is_email(".noc@example.jp"));
    }

    #[test]
    fn webhook_urls_must_be_https_with_a_host() {
        assert_eq!(https_url_problem("https://hooks.example.jp/oem"), None);
        assert_eq!(https_url_problem("https://[::1]:8443/x"), None);
        assert!(https_url_problem("http://hooks.example.jp/").is_some());
        assert!(https_url_problem("https:///path").is_some());
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent(s in "[A-Za-z0-9.-]{0,40}") {
            let once = normalise_domain(&s);
            prop_assert_eq!(normalise_domain(&once), once.clone());
            prop_assert!(!once.ends_with('.'));
        }

        #[test]
        fn valid_generated_domains_are_dns_names(labels in proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", 1..4), tld in "[a-z]([a-z0-9-]{0,10}[a-z0-9])?") {
            let name = format!("{}.{}", labels.join("."), tld);
            prop_assert!(is_dns_name(&name));
        }
    }
}
