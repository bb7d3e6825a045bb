//! The Helm chart (`charts/oem-hosting`) against the local control plane: `helm lint --strict`
//! is clean, every value is documented in the chart's README, the operator configuration the
//! chart renders is one the operator accepts, `helm template` output is accepted by the API
//! server (`kubectl apply --dry-run=server`, with every option on too), and `helm install`
//! creates every object (its pods run on kwok), `helm upgrade` lands a changed value and
//! `helm uninstall` removes what the release made.
//!
//! The chart's ClusterRoles have fixed names (the operator binds the reseller roles by name),
//! the same the other tests apply from `files/`: this test deletes those copies before it
//! installs the release; the next test that starts an operator or the webhooks applies them
//! again.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use oem_e2e::cluster::{Cluster, repo_root, unique_name};
use oem_e2e::wait;
use serde_yaml::Value;

mod chart_support;
use chart_support::check_panel_rights;

fn chart() -> PathBuf {
    repo_root().join("charts/oem-hosting")
}

/// The YAML documents of a multi-document text that are objects.
fn documents(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = <Value as serde::Deserialize>::deserialize(doc)?;
        if value.get("kind").is_some() {
            out.push(value);
        }
    }
    Ok(out)
}

fn kind_name(object: &Value) -> (String, String) {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    (
        text(object.get("kind")),
        text(object["metadata"].get("name")),
    )
}

