//! The end user's certificate, when the provider names a cert-manager issuer
//! (`certificates.issuer`): one cert-manager `Certificate` in the hosting namespace for every
//! domain the end user holds (and its mail host's name when it runs its own mail service),
//! written into the Secret [`TLS_SECRET`] that the Ingresses and the TLS services present. A
//! domain added is in the next certificate; a domain removed is left out of it. With an ACME
//! issuer's HTTP-01 solver, cert-manager starts a solver pod in the hosting namespace for each
//! domain being validated: the namespace's quota keeps room for them ([`make_room`]), and the
//! NetworkPolicies already let the ingress controller in.

use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::config::{CertificatesConfig, IssuerRef, SolverAllowance};
use super::namespace::ephemeral_per_container;
use super::{HostingPlan, TLS_SECRET};
use oem_crds::quantity;

/// cert-manager's `Certificate` (cert-manager.io/v1), as much of it as the operator writes.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "Certificate",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    pub secret_name: String,
    pub dns_names: Vec<String>,
    pub issuer_ref: IssuerRef,
    pub private_key: PrivateKey,
}

/// The key of each issued certificate: ECDSA P-256 (what every hosting image serves), a new
/// one at each issuance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrivateKey {
    pub algorithm: String,
    pub size: u32,
    pub rotation_policy: String,
}

impl Default for PrivateKey {
    fn default() -> Self {
        Self {
            algorithm: "ECDSA".into(),
            size: 256,
            rotation_policy: "Always".into(),
        }
    }
}

/// Which host names of its own, beside its domains, clients reach an end user's services by.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hosts {
    /// The provider runs a shared mail exchanger: no `mail.<first domain>` of the end user's.
    pub shared_exchanger: bool,
    /// FTP has an address of its own (`network.loadBalancer`): `ftp.<first domain>`.
    pub public_ftp: bool,
}

/// The names the certificate covers: the end user's domains, `mail.<first domain>` when it
/// runs its own mail service and the provider has no shared mail exchanger, and
/// `ftp.<first domain>` when its FTP server has an address of its own.
pub fn dns_names(plan: &HostingPlan, hosts: Hosts) -> Vec<String> {
    let mut names = plan.domains.clone();
    let mut add = |host: String| {
        if !names.contains(&host) {
            names.push(host);
        }
    };
    if plan.mail.is_some() && !hosts.shared_exchanger && !plan.domains.is_empty() {
        add(plan.mail_hostname());
    }
    if plan.ftp.is_some()
        && hosts.public_ftp
        && let Some(host) = super::public::ftp_hostname(plan)
    {
        add(host);
    }
    names
}

/// The namespace's Certificates: one named like its Secret, or none when no issuer is set or
/// the end user holds no domain (the controller then removes a Certificate made before).
pub fn certificates(
    plan: &HostingPlan,
    config: &CertificatesConfig,
    hosts: Hosts,
) -> Vec<Certificate> {
    let Some(issuer) = &config.issuer else {
        return Vec::new();
    };
    let dns_names = dns_names(plan, hosts);
    if dns_names.is_empty() {
        return Vec::new();
    }
    vec![Certificate {
        metadata: ObjectMeta {
            name: Some(TLS_SECRET.to_owned()),
            namespace: Some(plan.namespace.clone()),
            labels: Some(plan.labels()),
            ..ObjectMeta::default()
        },
        spec: CertificateSpec {
            secret_name: TLS_SECRET.to_owned(),
            dns_names,
            issuer_ref: issuer.clone(),
            private_key: PrivateKey::default(),
        },
    }]
}

/// Adds to the quota what the HTTP-01 solver pods of one issuance may use: one pod per name
/// being validated, each with `solver`'s cpu and memory (requests and limits) and a container's
/// ephemeral storage. Nothing when no issuer is set.
pub fn make_room(
    quota: &mut ResourceQuota,
    plan: &HostingPlan,
    config: &CertificatesConfig,
    hosts: Hosts,
) {
    if config.issuer.is_none() {
        return;
    }
    let solvers = dns_names(plan, hosts).len() as u64;
    if solvers == 0 {
        return;
    }
    let Some(hard) = quota.spec.as_mut().and_then(|s| s.hard.as_mut()) else {
        return;
    };
    let SolverAllowance { cpu, memory } = &config.solver;
    let (cpu, memory) = (
        quantity::value(cpu).unwrap_or(0.0),
        quantity::value(memory).unwrap_or(0.0),
    );
    let ephemeral = (ephemeral_per_container(plan) * solvers) as f64 * 1024.0 * 1024.0;
    let grow = |hard: &mut std::collections::BTreeMap<String, Quantity>, key: &str, by: f64| {
        if let Some(now) = hard.get(key).and_then(|q| quantity::value(&q.0)) {
            let total = now + by;
            let text = if key.ends_with("cpu") {
                format!("{}m", (total * 1000.0).round() as u64)
            } else {
                format!("{}", total.round() as u64)
            };
            hard.insert(key.to_owned(), Quantity(text));
        }
    };
    for key in ["requests.cpu", "limits.cpu"] {
        grow(hard, key, cpu * solvers as f64);
    }
    for key in ["requests.memory", "limits.memory"] {
        grow(hard, key, memory * solvers as f64);
    }
    for key in ["requests.ephemeral-storage", "limits.ephemeral-storage"] {
        grow(hard, key, ephemeral);
    }
    grow(hard, "pods", solvers as f64);
}

