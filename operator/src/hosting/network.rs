//! The hosting namespace's NetworkPolicies: deny by default; traffic in only from the ingress
//! controller's and the monitor's namespaces (and between the end user's own pods); traffic
//! out to DNS and the internet but never to private ranges (other tenants); SMTP out in a
//! policy of its own, left out while the account is mail-locked.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};

use crate::config::NetworkConfig;

use super::HostingPlan;

pub const DEFAULT_DENY: &str = "default-deny";
pub const ALLOW_INGRESS: &str = "allow-ingress";
pub const ALLOW_EGRESS: &str = "allow-egress";
pub const ALLOW_SMTP_EGRESS: &str = "allow-smtp-egress";

/// Private ranges: other tenants, the cluster's own networks, the provider's systems.
const PRIVATE: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];
const SMTP_PORTS: [u16; 3] = [25, 465, 587];

fn policy(plan: &HostingPlan, name: &str, spec: Value) -> Result<NetworkPolicy, serde_json::Error> {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": plan.namespace, "labels": plan.labels()},
        "spec": spec
    }))
}

/// Every NetworkPolicy the namespace should have, by name. A mail-locked plan has no
/// `allow-smtp-egress`, so the controller removes it.
pub fn network_policies(
    plan: &HostingPlan,
    network: &NetworkConfig,
) -> Result<Vec<NetworkPolicy>, serde_json::Error> {
    let from_namespaces = json!([
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": network.ingress_namespace}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": network.monitor_namespace}}},
        {"podSelector": {}}
    ]);
    let internet = json!({"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE}});
    let mut policies = vec![
        policy(
            plan,
            DEFAULT_DENY,
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        )?,
        policy(
            plan,
            ALLOW_INGRESS,
            json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": from_namespaces}]}),
        )?,
        policy(
            plan,
            ALLOW_EGRESS,
            json!({
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                     "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                    {"to": [{"podSelector": {}}]},
                    {"to": [internet], "ports": [
                        {"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 443}]}
                ]
            }),
        )?,
    ];
    if plan.mail.is_some() && !plan.mail_locked {
        let ports: Vec<Value> = SMTP_PORTS
            .iter()
            .map(|p| json!({"protocol": "TCP", "port": p}))
            .collect();
        policies.push(policy(
            plan,
            ALLOW_SMTP_EGRESS,
            json!({"podSelector": {}, "policyTypes": ["Egress"],
                   "egress": [{"to": [internet], "ports": ports}]}),
        )?);
    }
    Ok(policies)
}

#[cfg(test)]
mod tests {
    use super::super::tests::business_plan;
    use super::*;

    fn names(plan: &HostingPlan) -> Vec<String> {
        network_policies(plan, &NetworkConfig::default())
            .unwrap()
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect()
    }

    #[test]
    fn default_deny_covers_both_directions() {
        let all = network_policies(&business_plan(), &NetworkConfig::default()).unwrap();
        let deny = all[0].spec.as_ref().unwrap();
        assert_eq!(
            deny.policy_types.as_deref(),
            Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
        );
        assert!(deny.ingress.is_none() && deny.egress.is_none());
    }

    #[test]
    fn ingress_only_from_the_ingress_controller_monitor_and_own_pods() {
        let all = network_policies(&business_plan(), &NetworkConfig::default()).unwrap();
        let ingress = all[1].spec.as_ref().unwrap().ingress.as_ref().unwrap();
        let text = serde_json::to_string(ingress).unwrap();
        assert!(
            text.contains("ingress-nginx") && text.contains("oem-hosting-system"),
            "{text}"
        );
        assert_eq!(ingress[0].from.as_ref().unwrap().len(), 3);
    }

    #[test]
    fn egress_never_reaches_private_ranges() {
        let all = network_policies(&business_plan(), &NetworkConfig::default()).unwrap();
        let text = serde_json::to_string(&all[2]).unwrap();
        for range in PRIVATE {
            assert!(text.contains(range), "{range} missing in {text}");
        }
    }

    #[test]
    fn mail_lock_removes_smtp_egress() {
        let mut plan = business_plan();
        assert!(names(&plan).contains(&ALLOW_SMTP_EGRESS.to_owned()));
        plan.mail_locked = true;
        assert!(!names(&plan).contains(&ALLOW_SMTP_EGRESS.to_owned()));
    }
}
