//! What the provider sets for what every end user publishes and sends: `frontDoor:` (where its
//! domains point), `mail:`, `certificates:` (who issues its certificates) and
//! `network.loadBalancer:` (addresses of their own for mail and FTP) in the operator's
//! configuration.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Deserialize;

/// Addresses of their own for each end user's mail and FTP services (`hosting/public.rs`).
/// Embedded in `network:` as `loadBalancer:`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LoadBalancerConfig {
    /// Give each end user's mail and FTP services addresses of their own.
    pub enabled: bool,
    /// `spec.loadBalancerClass` of the Services (none: the cluster's default implementation).
    pub class_name: Option<String>,
    /// Annotations on the Services, e.g. the implementation's address pool.
    pub annotations: BTreeMap<String, String>,
}

/// Where the provider's front door answers: what the end users' DNS records (`status.dns`)
/// point to. Embedded as `frontDoor:`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FrontDoor {
    /// IPv4 addresses for the domains' A records (and the mail host's).
    pub ipv4: Vec<Ipv4Addr>,
    /// IPv6 addresses for AAAA records.
    pub ipv6: Vec<Ipv6Addr>,
    /// Host name the domains point to with a CNAME record when no address is set (not usable
    /// at a zone's apex, hence addresses first).
    pub cname: Option<String>,
    /// The provider's mail exchanger, which every domain's MX names; none: each end user's own
    /// mail host (`mail.<first domain>`, with the addresses above).
    pub mail_exchanger: Option<String>,
}

/// The most addresses of each family: each is a record per domain in `status.dns`.
const MAX_ADDRESSES: usize = 4;

impl FrontDoor {
    /// Why the configuration cannot work, for the start-up check.
    pub fn validate(&self) -> Result<(), String> {
        if self.ipv4.len() > MAX_ADDRESSES || self.ipv6.len() > MAX_ADDRESSES {
            return Err(format!(
                "frontDoor.ipv4 and frontDoor.ipv6 list at most {MAX_ADDRESSES} addresses each"
            ));
        }
        if let Some(ip) = self.ipv4.iter().find(|ip| ip.is_unspecified()) {
            return Err(format!(
                "frontDoor.ipv4: {ip} is not an address clients can reach"
            ));
        }
        if let Some(ip) = self.ipv6.iter().find(|ip| ip.is_unspecified()) {
            return Err(format!(
                "frontDoor.ipv6: {ip} is not an address clients can reach"
            ));
        }
        for (field, name) in [
            ("frontDoor.cname", &self.cname),
            ("frontDoor.mailExchanger", &self.mail_exchanger),
        ] {
            if let Some(name) = name
                && !host_name(name)
            {
                return Err(format!("{field} {name:?} is not a host name"));
            }
        }
        Ok(())
    }
}

/// DNS labels (letters, digits, '-', not at either end) joined by dots, at most 253 bytes.
fn host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Embedded in the operator's configuration as `mail:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct MailConfig {
    /// The DKIM selector: each domain publishes its key at `<selector>._domainkey.<domain>`.
    pub dkim_selector: String,
    /// The provider's relay (`IP:port`) every end user's outbound mail goes through; none:
    /// each MTA delivers straight to the recipient's MX. The mail pods' egress policy lets
    /// them reach it.
    pub relay: Option<SocketAddr>,
    /// The SPF record (RFC 7208) each domain publishes: which servers may send its mail.
    pub spf: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            dkim_selector: "oem".into(),
            relay: None,
            spf: "v=spf1 a mx ~all".into(),
        }
    }
}

impl MailConfig {
    /// Why the configuration cannot work, for the start-up check.
    pub fn validate(&self) -> Result<(), String> {
        let selector = &self.dkim_selector;
        if !host_name(selector) {
            return Err(format!(
                "mail.dkimSelector {selector:?} must be DNS labels (letters, digits, '-') joined by dots"
            ));
        }
        if !self.spf.starts_with("v=spf1") || self.spf.len() > 450 {
            return Err(
                "mail.spf must be an SPF record starting with v=spf1 (at most 450 bytes)".into(),
            );
        }
        if self.spf.contains('"') || self.spf.chars().any(char::is_control) {
            return Err("mail.spf must not contain quotes or control characters".into());
        }
        if let Some(relay) = self.relay
            && (relay.port() == 0 || relay.ip().is_unspecified())
        {
            return Err(format!(
                "mail.relay {relay} must name an address and a port"
            ));
        }
        Ok(())
    }
}

/// Embedded as `certificates:`: who issues each end user's certificate.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct CertificatesConfig {
    /// The cert-manager issuer of every end user's certificate (`hosting/certificate.rs`);
    /// none: the operator writes no Certificate, and the provider puts each hosting
    /// namespace's `tls` Secret there itself (or leaves the services' self-signed ones).
    pub issuer: Option<IssuerRef>,
    /// What one HTTP-01 solver pod may use, as the issuer starts them (cert-manager's default
    /// limits unless the issuer's pod template says otherwise): the hosting namespace's quota
    /// keeps that much room per name being validated.
    pub solver: SolverAllowance,
}

