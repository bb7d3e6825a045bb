//! The service groups' workloads: one StatefulSet of 1 per group with its data volume, a
//! Service per group with a port per protocol, and an Ingress per domain for the web group.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource,
    SecurityContext, Service, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::config::Config;

use super::{DatabasePlan, DbEngine, GroupResources, HostingPlan, split_resources};

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

    /// The group (workload and Service) serving `service`; none for ping (the host itself).
    pub fn serving(service: oem_crds::enduser::ServiceName) -> Option<ServiceGroup> {
        use oem_crds::enduser::ServiceName::*;
        Some(match service {
            Ping => return None,
            Http | Https | Ftp | Ftps => ServiceGroup::Web,
            Smtp | Smtps | Pop3 | Pop3s | Imap | Imaps => ServiceGroup::Mail,
            Postgresql | Mysql => ServiceGroup::Db,
        })
    }
}

/// A container port: (name, container port, service port). The images (`images/`) listen on
/// unprivileged ports; the Services expose the standard ones.
type Port = (&'static str, u16, u16);

const WEB_PORTS: [Port; 2] = [("http", 8080, 80), ("https", 8443, 443)];
/// FTP control, then the passive data ports (the same numbers in the pod and the Service, since
/// the server announces them to the client).
pub(super) const FTP_PORTS: [Port; 11] = [
    ("ftp", 2121, 21),
    ("ftp-data-0", 30000, 30000),
    ("ftp-data-1", 30001, 30001),
    ("ftp-data-2", 30002, 30002),
    ("ftp-data-3", 30003, 30003),
    ("ftp-data-4", 30004, 30004),
    ("ftp-data-5", 30005, 30005),
    ("ftp-data-6", 30006, 30006),
    ("ftp-data-7", 30007, 30007),
    ("ftp-data-8", 30008, 30008),
    ("ftp-data-9", 30009, 30009),
];
/// The passive port range of [`FTP_PORTS`], as the ftp image reads it.
const FTP_PASSIVE_PORTS: &str = "30000-30009";
pub(super) const MAIL_PORTS: [Port; 8] = [
    ("smtp", 2525, 25),
    ("submission", 2587, 587),
    ("smtps", 4465, 465),
    ("pop3", 1110, 110),
    ("pop3s", 1995, 995),
    ("imap", 1143, 143),
    ("imaps", 1993, 993),
    ("metrics", 9154, 9154),
];
const MARIADB_PORTS: [Port; 1] = [("mysql", 3306, 3306)];
const POSTGRESQL_PORTS: [Port; 1] = [("postgresql", 5432, 5432)];

/// Where every image mounts its data volume (document root, mail store or database files).
const DATA_MOUNT: &str = "/srv";
/// Where the images read the certificate they present (`tls.crt`, `tls.key`; docs/images.md).
const TLS_MOUNT: &str = "/run/secrets/oem-tls";
/// Where the mail image reads the DKIM key it signs with (`private-key`; docs/images.md).
const DKIM_MOUNT: &str = "/run/secrets/oem-dkim";

/// A container of a group: name, image, ports and environment.
struct ContainerPlan {
    name: &'static str,
    image: String,
    ports: &'static [Port],
    env: Vec<EnvVar>,
    /// A Secret of the namespace mounted read-only besides the certificate: its name (also the
    /// volume's) and where.
    secret_mount: Option<(&'static str, &'static str)>,
}

fn value(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn from_source(name: &str, source: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(source),
    }
}

/// A key of the namespace's `credentials` Secret.
fn secret(name: &str, key: &str) -> EnvVar {
    from_source(
        name,
        EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: super::CREDENTIALS_SECRET.to_owned(),
                key: key.to_owned(),
                optional: None,
            }),
            ..EnvVarSource::default()
        },
    )
}

