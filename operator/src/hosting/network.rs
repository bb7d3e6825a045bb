//! The hosting namespace's NetworkPolicies: deny by default; traffic in only from the ingress
//! controller's and the monitor's namespaces (and between the end user's own pods); traffic
//! out to DNS and the internet but never to private, link-local (cloud metadata), carrier-grade
//! NAT, loopback, multicast or reserved ranges; SMTP out (25, 465, 587) only from the mail
//! service group's pods, in a policy of its own, left out while the account is mail-locked;
//! with `network.loadBalancer`, traffic in from anywhere to the mail and FTP ports the public
//! Services expose (`public.rs`), those ports only.
//! NetworkPolicies are enforced only by a CNI that implements them (Calico, Cilium, ...; the
//! local real node's bridge plugin does not): the mail lock is also enforced by the mail
//! container's MTA (`MAIL_LOCKED`, `workloads.rs`), on any cluster.

use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::config::NetworkConfig;
use crate::naming;

use super::{HostingPlan, ServiceGroup};

pub const DEFAULT_DENY: &str = "default-deny";
pub const ALLOW_INGRESS: &str = "allow-ingress";
pub const ALLOW_EGRESS: &str = "allow-egress";
pub const ALLOW_SMTP_EGRESS: &str = "allow-smtp-egress";
/// `allow-public-<group>`: the world to the group's public ports (`network.loadBalancer`).
pub const ALLOW_PUBLIC: &str = "allow-public";

/// IPv4 ranges never reachable from a hosting pod: RFC 1918 (other tenants, the cluster's own
/// networks, the provider's systems), link-local (the cloud metadata service at
/// 169.254.169.254), carrier-grade NAT (RFC 6598, often the provider's own), "this network",
/// loopback, multicast and the reserved class E. The policies carry no IPv6 rule, so IPv6
/// egress is denied altogether (default-deny).
const BLOCKED_V4: [&str; 9] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
    "127.0.0.0/8",
    "224.0.0.0/4",
    "240.0.0.0/4",
];
const SMTP_PORTS: [u16; 3] = [25, 465, 587];

fn policy(plan: &HostingPlan, name: &str, spec: NetworkPolicySpec) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(plan.namespace.clone()),
            labels: Some(plan.labels()),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
    }
}

/// Pods matching these labels (none: every pod of the namespace).
fn pods_labelled(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        }),
        ..LabelSelector::default()
    }
}

/// The namespace named `name`.
fn namespace_named(name: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(pods_labelled(&[("kubernetes.io/metadata.name", name)])),
        ..NetworkPolicyPeer::default()
    }
}

/// Every pod of the hosting namespace.
fn own_pods() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }
}

fn ports(protocol: &str, numbers: &[u16]) -> Vec<NetworkPolicyPort> {
    numbers
        .iter()
        .map(|n| NetworkPolicyPort {
            protocol: Some(protocol.to_owned()),
            port: Some(IntOrString::Int(i32::from(*n))),
            ..NetworkPolicyPort::default()
        })
        .collect()
}

fn types(types: &[&str]) -> Option<Vec<String>> {
    Some(types.iter().map(|t| (*t).to_owned()).collect())
}

