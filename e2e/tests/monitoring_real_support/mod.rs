//! What `monitoring_real.rs` needs beside the scenario: the project's images on the node, a
//! provider's CA and the end users' certificates, the node's side of the pods (crictl and
//! their processes), and reading what the operator reports (status, incidents, metrics).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use oem_crds::{EndUser, Incident};
use oem_e2e::hosting::phase_of;
use oem_e2e::operator::Operator;
pub use oem_e2e::real_hosting::pods_report;
use oem_e2e::{Cluster, wait};
use oem_operator::naming;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};

/// The provider's CA (a PEM file for the monitor) and a certificate it issued for `domains`.
pub struct Pki {
    pub ca_file: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn pki(dir: &Path, domains: &[String]) -> anyhow::Result<Pki> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "oem-hosting monitoring test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(domains.to_vec())?.signed_by(&key, &issuer)?;
    let ca_file = dir.join("provider-ca.pem");
    std::fs::write(&ca_file, ca_cert.pem())?;
    Ok(Pki {
        ca_file,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// As cert-manager would: the `tls` Secret in the end user's hosting namespace as soon as the
/// namespace exists; a pod that started before it (without the certificate) is deleted, so its
/// StatefulSet starts it again with it.
pub async fn provide_certificate(
    client: &Client,
    hosting_ns: &str,
    pki: &Pki,
) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait::until(
        &format!("namespace {hosting_ns}"),
        Duration::from_secs(120),
        Duration::from_millis(200),
        || async {
            match namespaces.get_opt(hosting_ns).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("not there yet".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": oem_operator::hosting::TLS_SECRET},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": pki.cert_pem, "tls.key": pki.key_pem}
    }))?;
    let created = Api::<Secret>::namespaced(client.clone(), hosting_ns)
        .create(&PostParams::default(), &secret)
        .await
        .with_context(|| format!("creating the tls Secret of {hosting_ns}"))?;
    let since = created.creation_timestamp().context("no creation time")?.0;
    let pods: Api<Pod> = Api::namespaced(client.clone(), hosting_ns);
    for pod in pods.list(&ListParams::default()).await?.items {
        if pod.creation_timestamp().is_some_and(|t| t.0 < since) {
            eprintln!(
                "{hosting_ns}/{} started before its certificate: restarted",
                pod.name_any()
            );
            pods.delete(&pod.name_any(), &DeleteParams::default())
                .await?;
        }
    }
    Ok(())
}

/// `status.services` as service → (state, message).
pub fn services(enduser: &EndUser) -> BTreeMap<String, (String, String)> {
    let status = serde_json::to_value(enduser)
        .map(|v| v["status"]["services"].clone())
        .unwrap_or_default();
    status
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (text("service"), (text("state"), text("message")))
        })
        .collect()
}

/// The end user's incidents, as JSON, oldest first.
pub async fn incidents(client: &Client, ns: &str, enduser: &str) -> anyhow::Result<Vec<Value>> {
    let api: Api<Incident> = Api::namespaced(client.clone(), ns);
    let mut found: Vec<Value> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|i| i.spec.end_user == enduser)
        .map(|i| serde_json::to_value(i).unwrap_or_default())
        .collect();
    found.sort_by_key(|i| {
        i["status"]["startedAt"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    });
    Ok(found)
}

