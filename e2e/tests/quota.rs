//! The reseller's pool end to end (hardening issue, item 2): a Course raised past the
//! reseller's quota is refused by the webhook; with the webhooks bypassed (a reseller outside
//! their scope) the operator is the backstop: it does not provision the end user beyond the
//! pool, keeps running end users at what they were granted when their course is raised, says
//! why on the EndUser (condition, Ready reason, Warning event), and no hosting namespace's
//! quota ever sums past the pool.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Namespace, ResourceQuota};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use oem_crds::{Course, EndUser};
use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::webhooks::{SCOPE_LABEL, WebhookConfigs, WebhookServer};
use oem_e2e::{Cluster, free_port, wait};
use oem_operator::naming;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(90);

/// Deletes the test's end users and resellers on drop (without waiting).
struct Cleanup {
    cluster: Cluster,
    resellers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for r in &self.resellers {
            let ns = format!("reseller-{r}");
            let _ = self.cluster.kubectl(
                &["delete", "endusers", "--all", "-n", &ns, "--wait=false"],
                None,
            );
            let _ = self.cluster.kubectl(
                &[
                    "delete",
                    "reseller",
                    r,
                    "--ignore-not-found",
                    "--wait=false",
                ],
                None,
            );
        }
    }
}

fn pool(name: &str) -> Value {
    let mut r = hosting::reseller(name, json!([]));
    r["spec"]["quota"] =
        json!({"maxEndUsers": 10, "totalCpu": "2", "totalMemory": "8Gi", "totalStorage": "40Gi"});
    r
}

fn course(ns: &str) -> Value {
    hosting::course(ns, "tiny", "1Gi", json!({"web": {"phpVersion": "8.4"}}))
}

fn end_user(ns: &str, name: &str) -> Value {
    let mut v = hosting::enduser(ns, name, "tiny", "2025-01-01", json!({}));
    v["spec"]["loginId"] = json!(name);
    v
}

/// The `requests.cpu` of the end user's hosting ResourceQuota, if it exists.
async fn quota_cpu(
    client: &Client,
    reseller: &str,
    enduser: &str,
) -> anyhow::Result<Option<String>> {
    let ns = naming::hosting_namespace(reseller, enduser);
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), &ns)
        .get_opt("course-limits")
        .await?;
    Ok(quota
        .and_then(|q| q.spec?.hard?.get("requests.cpu").cloned())
        .map(|q| q.0))
}

/// Waits until the end user's `QuotaExceeded` condition is there (`Some(text)`: with `text`
/// in its message) or gone (`None`); returns the end user.
async fn held(
    client: &Client,
    ns: &str,
    name: &str,
    expected: Option<&str>,
) -> anyhow::Result<EndUser> {
    let api: Api<EndUser> = Api::namespaced(client.clone(), ns);
    wait::until(
        &format!("{ns}/{name} QuotaExceeded {expected:?}"),
        LIMIT,
        Duration::from_millis(300),
        || async {
            let eu = api.get(name).await.map_err(|e| e.to_string())?;
            let conditions = eu
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            let found = conditions.iter().find(|c| c.type_ == "QuotaExceeded");
            match (found, expected) {
                (Some(c), Some(text)) if c.message.contains(text) => Ok(eu),
                (None, None) => Ok(eu),
                _ => Err(format!("conditions {conditions:?}")),
            }
        },
    )
    .await
}