/// The database's name, user and address as the web and database containers read them.
fn database_env(plan: &HostingPlan, db: &DatabasePlan) -> Vec<EnvVar> {
    vec![
        value("DB_ENGINE", db.engine.name()),
        value("DB_HOST", ServiceGroup::Db.name()),
        value("DB_PORT", db.engine.port().to_string()),
        value("DB_NAME", plan.database_name()),
        value("DB_USER", plan.database_name()),
        secret("DB_PASSWORD", super::KEY_DB_PASSWORD),
    ]
}

fn containers(plan: &HostingPlan, group: ServiceGroup, config: &Config) -> Vec<ContainerPlan> {
    match group {
        ServiceGroup::Web => {
            let mut out = Vec::new();
            if let Some(web) = &plan.web {
                out.push(ContainerPlan {
                    name: "web",
                    image: web.image.clone(),
                    ports: &WEB_PORTS,
                    env: plan
                        .database
                        .as_ref()
                        .map(|db| database_env(plan, db))
                        .unwrap_or_default(),
                    secret_mount: None,
                });
            }
            if let Some(ftp) = &plan.ftp {
                out.push(ContainerPlan {
                    name: "ftp",
                    image: config.images.ftp.clone(),
                    ports: &FTP_PORTS,
                    env: vec![
                        value("FTP_USER", plan.login_id.clone()),
                        secret("FTP_PASSWORD", super::KEY_FTP_PASSWORD),
                        value("FTP_TLS", if ftp.tls { "optional" } else { "off" }),
                        value("FTP_PASSIVE_PORTS", FTP_PASSIVE_PORTS),
                        from_source(
                            "FTP_PASSIVE_ADDRESS",
                            EnvVarSource {
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "status.podIP".into(),
                                    api_version: None,
                                }),
                                ..EnvVarSource::default()
                            },
                        ),
                    ],
                    secret_mount: None,
                });
            }
            out
        }
        ServiceGroup::Mail => {
            let mut env = vec![
                value("MAIL_DOMAINS", plan.domains.join(",")),
                value("MAIL_HOSTNAME", plan.mail_hostname()),
                value("MAX_SENDS_PER_HOUR", plan.mail.unwrap_or(0).to_string()),
                secret("MAIL_ACCOUNTS", super::KEY_MAIL_ACCOUNTS),
                value("MAIL_DKIM_SELECTOR", config.mail.dkim_selector.clone()),
            ];
            if let Some(relay) = config.mail.relay {
                env.push(value("MAIL_RELAY", relay.to_string()));
            }
            // The mail lock is enforced by the MTA itself (relaying refused, queued outbound
            // mail held), whatever the cluster's CNI does with the NetworkPolicy. Only while
            // locked: the variable's arrival and departure restart the mail pod, nothing else.
            if plan.mail_locked {
                env.push(value("MAIL_LOCKED", "true"));
            }
            vec![ContainerPlan {
                name: "mail",
                image: config.images.mail.clone(),
                ports: &MAIL_PORTS,
                env,
                secret_mount: Some((super::dkim::DKIM_SECRET, DKIM_MOUNT)),
            }]
        }
        ServiceGroup::Db => match &plan.database {
            Some(db) => {
                let (name, ports): (_, &'static [Port]) = match db.engine {
                    DbEngine::PostgreSql => ("postgresql", &POSTGRESQL_PORTS),
                    DbEngine::MariaDb => ("mariadb", &MARIADB_PORTS),
                };
                let mut env = database_env(plan, db);
                env.push(secret("DB_ROOT_PASSWORD", super::KEY_DB_ROOT_PASSWORD));
                vec![ContainerPlan {
                    name,
                    image: db.image.clone(),
                    ports,
                    env,
                    secret_mount: None,
                }]
            }
            None => Vec::new(),
        },
    }
}

/// The labels that select a group's pods.
pub(super) fn selector(plan: &HostingPlan, group: ServiceGroup) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), group.name().to_owned()),
        (
            "app.kubernetes.io/instance".to_owned(),
            plan.enduser.clone(),
        ),
    ])
}