#[cfg(test)]
mod tests {
    use super::super::tests::business_plan;
    use super::*;

    fn issuing() -> CertificatesConfig {
        CertificatesConfig {
            issuer: Some(IssuerRef {
                name: "letsencrypt".into(),
                kind: "ClusterIssuer".into(),
                group: "cert-manager.io".into(),
            }),
            solver: SolverAllowance::default(),
        }
    }

    fn hard(quota: &ResourceQuota, key: &str) -> f64 {
        let hard = quota.spec.as_ref().unwrap().hard.as_ref().unwrap();
        quantity::value(&hard[key].0).unwrap()
    }

    #[test]
    fn one_certificate_for_every_domain_and_the_mail_host() {
        let plan = business_plan();
        let all = certificates(&plan, &issuing(), Hosts::default());
        assert_eq!(all.len(), 1);
        let cert = &all[0];
        assert_eq!(cert.metadata.name.as_deref(), Some(TLS_SECRET));
        assert_eq!(cert.spec.secret_name, TLS_SECRET);
        let mut want = plan.domains.clone();
        want.push(format!("mail.{}", plan.domains[0]));
        assert_eq!(cert.spec.dns_names, want);
        assert_eq!(cert.spec.issuer_ref.name, "letsencrypt");
        // What server-side apply is sent names its kind.
        let sent = serde_json::to_value(cert).unwrap();
        assert_eq!(sent["apiVersion"], "cert-manager.io/v1");
        assert_eq!(sent["kind"], "Certificate");
        assert_eq!(sent["spec"]["privateKey"]["rotationPolicy"], "Always");
        // A shared mail exchanger: the end user's own mail host is not a name clients use.
        let shared = Hosts {
            shared_exchanger: true,
            public_ftp: false,
        };
        let shared = certificates(&plan, &issuing(), shared);
        assert_eq!(shared[0].spec.dns_names, plan.domains);
        // FTP with an address of its own: clients reach it as ftp.<first domain>.
        let public = Hosts {
            shared_exchanger: true,
            public_ftp: true,
        };
        let mut want = plan.domains.clone();
        want.push(format!("ftp.{}", plan.domains[0]));
        assert_eq!(
            certificates(&plan, &issuing(), public)[0].spec.dns_names,
            want
        );
    }

    #[test]
    fn no_issuer_or_no_domain_no_certificate() {
        let mut plan = business_plan();
        assert!(certificates(&plan, &CertificatesConfig::default(), Hosts::default()).is_empty());
        plan.domains.clear();
        assert!(certificates(&plan, &issuing(), Hosts::default()).is_empty());
    }

    #[test]
    fn the_quota_keeps_room_for_a_solver_per_name() {
        let plan = business_plan();
        let base = super::super::resource_quota(&plan);
        let mut quota = base.clone();
        make_room(
            &mut quota,
            &plan,
            &CertificatesConfig::default(),
            Hosts::default(),
        );
        assert_eq!(quota, base, "no issuer: the course's quota as it is");
        make_room(&mut quota, &plan, &issuing(), Hosts::default());
        let names = dns_names(&plan, Hosts::default()).len() as f64;
        assert!(names >= 2.0);
        assert_eq!(hard(&quota, "pods"), hard(&base, "pods") + names);
        for key in ["requests.cpu", "limits.cpu"] {
            let grown = hard(&quota, key) - hard(&base, key);
            assert!((grown - 0.1 * names).abs() < 1e-9, "{key}: {grown}");
        }
        for key in ["requests.memory", "limits.memory"] {
            assert_eq!(
                hard(&quota, key) - hard(&base, key),
                64.0 * 1024.0 * 1024.0 * names
            );
        }
        assert!(hard(&quota, "limits.ephemeral-storage") > hard(&base, "limits.ephemeral-storage"));
        // Room for solvers, never for a tenant's own load balancer or node port.
        assert_eq!(hard(&quota, "services.loadbalancers"), 0.0);
        assert_eq!(hard(&quota, "services.nodeports"), 0.0);
    }
}