/// Every NetworkPolicy the namespace should have, by name. A mail-locked plan has no
/// `allow-smtp-egress`, so the controller removes it. `relay`: the provider's mail relay,
/// which the mail pods (and only they) reach on its one port, wherever it is.
pub fn network_policies(
    plan: &HostingPlan,
    network: &NetworkConfig,
    relay: Option<SocketAddr>,
) -> Vec<NetworkPolicy> {
    let internet = NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: "0.0.0.0/0".into(),
            except: Some(BLOCKED_V4.iter().map(|c| (*c).to_owned()).collect()),
        }),
        ..NetworkPolicyPeer::default()
    };
    let mut policies = vec![
        policy(
            plan,
            DEFAULT_DENY,
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: types(&["Ingress", "Egress"]),
                ..NetworkPolicySpec::default()
            },
        ),
        policy(
            plan,
            ALLOW_INGRESS,
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: types(&["Ingress"]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![
                        namespace_named(&network.ingress_namespace),
                        namespace_named(&network.monitor_namespace),
                        own_pods(),
                    ]),
                    ..NetworkPolicyIngressRule::default()
                }]),
                ..NetworkPolicySpec::default()
            },
        ),
        policy(
            plan,
            ALLOW_EGRESS,
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: types(&["Egress"]),
                egress: Some(vec![
                    NetworkPolicyEgressRule {
                        to: Some(vec![namespace_named("kube-system")]),
                        ports: Some([ports("UDP", &[53]), ports("TCP", &[53])].concat()),
                    },
                    NetworkPolicyEgressRule {
                        to: Some(vec![own_pods()]),
                        ports: None,
                    },
                    NetworkPolicyEgressRule {
                        to: Some(vec![internet.clone()]),
                        ports: Some(ports("TCP", &[80, 443])),
                    },
                ]),
                ..NetworkPolicySpec::default()
            },
        ),
    ];
    if network.load_balancer.enabled {
        // Anyone may reach the public Services' ports, and nothing else of those pods.
        let anyone = ["0.0.0.0/0", "::/0"].map(|cidr| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.into(),
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        });
        for (group, numbers) in super::public::target_ports(plan) {
            policies.push(policy(
                plan,
                &format!("{ALLOW_PUBLIC}-{}", group.name()),
                NetworkPolicySpec {
                    pod_selector: Some(pods_labelled(&[(
                        naming::LABEL_SERVICE_GROUP,
                        group.name(),
                    )])),
                    policy_types: types(&["Ingress"]),
                    ingress: Some(vec![NetworkPolicyIngressRule {
                        from: Some(anyone.to_vec()),
                        ports: Some(ports("TCP", &numbers)),
                    }]),
                    ..NetworkPolicySpec::default()
                },
            ));
        }
    }
    if plan.mail.is_some() && !plan.mail_locked {
        // Only the mail service's pods send mail; PHP code in the web pods does not reach
        // remote SMTP servers (it hands mail to the mail service inside the namespace).
        let mail_pods = pods_labelled(&[(naming::LABEL_SERVICE_GROUP, ServiceGroup::Mail.name())]);
        policies.push(policy(
            plan,
            ALLOW_SMTP_EGRESS,
            NetworkPolicySpec {
                pod_selector: Some(mail_pods),
                policy_types: types(&["Egress"]),
                egress: Some(
                    std::iter::once(NetworkPolicyEgressRule {
                        to: Some(vec![internet]),
                        ports: Some(ports("TCP", &SMTP_PORTS)),
                    })
                    .chain(relay.map(|relay| NetworkPolicyEgressRule {
                        to: Some(vec![NetworkPolicyPeer {
                            ip_block: Some(IPBlock {
                                cidr: match relay.ip() {
                                    IpAddr::V4(ip) => format!("{ip}/32"),
                                    IpAddr::V6(ip) => format!("{ip}/128"),
                                },
                                except: None,
                            }),
                            ..NetworkPolicyPeer::default()
                        }]),
                        ports: Some(ports("TCP", &[relay.port()])),
                    }))
                    .collect(),
                ),
                ..NetworkPolicySpec::default()
            },
        ));
    }
    policies
}

#[cfg(test)]
mod tests {
    use super::super::tests::business_plan;
    use super::*;

    fn names(plan: &HostingPlan) -> Vec<String> {
        network_policies(plan, &NetworkConfig::default(), None)
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect()
    }

    #[test]
    fn default_deny_covers_both_directions() {
        let all = network_policies(&business_plan(), &NetworkConfig::default(), None);
        let deny = all[0].spec.as_ref().unwrap();
        assert_eq!(
            deny.policy_types.as_deref(),
            Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
        );
        assert!(deny.ingress.is_none() && deny.egress.is_none());
    }

    #[test]
    fn ingress_only_from_the_ingress_controller_monitor_and_own_pods() {
        let all = network_policies(&business_plan(), &NetworkConfig::default(), None);
        let ingress = all[1].spec.as_ref().unwrap().ingress.as_ref().unwrap();
        let text = serde_json::to_string(ingress).unwrap();
        assert!(
            text.contains("ingress-nginx") && text.contains("oem-hosting-system"),
            "{text}"
        );
        assert_eq!(ingress[0].from.as_ref().unwrap().len(), 3);
    }

