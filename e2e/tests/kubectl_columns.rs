//! kubectl stays readable (issue 14): an end user with twenty domains prints its first domain
//! and the count in `kubectl get endusers`, and the whole list only in `-o wide`.

use std::time::Duration;

use kube::api::Api;
use oem_crds::EndUser;
use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::{Cluster, wait};
use serde_json::json;

#[tokio::test]
async fn twenty_domains_print_as_the_first_and_a_count() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let client = cluster.client().await?;
    let operator = Operator::start(cluster, OperatorOptions::default()).await?;
    let id = std::process::id() % 100000;
    let ns = hosting::reseller_with_namespace(&client, &format!("cols{id}"), json!([])).await?;
    apply_course(
        &client,
        hosting::course(&ns, "web", "1Gi", json!({"web": {"phpVersion": "8.4"}})),
    )
    .await?;
    let domains: Vec<String> = (1..=20)
        .map(|i| format!("site{i:02}.{ns}.example.jp"))
        .collect();
    apply_enduser(
        &client,
        hosting::enduser(
            &ns,
            "many",
            "web",
            "2025-01-01",
            json!({"domains": domains}),
        ),
    )
    .await?;
    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &ns);
    wait::until(
        "status.domainCount",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || async {
            let eu = endusers.get("many").await.map_err(|e| e.to_string())?;
            match eu.status.and_then(|s| s.domain_count) {
                Some(20) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .map_err(|e| e.context(operator.log_tail(30)))?;

    let table = cluster.kubectl_ok(&["get", "endusers", "-n", &ns], None)?;
    // Columns by their offsets in the header (kubectl aligns values under their headers; an
    // empty value would shift a whitespace split).
    let header = table.lines().next().unwrap_or_default();
    let row = table
        .lines()
        .find(|l| l.starts_with("many "))
        .unwrap_or_default();
    let starts: Vec<(usize, &str)> = header
        .match_indices(|c: char| c != ' ')
        .filter(|(i, _)| *i == 0 || header.as_bytes()[i - 1] == b' ')
        .map(|(i, _)| (i, header[i..].split(' ').next().unwrap_or_default()))
        .collect();
    let column = |name: &str| {
        let at = starts.iter().position(|(_, h)| *h == name)?;
        let from = starts[at].0;
        let to = starts
            .get(at + 1)
            .map_or(row.len(), |(i, _)| *i)
            .min(row.len());
        row.get(from..to).map(str::trim)
    };
    assert_eq!(column("DOMAIN"), Some(domains[0].as_str()), "{table}");
    assert_eq!(column("DOMAINS"), Some("20"), "{table}");
    assert!(
        !table.contains(&domains[19]),
        "the twentieth domain stays out of the table:\n{table}"
    );
    let wide = cluster.kubectl_ok(&["get", "endusers", "-n", &ns, "-o", "wide"], None)?;
    assert!(
        wide.contains(&domains[19]),
        "-o wide lists every domain:\n{wide}"
    );
    endusers.delete("many", &Default::default()).await?;
    Ok(())
}
