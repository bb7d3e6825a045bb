//! The service groups' workloads: one StatefulSet of 1 per group with its data volume, a
//! Service per group with a port per protocol, and an Ingress per domain for the web group.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{Value, json};

use crate::config::Config;

use super::{DbEngine, GroupResources, HostingPlan, split_resources};

/// The workloads of a hosting namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceGroup {
    /// http/https with PHP, and ftp/ftps sharing the document root.
    Web,
    /// smtp/smtps, pop3/pop3s and imap/imaps sharing the mailbox store.
    Mail,
    /// mariadb or postgresql.
    Db,
}

impl ServiceGroup {
    pub const ALL: [ServiceGroup; 3] = [ServiceGroup::Web, ServiceGroup::Mail, ServiceGroup::Db];

    /// Name of the group's StatefulSet and Service.
    pub fn name(self) -> &'static str {
        match self {
            ServiceGroup::Web => "web",
            ServiceGroup::Mail => "mail",
            ServiceGroup::Db => "db",
        }
    }
}

/// A container port: (name, container port, service port).
type Port = (&'static str, u16, u16);

const WEB_PORTS: [Port; 2] = [("http", 8080, 80), ("https", 8443, 443)];
const FTP_PORTS: [Port; 1] = [("ftp", 2121, 21)];
const SMTP_PORTS: [Port; 2] = [("smtp", 2525, 25), ("smtps", 4465, 465)];
const MAILBOX_PORTS: [Port; 4] = [
    ("pop3", 1110, 110),
    ("pop3s", 1995, 995),
    ("imap", 1143, 143),
    ("imaps", 1993, 993),
];
const MARIADB_PORTS: [Port; 1] = [("mysql", 3306, 3306)];
const POSTGRESQL_PORTS: [Port; 1] = [("postgresql", 5432, 5432)];

/// A container of a group: name, image, ports, where the data volume is mounted.
struct ContainerPlan {
    name: &'static str,
    image: String,
    ports: &'static [Port],
    mount: &'static str,
    env: Vec<Value>,
}

fn containers(plan: &HostingPlan, group: ServiceGroup, config: &Config) -> Vec<ContainerPlan> {
    let images = &config.images;
    let secret_env = |name: &str, key: &str| json!({"name": name, "valueFrom": {"secretKeyRef": {"name": super::CREDENTIALS_SECRET, "key": key}}});
    match group {
        ServiceGroup::Web => {
            let mut out = Vec::new();
            if let Some(php) = &plan.web {
                out.push(ContainerPlan {
                    name: "web",
                    image: images.web.clone(),
                    ports: &WEB_PORTS,
                    mount: "/var/www",
                    env: vec![json!({"name": "PHP_VERSION", "value": php})],
                });
            }
            if plan.ftp {
                out.push(ContainerPlan {
                    name: "ftp",
                    image: images.ftp.clone(),
                    ports: &FTP_PORTS,
                    mount: "/var/www",
                    env: vec![secret_env("FTP_PASSWORD", "ftp-password")],
                });
            }
            out
        }
        ServiceGroup::Mail => vec![
            ContainerPlan {
                name: "smtp",
                image: images.mail.clone(),
                ports: &SMTP_PORTS,
                mount: "/var/mail",
                env: vec![
                    json!({"name": "MAX_SENDS_PER_HOUR", "value": plan.mail.unwrap_or(0).to_string()}),
                ],
            },
            ContainerPlan {
                name: "mailbox",
                image: images.mail.clone(),
                ports: &MAILBOX_PORTS,
                mount: "/var/mail",
                env: vec![secret_env("MAIL_PASSWORD", "mail-password")],
            },
        ],
        ServiceGroup::Db => match plan.database {
            Some(DbEngine::PostgreSql) => vec![ContainerPlan {
                name: "postgresql",
                image: images.postgresql.clone(),
                ports: &POSTGRESQL_PORTS,
                mount: "/var/lib/postgresql/data",
                env: vec![secret_env("POSTGRES_PASSWORD", "db-password")],
            }],
            _ => vec![ContainerPlan {
                name: "mariadb",
                image: images.mariadb.clone(),
                ports: &MARIADB_PORTS,
                mount: "/var/lib/mysql",
                env: vec![secret_env("MARIADB_ROOT_PASSWORD", "db-password")],
            }],
        },
    }
}

fn selector(plan: &HostingPlan, group: ServiceGroup) -> Value {
    json!({
        "app.kubernetes.io/name": group.name(),
        "app.kubernetes.io/instance": plan.enduser,
    })
}

fn divide(total: &str, parts: usize, unit: &str) -> String {
    let value: u64 = total.trim_end_matches(unit).parse().unwrap_or(1);
    format!("{}{unit}", (value / parts.max(1) as u64).max(1))
}

fn container(c: &ContainerPlan, res: &GroupResources, parts: usize) -> Value {
    let cpu = divide(&res.cpu, parts, "m");
    let memory = divide(&res.memory, parts, "Mi");
    let first_port = c.ports.first().map(|p| p.1).unwrap_or(80);
    let ports: Vec<Value> = c
        .ports
        .iter()
        .map(|(name, port, _)| json!({"name": name, "containerPort": port, "protocol": "TCP"}))
        .collect();
    json!({
        "name": c.name,
        "image": c.image,
        "ports": ports,
        "env": c.env,
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu, "memory": memory}
        },
        "volumeMounts": [{"name": "data", "mountPath": c.mount}],
        "livenessProbe": {"tcpSocket": {"port": first_port}, "periodSeconds": 20, "failureThreshold": 3},
        "readinessProbe": {"tcpSocket": {"port": first_port}, "periodSeconds": 10},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": true,
            "seccompProfile": {"type": "RuntimeDefault"}
        }
    })
}

