//! The probes' configuration: per-probe timeout, the allow-list of networks, the CA file TLS
//! services are verified against, and whether ping may use ICMP.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

/// How probes run. Embedded in the operator's configuration as `probes:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ProbeConfig {
    /// The whole exchange of one probe, connection included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Networks probes may contact, checked after name resolution. The default is the
    /// cluster-internal ranges (RFC 1918, CGNAT, loopback, IPv6 ULA and loopback); endpoints
    /// outside the cluster need their networks added.
    pub allow: Vec<IpNet>,
    /// PEM file of the CAs TLS services are verified against; `None` uses the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Whether ping tries ICMP echo before its TCP connect fallback.
    pub icmp: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        let allow = [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "fc00::/7",
            "::1/128",
        ];
        Self {
            timeout: Duration::from_secs(10),
            allow: allow.iter().filter_map(|net| net.parse().ok()).collect(),
            ca_file: None,
            icmp: true,
        }
    }
}

impl ProbeConfig {
    /// Why the configuration cannot work, for the start-up check.
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout.is_zero() {
            return Err("probes.timeout must be above zero".into());
        }
        if self.allow.is_empty() {
            return Err("probes.allow is empty: every probe would be refused".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_allows_cluster_ranges_only() {
        let config = ProbeConfig::default();
        assert_eq!(config.allow.len(), 7);
        let allow = super::super::AllowList::new(config.allow);
        assert!(allow.allows("10.96.0.10".parse().unwrap()));
        assert!(!allow.allows("169.254.169.254".parse().unwrap()));
        assert!(!allow.allows("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn zero_timeout_and_empty_allow_list_are_invalid() {
        assert!(ProbeConfig::default().validate().is_ok());
        let zero = ProbeConfig {
            timeout: Duration::ZERO,
            ..ProbeConfig::default()
        };
        assert!(zero.validate().unwrap_err().contains("timeout"));
        let closed = ProbeConfig {
            allow: vec![],
            ..ProbeConfig::default()
        };
        assert!(closed.validate().unwrap_err().contains("allow"));
    }

    #[test]
    fn parses_from_yaml() {
        let config: ProbeConfig = serde_yaml::from_str(
            "timeout: 500ms\nallow: [127.0.0.0/8]\ncaFile: /tmp/ca.pem\nicmp: false\n",
        )
        .unwrap();
        assert_eq!(config.timeout, Duration::from_millis(500));
        assert_eq!(config.allow, vec!["127.0.0.0/8".parse::<IpNet>().unwrap()]);
        assert_eq!(config.ca_file, Some(PathBuf::from("/tmp/ca.pem")));
        assert!(!config.icmp);
    }
}
