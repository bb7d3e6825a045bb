//! Mail and FTP from outside the cluster (`network.loadBalancer`): each end user's mail service
//! and FTP server get an address of their own, from the cluster's load-balancer implementation
//! (e.g. MetalLB), as two Services of type LoadBalancer beside the ClusterIP ones: `mail-public`
//! (SMTP 25, submission 587, SMTPS 465, POP3/POP3S, IMAP/IMAPS) and `ftp-public` (21 and the
//! passive data ports). Web traffic keeps going through the shared ingress controller.
//!
//! The Services keep the client's address (`externalTrafficPolicy: Local`: the MTA sees who
//! sends, the FTP server checks that data connections come from the control connection's
//! client) and allocate no node ports, so the quota's `services.nodeports` stays 0 and its
//! `services.loadbalancers` is exactly the count written here: nobody else in the namespace can
//! open one. The NetworkPolicy `allow-public` lets the world reach those ports only
//! (`network.rs`). The addresses the implementation assigns are the mail host's and the FTP
//! host's A/AAAA records in `status.dns` (`dns.rs`).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ResourceQuota, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::HostingPlan;
use super::config::LoadBalancerConfig;
use super::workloads::{FTP_PORTS, MAIL_PORTS, ServiceGroup, selector};

pub const MAIL_PUBLIC: &str = "mail-public";
pub const FTP_PUBLIC: &str = "ftp-public";

/// The addresses the load balancer gave an end user's public Services (empty: none yet).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublicAddresses {
    pub mail: Vec<IpAddr>,
    pub ftp: Vec<IpAddr>,
}

/// The FTP host's name, whose records point at `ftp-public`: `ftp.` and the first domain.
pub fn ftp_hostname(plan: &HostingPlan) -> Option<String> {
    plan.domains.first().map(|domain| format!("ftp.{domain}"))
}

/// The public ports of each group: the mail service's client ports (not its metrics), the FTP
/// server's control and data ports.
fn ports(group: ServiceGroup) -> Vec<ServicePort> {
    let list: &[(&str, u16, u16)] = match group {
        ServiceGroup::Mail => &MAIL_PORTS,
        _ => &FTP_PORTS,
    };
    list.iter()
        .filter(|(name, _, _)| *name != "metrics")
        .map(|(name, target, port)| ServicePort {
            name: Some((*name).to_owned()),
            port: i32::from(*port),
            target_port: Some(IntOrString::Int(i32::from(*target))),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        })
        .collect()
}

/// The container ports the world may reach, by group (for `allow-public`).
pub fn target_ports(plan: &HostingPlan) -> Vec<(ServiceGroup, Vec<u16>)> {
    public_groups(plan)
        .into_iter()
        .map(|(_, group)| {
            let ports = ports(group)
                .iter()
                .filter_map(|p| match p.target_port {
                    Some(IntOrString::Int(n)) => u16::try_from(n).ok(),
                    _ => None,
                })
                .collect();
            (group, ports)
        })
        .collect()
}

/// Which public Services the plan has: mail-public with the mail service, ftp-public with FTP.
fn public_groups(plan: &HostingPlan) -> Vec<(&'static str, ServiceGroup)> {
    let mut groups = Vec::new();
    if plan.mail.is_some() {
        groups.push((MAIL_PUBLIC, ServiceGroup::Mail));
    }
    if plan.ftp.is_some() {
        groups.push((FTP_PUBLIC, ServiceGroup::Web));
    }
    groups
}

/// The public Services (none unless `config.enabled`).
pub fn services(plan: &HostingPlan, config: &LoadBalancerConfig) -> Vec<Service> {
    if !config.enabled {
        return Vec::new();
    }
    public_groups(plan)
        .into_iter()
        .map(|(name, group)| Service {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(plan.namespace.clone()),
                labels: Some(plan.labels()),
                annotations: (!config.annotations.is_empty()).then(|| config.annotations.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_class: config.class_name.clone(),
                allocate_load_balancer_node_ports: Some(false),
                external_traffic_policy: Some("Local".into()),
                selector: Some(selector(plan, group)),
                ports: Some(ports(group)),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        })
        .collect()
}

/// Sets the quota's `services.loadbalancers` to the count of public Services: the operator's
/// own, and no more.
pub fn allow(quota: &mut ResourceQuota, plan: &HostingPlan, config: &LoadBalancerConfig) {
    let count = services(plan, config).len();
    if let Some(hard) = quota.spec.as_mut().and_then(|s| s.hard.as_mut()) {
        hard.insert("services.loadbalancers".into(), Quantity(count.to_string()));
    }
}

/// The addresses in a Service's status (what the implementation assigned).
pub fn assigned(service: &Service) -> Vec<IpAddr> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::tests::business_plan;
    use super::*;

    fn enabled() -> LoadBalancerConfig {
        LoadBalancerConfig {
            enabled: true,
            class_name: None,
            annotations: BTreeMap::from([(
                "metallb.universe.tf/address-pool".into(),
                "hosting".into(),
            )]),
        }
    }

    #[test]
    fn mail_and_ftp_get_a_load_balancer_each_keeping_the_client_address_without_node_ports() {
        let plan = business_plan();
        assert!(services(&plan, &LoadBalancerConfig::default()).is_empty());
        let all = services(&plan, &enabled());
        let names: Vec<_> = all.iter().filter_map(|s| s.metadata.name.clone()).collect();
        assert_eq!(names, [MAIL_PUBLIC, FTP_PUBLIC]);
        for service in &all {
            let spec = service.spec.as_ref().unwrap();
            assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
            assert_eq!(spec.allocate_load_balancer_node_ports, Some(false));
            assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
            assert_eq!(
                service.metadata.annotations.as_ref().unwrap()["metallb.universe.tf/address-pool"],
                "hosting"
            );
        }
        let mail: Vec<i32> = all[0]
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(
            mail,
            [25, 587, 465, 110, 995, 143, 993],
            "no metrics port outside"
        );
        let ftp = all[1].spec.as_ref().unwrap().ports.as_ref().unwrap();
        assert_eq!(ftp[0].port, 21);
        assert_eq!(ftp.len(), 11, "control and the ten passive ports");
    }

    #[test]
    fn the_quota_allows_exactly_the_operators_load_balancers() {
        let plan = business_plan();
        let mut quota = super::super::resource_quota(&plan);
        let hard = |q: &ResourceQuota| {
            q.spec.as_ref().unwrap().hard.as_ref().unwrap()["services.loadbalancers"]
                .0
                .clone()
        };
        allow(&mut quota, &plan, &LoadBalancerConfig::default());
        assert_eq!(hard(&quota), "0");
        allow(&mut quota, &plan, &enabled());
        assert_eq!(hard(&quota), "2");
        let nodeports = &quota.spec.as_ref().unwrap().hard.as_ref().unwrap()["services.nodeports"];
        assert_eq!(nodeports.0, "0");
    }

    #[test]
    fn assigned_addresses_are_read_from_the_status() {
        let mut service = services(&business_plan(), &enabled()).remove(0);
        assert!(assigned(&service).is_empty());
        service.status = Some(
            serde_json::from_value(serde_json::json!({
                "loadBalancer": {"ingress": [{"ip": "10.251.0.100"}, {"hostname": "lb.example"}]}
            }))
            .unwrap(),
        );
        assert_eq!(
            assigned(&service),
            ["10.251.0.100".parse::<IpAddr>().unwrap()]
        );
    }
}