/// One StatefulSet per enabled group; replicas 0 while suspended (volumes are kept).
pub fn stateful_sets(
    plan: &HostingPlan,
    config: &Config,
) -> Result<Vec<StatefulSet>, serde_json::Error> {
    let groups = plan.groups();
    let Some(shares) = split_resources(
        &plan.cpu,
        &plan.memory,
        &plan.storage,
        &groups,
        &config.resource_split,
    ) else {
        return Ok(Vec::new());
    };
    shares
        .iter()
        .map(|(group, res)| {
            let cs = containers(plan, *group, config);
            let mut labels = plan.labels();
            labels.insert(crate::naming::LABEL_SERVICE_GROUP.into(), group.name().into());
            if let Value::Object(sel) = selector(plan, *group) {
                for (k, v) in sel {
                    labels.insert(k, v.as_str().unwrap_or_default().to_owned());
                }
            }
            let containers: Vec<Value> = cs.iter().map(|c| container(c, res, cs.len())).collect();
            let mut claim_labels = plan.labels();
            claim_labels.insert(crate::naming::LABEL_SERVICE_GROUP.into(), group.name().into());
            let mut claim = json!({
                "metadata": {"name": "data", "labels": claim_labels},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": res.storage}}
                }
            });
            if let Some(class) = &config.storage_class {
                claim["spec"]["storageClassName"] = json!(class);
            }
            serde_json::from_value(json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": group.name(), "namespace": plan.namespace, "labels": labels},
                "spec": {
                    "replicas": if plan.suspended { 0 } else { 1 },
                    "serviceName": group.name(),
                    "selector": {"matchLabels": selector(plan, *group)},
                    "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Retain", "whenDeleted": "Retain"},
                    "template": {
                        "metadata": {
                            "labels": labels,
                            "annotations": {
                                "kubernetes.io/ingress-bandwidth": plan.bandwidth,
                                "kubernetes.io/egress-bandwidth": plan.bandwidth
                            }
                        },
                        "spec": {
                            "automountServiceAccountToken": false,
                            "enableServiceLinks": false,
                            "securityContext": {
                                "runAsNonRoot": true,
                                "runAsUser": 10001,
                                "runAsGroup": 10001,
                                "fsGroup": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"}
                            },
                            "containers": containers
                        }
                    },
                    "volumeClaimTemplates": [claim]
                }
            }))
        })
        .collect()
}

/// One Service per group, a named port per protocol.
pub fn services(plan: &HostingPlan, config: &Config) -> Result<Vec<Service>, serde_json::Error> {
    plan.groups()
        .into_iter()
        .map(|group| {
            let ports: Vec<Value> = containers(plan, group, config)
                .iter()
                .flat_map(|c| c.ports.iter())
                .map(|(name, target, port)| {
                    json!({"name": name, "port": port, "targetPort": target, "protocol": "TCP"})
                })
                .collect();
            serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": group.name(), "namespace": plan.namespace, "labels": plan.labels()},
                "spec": {"type": "ClusterIP", "selector": selector(plan, group), "ports": ports}
            }))
        })
        .collect()
}

/// The Ingress name of a domain: `domain-` and the host name with dots as dashes.
pub fn ingress_name(domain: &str) -> String {
    let name = format!("domain-{}", domain.replace('.', "-"));
    name.chars().take(253).collect()
}

