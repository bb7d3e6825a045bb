//! The end users' panel as the chart renders it (`helm template` only; `chart.rs` installs it
//! and checks its ServiceAccount's rights, `chart_real.rs` runs the release on the real node):
//! one replica of `oem-panel --config` from a ConfigMap the binary itself accepts
//! (`oem-panel --check-config`), restricted, with probes on `/healthz` and `/readyz`; a
//! Service; the ClusterRole of `files/panel-clusterrole.yaml` bound to its ServiceAccount; an
//! Ingress on demand, behind which the panel trusts `X-Forwarded-For` and the NetworkPolicy
//! admits only the ingress controller's namespace.

use std::process::Command;

use anyhow::{Context, bail};
use oem_e2e::Cluster;
use oem_e2e::cluster::repo_root;
use oem_e2e::operator::target_bin_dir;
use serde::Deserialize;
use serde_yaml::Value;

const RELEASE: &str = "oem";
const NAMESPACE: &str = "hosting-system";
const NAME: &str = "oem-oem-hosting-panel";

/// `helm template` of the chart with `extra` arguments: its objects, or helm's failure.
fn render(cluster: &Cluster, extra: &[&str]) -> anyhow::Result<Result<Vec<Value>, String>> {
    let chart = repo_root().join("charts/oem-hosting");
    let chart = chart.to_string_lossy();
    let mut args = vec!["template", RELEASE, &chart, "-n", NAMESPACE];
    args.extend(extra);
    let out = cluster.helm(&args)?;
    if !out.status.success() {
        return Ok(Err(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&String::from_utf8_lossy(&out.stdout)) {
        let object = <Value as serde::Deserialize>::deserialize(doc)?;
        if object.is_mapping() {
            objects.push(object);
        }
    }
    Ok(Ok(objects))
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
}

fn must<'a>(objects: &'a [Value], kind: &str, name: &str) -> anyhow::Result<&'a Value> {
    find(objects, kind, name).with_context(|| format!("no {kind} {name} rendered"))
}

