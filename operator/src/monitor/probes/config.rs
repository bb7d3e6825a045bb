//! The probes' configuration: per-probe timeout, the networks probes may contact (the
//! cluster's pod and Service ranges, and any others the provider adds), the CA file TLS
//! services are verified against, and whether ping may use ICMP.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

/// How probes run. Embedded in the operator's configuration as `probes:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ProbeConfig {
    /// The whole exchange of one probe, connection included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The cluster's pod network(s): hosting pods, which probes may contact.
    pub pod_cidrs: Vec<IpNet>,
    /// The cluster's Service network(s): hosting Services, which probes may contact.
    pub service_cidrs: Vec<IpNet>,
    /// Further networks probes may contact (endpoints outside the cluster that resellers
    /// name); none by default. Every network added is reachable by any reseller's endpoints.
    pub allow: Vec<IpNet>,
    /// PEM file of the CAs TLS services are verified against; `None` uses the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Whether ping tries ICMP echo before its TCP connect fallback.
    pub icmp: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        let net = |net: &str| net.parse().ok();
        Self {
            timeout: Duration::from_secs(10),
            // The usual ranges (flannel's pods, kubeadm's Services); set the cluster's own.
            pod_cidrs: net("10.244.0.0/16").into_iter().collect(),
            service_cidrs: net("10.96.0.0/12").into_iter().collect(),
            allow: Vec::new(),
            ca_file: None,
            icmp: true,
        }
    }
}

impl ProbeConfig {
    /// Every network probes may contact: pods, Services, then the added ones.
    pub fn networks(&self) -> Vec<IpNet> {
        let all = [&self.pod_cidrs, &self.service_cidrs, &self.allow];
        all.into_iter().flatten().copied().collect()
    }

    /// Why the configuration cannot work, for the start-up check.
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout.is_zero() {
            return Err("probes.timeout must be above zero".into());
        }
        if self.networks().is_empty() {
            return Err(
                "probes.podCidrs, probes.serviceCidrs and probes.allow are all empty: every probe would be refused"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_allows_the_pod_and_service_ranges_only() {
        let config = ProbeConfig::default();
        assert_eq!(config.networks().len(), 2);
        let allow = super::super::AllowList::new(config.networks());
        assert!(allow.allows("10.96.0.10".parse().unwrap()));
        assert!(allow.allows("10.244.3.7".parse().unwrap()));
        // Nodes, etcd, other private networks, CGNAT, loopback, ULA, metadata, the Internet.
        for refused in [
            "10.250.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "127.0.0.1",
            "::1",
            "fd00::1",
            "169.254.169.254",
            "8.8.8.8",
        ] {
            assert!(!allow.allows(refused.parse().unwrap()), "{refused}");
        }
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
            pod_cidrs: vec![],
            service_cidrs: vec![],
            allow: vec![],
            ..ProbeConfig::default()
        };
        assert!(closed.validate().unwrap_err().contains("allow"));
        let loopback_only = ProbeConfig {
            pod_cidrs: vec![],
            service_cidrs: vec![],
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            ..ProbeConfig::default()
        };
        assert!(loopback_only.validate().is_ok());
    }

    #[test]
    fn parses_from_yaml() {
        let config: ProbeConfig = serde_yaml::from_str(
            "timeout: 500ms\npodCidrs: [10.42.0.0/16]\nserviceCidrs: [10.43.0.0/16]\n\
             allow: [127.0.0.0/8]\ncaFile: /tmp/ca.pem\nicmp: false\n",
        )
        .unwrap();
        assert_eq!(config.timeout, Duration::from_millis(500));
        assert_eq!(
            config.pod_cidrs,
            vec!["10.42.0.0/16".parse::<IpNet>().unwrap()]
        );
        assert_eq!(
            config.service_cidrs,
            vec!["10.43.0.0/16".parse::<IpNet>().unwrap()]
        );
        assert_eq!(config.allow, vec!["127.0.0.0/8".parse::<IpNet>().unwrap()]);
        assert_eq!(config.ca_file, Some(PathBuf::from("/tmp/ca.pem")));
        assert!(!config.icmp);
    }
}
