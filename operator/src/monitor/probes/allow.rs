//! The allow-list of networks probes may contact, checked after name resolution and before
//! every connection (ping included), so an end user cannot point a probe at addresses outside
//! hosting (the API server, cloud metadata, other networks); and the addresses inside those
//! networks that belong to someone else (another tenant's hosting Services and pods, the API
//! server's Service), which an endpoint a reseller named may not reach either.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

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
        let addr = canonical(addr);
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

/// An IPv4-mapped IPv6 address as the IPv4 address it carries.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// Who an in-cluster address belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// A Service ClusterIP or pod IP of this hosting namespace (one name shared by the
    /// namespace's addresses).
    Hosting(Arc<str>),
    /// The API server (the `kubernetes` Service), or another control-plane address.
    ControlPlane,
}

/// The in-cluster addresses an endpoint a reseller named may not reach although the
/// allow-list covers them: every hosting namespace's but the end user's own, and the control
/// plane's. Rebuilt by the monitor from its view at every refresh, whole: a sorted list found
/// by halving (at 2,000 end users a hash table of owned names took 2.4 MB for 16,000
/// addresses, this list about a third).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressOwners {
    by_addr: Vec<(IpAddr, Owner)>,
}

impl AddressOwners {
    /// The owners of `hosting` addresses (each with its hosting namespace; the first owner
    /// named for an address keeps it) and of the `control_plane`'s (which win over a hosting
    /// owner).
    pub fn new<'a>(
        hosting: impl IntoIterator<Item = (IpAddr, &'a str)>,
        control_plane: impl IntoIterator<Item = IpAddr>,
    ) -> Self {
        let mut names: HashMap<&str, Arc<str>> = HashMap::new();
        let mut by_addr: Vec<(IpAddr, Owner)> = control_plane
            .into_iter()
            .map(|addr| (canonical(addr), Owner::ControlPlane))
            .collect();
        for (addr, namespace) in hosting {
            let name = names
                .entry(namespace)
                .or_insert_with(|| Arc::from(namespace))
                .clone();
            by_addr.push((canonical(addr), Owner::Hosting(name)));
        }
        // Stable: of an address's owners, the control plane (listed first), else the first
        // hosting namespace named, is kept.
        by_addr.sort_by_key(|(addr, _)| *addr);
        by_addr.dedup_by_key(|(addr, _)| *addr);
        by_addr.shrink_to_fit();
        Self { by_addr }
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// `Ok` unless `addr` belongs to a hosting namespace other than `own` (the end user's own
    /// hosting namespace, empty when it has none) or to the control plane.
    pub fn check(&self, addr: IpAddr, own: &str) -> Result<(), ProbeError> {
        let owner = self
            .by_addr
            .binary_search_by_key(&canonical(addr), |(a, _)| *a)
            .ok()
            .map(|at| &self.by_addr[at].1);
        match owner {
            None => Ok(()),
            Some(Owner::Hosting(ns)) if !own.is_empty() && **ns == *own => Ok(()),
            Some(Owner::Hosting(_)) => Err(ProbeError::OtherTenant { addr }),
            Some(Owner::ControlPlane) => Err(ProbeError::ControlPlane { addr }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_other_hosting_namespaces_and_the_api_server_are_refused() {
        let ip = |text: &str| -> IpAddr { text.parse().unwrap() };
        let owners = AddressOwners::new(
            [
                (ip("10.96.5.5"), "h-acme-bob-1"),
                (ip("10.244.0.7"), "h-acme-alice-2"),
                // Named twice: the first owner keeps it.
                (ip("10.244.0.7"), "h-acme-bob-1"),
                // The control plane's wins over a hosting owner.
                (ip("10.96.0.1"), "h-acme-alice-2"),
            ],
            [ip("10.96.0.1")],
        );
        assert_eq!(owners.len(), 3);
        let own = "h-acme-alice-2";
        // Bob's database Service, also as an IPv4-mapped IPv6 address.
        for addr in ["10.96.5.5", "::ffff:10.96.5.5"] {
            let err = owners.check(addr.parse().unwrap(), own).unwrap_err();
            assert_eq!(err.metric_label(), "other_tenant", "{addr}");
        }
        let err = owners.check("10.96.0.1".parse().unwrap(), own).unwrap_err();
        assert_eq!(err.metric_label(), "control_plane");
        // Its own pod, and addresses nobody owns, pass.
        assert!(owners.check("10.244.0.7".parse().unwrap(), own).is_ok());
        assert!(owners.check("10.244.0.8".parse().unwrap(), own).is_ok());
        // Without a hosting namespace of its own, every hosting address is another's.
        assert!(owners.check("10.244.0.7".parse().unwrap(), "").is_err());
    }

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