/// The events of an incident's timeline, in order.
pub fn events(incident: &Value) -> Vec<String> {
    incident["status"]["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .collect()
}

pub fn field(v: &Value, path: &[&str]) -> String {
    let mut at = v;
    for p in path {
        at = &at[*p];
    }
    at.as_str().unwrap_or_default().to_owned()
}

/// The process IDs (in this PID namespace) of the processes named `comm` in the running
/// container `container` of pod `ns/pod`, found through the node's CRI: its init process and
/// every descendant.
pub fn container_processes(
    cluster: &Cluster,
    ns: &str,
    pod: &str,
    container: &str,
    comm: &str,
) -> anyhow::Result<Vec<u32>> {
    let ns_label = format!("io.kubernetes.pod.namespace={ns}");
    let pod_label = format!("io.kubernetes.pod.name={pod}");
    let name = format!("^{container}$");
    let ids = cluster.crictl(&[
        "ps", "-q", "--state", "running", "--name", &name, "--label", &ns_label, "--label",
        &pod_label,
    ])?;
    let id = ids
        .lines()
        .next()
        .context("no running container")?
        .trim()
        .to_owned();
    let init: u32 = cluster
        .crictl(&[
            "inspect",
            "-o",
            "go-template",
            "--template",
            "{{.info.pid}}",
            &id,
        ])?
        .trim()
        .parse()
        .context("crictl inspect gave no pid")?;
    let mut todo = vec![init];
    let mut found = Vec::new();
    while let Some(pid) = todo.pop() {
        let named =
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm);
        if named {
            found.push(pid);
        }
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        todo.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    if found.is_empty() {
        bail!("no {comm} process under container {id} (init {init})");
    }
    Ok(found)
}

/// Sends `signal` (e.g. `-STOP`) to the processes.
pub fn signal(pids: &[u32], signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(signal)
        .args(pids.iter().map(u32::to_string))
        .status()
        .context("running kill")?;
    ensure!(status.success(), "kill {signal} {pids:?} failed");
    Ok(())
}

/// Stops, on the node, the pod sandbox of the pod with this UID (its every container with it),
/// as a crashed or killed node-side pod would be. Returns how many sandboxes were stopped.
pub fn stop_pod_sandbox(cluster: &Cluster, uid: &str) -> anyhow::Result<usize> {
    let label = format!("io.kubernetes.pod.uid={uid}");
    let ids = cluster.crictl(&["pods", "-q", "--state", "ready", "--label", &label])?;
    let mut stopped = 0;
    for id in ids.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match cluster.crictl(&["stopp", id]) {
            Ok(_) => stopped += 1,
            // The kubelet was stopping it too (it noticed an earlier stop): its network was
            // torn down under this stop ("failed to delete eth0: no such device"). Not ready
            // any more is what this wanted; still ready is a real failure.
            Err(error) => {
                let still = cluster.crictl(&["pods", "-q", "--state", "ready", "--id", id])?;
                if !still.trim().is_empty() {
                    return Err(error);
                }
            }
        }
    }
    Ok(stopped)
}

/// The cluster, the operator and the reseller's namespace of the scenario.
pub struct Bench {
    pub cluster: Cluster,
    pub client: Client,
    pub operator: Operator,
    pub ns: String,
}

impl Bench {
    pub fn hosting_ns(&self, enduser: &str) -> String {
        naming::hosting_namespace(
            naming::reseller_of_namespace(&self.ns).unwrap_or_default(),
            enduser,
        )
    }

    pub async fn enduser(&self, name: &str) -> anyhow::Result<EndUser> {
        Ok(Api::<EndUser>::namespaced(self.client.clone(), &self.ns)
            .get(name)
            .await?)
    }

    /// Waits until `check` accepts the end user's services and phase; says what it saw and
    /// what the operator and the pods were doing when it gives up.
    pub async fn wait_services(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        check: impl Fn(&BTreeMap<String, (String, String)>, &str) -> bool,
    ) -> anyhow::Result<EndUser> {
        let found = wait::until(what, limit, Duration::from_millis(300), || async {
            let eu = self.enduser(name).await.map_err(|e| e.to_string())?;
            let (found, phase) = (services(&eu), phase_of(&eu));
            if check(&found, &phase) {
                Ok(eu)
            } else {
                Err(format!("phase {phase:?}, services {found:?}"))
            }
        })
        .await;
        match found {
            Ok(eu) => Ok(eu),
            Err(e) => Err(self.explain(e, name).await),
        }
    }

    /// Waits for an incident of `enduser` on `service` whose JSON satisfies `check`.
    pub async fn wait_incident(
        &self,
        enduser: &str,
        service: &str,
        what: &str,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let found = wait::until(what, limit, Duration::from_millis(300), || async {
            let all = incidents(&self.client, &self.ns, enduser)
                .await
                .map_err(|e| e.to_string())?;
            let mine: Vec<&Value> = all
                .iter()
                .filter(|i| field(i, &["spec", "service"]) == service)
                .collect();
            match mine.iter().rev().find(|i| check(i)) {
                Some(i) => Ok((*i).clone()),
                None => Err(format!(
                    "incidents: {:?}",
                    mine.iter()
                        .map(|i| (field(i, &["status", "phase"]), events(i)))
                        .collect::<Vec<_>>()
                )),
            }
        })
        .await;
        match found {
            Ok(i) => Ok(i),
            Err(e) => Err(self.explain(e, enduser).await),
        }
    }

    async fn explain(&self, e: anyhow::Error, enduser: &str) -> anyhow::Error {
        let ns = self.hosting_ns(enduser);
        e.context(format!(
            "pods of {ns}:\n{}\noperator log:\n{}",
            pods_report(&self.client, &ns).await,
            self.operator.log_tail(30)
        ))
    }

    pub async fn web_pod(&self, enduser: &str) -> anyhow::Result<Pod> {
        let ns = self.hosting_ns(enduser);
        Ok(Api::<Pod>::namespaced(self.client.clone(), &ns)
            .get("web-0")
            .await?)
    }
}

pub fn all_up(found: &BTreeMap<String, (String, String)>, wanted: &[&str]) -> bool {
    wanted
        .iter()
        .all(|s| found.get(*s).is_some_and(|(state, _)| state == "Up"))
}

pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