fn divide(total: &str, parts: usize, unit: &str) -> String {
    let value: u64 = total.trim_end_matches(unit).parse().unwrap_or(1);
    format!("{}{unit}", (value / parts.max(1) as u64).max(1))
}

fn tcp_probe(port: u16, period: i32, failures: Option<i32>) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(i32::from(port)),
            host: None,
        }),
        period_seconds: Some(period),
        failure_threshold: failures,
        ..Probe::default()
    }
}

fn runtime_default() -> Option<SeccompProfile> {
    Some(SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    })
}

fn container(c: &ContainerPlan, res: &GroupResources, parts: usize) -> Container {
    let cpu = divide(&res.cpu, parts, "m");
    let memory = divide(&res.memory, parts, "Mi");
    let first_port = c.ports.first().map(|p| p.1).unwrap_or(80);
    let ports = c
        .ports
        .iter()
        .map(|(name, port, _)| ContainerPort {
            name: Some((*name).to_owned()),
            container_port: i32::from(*port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        })
        .collect();
    let bounds = BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpu)),
        ("memory".to_owned(), Quantity(memory)),
    ]);
    Container {
        name: c.name.to_owned(),
        image: Some(c.image.clone()),
        ports: Some(ports),
        env: Some(c.env.clone()),
        resources: Some(ResourceRequirements {
            requests: Some(bounds.clone()),
            limits: Some(bounds),
            ..ResourceRequirements::default()
        }),
        // The data volume, then the Secrets, read-only: the certificate, and the container's own.
        volume_mounts: Some(
            std::iter::once(VolumeMount {
                name: "data".into(),
                mount_path: DATA_MOUNT.into(),
                ..VolumeMount::default()
            })
            .chain(
                std::iter::once((super::TLS_SECRET, TLS_MOUNT))
                    .chain(c.secret_mount)
                    .map(|(name, path)| VolumeMount {
                        name: name.into(),
                        mount_path: path.into(),
                        read_only: Some(true),
                        ..VolumeMount::default()
                    }),
            )
            .collect(),
        ),
        // A first start (a database initialising its files on a busy node) may take minutes;
        // liveness counts only once the port has answered.
        startup_probe: Some(tcp_probe(first_port, 5, Some(60))),
        liveness_probe: Some(tcp_probe(first_port, 20, Some(3))),
        readiness_probe: Some(tcp_probe(first_port, 10, None)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            run_as_non_root: Some(true),
            seccomp_profile: runtime_default(),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// The object metadata of a group's objects in the hosting namespace.
fn meta(plan: &HostingPlan, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(plan.namespace.clone()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// The group's data volume, claimed from the course's storage share.
fn data_claim(
    plan: &HostingPlan,
    group: ServiceGroup,
    storage: &str,
    config: &Config,
) -> PersistentVolumeClaim {
    let mut labels = plan.labels();
    labels.insert(
        crate::naming::LABEL_SERVICE_GROUP.into(),
        group.name().into(),
    );
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(storage.to_owned()),
                )])),
                limits: None,
            }),
            storage_class_name: config.storage_class.clone(),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// One StatefulSet per enabled group; replicas 0 while suspended (volumes are kept).
