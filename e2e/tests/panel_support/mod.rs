//! What the panel's end-to-end tests share: the operator, the panel as a process, and a
//! reseller of the test binary's own with its end users Active.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use oem_crds::EndUser;
use oem_e2e::Cluster;
use oem_e2e::hosting::{self, apply_course, apply_enduser, wait_phase};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::panel::Panel;
use serde_json::json;
use tokio::sync::OnceCell;

const LIMIT: Duration = Duration::from_secs(120);
pub const END_USERS: [&str; 6] = ["shop", "cafe", "bar", "deli", "inn", "web"];

pub struct Fixture {
    _operator: Operator,
    pub panel: Panel,
    pub reseller: String,
    pub namespace: String,
}

static FIXTURE: OnceCell<Fixture> = OnceCell::const_new();

/// The operator, the panel, and a reseller of this test binary with its end users Active.
pub async fn fixture() -> anyhow::Result<(&'static Cluster, Client, &'static Fixture)> {
    let cluster = Cluster::shared().await?;
    let fixture = FIXTURE
        .get_or_try_init(|| async {
            // The provider's front door, which the end users' DNS records (status.dns) name.
            let config = cluster.state_dir.join("panel-operator.yaml");
            std::fs::write(
                &config,
                "frontDoor: {ipv4: [192.0.2.80], mailExchanger: mx.example.net}\n",
            )?;
            let operator = Operator::start(
                cluster,
                OperatorOptions {
                    env: vec![
                        ("OEM_CONFIG".into(), config.display().to_string()),
                        ("OEM_MONITOR_ENABLED".into(), "false".into()),
                        ("OEM_RESYNC_INTERVAL".into(), "20s".into()),
                        ("OEM_SPEC_RETRY".into(), "3s".into()),
                    ],
                    ..Default::default()
                },
            )
            .await?;
            let client = cluster.client().await?;
            let reseller = format!("pnl{}", std::process::id() % 100000);
            let namespace = hosting::reseller_with_namespace(&client, &reseller, json!([])).await?;
            apply_course(
                &client,
                hosting::course(
                    &namespace,
                    "standard",
                    "1Gi",
                    json!({"web": {"phpVersion": "8.4"}, "ftp": {}, "mail": {"maxSendsPerHour": 200},
                           "database": {"engine": "mariadb"}}),
                ),
            )
            .await?;
            for name in END_USERS {
                let value = hosting::enduser(&namespace, name, "standard", "2025-01-01", json!({}));
                apply_enduser(&client, value).await?;
            }
            for name in END_USERS {
                wait_phase(&client, &namespace, name, "Active", LIMIT).await?;
            }
            let panel = Panel::start(cluster, "").await?;
            anyhow::Ok(Fixture {
                _operator: operator,
                panel,
                reseller,
                namespace,
            })
        })
        .await?;
    Ok((cluster, cluster.client().await?, fixture))
}

/// The login ID and the password the operator issued to end user `name`.
pub async fn issued(client: &Client, f: &Fixture, name: &str) -> anyhow::Result<(String, String)> {
    let eu: EndUser = Api::namespaced(client.clone(), &f.namespace)
        .get(name)
        .await?;
    let secret: Secret = Api::namespaced(client.clone(), &f.namespace)
        .get(&format!("{name}-login"))
        .await?;
    let password = secret
        .data
        .and_then(|d| d.get("password").cloned())
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .ok_or_else(|| anyhow::anyhow!("{name}-login has no password"))?;
    Ok((eu.spec.login_id, password))
}
