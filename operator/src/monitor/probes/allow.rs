//! The allow-list of networks probes may contact, checked after name resolution and before
//! every connection (ping included), so an end user cannot point a probe at addresses outside
//! hosting (the API server, cloud metadata, other networks).

use std::net::IpAddr;

use ipnet::IpNet;

use super::error::ProbeError;

/// Networks probes may contact; an address outside all of them is never contacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<IpNet>,
}

impl AllowList {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// Whether `addr` is inside one of the networks. IPv4-mapped IPv6 addresses are checked
    /// as the IPv4 address they carry.
    pub fn allows(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|net| net.contains(&addr))
    }

    /// `Ok` when allowed, otherwise the "not in allow-list" failure.
    pub fn check(&self, addr: IpAddr) -> Result<(), ProbeError> {
        if self.allows(addr) {
            Ok(())
        } else {
            Err(ProbeError::NotAllowed { addr })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(nets: &[&str]) -> AllowList {
        AllowList::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    #[test]
    fn loopback_network_allows_only_loopback() {
        let allow = list(&["127.0.0.0/8"]);
        assert!(allow.allows("127.0.0.1".parse().unwrap()));
        assert!(allow.allows("127.255.0.9".parse().unwrap()));
        assert!(!allow.allows("128.0.0.1".parse().unwrap()));
        assert!(!allow.allows("::1".parse().unwrap()));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_checked_as_ipv4() {
        let allow = list(&["10.0.0.0/8"]);
        assert!(allow.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!allow.allows("::ffff:169.254.169.254".parse().unwrap()));
    }

    #[test]
    fn empty_list_refuses_everything_with_the_address() {
        let err = list(&[]).check("127.0.0.1".parse().unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "address 127.0.0.1 not in allow-list");
    }
}
