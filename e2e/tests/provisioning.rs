//! Provisioning end to end: the operator runs as its own process under the chart's
//! least-privilege role against the local control plane; each test uses a reseller of its own.

use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolume, PersistentVolumeClaim, Pod, ResourceQuota,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use oem_crds::{EndUser, EndUserPhase, Reseller};
use oem_e2e::hosting::{self, apply_course, apply_enduser, wait_phase};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::{Cluster, wait};
use oem_operator::naming;
use serde_json::json;
use tokio::sync::OnceCell;

const LIMIT: Duration = Duration::from_secs(120);

static OPERATOR: OnceCell<Operator> = OnceCell::const_new();

async fn setup() -> anyhow::Result<(&'static Cluster, Client, &'static Operator)> {
    let cluster = Cluster::shared().await?;
    let operator = OPERATOR
        .get_or_try_init(|| async {
            Operator::start(
                cluster,
                OperatorOptions {
                    env: vec![
                        // Provisioning alone: see provisioning_scale.rs.
                        ("OEM_MONITOR_ENABLED".into(), "false".into()),
                        ("OEM_RESYNC_INTERVAL".into(), "20s".into()),
                        ("OEM_SPEC_RETRY".into(), "3s".into()),
                    ],
                    ..Default::default()
                },
            )
            .await
        })
        .await?;
    Ok((cluster, cluster.client().await?, operator))
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 100000)
}

async fn stateful_sets(client: &Client, ns: &str) -> anyhow::Result<Vec<StatefulSet>> {
    Ok(Api::<StatefulSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items)
}

async fn running_pods(client: &Client, ns: &str) -> anyhow::Result<usize> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    Ok(pods
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .count())
}