/// The panel's rendered configuration, checked by the panel binary itself.
fn panel_config(objects: &[Value], scratch: &std::path::Path) -> anyhow::Result<Value> {
    let text = must(objects, "ConfigMap", NAME)?["data"]["panel.yaml"]
        .as_str()
        .context("the panel's ConfigMap has no panel.yaml")?
        .to_owned();
    let file = scratch.join("panel.yaml");
    std::fs::write(&file, &text)?;
    let binary = target_bin_dir()?.join("oem-panel");
    if !binary.exists() {
        bail!(
            "{} is missing: build it with cargo build -p oem-panel",
            binary.display()
        );
    }
    let out = Command::new(&binary)
        .arg("--check-config")
        .arg("--config")
        .arg(&file)
        .env_remove("OEM_PANEL_SECURE_COOKIES")
        .env_remove("OEM_PANEL_HTTP_ADDR")
        .output()
        .context("running oem-panel --check-config")?;
    if !out.status.success() {
        bail!(
            "oem-panel refuses the configuration the chart renders ({}):\n{text}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_yaml::from_str(&text)?)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_renders_the_panel_restricted_with_its_rbac_and_an_optional_ingress()
-> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let scratch = tempfile::tempdir()?;
    let tag = std::fs::read_to_string(repo_root().join("images/TAG"))?
        .trim()
        .to_owned();

    // Defaults: Deployment, ConfigMap, Service, ServiceAccount, ClusterRole(Binding),
    // NetworkPolicy; no Ingress.
    let objects = render(cluster, &[])?.map_err(anyhow::Error::msg)?;
    let deployment = must(&objects, "Deployment", NAME)?;
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"].as_u64(), Some(1), "sessions are in memory");
    assert_eq!(spec["strategy"]["type"].as_str(), Some("Recreate"));
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["serviceAccountName"].as_str(), Some(NAME));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
    let containers = pod["containers"].as_sequence().context("no containers")?;
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(
        c["image"].as_str(),
        Some(format!("oem.local/oem-hosting/panel:{tag}").as_str())
    );
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .context("no args")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args, ["--config", "/etc/oem-hosting-panel/panel.yaml"]);
    let mount = c["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|m| m["name"].as_str() == Some("config"))
        .context("no config mount")?;
    assert_eq!(mount["mountPath"].as_str(), Some("/etc/oem-hosting-panel"));
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true), "{sc:?}");
    assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"));
    assert!(c["resources"]["limits"]["memory"].is_string(), "{c:?}");
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(8080));

    let config = panel_config(&objects, scratch.path())?;
    assert_eq!(config["httpAddr"].as_str(), Some("0.0.0.0:8080"));
    assert!(
        config["clientAddressHeader"].is_null(),
        "without an ingress the TCP peer is the client: {config:?}"
    );
    assert_eq!(config["session"]["secureCookies"], Value::Bool(true));
    // The resellers' logins are read where the operator keeps them: the panel's namespace.
    assert_eq!(
        config["resellers"]["accountsNamespace"].as_str(),
        Some(NAMESPACE)
    );

    let service = must(&objects, "Service", NAME)?;
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_str(),
        Some("http")
    );
    assert_eq!(
        service["spec"]["selector"], spec["selector"]["matchLabels"],
        "the Service selects the panel's pods"
    );
    must(&objects, "ServiceAccount", NAME)?;
    assert!(
        find(&objects, "Ingress", NAME).is_none(),
        "Ingress off by default"
    );
    let policy = must(&objects, "NetworkPolicy", NAME)?;
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"],
        Value::Mapping(Default::default())
    );

    // RBAC: the file's ClusterRole as it is, bound to the panel's ServiceAccount only.
    let text = std::fs::read_to_string(
        repo_root().join("charts/oem-hosting/files/panel-clusterrole.yaml"),
    )?;
    let file = serde_yaml::Deserializer::from_str(&text)
        .next()
        .map(Value::deserialize)
        .transpose()?
        .context("panel-clusterrole.yaml is empty")?;
    let role = must(&objects, "ClusterRole", "oem-hosting-panel")?;
    assert_eq!(role["rules"], file["rules"]);
    for rule in role["rules"].as_sequence().into_iter().flatten() {
        for verb in rule["verbs"].as_sequence().into_iter().flatten() {
            let verb = verb.as_str().unwrap_or_default();
            assert!(
                !matches!(
                    verb,
                    "*" | "create" | "delete" | "impersonate" | "escalate" | "bind"
                ),
                "the panel's role grants {verb}: {rule:?}"
            );
        }
    }
    let binding = must(&objects, "ClusterRoleBinding", NAME)?;
    assert_eq!(
        binding["roleRef"]["name"].as_str(),
        Some("oem-hosting-panel")
    );
    let subjects = binding["subjects"].as_sequence().context("no subjects")?;
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0]["kind"].as_str(), Some("ServiceAccount"));
    assert_eq!(subjects[0]["name"].as_str(), Some(NAME));
    assert_eq!(subjects[0]["namespace"].as_str(), Some(NAMESPACE));
    // Impersonation: of the resellers' panel ServiceAccount only, and never bound
    // cluster-wide (the operator binds it inside each reseller namespace).
    let impersonation = must(&objects, "ClusterRole", "oem-hosting-panel-impersonation")?;
    let rules = impersonation["rules"].as_sequence().context("no rules")?;
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["verbs"][0].as_str(), Some("impersonate"));
    assert_eq!(rules[0]["resources"][0].as_str(), Some("serviceaccounts"));
    assert_eq!(
        rules[0]["resourceNames"][0].as_str(),
        Some("oem-hosting-reseller-panel")
    );
    assert!(
        !objects.iter().any(|o| o["kind"] == "ClusterRoleBinding"
            && o["roleRef"]["name"] == "oem-hosting-panel-impersonation"),
        "the impersonation role is bound cluster-wide"
    );

    // With the Ingress: class, host and TLS as given; the panel trusts X-Forwarded-For and
    // only the ingress controller's namespace may reach it.
    let objects = render(
        cluster,
        &[
            "--set",
            "panel.ingress.enabled=true",
            "--set",
            "panel.ingress.className=nginx-public",
            "--set",
            "panel.ingress.host=panel.example.net",
            "--set",
            "panel.ingress.tlsSecretName=panel-tls",
            "--set",
            "operator.config.network.ingressNamespace=edge",
        ],
    )?
    .map_err(anyhow::Error::msg)?;
    let ingress = must(&objects, "Ingress", NAME)?;
    assert_eq!(
        ingress["spec"]["ingressClassName"].as_str(),
        Some("nginx-public")
    );
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"].as_str(), Some("panel.example.net"));
    let backend = &rule["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"].as_str(), Some(NAME));
    assert_eq!(backend["port"]["name"].as_str(), Some("http"));
    assert_eq!(
        ingress["spec"]["tls"][0]["secretName"].as_str(),
        Some("panel-tls")
    );
    let config = panel_config(&objects, scratch.path())?;
    assert_eq!(
        config["clientAddressHeader"].as_str(),
        Some("x-forwarded-for")
    );
    let from = &must(&objects, "NetworkPolicy", NAME)?["spec"]["ingress"][0]["from"];
    assert_eq!(
        from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"].as_str(),
        Some("edge"),
        "{from:?}"
    );

    // Refused: an Ingress without a host, a second replica, a bad host name; a configuration
    // the schema lets through but the panel refuses is caught by the binary.
    let refused = |extra: &[&str], needle: &str| -> anyhow::Result<()> {
        match render(cluster, extra)? {
            Ok(_) => bail!("{extra:?} was rendered"),
            Err(e) if e.contains(needle) => Ok(()),
            Err(e) => bail!("{extra:?} refused without {needle:?}: {e}"),
        }
    };
    refused(
        &["--set", "panel.ingress.enabled=true"],
        "panel.ingress.host",
    )?;
    refused(&["--set", "panel.replicas=2"], "replicas")?;
    refused(&["--set", "panel.ingress.host=Not_A_Host"], "host")?;
    let odd =
        render(cluster, &["--set", "panel.config.session.idle=0s"])?.map_err(anyhow::Error::msg)?;
    let err = panel_config(&odd, scratch.path()).expect_err("idle 0s accepted");
    assert!(err.to_string().contains("session"), "{err:#}");

    // Off: no object of the panel at all.
    let off = render(cluster, &["--set", "panel.enabled=false"])?.map_err(anyhow::Error::msg)?;
    let left: Vec<String> = off
        .iter()
        .filter(|o| {
            o["metadata"]["labels"]["app.kubernetes.io/component"].as_str() == Some("panel")
                || o["metadata"]["name"].as_str() == Some("oem-hosting-panel")
        })
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert!(
        left.is_empty(),
        "panel.enabled=false still renders {left:?}"
    );
    println!(
        "chart panel: rendered, accepted by oem-panel --check-config, RBAC and Ingress as expected"
    );
    Ok(())
}