async fn wait_quota(
    client: &Client,
    reseller: &str,
    enduser: &str,
    cpu: &str,
) -> anyhow::Result<()> {
    wait::until(
        &format!("{enduser}'s quota requests.cpu {cpu}"),
        LIMIT,
        Duration::from_millis(300),
        || async {
            match quota_cpu(client, reseller, enduser).await {
                Ok(Some(got)) if got == cpu => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_holds_against_course_raises_with_and_without_the_webhook() -> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = Cluster::shared().await?;
    oem_e2e::operator::install_crds(cluster)?;
    let client = cluster.client().await?;
    let id = std::process::id() % 100000;
    let (bypassed, guarded) = (format!("qa{id}"), format!("qb{id}"));
    let _cleanup = Cleanup {
        cluster: cluster.clone(),
        resellers: vec![bypassed.clone(), guarded.clone()],
    };
    let _operator = Operator::start(
        cluster,
        OperatorOptions {
            env: vec![
                ("OEM_MONITOR_ENABLED".into(), "false".into()),
                ("OEM_RESYNC_INTERVAL".into(), "5s".into()),
                ("OEM_SPEC_RETRY".into(), "3s".into()),
            ],
            ..Default::default()
        },
    )
    .await?;

    // The operator alone: a reseller outside the webhooks' scope, 2 cpu for 1-cpu courses.
    let ns = hosting::apply_reseller(&client, pool(&bypassed)).await?;
    apply_course(&client, course(&ns)).await?;
    for name in ["user-a1", "user-a2", "user-a3"] {
        apply_enduser(&client, end_user(&ns, name)).await?;
    }
    wait_quota(&client, &bypassed, "user-a1", "1").await?;
    wait_quota(&client, &bypassed, "user-a2", "1").await?;
    let a3 = held(
        &client,
        &ns,
        "user-a3",
        Some("cpu 1 would bring the reseller's committed cpu from 2 to 3, over quota.totalCpu 2"),
    )
    .await?;
    let ready = a3
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    assert_eq!(
        ready.map(|c| c.reason.as_str()),
        Some("QuotaExceeded"),
        "{ready:?}"
    );
    let a3_ns = naming::hosting_namespace(&bypassed, "user-a3");
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&a3_ns)
            .await?
            .is_none(),
        "user-a3 beyond the pool must not be provisioned"
    );
    let events = Api::<Event>::namespaced(client.clone(), &ns);
    wait::until(
        "a Warning event QuotaExceeded on user-a3",
        LIMIT,
        Duration::from_millis(300),
        || async {
            let list = events
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .iter()
                .find(|e| {
                    e.involved_object.name.as_deref() == Some("user-a3")
                        && e.reason.as_deref() == Some("QuotaExceeded")
                        && e.type_.as_deref() == Some("Warning")
                })
                .map(|_| ())
                .ok_or_else(|| format!("{} events, none matching", list.items.len()))
        },
    )
    .await?;
    println!("user-a3 held beyond the pool after {:?}", started.elapsed());

    // The attack: the course raised to 64 cpu, 256Gi, 10Ti. The running end users keep what
    // they were granted; the quotas never sum past the pool.
    Api::<Course>::namespaced(client.clone(), &ns)
        .patch(
            "tiny",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"resources": {"cpu": "64", "memory": "256Gi", "storage": "10Ti"}}}),
            ),
        )
        .await?;
    for name in ["user-a1", "user-a2"] {
        held(
            &client,
            &ns,
            name,
            Some("keeps cpu 1, memory 1Gi, storage 10Gi"),
        )
        .await?;
    }
    // A few resyncs later, still held: no hosting namespace's quota grew, and together they
    // stay within the pool.
    tokio::time::sleep(Duration::from_secs(8)).await;
    for name in ["user-a1", "user-a2"] {
        assert_eq!(
            quota_cpu(&client, &bypassed, name).await?.as_deref(),
            Some("1")
        );
    }
    let quotas = Api::<ResourceQuota>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{}={bypassed}", naming::LABEL_RESELLER)))
        .await?;
    let total = |key: &str| -> f64 {
        quotas
            .items
            .iter()
            .filter_map(|q| q.spec.as_ref()?.hard.as_ref()?.get(key).cloned())
            .filter_map(|q| oem_crds::quantity::value(&q.0))
            .sum()
    };
    let gi = 1024f64.powi(3);
    assert_eq!(quotas.items.len(), 2, "one quota per provisioned end user");
    assert!(
        total("requests.cpu") <= 2.0,
        "cpu {}",
        total("requests.cpu")
    );
    assert!(
        total("requests.memory") <= 8.0 * gi,
        "memory {}",
        total("requests.memory")
    );
    assert!(
        total("requests.storage") <= 40.0 * gi,
        "storage {}",
        total("requests.storage")
    );
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&a3_ns)
            .await?
            .is_none()
    );

    // Back within the pool: the hold is lifted; one end user gone makes room for a3.
    Api::<Course>::namespaced(client.clone(), &ns)
        .patch(
            "tiny",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"resources": {"cpu": "1", "memory": "1Gi", "storage": "10Gi"}}}),
            ),
        )
        .await?;
    held(&client, &ns, "user-a1", None).await?;
    Api::<EndUser>::namespaced(client.clone(), &ns)
        .delete("user-a1", &Default::default())
        .await?;
    wait_quota(&client, &bypassed, "user-a3", "1").await?;
    held(&client, &ns, "user-a3", None).await?;
    println!("operator backstop shown after {:?}", started.elapsed());

    // With the webhook: the same raise is refused at the API server, naming field and numbers.
    let port = free_port()?;
    let scope = format!("quota{id}");
    let configs =
        WebhookConfigs::register(cluster, &client, &format!("quota{id}"), port, &scope).await?;
    let mut server = WebhookServer::start(cluster, &configs)?;
    configs.wait_ca_bundle(&client).await?;
    let mut reseller = pool(&guarded);
    reseller["metadata"]["labels"] = json!({SCOPE_LABEL: scope});
    let gns = hosting::apply_reseller(&client, reseller).await?;
    Api::<Namespace>::all(client.clone())
        .patch(
            &gns,
            &PatchParams::apply("e2e-quota").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": gns, "labels": {SCOPE_LABEL: scope}}})),
        )
        .await?;
    apply_course(&client, course(&gns)).await?;
    for name in ["user-b1", "user-b2"] {
        apply_enduser(&client, end_user(&gns, name)).await?;
    }
    let courses: Api<Course> = Api::namespaced(client.clone(), &gns);
    let expected = "spec.resources.cpu: raising cpu from 1 to 64 for the 2 end users on this course makes reseller";
    wait::until(
        "the webhook to refuse the raise",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || async {
            let mut c = courses.get("tiny").await.map_err(|e| e.to_string())?;
            c.spec.resources.cpu.0 = "64".into();
            c.metadata.managed_fields = None;
            let dry = PostParams {
                dry_run: true,
                field_manager: None,
            };
            match courses.replace("tiny", &dry, &c).await {
                Err(kube::Error::Api(s)) if s.message.contains(expected) => {
                    assert!(
                        s.message.contains("over its quota.totalCpu of 2"),
                        "{}",
                        s.message
                    );
                    Ok(())
                }
                Err(e) => Err(format!("refused otherwise: {e}")),
                Ok(_) => Err("accepted".into()),
            }
        },
    )
    .await?;
    server.stop();
    println!(
        "quota e2e passed in {:?} (course {})",
        started.elapsed(),
        courses.get("tiny").await?.name_any()
    );
    Ok(())
}