/// A cert-manager issuer, as a Certificate's `issuerRef` names it.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerRef {
    pub name: String,
    #[serde(default = "cluster_issuer")]
    pub kind: String,
    #[serde(default = "cert_manager_group")]
    pub group: String,
}

fn cluster_issuer() -> String {
    "ClusterIssuer".into()
}

fn cert_manager_group() -> String {
    "cert-manager.io".into()
}

/// cpu and memory of one solver pod (requests and limits).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SolverAllowance {
    pub cpu: String,
    pub memory: String,
}

impl Default for SolverAllowance {
    fn default() -> Self {
        Self {
            cpu: "100m".into(),
            memory: "64Mi".into(),
        }
    }
}

impl CertificatesConfig {
    /// Why the configuration cannot work, for the start-up check.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(issuer) = &self.issuer {
            for (field, value) in [
                ("certificates.issuer.name", &issuer.name),
                ("certificates.issuer.group", &issuer.group),
            ] {
                if !host_name(value) || value.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(format!(
                        "{field} {value:?} must be a DNS name (lower-case letters, digits, '-', '.')"
                    ));
                }
            }
            if issuer.kind.is_empty() || !issuer.kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!(
                    "certificates.issuer.kind {:?} must be a kind such as ClusterIssuer or Issuer",
                    issuer.kind
                ));
            }
        }
        for (field, value) in [
            ("certificates.solver.cpu", &self.solver.cpu),
            ("certificates.solver.memory", &self.solver.memory),
        ] {
            if oem_crds::quantity::value(value).is_none_or(|v| v <= 0.0) {
                return Err(format!("{field} {value:?} is not a positive quantity"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_front_door_names_hosts_and_reachable_addresses() {
        FrontDoor::default().validate().unwrap();
        let good = FrontDoor {
            ipv4: vec!["192.0.2.10".parse().unwrap()],
            ipv6: vec!["2001:db8::10".parse().unwrap()],
            cname: Some("door.example.net".into()),
            mail_exchanger: Some("mx.example.net".into()),
        };
        good.validate().unwrap();
        for bad in [
            FrontDoor {
                ipv4: vec!["0.0.0.0".parse().unwrap()],
                ..FrontDoor::default()
            },
            FrontDoor {
                mail_exchanger: Some("mx.example.net.".into()),
                ..FrontDoor::default()
            },
            FrontDoor {
                cname: Some("door example".into()),
                ..FrontDoor::default()
            },
            FrontDoor {
                ipv4: vec!["192.0.2.1".parse().unwrap(); 5],
                ..FrontDoor::default()
            },
        ] {
            let error = bad.validate().unwrap_err();
            assert!(error.starts_with("frontDoor."), "{error}");
        }
    }

    #[test]
    fn the_defaults_are_valid_and_bad_values_are_named() {
        MailConfig::default().validate().unwrap();
        for (config, field) in [
            (
                MailConfig {
                    dkim_selector: "bad_selector".into(),
                    ..MailConfig::default()
                },
                "mail.dkimSelector",
            ),
            (
                MailConfig {
                    spf: "include:x".into(),
                    ..MailConfig::default()
                },
                "mail.spf",
            ),
            (
                MailConfig {
                    relay: Some("0.0.0.0:25".parse().unwrap()),
                    ..MailConfig::default()
                },
                "mail.relay",
            ),
        ] {
            let error = config.validate().unwrap_err();
            assert!(error.starts_with(field), "{error}");
        }
    }

    #[test]
    fn a_certificate_issuer_names_a_kind_and_the_solver_fits_quantities() {
        let parsed: CertificatesConfig =
            serde_yaml::from_str("issuer: {name: letsencrypt}").unwrap();
        let issuer = parsed.issuer.clone().unwrap();
        assert_eq!(
            (issuer.kind.as_str(), issuer.group.as_str()),
            ("ClusterIssuer", "cert-manager.io")
        );
        parsed.validate().unwrap();
        CertificatesConfig::default().validate().unwrap();
        for (yaml, field) in [
            ("issuer: {name: Lets_Encrypt}", "certificates.issuer.name"),
            (
                "issuer: {name: le, kind: 'Cluster Issuer'}",
                "certificates.issuer.kind",
            ),
            ("solver: {cpu: lots}", "certificates.solver.cpu"),
            ("solver: {memory: '0'}", "certificates.solver.memory"),
        ] {
            let bad: CertificatesConfig = serde_yaml::from_str(yaml).unwrap();
            let error = bad.validate().unwrap_err();
            assert!(error.contains(field), "{yaml}: {error}");
        }
        assert!(serde_yaml::from_str::<CertificatesConfig>("issuer: {nmae: x}").is_err());
    }
}
