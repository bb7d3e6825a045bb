//! The chart's defences of the webhook server (issue 15 item 7), `helm template` only: a
//! NetworkPolicy admits only the HTTPS port (from the configured peers when given), and a
//! client CA, when named, makes the server require client certificates signed by it.

use anyhow::Context;
use oem_e2e::Cluster;
use oem_e2e::cluster::repo_root;
use serde_yaml::Value;

fn objects(rendered: &str) -> anyhow::Result<Vec<Value>> {
    serde_yaml::Deserializer::from_str(rendered)
        .map(|doc| Ok(<Value as serde::Deserialize>::deserialize(doc)?))
        .filter(|o: &anyhow::Result<Value>| o.as_ref().map_or(true, |v| !v.is_null()))
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> anyhow::Result<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .with_context(|| format!("no {kind} {name} rendered"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhooks_admit_only_their_https_port_and_optionally_only_the_api_servers_certificate()
-> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let chart = repo_root().join("charts/oem-hosting");
    let chart = chart.to_string_lossy();
    let name = "oem-oem-hosting-webhooks";

    let defaults = objects(&cluster.helm_ok(&["template", "oem", &chart])?)?;
    let policy = find(&defaults, "NetworkPolicy", name)?;
    let deployment = find(&defaults, "Deployment", name)?;
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"],
        "the policy selects the webhooks' pods"
    );
    assert_eq!(policy["spec"]["policyTypes"][0].as_str(), Some("Ingress"));
    let rules = policy["spec"]["ingress"]
        .as_sequence()
        .context("ingress rules")?;
    assert_eq!(rules.len(), 1, "one rule: the HTTPS port");
    assert_eq!(rules[0]["ports"][0]["port"].as_str(), Some("https"));
    assert!(
        rules[0]["ports"]
            .as_sequence()
            .is_some_and(|p| p.len() == 1)
    );
    assert!(
        rules[0]["from"].is_null(),
        "from anywhere by default (the API server)"
    );
    let args = |d: &Value| -> Vec<String> {
        d["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect()
    };
    assert!(
        !args(deployment)
            .iter()
            .any(|a| a.starts_with("--client-ca"))
    );

    let narrowed = objects(&cluster.helm_ok(&[
        "template",
        "oem",
        &chart,
        "--set-json",
        r#"webhooks.networkPolicy.allowFrom=[{"ipBlock":{"cidr":"10.0.0.0/24"}}]"#,
        "--set",
        "webhooks.clientCA.secretName=apiserver-webhook-client-ca",
    ])?)?;
    let policy = find(&narrowed, "NetworkPolicy", name)?;
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"].as_str(),
        Some("10.0.0.0/24")
    );
    let deployment = find(&narrowed, "Deployment", name)?;
    assert!(
        args(deployment).contains(&"--client-ca=/etc/oem-webhooks/client-ca/ca.crt".to_owned())
    );
    let volumes = &deployment["spec"]["template"]["spec"]["volumes"];
    assert!(
        volumes
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|v| { v["secret"]["secretName"].as_str() == Some("apiserver-webhook-client-ca") }),
        "the client CA Secret is mounted"
    );

    let off = objects(&cluster.helm_ok(&[
        "template",
        "oem",
        &chart,
        "--set",
        "webhooks.networkPolicy.enabled=false",
    ])?)?;
    assert!(find(&off, "NetworkPolicy", name).is_err());
    Ok(())
}
