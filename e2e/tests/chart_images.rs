//! The chart names only images the project builds: by default every image it renders (the
//! operator's, the webhooks', the panel's, the hosting images of the operator's configuration and of the
//! security policy) is `oem.local/oem-hosting/<name>:<images/TAG>` with an
//! `images/<name>/Containerfile` that `scripts/build-images.sh` builds; the one value
//! `imageRegistry` moves them all to a provider's registry. `helm template` only.

use std::collections::BTreeSet;

use anyhow::Context;
use oem_e2e::Cluster;
use oem_e2e::cluster::repo_root;
use serde_yaml::Value;

/// Every image name in a rendered chart: containers, and the `images`/`image` keys of the
/// operator's configuration and the webhooks' policy file.
fn images_of(rendered: &str) -> anyhow::Result<(BTreeSet<String>, Value, Value)> {
    let mut images = BTreeSet::new();
    let (mut config, mut policy) = (Value::Null, Value::Null);
    for doc in serde_yaml::Deserializer::from_str(rendered) {
        let object = <Value as serde::Deserialize>::deserialize(doc)?;
        let kind = object["kind"].as_str().unwrap_or_default();
        if kind == "Deployment" {
            for c in object["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                images.insert(
                    c["image"]
                        .as_str()
                        .context("container without image")?
                        .into(),
                );
            }
        }
        if kind == "ConfigMap" {
            if let Some(text) = object["data"]["config.yaml"].as_str() {
                config = serde_yaml::from_str(text)?;
            }
            if let Some(text) = object["data"]["policy.yaml"].as_str() {
                policy = serde_yaml::from_str(text)?;
            }
        }
    }
    for (_, image) in config["images"].as_mapping().into_iter().flatten() {
        images.insert(image.as_str().context("image not a string")?.into());
    }
    for source in [&config["securityPolicy"], &policy] {
        for (_, versions) in source.as_mapping().into_iter().flatten() {
            for v in versions.as_sequence().into_iter().flatten() {
                if let Some(image) = v["image"].as_str() {
                    images.insert(image.into());
                }
            }
        }
    }
    Ok((images, config, policy))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_names_the_projects_images_and_one_value_moves_them() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let chart = repo_root().join("charts/oem-hosting");
    let chart = chart.to_string_lossy();
    let tag = std::fs::read_to_string(repo_root().join("images/TAG"))?
        .trim()
        .to_owned();

    let (images, config, policy) = images_of(&cluster.helm_ok(&["template", "oem", &chart])?)?;
    assert_eq!(
        config["securityPolicy"], policy,
        "the operator and the webhooks read one policy"
    );
    for expected in [
        "operator",
        "webhooks",
        "panel",
        "ftp",
        "mail",
        "web-php8.4",
        "mariadb",
    ] {
        assert!(
            images.contains(&format!("oem.local/oem-hosting/{expected}:{tag}")),
            "{expected} missing from {images:?}"
        );
    }
    for image in &images {
        let name = image
            .strip_prefix("oem.local/oem-hosting/")
            .and_then(|rest| rest.strip_suffix(&format!(":{tag}")))
            .with_context(|| format!("{image} is not oem.local/oem-hosting/<name>:{tag}"))?;
        assert!(
            repo_root()
                .join(format!("images/{name}/Containerfile"))
                .exists(),
            "{image}: nothing in images/ builds it"
        );
    }

    let moved = cluster.helm_ok(&[
        "template",
        "oem",
        &chart,
        "--set",
        "imageRegistry=registry.example.net:5000/hosting",
    ])?;
    assert!(!moved.contains("oem.local/"), "a name was not moved");
    let (moved_images, config, policy) = images_of(&moved)?;
    assert_eq!(config["securityPolicy"], policy);
    let expected: BTreeSet<String> = images
        .iter()
        .map(|i| {
            i.replace(
                "oem.local/oem-hosting/",
                "registry.example.net:5000/hosting/",
            )
        })
        .collect();
    assert_eq!(moved_images, expected);

    // A name the provider wrote itself is left as written.
    let own = cluster.helm_ok(&[
        "template",
        "oem",
        &chart,
        "--set",
        "imageRegistry=registry.example.net/hosting",
        "--set",
        "operator.image.repository=mirror.example.org/ops/operator",
    ])?;
    let (own_images, _, _) = images_of(&own)?;
    assert!(
        own_images.contains(&format!("mirror.example.org/ops/operator:{tag}")),
        "{own_images:?}"
    );
    let bad = cluster.helm(&[
        "template",
        "oem",
        &chart,
        "--set",
        "imageRegistry=Not A Registry",
    ])?;
    assert!(!bad.status.success(), "the schema takes any imageRegistry");
    println!(
        "chart images: {} project images named by default, all moved by imageRegistry",
        images.len()
    );
    Ok(())
}