/// An Ingress per domain to the web Service; none while suspended or without web.
pub fn ingresses(plan: &HostingPlan, config: &Config) -> Result<Vec<Ingress>, serde_json::Error> {
    if plan.suspended || plan.web.is_none() {
        return Ok(Vec::new());
    }
    plan.domains
        .iter()
        .map(|domain| {
            serde_json::from_value(json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": ingress_name(domain), "namespace": plan.namespace, "labels": plan.labels()},
                "spec": {
                    "ingressClassName": config.network.ingress_class,
                    "rules": [{"host": domain, "http": {"paths": [{
                        "path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": "web", "port": {"name": "http"}}}
                    }]}}]
                }
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::business_plan;
    use super::*;

    #[test]
    fn one_statefulset_of_one_per_group_with_its_volume() {
        let sets = stateful_sets(&business_plan(), &Config::default()).unwrap();
        let names: Vec<_> = sets
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        assert_eq!(names, ["web", "mail", "db"]);
        for s in &sets {
            let spec = s.spec.as_ref().unwrap();
            assert_eq!(spec.replicas, Some(1));
            assert_eq!(spec.volume_claim_templates.as_ref().unwrap().len(), 1);
        }
    }

    #[test]
    fn web_and_ftp_share_the_document_root() {
        let sets = stateful_sets(&business_plan(), &Config::default()).unwrap();
        let pod = sets[0]
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap();
        let mounts: Vec<_> = pod
            .containers
            .iter()
            .map(|c| c.volume_mounts.as_ref().unwrap()[0].mount_path.clone())
            .collect();
        assert_eq!(pod.containers.len(), 2);
        assert_eq!(mounts, ["/var/www", "/var/www"]);
    }

    #[test]
    fn pods_carry_the_bandwidth_limit_and_a_restricted_context() {
        let sets = stateful_sets(&business_plan(), &Config::default()).unwrap();
        let tpl = &sets[0].spec.as_ref().unwrap().template;
        let ann = tpl.metadata.as_ref().unwrap().annotations.as_ref().unwrap();
        assert_eq!(ann["kubernetes.io/ingress-bandwidth"], "100M");
        assert_eq!(ann["kubernetes.io/egress-bandwidth"], "100M");
        let c = &tpl.spec.as_ref().unwrap().containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
            &["ALL"]
        );
        assert!(c.liveness_probe.is_some() && c.readiness_probe.is_some());
    }

    #[test]
    fn container_limits_add_up_within_the_course() {
        let sets = stateful_sets(&business_plan(), &Config::default()).unwrap();
        let total: f64 = sets
            .iter()
            .flat_map(|s| {
                s.spec
                    .as_ref()
                    .unwrap()
                    .template
                    .spec
                    .as_ref()
                    .unwrap()
                    .containers
                    .iter()
            })
            .map(|c| {
                let q = &c.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0;
                crate::apply::quantity_value(q).unwrap()
            })
            .sum();
        assert!(total <= 4.0 * 1024f64.powi(3), "{total}");
    }

    #[test]
    fn suspension_scales_to_zero_and_removes_ingresses() {
        let mut plan = business_plan();
        plan.suspended = true;
        let sets = stateful_sets(&plan, &Config::default()).unwrap();
        assert!(
            sets.iter()
                .all(|s| s.spec.as_ref().unwrap().replicas == Some(0))
        );
        assert!(ingresses(&plan, &Config::default()).unwrap().is_empty());
    }

    #[test]
    fn an_ingress_per_domain() {
        let ing = ingresses(&business_plan(), &Config::default()).unwrap();
        assert_eq!(ing.len(), 2);
        assert_eq!(
            ing[0].metadata.name.as_deref(),
            Some("domain-tanaka-shoten-example-jp")
        );
    }

    #[test]
    fn services_expose_every_protocol_of_the_mail_group() {
        let svcs = services(&business_plan(), &Config::default()).unwrap();
        let mail = &svcs[1];
        let ports: Vec<_> = mail
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .filter_map(|p| p.name.clone())
            .collect();
        assert_eq!(ports, ["smtp", "smtps", "pop3", "pop3s", "imap", "imaps"]);
    }

    #[test]
    fn postgresql_courses_run_postgresql() {
        let mut plan = business_plan();
        plan.database = Some(DbEngine::PostgreSql);
        let sets = stateful_sets(&plan, &Config::default()).unwrap();
        let db = sets[2]
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap();
        assert_eq!(db.containers[0].name, "postgresql");
    }
}