/// Dotted paths of every leaf of a values tree (lists are leaves).
fn leaves(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Mapping(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = k.as_str().unwrap_or_default();
                let path = if prefix.is_empty() {
                    key.to_owned()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(&path, v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// Stand-ins for the CRDs of cert-manager and the Prometheus Operator, which the local
/// cluster does not run: they let the API server take the optional objects (kind and
/// metadata checked; their spec is kept as given).
fn stand_in_crds() -> String {
    let crd = |group: &str, plural: &str, kind: &str| {
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
             metadata: {{name: {plural}.{group}, labels: {{e2e.oem.dev/stand-in: \"true\"}}}}\n\
             spec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: {plural}, kind: {kind}}}\n\
             \x20 versions:\n  - name: v1\n    served: true\n    storage: true\n\
             \x20   schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}\n---\n"
        )
    };
    [
        crd("cert-manager.io", "certificates", "Certificate"),
        crd("cert-manager.io", "issuers", "Issuer"),
        crd("monitoring.coreos.com", "servicemonitors", "ServiceMonitor"),
        crd("monitoring.coreos.com", "prometheusrules", "PrometheusRule"),
        crd("monitoring.coreos.com", "podmonitors", "PodMonitor"),
    ]
    .concat()
}

fn alert_rules_present() -> bool {
    chart().join("files/alert-rules.yaml").exists()
}

/// `--set` arguments that turn every optional part on; `policy` is a values file with a
/// security policy.
fn everything_on(policy: &str) -> Vec<String> {
    let mut sets = vec![
        "--set".to_owned(),
        "webhooks.certManager.enabled=true".to_owned(),
        "--set".to_owned(),
        "metrics.serviceMonitor.enabled=true".to_owned(),
        "--set".to_owned(),
        "metrics.tenantMailPodMonitor.enabled=true".to_owned(),
        "--set".to_owned(),
        "panel.ingress.enabled=true".to_owned(),
        "--set".to_owned(),
        "panel.ingress.host=panel.example.net".to_owned(),
        "--set".to_owned(),
        "panel.ingress.tlsSecretName=panel-tls".to_owned(),
        "--set".to_owned(),
        "operator.config.usage.kubeletStats=true".to_owned(),
        "--values".to_owned(),
        policy.to_owned(),
    ];
    if alert_rules_present() {
        sets.extend([
            "--set".to_owned(),
            "metrics.prometheusRule.enabled=true".to_owned(),
        ]);
    }
    sets
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_lints_renders_installs_upgrades_and_uninstalls() -> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = Cluster::shared().await?;
    let chart = chart();
    let chart_s = chart.to_string_lossy().into_owned();

    // Lint, with the defaults and with every option on.
    let lint = cluster.helm_ok(&["lint", "--strict", &chart_s])?;
    assert!(lint.contains("0 chart(s) failed"), "{lint}");
    let scratch = tempfile::tempdir()?;
    let policy = scratch.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "securityPolicy:\n  php:\n  - {version: \"8.3\", endOfLife: \"2027-12-31\"}\n  - {version: \"8.4\", image: \"r/web:8.4\"}\n",
    )?;
    let on = everything_on(&policy.to_string_lossy());
    let on: Vec<&str> = on.iter().map(String::as_str).collect();
    let mut args = vec!["lint", "--strict", chart_s.as_str()];
    args.extend(&on);
    cluster.helm_ok(&args)?;

    // Every value is documented in the chart's README (itself or a parent key).
    let values: Value = serde_yaml::from_str(&std::fs::read_to_string(chart.join("values.yaml"))?)?;
    let readme = std::fs::read_to_string(chart.join("README.md"))?;
    let mut paths = Vec::new();
    leaves("", &values, &mut paths);
    let undocumented: Vec<&String> = paths
        .iter()
        .filter(|path| {
            let parts: Vec<&str> = path.split('.').collect();
            !(1..=parts.len()).any(|n| readme.contains(&format!("`{}`", parts[..n].join("."))))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "values missing from the chart README: {undocumented:?}"
    );
    assert!(paths.len() > 60, "only {} values found", paths.len());

    let namespace = unique_name("chart");
    let release = "oem";
    let template = |extra: &[&str]| -> anyhow::Result<String> {
        let mut args = vec![
            "template",
            release,
            chart_s.as_str(),
            "-n",
            namespace.as_str(),
        ];
        args.extend(extra);
        cluster.helm_ok(&args)
    };

    // The configuration the chart renders is one the operator accepts.
    let rendered = template(&[])?;
    let objects = documents(&rendered)?;
    let config_map = objects
        .iter()
        .find(|o| {
            kind_name(o)
                == (
                    "ConfigMap".into(),
                    format!("{release}-oem-hosting-operator"),
                )
        })
        .context("no operator ConfigMap rendered")?;
    let config_text = config_map["data"]["config.yaml"]
        .as_str()
        .context("the ConfigMap has no config.yaml")?;
    let config: oem_operator::config::Config = serde_yaml::from_str(config_text)
        .with_context(|| format!("the operator cannot read the rendered config:\n{config_text}"))?;
    config.validate()?;
    assert_eq!(config.network.monitor_namespace, namespace);
    assert_eq!(config.monitor.interval, Duration::from_secs(600));
    assert_eq!(config.http_addr.port(), 8080);
    // The webhooks' ServiceAccount, to which the operator binds their Secret role in each
    // reseller namespace; none without webhooks.
    let webhooks = config
        .webhooks_service_account
        .clone()
        .context("no webhooksServiceAccount rendered")?;
    assert_eq!(webhooks.namespace, namespace);
    assert!(
        objects
            .iter()
            .any(|o| kind_name(o) == ("ServiceAccount".into(), webhooks.name.clone())),
        "webhooksServiceAccount names no rendered ServiceAccount: {}",
        webhooks.name
    );
    let without = template(&["--set", "webhooks.enabled=false"])?;
    assert!(!without.contains("webhooksServiceAccount"), "{without}");
    // Restricted security context and probes on every container.
    for object in objects.iter().filter(|o| kind_name(o).0 == "Deployment") {
        let pod = &object["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
        for c in pod["containers"].as_sequence().into_iter().flatten() {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false), "{c:?}");
            assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"));
            assert_eq!(
                sc["seccompProfile"]["type"].as_str(),
                Some("RuntimeDefault")
            );
            assert!(c["resources"]["limits"]["memory"].is_string(), "{c:?}");
            assert!(c["livenessProbe"]["httpGet"]["path"].as_str() == Some("/healthz"));
            assert!(c["readinessProbe"]["httpGet"].is_mapping());
        }
    }
    let readiness: BTreeSet<String> = objects
        .iter()
        .filter(|o| kind_name(o).0 == "Deployment")
        .flat_map(|o| {
            o["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| {
            c["readinessProbe"]["httpGet"]["path"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(
        readiness.contains("/readyz"),
        "the operator is ready on /readyz"
    );
    // Two operator replicas electing a leader: a PodDisruptionBudget keeps one, and the Lease
    // Role names the configured Lease only, in the release namespace.
    let operator = objects
        .iter()
        .find(|o| {
            kind_name(o)
                == (
                    "Deployment".into(),
                    format!("{release}-oem-hosting-operator"),
                )
        })
        .context("no operator Deployment rendered")?;
    assert_eq!(operator["spec"]["replicas"].as_u64(), Some(2));
    assert_eq!(
        operator["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"].as_u64(),
        Some(0)
    );
    assert!(
        objects.iter().any(|o| kind_name(o)
            == (
                "PodDisruptionBudget".into(),
                format!("{release}-oem-hosting-operator")
            )),
        "no PodDisruptionBudget for the operator"
    );
    let lease_role = |objects: &[Value]| -> anyhow::Result<Value> {
        objects
            .iter()
            .find(|o| kind_name(o) == ("Role".into(), "oem-hosting-operator-lease".into()))
            .cloned()
            .context("no Lease Role rendered")
    };
    let role = lease_role(&objects)?;
    assert_eq!(
        role["metadata"]["namespace"].as_str(),
        Some(namespace.as_str())
    );
    assert_eq!(
        role["rules"][1]["resourceNames"][0].as_str(),
        Some(config.leader_election.lease_name.as_str())
    );
    let renamed = documents(&template(&[
        "--set",
        "operator.config.leaderElection.leaseName=other",
    ])?)?;
    assert_eq!(
        lease_role(&renamed)?["rules"][1]["resourceNames"][0].as_str(),
        Some("other")
    );
    if !alert_rules_present() {
        let rule = cluster.helm(&[
            "template",
            release,
            &chart_s,
            "--set",
            "metrics.prometheusRule.enabled=true",
        ])?;
        assert!(!rule.status.success());
        assert!(String::from_utf8_lossy(&rule.stderr).contains("files/alert-rules.yaml"));
        println!(
            "chart: files/alert-rules.yaml not in the chart yet: PrometheusRule refused as expected"
        );
    }

    // The API server takes the rendered objects, with the defaults and with every option on.
    oem_e2e::operator::install_crds(cluster)?;
    cluster.kubectl_ok(&["create", "namespace", &namespace], None)?;
    cluster.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&stand_in_crds()),
    )?;
    cluster.kubectl_ok(
        &[
            "wait",
            "--for",
            "condition=Established",
            "--timeout",
            "60s",
            "crd",
            "-l",
            "e2e.oem.dev/stand-in=true",
        ],
        None,
    )?;
    let dry_run = |text: &str| {
        cluster.kubectl_ok(
            &["apply", "--dry-run=server", "-n", &namespace, "-f", "-"],
            Some(text),
        )
    };
    dry_run(&rendered)?;
    let full = template(&on)?;
    let kinds: BTreeSet<String> = documents(&full)?.iter().map(|o| kind_name(o).0).collect();
    for kind in [
        "Certificate",
        "Issuer",
        "ServiceMonitor",
        "PodMonitor",
        "Ingress",
    ] {
        assert!(
            kinds.contains(kind),
            "{kind} not rendered with every option on"
        );
    }
    // The node proxy is granted only on request (usage.kubeletStats), by a role of its own.
    let proxy_roles = |objects: &[Value]| -> BTreeSet<String> {
        objects
            .iter()
            .filter(|o| kind_name(o).0 == "ClusterRole")
            .filter(|o| {
                o["rules"].as_sequence().into_iter().flatten().any(|r| {
                    r["resources"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .any(|res| res.as_str() == Some("nodes/proxy"))
                })
            })
            .map(|o| kind_name(o).1)
            .collect()
    };
    assert!(proxy_roles(&objects).is_empty(), "nodes/proxy by default");
    assert_eq!(
        proxy_roles(&documents(&full)?),
        BTreeSet::from(["oem-hosting-operator-kubelet-stats".to_owned()])
    );
    assert!(
        full.contains(&format!(
            "name: {release}-oem-hosting-operator-kubelet-stats"
        )),
        "the kubelet-stats role is bound with the value on"
    );
    dry_run(&full)?;
    let dashboards: Vec<Value> = documents(&full)?
        .into_iter()
        .filter(|o| o["metadata"]["labels"]["grafana_dashboard"].as_str() == Some("1"))
        .collect();
    assert_eq!(
        dashboards.len(),
        3,
        "one ConfigMap per dashboard, labelled for the sidecar"
    );
    if alert_rules_present() {
        check_rules_with_promtool(&full)?;
        // A parameter of the rules file takes the value given, only on its own line.
        let mut args: Vec<&str> = on.clone();
        args.extend(["--set", "metrics.prometheusRule.params.serviceDownFor=3m"]);
        let tuned = template(&args)?;
        assert!(tuned.contains("for: 3m"), "serviceDownFor did not land");
        check_rules_with_promtool(&tuned)?;
        println!(
            "chart: PrometheusRule from files/alert-rules.yaml passes promtool; params applied"
        );
    }

    // Install: the chart's ClusterRoles (every one it renders) replace the copies other tests
    // applied from the same files.
    let roles: Vec<String> = objects
        .iter()
        .filter(|o| kind_name(o).0 == "ClusterRole")
        .map(|o| kind_name(o).1)
        .collect();
    let mut delete = vec!["delete", "clusterrole", "--ignore-not-found"];
    delete.extend(roles.iter().map(String::as_str));
    cluster.kubectl_ok(&delete, None)?;
    // And the policy guarding the operator's cluster-wide RBAC, which other tests applied from
    // the same file for their operator's ServiceAccount.
    cluster.kubectl_ok(
        &[
            "delete",
            "validatingadmissionpolicy,validatingadmissionpolicybinding",
            "oem-hosting-operator-rbac-guard",
            "--ignore-not-found",
        ],
        None,
    )?;
    let guard = Release {
        cluster: cluster.clone(),
        release: release.into(),
        namespace: namespace.clone(),
    };
    // Nothing serves the webhooks here (kwok pods): Ignore keeps other objects admissible.
    let install_started = Instant::now();
    cluster.helm_ok(&[
        "install",
        release,
        &chart_s,
        "-n",
        &namespace,
        "--set",
        "webhooks.failurePolicy=Ignore",
        "--wait",
        "--timeout",
        "180s",
    ])?;
    let install_secs = install_started.elapsed().as_secs_f64();
    let manifest = cluster.helm_ok(&["get", "manifest", release, "-n", &namespace])?;
    let installed = documents(&manifest)?;
    assert!(
        installed.len() >= 17,
        "{} objects in the release",
        installed.len()
    );
    // `kubectl get -f` fails when any object of the manifest is missing.
    let listed = cluster.kubectl_ok(
        &["get", "-n", &namespace, "-f", "-", "-o", "name"],
        Some(&manifest),
    )?;
    assert_eq!(listed.lines().count(), installed.len(), "{listed}");
    let pods = cluster.kubectl_ok(
        &["get", "pods", "-n", &namespace, "-l", &format!("app.kubernetes.io/instance={release}"),
          "-o", "jsonpath={range .items[*]}{.metadata.labels.app\\.kubernetes\\.io/component}={.status.phase}{\"\\n\"}{end}"],
        None,
    )?;
    let running: Vec<&str> = pods.lines().filter(|l| l.ends_with("=Running")).collect();
    assert_eq!(
        running.len(),
        5,
        "2 operator + 2 webhooks + 1 panel pods running (kwok): {pods}"
    );
    check_panel_rights(cluster, &namespace)?;
    let pdb = cluster.kubectl_ok(&["get", "pdb", "-n", &namespace, "-o", "name"], None)?;
    assert!(pdb.contains("oem-oem-hosting-webhooks"), "{pdb}");
    assert!(pdb.contains("oem-oem-hosting-operator"), "{pdb}");

    // Upgrade: a changed value lands in the ConfigMap and rolls the operator's pod template.
    let checksum = |cluster: &Cluster| {
        cluster.kubectl_ok(
            &[
                "get",
                "deploy",
                "oem-oem-hosting-operator",
                "-n",
                &namespace,
                "-o",
                "jsonpath={.spec.template.metadata.annotations.checksum/config}",
            ],
            None,
        )
    };
    let before = checksum(cluster)?;
    let certificate = |cluster: &Cluster| {
        cluster.kubectl_ok(
            &[
                "get",
                "secret",
                "oem-oem-hosting-webhooks-tls",
                "-n",
                &namespace,
                "-o",
                "jsonpath={.data.tls\\.crt}",
            ],
            None,
        )
    };
    let cert_before = certificate(cluster)?;
    assert!(!cert_before.is_empty());
    cluster.helm_ok(&[
        "upgrade",
        release,
        &chart_s,
        "-n",
        &namespace,
        "--reuse-values",
        "--set",
        "operator.config.monitor.interval=7m",
        "--set",
        "webhooks.replicas=3",
        "--wait",
        "--timeout",
        "180s",
    ])?;
    let config = cluster.kubectl_ok(
        &[
            "get",
            "configmap",
            "oem-oem-hosting-operator",
            "-n",
            &namespace,
            "-o",
            "jsonpath={.data.config\\.yaml}",
        ],
        None,
    )?;
    assert!(config.contains("interval: 7m"), "{config}");
    assert_ne!(
        checksum(cluster)?,
        before,
        "the operator's pod template follows its config"
    );
    let replicas = cluster.kubectl_ok(
        &[
            "get",
            "deploy",
            "oem-oem-hosting-webhooks",
            "-n",
            &namespace,
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
        None,
    )?;
    assert_eq!(replicas, "3");
    // The generated certificate is kept across upgrades (looked up, not generated again).
    assert_eq!(
        certificate(cluster)?,
        cert_before,
        "the webhooks' certificate changed on upgrade"
    );

    // Uninstall removes every object of the release, cluster-wide ones included.
    drop(guard);
    let gone = wait::until(
        "the release's objects to be gone",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let out = cluster
                .kubectl(
                    &[
                        "get",
                        "-n",
                        &namespace,
                        "-f",
                        "-",
                        "-o",
                        "name",
                        "--ignore-not-found",
                    ],
                    Some(&manifest),
                )
                .map_err(|e| e.to_string())?;
            let left = String::from_utf8_lossy(&out.stdout).into_owned();
            if left.trim().is_empty() {
                Ok(())
            } else {
                Err(left)
            }
        },
    )
    .await;
    cluster.kubectl(
        &[
            "delete",
            "crd",
            "-l",
            "e2e.oem.dev/stand-in=true",
            "--ignore-not-found",
        ],
        None,
    )?;
    cluster.kubectl(&["delete", "namespace", &namespace, "--wait=false"], None)?;
    gone?;
    let crds = cluster.kubectl_ok(&["get", "crd", "-o", "name"], None)?;
    assert!(
        crds.contains("endusers.hosting.oem.dev"),
        "helm never deletes CRDs: {crds}"
    );
    println!(
        "chart e2e: {} objects installed in {install_secs:.1}s; whole test {:.1}s",
        installed.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The rules the PrometheusRule carries pass `promtool check rules`.
fn check_rules_with_promtool(rendered: &str) -> anyhow::Result<()> {
    let objects = documents(rendered)?;
    let rule = objects
        .iter()
        .find(|o| kind_name(o).0 == "PrometheusRule")
        .context("no PrometheusRule rendered")?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, serde_yaml::to_string(&rule["spec"])?)?;
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .context("running promtool (install prometheus: e2e/daemons/install.sh)")?;
    if !out.status.success() {
        bail!(
            "promtool check rules: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Uninstalls the release when dropped, also when the test fails halfway.
struct Release {
    cluster: Cluster,
    release: String,
    namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self.cluster.helm(&[
            "uninstall",
            &self.release,
            "-n",
            &self.namespace,
            "--wait",
            "--timeout",
            "120s",
        ]);
    }
}