pub fn stateful_sets(plan: &HostingPlan, config: &Config) -> Vec<StatefulSet> {
    let groups = plan.groups();
    let Some(shares) = split_resources(
        &plan.cpu,
        &plan.memory,
        &plan.storage,
        &groups,
        &config.resource_split,
    ) else {
        return Vec::new();
    };
    shares
        .iter()
        .map(|(group, res)| {
            let cs = containers(plan, *group, config);
            let mut labels = plan.labels();
            labels.insert(
                crate::naming::LABEL_SERVICE_GROUP.into(),
                group.name().into(),
            );
            labels.extend(selector(plan, *group));
            let mut annotations = BTreeMap::from([
                (
                    "kubernetes.io/ingress-bandwidth".to_owned(),
                    plan.bandwidth.clone(),
                ),
                (
                    "kubernetes.io/egress-bandwidth".to_owned(),
                    plan.bandwidth.clone(),
                ),
            ]);
            if let Some(version) = &plan.credentials_version {
                annotations.insert(
                    super::ANNOTATION_CREDENTIALS_VERSION.into(),
                    version.clone(),
                );
            }
            if let Some(version) = &plan.tls_version {
                annotations.insert(super::ANNOTATION_TLS_VERSION.into(), version.clone());
            }
            // Empty lists stay absent: the API server drops them, and a difference that never
            // goes away would rewrite the set on every reconcile.
            let placement = &config.placement;
            let pod = PodSpec {
                automount_service_account_token: Some(false),
                enable_service_links: Some(false),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(10001),
                    run_as_group: Some(10001),
                    fs_group: Some(10001),
                    seccomp_profile: runtime_default(),
                    ..PodSecurityContext::default()
                }),
                containers: cs.iter().map(|c| container(c, res, cs.len())).collect(),
                // Readable by the group (fsGroup), not by others.
                // Optional: a Secret made after the pod started is projected into it (the MTA
                // reads its DKIM key at each delivery).
                volumes: Some(
                    std::iter::once(super::TLS_SECRET)
                        .chain(
                            cs.iter()
                                .filter_map(|c| c.secret_mount.map(|(name, _)| name)),
                        )
                        .map(|name| Volume {
                            name: name.into(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(name.into()),
                                optional: Some(true),
                                default_mode: Some(0o440),
                                items: None,
                            }),
                            ..Volume::default()
                        })
                        .collect(),
                ),
                node_selector: (!placement.node_selector.is_empty())
                    .then(|| placement.node_selector.clone()),
                tolerations: (!placement.tolerations.is_empty())
                    .then(|| placement.tolerations.clone()),
                ..PodSpec::default()
            };
            StatefulSet {
                metadata: meta(plan, group.name(), labels.clone()),
                spec: Some(StatefulSetSpec {
                    replicas: Some(if plan.suspended { 0 } else { 1 }),
                    service_name: Some(group.name().into()),
                    selector: LabelSelector {
                        match_labels: Some(selector(plan, *group)),
                        match_expressions: None,
                    },
                    persistent_volume_claim_retention_policy: Some(
                        StatefulSetPersistentVolumeClaimRetentionPolicy {
                            when_scaled: Some("Retain".into()),
                            when_deleted: Some("Retain".into()),
                        },
                    ),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels),
                            annotations: Some(annotations),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(pod),
                    },
                    volume_claim_templates: Some(vec![data_claim(
                        plan,
                        *group,
                        &res.storage,
                        config,
                    )]),
                    ..StatefulSetSpec::default()
                }),
                ..StatefulSet::default()
            }
        })
        .collect()
}

