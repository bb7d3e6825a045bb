//! The DNS records an end user publishes for its domains (`status.dns`): where the web site is
//! (the provider's front door), where its mail goes (MX, and the mail host's address when the
//! end user's own), who may send it (SPF) and the key that verifies its signatures (DKIM).

use oem_crds::enduser::{DnsPurpose, DnsRecord, DnsRecordType};

use super::HostingPlan;
use super::config::{FrontDoor, MailConfig};
use super::dkim;
use super::public::{self, PublicAddresses};

/// The MX preference of the one mail exchanger.
const MX_PREFERENCE: u16 = 10;

/// The records, domain by domain in the order the plan serves them, then the end user's own
/// mail host's addresses (and its FTP host's). A target the provider did not configure is not
/// listed (no address and no CNAME: no web record); `dkim_public` is the key's `p=` once known.
/// `public`: with the load balancer on, the addresses of the end user's public Services, which
/// its mail host (`mail.<first domain>`) and FTP host (`ftp.<first domain>`) point at instead
/// of the front door (listed once assigned).
pub fn records(
    plan: &HostingPlan,
    door: &FrontDoor,
    mail: &MailConfig,
    dkim_public: Option<&str>,
    public: Option<&PublicAddresses>,
) -> Vec<DnsRecord> {
    let record = |name: &str, type_, value: String, purpose| DnsRecord {
        name: name.to_owned(),
        type_,
        value,
        purpose,
    };
    let addresses = |name: &str, purpose| {
        let v4 = door
            .ipv4
            .iter()
            .map(|ip| record(name, DnsRecordType::A, ip.to_string(), purpose));
        let v6 = door
            .ipv6
            .iter()
            .map(|ip| record(name, DnsRecordType::Aaaa, ip.to_string(), purpose));
        v4.chain(v6).collect::<Vec<_>>()
    };
    // The provider's exchanger, else the end user's own host (named after its first domain).
    let exchanger = door
        .mail_exchanger
        .clone()
        .unwrap_or_else(|| plan.mail_hostname());
    let mut out = Vec::new();
    for domain in &plan.domains {
        if plan.web.is_some() {
            let web = addresses(domain, DnsPurpose::Web);
            match &door.cname {
                Some(cname) if web.is_empty() => out.push(record(
                    domain,
                    DnsRecordType::Cname,
                    format!("{cname}."),
                    DnsPurpose::Web,
                )),
                _ => out.extend(web),
            }
        }
        if plan.mail.is_some() {
            out.push(record(
                domain,
                DnsRecordType::Mx,
                format!("{MX_PREFERENCE} {exchanger}."),
                DnsPurpose::Mail,
            ));
            out.push(record(
                domain,
                DnsRecordType::Txt,
                mail.spf.clone(),
                DnsPurpose::Spf,
            ));
            if let Some(public) = dkim_public {
                out.push(record(
                    &format!("{}._domainkey.{domain}", mail.dkim_selector),
                    DnsRecordType::Txt,
                    dkim::txt_record(public),
                    DnsPurpose::Dkim,
                ));
            }
        }
    }
    let own = |name: &str, ips: &[std::net::IpAddr], purpose| {
        ips.iter()
            .map(|ip| {
                let type_ = if ip.is_ipv4() {
                    DnsRecordType::A
                } else {
                    DnsRecordType::Aaaa
                };
                record(name, type_, ip.to_string(), purpose)
            })
            .collect::<Vec<_>>()
    };
    // An MX names a host with addresses (never a CNAME, RFC 2181 §10.3).
    if plan.mail.is_some() && door.mail_exchanger.is_none() && !plan.domains.is_empty() {
        match public {
            Some(public) => out.extend(own(&exchanger, &public.mail, DnsPurpose::Mail)),
            None => out.extend(addresses(&exchanger, DnsPurpose::Mail)),
        }
    }
    if let (Some(public), Some(host)) = (public, public::ftp_hostname(plan))
        && plan.ftp.is_some()
    {
        out.extend(own(&host, &public.ftp, DnsPurpose::Ftp));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosting::tests::business_plan;

    fn table(records: &[DnsRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{} {:?} {} {:?}", r.name, r.type_, r.value, r.purpose))
            .collect()
    }

    fn door() -> FrontDoor {
        FrontDoor {
            ipv4: vec!["203.0.113.10".parse().unwrap()],
            ipv6: vec!["2001:db8::10".parse().unwrap()],
            ..FrontDoor::default()
        }
    }

    #[test]
    fn each_domain_gets_its_address_mx_spf_and_dkim_key_and_the_mail_host_its_address() {
        let mut plan = business_plan();
        plan.domains = vec!["tanaka.example.jp".into(), "tanaka.example.com".into()];
        let records = records(&plan, &door(), &MailConfig::default(), Some("KEY"), None);
        assert_eq!(
            table(&records),
            [
                "tanaka.example.jp A 203.0.113.10 Web",
                "tanaka.example.jp Aaaa 2001:db8::10 Web",
                "tanaka.example.jp Mx 10 mail.tanaka.example.jp. Mail",
                "tanaka.example.jp Txt v=spf1 a mx ~all Spf",
                "oem._domainkey.tanaka.example.jp Txt v=DKIM1; k=rsa; p=KEY Dkim",
                "tanaka.example.com A 203.0.113.10 Web",
                "tanaka.example.com Aaaa 2001:db8::10 Web",
                "tanaka.example.com Mx 10 mail.tanaka.example.jp. Mail",
                "tanaka.example.com Txt v=spf1 a mx ~all Spf",
                "oem._domainkey.tanaka.example.com Txt v=DKIM1; k=rsa; p=KEY Dkim",
                "mail.tanaka.example.jp A 203.0.113.10 Mail",
                "mail.tanaka.example.jp Aaaa 2001:db8::10 Mail",
            ]
        );
    }

    #[test]
    fn a_providers_exchanger_and_cname_replace_the_end_users_own_records() {
        let mut plan = business_plan();
        plan.domains = vec!["tanaka.example.jp".into()];
        let door = FrontDoor {
            cname: Some("door.example.net".into()),
            mail_exchanger: Some("mx.example.net".into()),
            ..FrontDoor::default()
        };
        let mail = MailConfig {
            dkim_selector: "s2026".into(),
            spf: "v=spf1 include:_spf.example.net -all".into(),
            ..MailConfig::default()
        };
        assert_eq!(
            table(&records(&plan, &door, &mail, Some("KEY"), None)),
            [
                "tanaka.example.jp Cname door.example.net. Web",
                "tanaka.example.jp Mx 10 mx.example.net. Mail",
                "tanaka.example.jp Txt v=spf1 include:_spf.example.net -all Spf",
                "s2026._domainkey.tanaka.example.jp Txt v=DKIM1; k=rsa; p=KEY Dkim",
            ]
        );
    }

    #[test]
    fn what_the_course_does_not_serve_and_what_is_not_known_is_not_listed() {
        let mut plan = business_plan();
        plan.domains = vec!["tanaka.example.jp".into()];
        plan.mail = None;
        let web_only = records(&plan, &door(), &MailConfig::default(), Some("KEY"), None);
        assert_eq!(
            table(&web_only),
            [
                "tanaka.example.jp A 203.0.113.10 Web",
                "tanaka.example.jp Aaaa 2001:db8::10 Web"
            ]
        );
        let mut plan = business_plan();
        plan.domains = vec!["tanaka.example.jp".into()];
        plan.web = None;
        let nothing_configured = records(
            &plan,
            &FrontDoor::default(),
            &MailConfig::default(),
            None,
            None,
        );
        assert_eq!(
            table(&nothing_configured),
            [
                "tanaka.example.jp Mx 10 mail.tanaka.example.jp. Mail",
                "tanaka.example.jp Txt v=spf1 a mx ~all Spf",
            ]
        );
        plan.domains.clear();
        assert!(records(&plan, &door(), &MailConfig::default(), Some("KEY"), None).is_empty());
    }

    #[test]
    fn with_a_load_balancer_the_mail_and_ftp_hosts_point_at_their_own_addresses() {
        let plan = business_plan();
        let domain = &plan.domains[0];
        let none_yet = PublicAddresses::default();
        let waiting = table(&records(
            &plan,
            &door(),
            &MailConfig::default(),
            None,
            Some(&none_yet),
        ));
        assert!(
            !waiting
                .iter()
                .any(|r| r.starts_with(&format!("mail.{domain} A"))),
            "the mail host is not pointed at the web front door: {waiting:?}"
        );
        let public = PublicAddresses {
            mail: vec!["10.251.0.100".parse().unwrap()],
            ftp: vec![
                "10.251.0.101".parse().unwrap(),
                "2001:db8::101".parse().unwrap(),
            ],
        };
        let all = table(&records(
            &plan,
            &door(),
            &MailConfig::default(),
            None,
            Some(&public),
        ));
        assert!(
            all.contains(&format!("mail.{domain} A 10.251.0.100 Mail")),
            "{all:?}"
        );
        assert!(
            all.contains(&format!("ftp.{domain} A 10.251.0.101 Ftp")),
            "{all:?}"
        );
        assert!(
            all.contains(&format!("ftp.{domain} Aaaa 2001:db8::101 Ftp")),
            "{all:?}"
        );
        // The web site still points at the front door.
        assert!(
            all.contains(&format!("{domain} A 203.0.113.10 Web")),
            "{all:?}"
        );
    }
}
