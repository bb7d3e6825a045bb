//! The DNS records an end user publishes, as both panels show them: the EndUser's `status.dns`
//! (the operator's, from the provider's front door and the end user's DKIM key), each domain's
//! records together, and a row without a value ("ask support") for a domain whose web address
//! the provider has not set.

use std::fmt::Write;

use oem_crds::enduser::{DnsPurpose, DnsRecord};

use crate::html::esc;
use crate::i18n::Texts;

/// The DNS section of a page: its heading, and the table or "no domain yet".
pub fn section(texts: &Texts, domains: &[String], records: &[DnsRecord], web: bool) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<section aria-labelledby=\"h-dns\"><h2 id=\"h-dns\">{}</h2>",
        esc(texts.dns_title)
    );
    if domains.is_empty() {
        let _ = write!(body, "<p>{}</p>", esc(texts.no_domains));
    } else {
        let _ = write!(
            body,
            "<p>{}</p><table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
             <th scope=\"col\">{}</th></tr></thead><tbody>",
            esc(texts.dns_intro),
            esc(texts.host),
            esc(texts.record_type),
            esc(texts.value)
        );
        for (name, kind, value) in dns_rows(domains, records, web) {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                esc(name),
                esc(kind),
                esc(value.unwrap_or(texts.dns_unset))
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    body
}

/// The rows of the DNS table, from `status.dns` (the operator's, from the provider's front door
/// and the end user's DKIM key): each domain's records (its DKIM key's among them), a row
/// without a value ("ask support") for a domain whose web address the provider has not set,
/// then the rest (the mail and FTP hosts' addresses).
fn dns_rows<'a>(
    domains: &'a [String],
    records: &'a [DnsRecord],
    web: bool,
) -> Vec<(&'a str, &'static str, Option<&'a str>)> {
    let of = |r: &DnsRecord, domain: &str| {
        r.name == domain
            || r.name
                .strip_suffix(domain)
                .is_some_and(|head| head.ends_with("._domainkey."))
    };
    let row = |r: &'a DnsRecord| (r.name.as_str(), r.type_.as_str(), Some(r.value.as_str()));
    let mut rows = Vec::new();
    for domain in domains {
        let own: Vec<&DnsRecord> = records.iter().filter(|r| of(r, domain)).collect();
        if web && !own.iter().any(|r| r.purpose == DnsPurpose::Web) {
            rows.push((domain.as_str(), "A", None));
        }
        rows.extend(own.into_iter().map(row));
    }
    rows.extend(
        records
            .iter()
            .filter(|r| !domains.iter().any(|d| of(r, d)))
            .map(row),
    );
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_rows_group_each_domains_records_and_say_what_the_provider_has_not_set() {
        let record = |name: &str, type_, value: &str, purpose| DnsRecord {
            name: name.into(),
            type_,
            value: value.into(),
            purpose,
        };
        use oem_crds::enduser::DnsRecordType::{A, Mx, Txt};
        let records = vec![
            record("a.jp", A, "192.0.2.1", DnsPurpose::Web),
            record("a.jp", Mx, "10 mail.a.jp.", DnsPurpose::Mail),
            record(
                "oem._domainkey.a.jp",
                Txt,
                "v=DKIM1; k=rsa; p=K",
                DnsPurpose::Dkim,
            ),
            record("b.jp", Mx, "10 mail.a.jp.", DnsPurpose::Mail),
            record("mail.a.jp", A, "192.0.2.1", DnsPurpose::Mail),
        ];
        let domains = vec!["a.jp".to_owned(), "b.jp".to_owned()];
        let rows = dns_rows(&domains, &records, true);
        assert_eq!(
            rows,
            [
                ("a.jp", "A", Some("192.0.2.1")),
                ("a.jp", "MX", Some("10 mail.a.jp.")),
                ("oem._domainkey.a.jp", "TXT", Some("v=DKIM1; k=rsa; p=K")),
                ("b.jp", "A", None),
                ("b.jp", "MX", Some("10 mail.a.jp.")),
                ("mail.a.jp", "A", Some("192.0.2.1")),
            ]
        );
        assert_eq!(dns_rows(&domains, &[], false), []);
    }
}