#[tokio::test]
async fn examples_reach_their_phases_with_pods_running() -> anyhow::Result<()> {
    let (cluster, client, _operator) = setup().await?;
    let examples = oem_e2e::cluster::repo_root().join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&examples)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut endusers = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_json::Value = serde::Deserialize::deserialize(doc)?;
            match value["kind"].as_str() {
                Some("Reseller") => {
                    hosting::apply_reseller(&client, value).await?;
                }
                Some("Course") => {
                    apply_course(&client, value).await?;
                }
                Some("EndUser") => endusers.push(apply_enduser(&client, value).await?),
                Some(_) => {
                    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&value.to_string()))?;
                }
                None => {}
            }
        }
    }
    assert!(
        endusers.len() >= 3,
        "the examples hold at least three end users"
    );
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Asia/Tokyo")?)
        .date()
        .to_string();
    for eu in &endusers {
        let ns = eu.namespace().unwrap_or_default();
        let expected = if eu.spec.suspended {
            "Suspended"
        } else if eu.spec.start_date.to_string() > today {
            "Scheduled"
        } else {
            "Active"
        };
        let seen = wait_phase(&client, &ns, &eu.name_any(), expected, LIMIT).await?;
        if expected == "Active" {
            let hosting_ns = hosting::hosting_namespace(&seen)?;
            let sets = stateful_sets(&client, &hosting_ns).await?;
            assert!(!sets.is_empty(), "{hosting_ns} has workloads");
            assert_eq!(running_pods(&client, &hosting_ns).await?, sets.len());
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_course_change_reaches_every_workload_on_it() -> anyhow::Result<()> {
    let (_, client, _) = setup().await?;
    let reseller = unique("course-change-");
    let ns = hosting::reseller_with_namespace(&client, &reseller, json!([])).await?;
    apply_course(
        &client,
        hosting::course(&ns, "plan", "1Gi", hosting::web_and_db()),
    )
    .await?;
    let mut hosting_namespaces = Vec::new();
    for name in ["first", "second"] {
        apply_enduser(
            &client,
            hosting::enduser(&ns, name, "plan", "2025-01-01", json!({})),
        )
        .await?;
        let eu = wait_phase(&client, &ns, name, "Active", LIMIT).await?;
        hosting_namespaces.push(hosting::hosting_namespace(&eu)?);
    }
    let memory_limit = |sets: &[StatefulSet]| -> Vec<String> {
        sets.iter()
            .flat_map(|s| s.spec.iter().flat_map(|s| s.template.spec.iter()))
            .flat_map(|p| p.containers.iter())
            .filter_map(|c| {
                c.resources
                    .as_ref()?
                    .limits
                    .as_ref()?
                    .get("memory")
                    .map(|q| q.0.clone())
            })
            .collect()
    };
    let before = memory_limit(&stateful_sets(&client, &hosting_namespaces[0]).await?);
    let claim_size = |claim: PersistentVolumeClaim| {
        claim
            .spec
            .and_then(|s| s.resources?.requests?.get("storage").map(|q| q.0.clone()))
    };
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &hosting_namespaces[0]);
    let size_before = claim_size(claims.get("data-web-0").await?);
    let mut bigger = hosting::course(&ns, "plan", "2Gi", hosting::web_and_db());
    bigger["spec"]["resources"]["storage"] = json!("20Gi");
    apply_course(&client, bigger).await?;
    wait::until(
        "the web volume to grow with the course",
        LIMIT,
        Duration::from_millis(300),
        || async {
            let now = claim_size(claims.get("data-web-0").await.map_err(|e| e.to_string())?);
            if now.is_some() && now != size_before {
                Ok(())
            } else {
                Err(format!("data-web-0 requests {now:?}"))
            }
        },
    )
    .await?;
    for hosting_ns in &hosting_namespaces {
        let client = client.clone();
        wait::until(
            "every workload to take the new memory",
            LIMIT,
            Duration::from_millis(300),
            || async {
                let after = memory_limit(
                    &stateful_sets(&client, hosting_ns)
                        .await
                        .map_err(|e| e.to_string())?,
                );
                let quota = Api::<ResourceQuota>::namespaced(client.clone(), hosting_ns)
                    .get("course-limits")
                    .await
                    .map_err(|e| e.to_string())?;
                let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
                let quota_memory = hard.get("limits.memory").map(|q| q.0.clone());
                if after != before
                    && after.len() == before.len()
                    && quota_memory.as_deref() == Some("2Gi")
                {
                    Ok(())
                } else {
                    Err(format!(
                        "limits {after:?} (were {before:?}), quota {quota_memory:?}"
                    ))
                }
            },
        )
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn suspension_stops_serving_keeps_data_and_unsuspending_restores() -> anyhow::Result<()> {
    let (_, client, _) = setup().await?;
    let reseller = unique("suspend-");
    let ns = hosting::reseller_with_namespace(&client, &reseller, json!([])).await?;
    apply_course(
        &client,
        hosting::course(&ns, "plan", "1Gi", hosting::web_and_db()),
    )
    .await?;
    apply_enduser(
        &client,
        hosting::enduser(&ns, "shop", "plan", "2025-01-01", json!({})),
    )
    .await?;
    let eu = wait_phase(&client, &ns, "shop", "Active", LIMIT).await?;
    let hosting_ns = hosting::hosting_namespace(&eu)?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &hosting_ns);
    let claims_before: Vec<String> = claims
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert!(!claims_before.is_empty());

    apply_enduser(
        &client,
        hosting::enduser(
            &ns,
            "shop",
            "plan",
            "2025-01-01",
            json!({"suspended": true}),
        ),
    )
    .await?;
    wait_phase(&client, &ns, "shop", "Suspended", LIMIT).await?;
    let sets = stateful_sets(&client, &hosting_ns).await?;
    assert!(
        sets.iter()
            .all(|s| s.spec.as_ref().and_then(|s| s.replicas) == Some(0))
    );
    let ingresses = Api::<Ingress>::namespaced(client.clone(), &hosting_ns)
        .list(&ListParams::default())
        .await?;
    assert!(ingresses.items.is_empty(), "no ingress while suspended");
    wait::until(
        "pods to stop",
        LIMIT,
        Duration::from_millis(300),
        || async {
            match running_pods(&client, &hosting_ns).await {
                Ok(0) => Ok(()),
                Ok(n) => Err(format!("{n} pods running")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    let claims_during: Vec<String> = claims
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(
        claims_during, claims_before,
        "suspension keeps every volume"
    );

    apply_enduser(
        &client,
        hosting::enduser(
            &ns,
            "shop",
            "plan",
            "2025-01-01",
            json!({"suspended": false}),
        ),
    )
    .await?;
    wait_phase(&client, &ns, "shop", "Active", LIMIT).await?;
    assert!(
        !Api::<Ingress>::namespaced(client.clone(), &hosting_ns)
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn a_future_start_date_is_scheduled_until_the_day_comes() -> anyhow::Result<()> {
    let (_, client, operator) = setup().await?;
    let reseller = unique("scheduled-");
    let ns = hosting::reseller_with_namespace(&client, &reseller, json!([])).await?;
    apply_course(
        &client,
        hosting::course(&ns, "plan", "1Gi", json!({"web": {"phpVersion": "8.4"}})),
    )
    .await?;
    let tokyo = jiff::tz::TimeZone::get("Asia/Tokyo")?;
    let start = jiff::Timestamp::now()
        .to_zoned(tokyo)
        .date()
        .checked_add(jiff::Span::new().days(2))?;
    apply_enduser(
        &client,
        hosting::enduser(&ns, "later", "plan", &start.to_string(), json!({})),
    )
    .await?;
    let eu = wait_phase(&client, &ns, "later", "Scheduled", LIMIT).await?;
    let status = serde_json::to_value(&eu)?["status"].clone();
    assert!(
        status["hostingNamespace"].is_null(),
        "nothing is provisioned before the start date: {status}"
    );

    // Three days later (by the operator's injected clock) the start date has passed.
    operator.shift_clock("+259200s")?;
    let active = wait_phase(&client, &ns, "later", "Active", LIMIT).await;
    operator.shift_clock("+0s")?;
    active?;
    Ok(())
}

#[tokio::test]
async fn deletion_removes_hosting_and_retain_keeps_the_volumes() -> anyhow::Result<()> {
    let (_, client, _) = setup().await?;
    let reseller = unique("delete-");
    let ns = hosting::reseller_with_namespace(&client, &reseller, json!([])).await?;
    apply_course(
        &client,
        hosting::course(&ns, "plan", "1Gi", hosting::web_and_db()),
    )
    .await?;
    let mut hosting_namespaces = Vec::new();
    for (name, policy) in [("gone", "Delete"), ("kept", "Retain")] {
        apply_enduser(
            &client,
            hosting::enduser(
                &ns,
                name,
                "plan",
                "2025-01-01",
                json!({"deletionPolicy": policy}),
            ),
        )
        .await?;
        let eu = wait_phase(&client, &ns, name, "Active", LIMIT).await?;
        hosting_namespaces.push(hosting::hosting_namespace(&eu)?);
    }
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let bound_to = |ns: String| {
        let volumes = volumes.clone();
        async move {
            let all = volumes.list(&ListParams::default()).await?;
            anyhow::Ok(
                all.items
                    .into_iter()
                    .filter(|v| {
                        v.spec
                            .as_ref()
                            .and_then(|s| s.claim_ref.as_ref())
                            .and_then(|c| c.namespace.clone())
                            == Some(ns.clone())
                    })
                    .collect::<Vec<_>>(),
            )
        }
    };
    let kept_before = bound_to(hosting_namespaces[1].clone()).await?;
    assert!(
        !kept_before.is_empty(),
        "the retained end user has bound volumes"
    );

    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &ns);
    // Every change from here on, so a phase that lasts only while the cleanup runs is seen.
    let from = endusers
        .list_metadata(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut changes = endusers
        .watch(&WatchParams::default().timeout(100), &from)
        .await?
        .boxed();
    for name in ["gone", "kept"] {
        endusers.delete(name, &DeleteParams::default()).await?;
    }
    // Until each is gone, the end user says why it is still there.
    let mut terminating = std::collections::BTreeSet::new();
    let mut deleted = std::collections::BTreeSet::new();
    tokio::time::timeout(LIMIT, async {
        while deleted.len() < 2 {
            match changes.try_next().await? {
                Some(WatchEvent::Modified(e)) => {
                    if e.status.and_then(|s| s.phase) == Some(EndUserPhase::Terminating) {
                        terminating.insert(e.metadata.name.unwrap_or_default());
                    }
                }
                Some(WatchEvent::Deleted(e)) => {
                    deleted.insert(e.metadata.name.unwrap_or_default());
                }
                Some(_) => {}
                None => break,
            }
        }
        anyhow::Ok(())
    })
    .await
    .context("waiting for both end users to go")??;
    assert_eq!(
        terminating,
        ["gone".to_owned(), "kept".to_owned()].into(),
        "each deleted end user showed phase Terminating before it went (deleted: {deleted:?})"
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for hosting_ns in &hosting_namespaces {
        wait::gone(&namespaces, hosting_ns, LIMIT).await?;
    }
    wait::until(
        "the deleted end user's volumes to go",
        LIMIT,
        Duration::from_millis(500),
        || async {
            match bound_to(hosting_namespaces[0].clone()).await {
                Ok(v) if v.is_empty() => Ok(()),
                Ok(v) => Err(format!("{} volumes left", v.len())),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    let kept = bound_to(hosting_namespaces[1].clone()).await?;
    assert_eq!(kept.len(), kept_before.len(), "Retain keeps every volume");
    for volume in &kept {
        let spec = volume.spec.as_ref();
        assert_eq!(
            spec.and_then(|s| s.persistent_volume_reclaim_policy.as_deref()),
            Some("Retain")
        );
        assert_eq!(
            volume
                .labels()
                .get("hosting.oem.dev/retained")
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(
            volume
                .labels()
                .get("hosting.oem.dev/enduser")
                .map(String::as_str),
            Some("kept")
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_hand_edited_child_is_put_back() -> anyhow::Result<()> {
    let (_, client, _) = setup().await?;
    let reseller = unique("drift-");
    let ns = hosting::reseller_with_namespace(&client, &reseller, json!([])).await?;
    apply_course(
        &client,
        hosting::course(&ns, "plan", "1Gi", hosting::web_and_db()),
    )
    .await?;
    apply_enduser(
        &client,
        hosting::enduser(&ns, "edited", "plan", "2025-01-01", json!({})),
    )
    .await?;
    let eu = wait_phase(&client, &ns, "edited", "Active", LIMIT).await?;
    let hosting_ns = hosting::hosting_namespace(&eu)?;

    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &hosting_ns);
    let hand_edit = json!({"spec": {"hard": {"limits.cpu": "100"}}});
    quotas
        .patch(
            "course-limits",
            &PatchParams::default(),
            &Patch::Merge(&hand_edit),
        )
        .await?;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &hosting_ns);
    policies
        .delete("default-deny", &DeleteParams::default())
        .await?;
    wait::until(
        "the quota and the policy to be put back",
        LIMIT,
        Duration::from_millis(300),
        || async {
            let q = quotas
                .get("course-limits")
                .await
                .map_err(|e| e.to_string())?;
            let cpu = q
                .spec
                .and_then(|s| s.hard)
                .and_then(|h| h.get("limits.cpu").map(|q| q.0.clone()));
            let deny = policies
                .get_opt("default-deny")
                .await
                .map_err(|e| e.to_string())?;
            if cpu.as_deref() == Some("1") && deny.is_some() {
                Ok(())
            } else {
                Err(format!(
                    "limits.cpu {cpu:?}, default-deny present: {}",
                    deny.is_some()
                ))
            }
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_reseller_admin_manages_its_own_and_cannot_read_anothers() -> anyhow::Result<()> {
    let (cluster, client, _) = setup().await?;
    let a = unique("rbac-a-");
    let b = unique("rbac-b-");
    let alice = format!("alice@{a}");
    let ns_a =
        hosting::reseller_with_namespace(&client, &a, json!([{"kind": "User", "name": alice}]))
            .await?;
    let ns_b = hosting::reseller_with_namespace(
        &client,
        &b,
        json!([{"kind": "User", "name": format!("bob@{b}")}]),
    )
    .await?;
    apply_course(
        &client,
        hosting::course(&ns_a, "plan", "1Gi", json!({"web": {"phpVersion": "8.4"}})),
    )
    .await?;
    apply_enduser(
        &client,
        hosting::enduser(&ns_a, "mine", "plan", "2025-01-01", json!({})),
    )
    .await?;
    let eu = wait_phase(&client, &ns_a, "mine", "Active", LIMIT).await?;
    let hosting_ns = hosting::hosting_namespace(&eu)?;
    let can = |verb: &str, resource: &str, ns: &str| -> anyhow::Result<bool> {
        let out = cluster.kubectl(
            &["auth", "can-i", verb, resource, "-n", ns, "--as", &alice],
            None,
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim() == "yes")
    };
    // The RoleBinding is in place once the namespace exists; allow the cache a moment.
    wait::until(
        "alice's access",
        LIMIT,
        Duration::from_millis(300),
        || async {
            match can("create", "endusers.hosting.oem.dev", &ns_a) {
                Ok(true) => Ok(()),
                Ok(false) => Err("not yet".into()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    assert!(can("delete", "courses.hosting.oem.dev", &ns_a)?);
    assert!(can("list", "incidents.hosting.oem.dev", &ns_a)?);
    assert!(
        !can("delete", "incidents.hosting.oem.dev", &ns_a)?,
        "incidents are read-only"
    );
    assert!(
        can("list", "pods", &hosting_ns)?,
        "reads its end users' hosting"
    );
    assert!(
        !can("get", "secrets", &hosting_ns)?,
        "but not their service credentials"
    );
    assert!(
        !can("list", "endusers.hosting.oem.dev", &ns_b)?,
        "never another reseller's"
    );
    assert!(!can("get", "courses.hosting.oem.dev", &ns_b)?);
    // And for real: listing another reseller's end users is forbidden.
    let out = cluster.kubectl(&["get", "endusers", "-n", &ns_b, "--as", &alice], None)?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));
    Ok(())
}

#[tokio::test]
async fn a_reseller_with_end_users_cannot_be_deleted() -> anyhow::Result<()> {
    let (_, client, _) = setup().await?;
    let reseller = unique("keep-");
    let ns = hosting::reseller_with_namespace(&client, &reseller, json!([])).await?;
    apply_course(
        &client,
        hosting::course(&ns, "plan", "1Gi", json!({"web": {"phpVersion": "8.4"}})),
    )
    .await?;
    apply_enduser(
        &client,
        hosting::enduser(&ns, "stays", "plan", "2025-01-01", json!({})),
    )
    .await?;
    wait_phase(&client, &ns, "stays", "Active", LIMIT).await?;
    let resellers: Api<Reseller> = Api::all(client.clone());
    resellers
        .delete(&reseller, &DeleteParams::default())
        .await?;
    wait::until(
        "the reseller to say why it stays",
        LIMIT,
        Duration::from_millis(300),
        || async {
            let r = resellers.get(&reseller).await.map_err(|e| e.to_string())?;
            let v = serde_json::to_value(&r).map_err(|e| e.to_string())?;
            let ready = v["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
                .unwrap_or_default();
            if ready["reason"] == "EndUsersRemain" && ready["status"] == "False" {
                Ok(())
            } else {
                Err(format!("Ready = {ready}"))
            }
        },
    )
    .await?;
    Api::<EndUser>::namespaced(client.clone(), &ns)
        .delete("stays", &DeleteParams::default())
        .await?;
    wait::gone(&resellers, &reseller, LIMIT).await?;
    Ok(())
}

#[tokio::test]
async fn a_hosting_namespace_whose_end_user_vanished_is_swept() -> anyhow::Result<()> {
    let (_, client, operator) = setup().await?;
    let reseller = unique("orphan-");
    let ns = hosting::reseller_with_namespace(&client, &reseller, json!([])).await?;
    // What a finalizer cannot cover (it was stripped by hand, the EndUser force-deleted): a
    // hosting namespace, labelled as the operator labels them, whose end user does not exist.
    let orphan = naming::hosting_namespace(&reseller, "vanished");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let labels = json!({
        naming::LABEL_MANAGED_BY: naming::MANAGED_BY,
        naming::LABEL_RESELLER: reseller,
        naming::LABEL_ENDUSER: "vanished",
        naming::LABEL_ENDUSER_NAMESPACE: ns,
    });
    namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": orphan, "labels": labels}}))?,
        )
        .await?;
    // The sweep runs every resync interval (20 s here).
    wait::gone(&namespaces, &orphan, LIMIT).await?;
    let log = operator.log_tail(2000);
    assert!(
        log.lines()
            .any(|l| l.contains("orphaned hosting namespace") && l.contains(&orphan)),
        "the sweep removed it"
    );
    Ok(())
}