/// One Service per group, a named port per protocol.
pub fn services(plan: &HostingPlan, config: &Config) -> Vec<Service> {
    plan.groups()
        .into_iter()
        .map(|group| {
            let ports = containers(plan, group, config)
                .iter()
                .flat_map(|c| c.ports.iter())
                .map(|(name, target, port)| ServicePort {
                    name: Some((*name).to_owned()),
                    port: i32::from(*port),
                    target_port: Some(IntOrString::Int(i32::from(*target))),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                })
                .collect();
            Service {
                metadata: meta(plan, group.name(), plan.labels()),
                spec: Some(ServiceSpec {
                    type_: Some("ClusterIP".into()),
                    selector: Some(selector(plan, group)),
                    ports: Some(ports),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            }
        })
        .collect()
}

/// The Ingress name of a domain: `domain-` and the host name with dots as dashes.
pub fn ingress_name(domain: &str) -> String {
    let name = format!("domain-{}", domain.replace('.', "-"));
    name.chars().take(253).collect()
}

/// An Ingress per domain to the web Service; none while suspended or without web.
pub fn ingresses(plan: &HostingPlan, config: &Config) -> Vec<Ingress> {
    if plan.suspended || plan.web.is_none() {
        return Vec::new();
    }
    plan.domains
        .iter()
        .map(|domain| {
            let path = HTTPIngressPath {
                path: Some("/".into()),
                path_type: "Prefix".into(),
                backend: IngressBackend {
                    service: Some(IngressServiceBackend {
                        name: ServiceGroup::Web.name().into(),
                        port: Some(ServiceBackendPort {
                            name: Some("http".into()),
                            number: None,
                        }),
                    }),
                    resource: None,
                },
            };
            Ingress {
                metadata: meta(plan, &ingress_name(domain), plan.labels()),
                spec: Some(IngressSpec {
                    ingress_class_name: Some(config.network.ingress_class.clone()),
                    rules: Some(vec![IngressRule {
                        host: Some(domain.clone()),
                        http: Some(HTTPIngressRuleValue { paths: vec![path] }),
                    }]),
                    // HTTPS with the namespace's certificate (cert-manager's or the provider's);
                    // until it exists the controller presents its own.
                    tls: Some(vec![IngressTLS {
                        hosts: Some(vec![domain.clone()]),
                        secret_name: Some(super::TLS_SECRET.into()),
                    }]),
                    ..IngressSpec::default()
                }),
                ..Ingress::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::business_plan;
    use super::*;

    #[test]
    fn one_statefulset_of_one_per_group_with_its_volume() {
        let sets = stateful_sets(&business_plan(), &Config::default());
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

    fn mail_env(plan: &HostingPlan) -> Vec<(String, Option<String>)> {
        let sets = stateful_sets(plan, &Config::default());
        let mail = sets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some("mail"))
            .unwrap();
        let pod = mail.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        pod.containers[0]
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect()
    }

    #[test]
    fn the_mail_lock_reaches_the_mta_of_the_mail_container() {
        let mut plan = business_plan();
        let locked = ("MAIL_LOCKED".to_owned(), Some("true".to_owned()));
        assert!(!mail_env(&plan).contains(&locked));
        assert!(
            !mail_env(&plan)
                .iter()
                .any(|(name, _)| name == "MAIL_LOCKED")
        );
        plan.mail_locked = true;
        assert!(mail_env(&plan).contains(&locked));
    }

    #[test]
    fn web_and_ftp_share_the_document_root() {
        let sets = stateful_sets(&business_plan(), &Config::default());
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
        assert_eq!(mounts, ["/srv", "/srv"]);
    }

    #[test]
    fn every_container_reads_the_optional_tls_secret() {
        for set in stateful_sets(&business_plan(), &Config::default()) {
            let pod = set.spec.unwrap().template.spec.unwrap();
            let volume = &pod.volumes.as_ref().unwrap()[0];
            let secret = volume.secret.as_ref().unwrap();
            assert_eq!(
                secret.secret_name.as_deref(),
                Some(super::super::TLS_SECRET)
            );
            assert_eq!(
                (secret.optional, secret.default_mode),
                (Some(true), Some(0o440))
            );
            for c in &pod.containers {
                let mount = c
                    .volume_mounts
                    .as_ref()
                    .unwrap()
                    .iter()
                    .find(|m| m.name == "tls");
                let mount = mount.unwrap();
                assert_eq!(mount.mount_path, "/run/secrets/oem-tls");
                assert_eq!(mount.read_only, Some(true));
            }
        }
    }

    #[test]
    fn pods_carry_the_bandwidth_limit_and_a_restricted_context() {
        let sets = stateful_sets(&business_plan(), &Config::default());
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
        assert!(
            c.startup_probe.is_some(),
            "a slow first start is not killed"
        );
    }

    #[test]
    fn container_limits_add_up_within_the_course() {
        let sets = stateful_sets(&business_plan(), &Config::default());
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
                oem_crds::quantity::value(q).unwrap()
            })
            .sum();
        assert!(total <= 4.0 * 1024f64.powi(3), "{total}");
    }

    #[test]
    fn suspension_scales_to_zero_and_removes_ingresses() {
        let mut plan = business_plan();
        plan.suspended = true;
        let sets = stateful_sets(&plan, &Config::default());
        assert!(
            sets.iter()
                .all(|s| s.spec.as_ref().unwrap().replicas == Some(0))
        );
        assert!(ingresses(&plan, &Config::default()).is_empty());
    }

    #[test]
    fn an_ingress_per_domain() {
        let ing = ingresses(&business_plan(), &Config::default());
        assert_eq!(ing.len(), 2);
        assert_eq!(
            ing[0].metadata.name.as_deref(),
            Some("domain-tanaka-shoten-example-jp")
        );
        // Each serves HTTPS for its domain with the namespace's `tls` certificate.
        let tls = ing[0].spec.as_ref().unwrap().tls.as_ref().unwrap();
        assert_eq!(
            serde_json::to_value(tls).unwrap(),
            serde_json::json!([{"hosts": ["tanaka-shoten.example.jp"], "secretName": "tls"}])
        );
    }

    #[test]
    fn services_expose_every_protocol_of_the_mail_group() {
        let svcs = services(&business_plan(), &Config::default());
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
        assert_eq!(
            ports,
            [
                "smtp",
                "submission",
                "smtps",
                "pop3",
                "pop3s",
                "imap",
                "imaps",
                "metrics"
            ]
        );
    }

    #[test]
    fn postgresql_courses_run_postgresql() {
        let mut plan = business_plan();
        plan.database = Some(DatabasePlan {
            engine: DbEngine::PostgreSql,
            image: "pg:15".into(),
        });
        let sets = stateful_sets(&plan, &Config::default());
        let db = sets[2]
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap();
        assert_eq!(db.containers[0].name, "postgresql");
        assert_eq!(db.containers[0].image.as_deref(), Some("pg:15"));
        let env = env_of(&db.containers[0]);
        assert_eq!(env["DB_ENGINE"], "postgresql");
        assert_eq!(env["DB_PORT"], "5432");
    }

    /// A container's plain values, and `secret:KEY` for values from the credentials Secret.
    fn env_of(
        c: &k8s_openapi::api::core::v1::Container,
    ) -> std::collections::BTreeMap<String, String> {
        c.env
            .iter()
            .flatten()
            .map(|e| {
                let from_secret = e
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref())
                    .map(|r| format!("secret:{}", r.key));
                let value = e.value.clone().or(from_secret).unwrap_or_default();
                (e.name.clone(), value)
            })
            .collect()
    }

    fn pod_of(set: &StatefulSet) -> &k8s_openapi::api::core::v1::PodSpec {
        set.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    #[test]
    fn the_course_php_version_selects_the_web_image_and_php_reads_the_database() {
        let sets = stateful_sets(&business_plan(), &Config::default());
        let web = &pod_of(&sets[0]).containers[0];
        assert_eq!(web.name, "web");
        assert_eq!(
            web.image.as_deref(),
            Some("oem.local/oem-hosting/web-php8.4:test")
        );
        let env = env_of(web);
        assert_eq!(env["DB_ENGINE"], "mariadb");
        assert_eq!(env["DB_HOST"], "db");
        assert_eq!(env["DB_NAME"], "tanaka");
        assert_eq!(env["DB_USER"], "tanaka");
        assert_eq!(env["DB_PASSWORD"], "secret:db-password");
        let ports: Vec<i32> = web
            .ports
            .iter()
            .flatten()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(ports, [8080, 8443]);
    }

    #[test]
    fn ftp_serves_the_login_id_account_with_its_passive_ports() {
        let sets = stateful_sets(&business_plan(), &Config::default());
        let ftp = &pod_of(&sets[0]).containers[1];
        let env = env_of(ftp);
        assert_eq!(env["FTP_USER"], "tanaka");
        assert_eq!(env["FTP_PASSWORD"], "secret:ftp-password");
        assert_eq!(env["FTP_TLS"], "optional");
        assert_eq!(env["FTP_PASSIVE_PORTS"], "30000-30009");
        let svcs = services(&business_plan(), &Config::default());
        let ports = svcs[0].spec.as_ref().unwrap().ports.as_ref().unwrap();
        assert!(ports.iter().any(|p| p.port == 21));
        assert!(ports.iter().any(|p| p.port == 30009));
    }

    #[test]
    fn mail_accepts_the_end_users_domains_with_the_course_limit() {
        let sets = stateful_sets(&business_plan(), &Config::default());
        let mail = &pod_of(&sets[1]).containers[0];
        let env = env_of(mail);
        assert_eq!(
            env["MAIL_DOMAINS"],
            "tanaka-shoten.example.jp,www.tanaka-shoten.example.jp"
        );
        assert_eq!(env["MAIL_HOSTNAME"], "mail.tanaka-shoten.example.jp");
        assert_eq!(env["MAX_SENDS_PER_HOUR"], "200");
        assert_eq!(env["MAIL_ACCOUNTS"], "secret:mail-accounts");
    }

    #[test]
    fn a_rotated_credentials_secret_rolls_the_pods() {
        let mut plan = business_plan();
        plan.credentials_version = Some("41".into());
        let before = stateful_sets(&plan, &Config::default());
        plan.credentials_version = Some("42".into());
        let after = stateful_sets(&plan, &Config::default());
        let annotation = |s: &StatefulSet| {
            s.spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[crate::hosting::ANNOTATION_CREDENTIALS_VERSION]
                .clone()
        };
        assert_eq!(annotation(&before[2]), "41");
        assert_eq!(annotation(&after[2]), "42");
    }

    #[test]
    fn a_new_or_renewed_certificate_rolls_the_pods() {
        let mut plan = business_plan();
        let template_annotations = |plan: &HostingPlan| {
            stateful_sets(plan, &Config::default())
                .into_iter()
                .map(|s| {
                    s.spec
                        .unwrap()
                        .template
                        .metadata
                        .unwrap()
                        .annotations
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        let key = crate::hosting::ANNOTATION_TLS_VERSION;
        assert!(
            template_annotations(&plan)
                .iter()
                .all(|a| !a.contains_key(key))
        );
        plan.tls_version = Some("7".into());
        assert!(template_annotations(&plan).iter().all(|a| a[key] == "7"));
        plan.tls_version = Some("8".into());
        assert!(template_annotations(&plan).iter().all(|a| a[key] == "8"));
    }

    #[test]
    fn hosting_pods_go_where_the_placement_says_and_nowhere_else_by_default() {
        let sets = stateful_sets(&business_plan(), &Config::default());
        assert!(pod_of(&sets[0]).node_selector.is_none());
        assert!(pod_of(&sets[0]).tolerations.is_none());
        let mut config = Config::default();
        config
            .placement
            .node_selector
            .insert("oem.dev/hosting-node".into(), "true".into());
        config.placement.tolerations = vec![k8s_openapi::api::core::v1::Toleration {
            key: Some("hosting".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }];
        let sets = stateful_sets(&business_plan(), &config);
        for set in &sets {
            let pod = pod_of(set);
            assert_eq!(
                pod.node_selector.as_ref().unwrap()["oem.dev/hosting-node"],
                "true"
            );
            assert_eq!(pod.tolerations.as_ref().unwrap().len(), 1);
        }
    }
}
