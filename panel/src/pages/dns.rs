//! The DNS records an end user's domains need: A/AAAA to the provider's front door (or a CNAME
//! to its host name when no addresses are configured; a CNAME cannot sit at a zone's apex, so
//! addresses are preferred), and an MX record when the course has mail. Pure.

use crate::config::FrontDoor;

/// One record to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub host: String,
    pub kind: &'static str,
    /// None: the provider has not configured the target.
    pub value: Option<String>,
}

/// The records of `domain`.
pub fn records(domain: &str, door: &FrontDoor, mail: bool) -> Vec<Record> {
    let record = |kind, value: Option<String>| Record {
        host: domain.to_owned(),
        kind,
        value,
    };
    let mut out: Vec<Record> = door
        .ipv4
        .iter()
        .map(|ip| record("A", Some(ip.to_string())))
        .chain(
            door.ipv6
                .iter()
                .map(|ip| record("AAAA", Some(ip.to_string()))),
        )
        .collect();
    if out.is_empty() {
        out.push(record(
            "CNAME",
            door.cname.as_ref().map(|c| format!("{c}.")),
        ));
    }
    if mail {
        out.push(record(
            "MX",
            door.mail_exchanger.as_ref().map(|mx| format!("10 {mx}.")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_give_a_and_aaaa_records() {
        let door = FrontDoor {
            ipv4: vec!["192.0.2.10".parse().unwrap()],
            ipv6: vec!["2001:db8::10".parse().unwrap()],
            cname: Some("door.example.net".into()),
            mail_exchanger: Some("mx.example.net".into()),
        };
        let r = records("shop.example.jp", &door, true);
        let kinds: Vec<_> = r
            .iter()
            .map(|r| (r.kind, r.value.clone().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("A", "192.0.2.10".to_owned()),
                ("AAAA", "2001:db8::10".to_owned()),
                ("MX", "10 mx.example.net.".to_owned()),
            ]
        );
    }

    #[test]
    fn without_addresses_a_cname_and_no_mx_without_mail() {
        let door = FrontDoor {
            cname: Some("door.example.net".into()),
            ..FrontDoor::default()
        };
        let r = records("www.example.jp", &door, false);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind, "CNAME");
        assert_eq!(r[0].value.as_deref(), Some("door.example.net."));
    }

    #[test]
    fn an_unconfigured_front_door_says_so() {
        let r = records("example.jp", &FrontDoor::default(), true);
        assert!(r.iter().all(|r| r.value.is_none()));
        assert_eq!(r.len(), 2);
    }
}