    /// Every `ipBlock` of every egress rule of the plan's policies.
    fn ip_blocks(plan: &HostingPlan) -> Vec<(String, Vec<String>)> {
        network_policies(plan, &NetworkConfig::default(), None)
            .into_iter()
            .flat_map(|p| p.spec.unwrap().egress.unwrap_or_default())
            .flat_map(|rule| rule.to.unwrap_or_default())
            .filter_map(|peer| peer.ip_block)
            .map(|b| (b.cidr, b.except.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn egress_never_reaches_private_ranges() {
        let blocks = ip_blocks(&business_plan());
        assert!(!blocks.is_empty());
        for (cidr, except) in blocks {
            for range in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] {
                assert!(except.contains(&range.to_owned()), "{range} open in {cidr}");
            }
        }
    }

    #[test]
    fn egress_never_reaches_metadata_cgnat_loopback_multicast_or_reserved_ranges() {
        for (cidr, except) in ip_blocks(&business_plan()) {
            assert_eq!(cidr, "0.0.0.0/0", "no IPv6 or other block is opened");
            for range in [
                "169.254.0.0/16",
                "100.64.0.0/10",
                "0.0.0.0/8",
                "127.0.0.0/8",
                "224.0.0.0/4",
                "240.0.0.0/4",
            ] {
                assert!(except.contains(&range.to_owned()), "{range} open in {cidr}");
            }
        }
    }

    #[test]
    fn only_the_mail_service_pods_reach_remote_smtp() {
        let all = network_policies(&business_plan(), &NetworkConfig::default(), None);
        let smtp_ports = |p: &NetworkPolicy| -> Vec<i32> {
            p.spec
                .as_ref()
                .and_then(|s| s.egress.clone())
                .unwrap_or_default()
                .into_iter()
                .flat_map(|rule| rule.ports.unwrap_or_default())
                .filter_map(|port| match port.port {
                    Some(IntOrString::Int(n)) if SMTP_PORTS.contains(&(n as u16)) => Some(n),
                    _ => None,
                })
                .collect()
        };
        for policy in &all {
            let spec = policy.spec.as_ref().unwrap();
            if smtp_ports(policy).is_empty() {
                continue;
            }
            assert_eq!(policy.metadata.name.as_deref(), Some(ALLOW_SMTP_EGRESS));
            let selected = spec
                .pod_selector
                .as_ref()
                .and_then(|s| s.match_labels.clone())
                .unwrap_or_default();
            assert_eq!(
                selected
                    .get(naming::LABEL_SERVICE_GROUP)
                    .map(String::as_str),
                Some("mail"),
                "SMTP egress must select the mail pods only: {selected:?}"
            );
        }
        let smtp = all
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(ALLOW_SMTP_EGRESS))
            .unwrap();
        assert_eq!(smtp_ports(smtp), vec![25, 465, 587]);
    }

    #[test]
    fn mail_lock_removes_smtp_egress() {
        let mut plan = business_plan();
        assert!(names(&plan).contains(&ALLOW_SMTP_EGRESS.to_owned()));
        plan.mail_locked = true;
        assert!(!names(&plan).contains(&ALLOW_SMTP_EGRESS.to_owned()));
    }

    #[test]
    fn the_providers_relay_is_reached_by_the_mail_pods_on_its_port_only_while_unlocked() {
        let relay: SocketAddr = "10.20.0.5:2525".parse().unwrap();
        let smtp_rules = |plan: &HostingPlan| {
            network_policies(plan, &NetworkConfig::default(), Some(relay))
                .into_iter()
                .filter(|p| p.metadata.name.as_deref() == Some(ALLOW_SMTP_EGRESS))
                .flat_map(|p| p.spec.unwrap().egress.unwrap_or_default())
                .map(|rule| serde_json::to_value(rule).unwrap())
                .collect::<Vec<_>>()
        };
        let mut plan = business_plan();
        let rules = smtp_rules(&plan);
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert_eq!(
            rules[1],
            serde_json::json!({"to": [{"ipBlock": {"cidr": "10.20.0.5/32"}}], "ports": [{"protocol": "TCP", "port": 2525}]})
        );
        plan.mail_locked = true;
        assert!(smtp_rules(&plan).is_empty());
    }

    #[test]
    fn public_ports_are_open_to_the_world_only_with_a_load_balancer() {
        let plan = business_plan();
        let closed = network_policies(&plan, &NetworkConfig::default(), None);
        assert!(
            closed
                .iter()
                .all(|p| !p.metadata.name.as_ref().unwrap().starts_with(ALLOW_PUBLIC))
        );
        let mut network = NetworkConfig::default();
        network.load_balancer.enabled = true;
        let open = network_policies(&plan, &network, None);
        let public: Vec<_> = open
            .iter()
            .filter(|p| p.metadata.name.as_ref().unwrap().starts_with(ALLOW_PUBLIC))
            .collect();
        let names: Vec<_> = public
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["allow-public-mail", "allow-public-web"]);
        // The ports each policy opens, by policy.
        let opened = |policy: &NetworkPolicy| -> Vec<Option<IntOrString>> {
            let rule = &policy.spec.as_ref().unwrap().ingress.as_ref().unwrap()[0];
            let ports = rule.ports.as_ref().unwrap();
            ports.iter().map(|p| p.port.clone()).collect()
        };
        let (mail, web) = (opened(public[0]), opened(public[1]));
        assert!(mail.contains(&Some(IntOrString::Int(2525))));
        assert!(
            !mail.contains(&Some(IntOrString::Int(9154))),
            "the metrics port stays closed"
        );
        assert!(web.contains(&Some(IntOrString::Int(2121))));
        assert!(
            !web.contains(&Some(IntOrString::Int(8080))),
            "http stays behind the ingress"
        );
    }
}
