//! Domain claims end to end (issue 15 item 9): a domain is served by one end user only, decided
//! by the API server (one `DomainClaim` object per domain), not by a lock inside one webhook
//! process or a cache that lags.
//!
//! - Two webhook processes (two replicas, each behind its own configuration and serving one of
//!   two resellers) admit creates of the same domain for both resellers at the same moment:
//!   exactly one create wins each round, the other is refused naming the field.
//! - An end user written with the webhooks bypassed, naming a domain another end user holds,
//!   is not served that domain by the operator (its Ingress lacks it) and says why; when the
//!   holder goes, its claim is released and the domain is served on the next reconcile.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use oem_crds::{Course, DomainClaim, EndUser, Reseller};
use oem_e2e::operator::{Operator, OperatorOptions};
use oem_e2e::webhooks::{self, SCOPE_LABEL, WebhookConfigs, WebhookServer};
use oem_e2e::{Cluster, free_port, hosting, wait};
use serde_json::{Value, json};

const ROUNDS: usize = 6;

/// Deletes the test's resellers, namespaces and the claims of its end users on drop.
struct Cleanup {
    cluster: Cluster,
    resellers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for r in &self.resellers {
            let ns = format!("reseller-{r}");
            for args in [
                vec![
                    "delete",
                    "reseller",
                    r,
                    "--ignore-not-found",
                    "--wait=false",
                ],
                vec![
                    "delete",
                    "namespace",
                    &ns,
                    "--ignore-not-found",
                    "--wait=false",
                ],
            ] {
                let _ = self.cluster.kubectl(&args, None);
            }
            let selector = format!("{}={ns}", oem_crds::domainclaim::LABEL_ENDUSER_NAMESPACE);
            let _ = self.cluster.kubectl(
                &["delete", "domainclaims", "-l", &selector, "--wait=false"],
                None,
            );
        }
    }
}

fn typed<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("a valid object")
}

/// A reseller whose objects (and namespace) only the webhooks of `scope` judge, with a
/// course `basic` and the webhooks' Secret role bound in its namespace (what the operator
/// does; none runs here).
async fn scoped_reseller(
    cluster: &Cluster,
    client: &Client,
    name: &str,
    scope: &str,
) -> anyhow::Result<String> {
    let mut r = hosting::reseller(name, json!([]));
    r["metadata"]["labels"] = json!({SCOPE_LABEL: scope});
    Api::<Reseller>::all(client.clone())
        .create(&PostParams::default(), &typed(r))
        .await?;
    let ns = format!("reseller-{name}");
    Api::<Namespace>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::apply("e2e-domain-claims").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {SCOPE_LABEL: scope}}})),
        )
        .await?;
    webhooks::bind_secrets(cluster, &ns)?;
    let course = hosting::course(&ns, "basic", "1Gi", json!({"web": {"phpVersion": "8.4"}}));
    Api::<Course>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &typed(course))
        .await?;
    Ok(ns)
}

fn end_user(ns: &str, name: &str, domains: &[&str]) -> EndUser {
    let mut v = hosting::enduser(ns, name, "basic", "2025-01-01", json!({}));
    v["spec"]["domains"] = json!(domains);
    typed(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_webhook_replicas_admit_one_domain_for_exactly_one_of_two_resellers()
-> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let cluster = Cluster::shared().await?;
    oem_e2e::operator::install_crds(cluster)?;
    let client = cluster.client().await?;
    let id = std::process::id() % 100000;
    let (r1, r2) = (format!("dc{id}a"), format!("dc{id}b"));
    let _cleanup = Cleanup {
        cluster: cluster.clone(),
        resellers: vec![r1.clone(), r2.clone()],
    };
    // Two replicas: each its own process, lock and caches, each judging one reseller.
    let (scope1, scope2) = (format!("dc{id}one"), format!("dc{id}two"));
    let configs1 = WebhookConfigs::register(
        cluster,
        &client,
        &format!("dc{id}one"),
        free_port()?,
        &scope1,
    )
    .await?;
    let configs2 = WebhookConfigs::register(
        cluster,
        &client,
        &format!("dc{id}two"),
        free_port()?,
        &scope2,
    )
    .await?;
    let replica1 = WebhookServer::start(cluster, &configs1)?;
    let replica2 = WebhookServer::start(cluster, &configs2)?;
    configs1.wait_ca_bundle(&client).await?;
    configs2.wait_ca_bundle(&client).await?;
    let logs = || {
        format!(
            "replica 1:\n{}\nreplica 2:\n{}",
            replica1.log_tail(20),
            replica2.log_tail(20)
        )
    };
    // The first create may race the replicas' caches filling: retry the reseller until a
    // replica answers (it refuses nothing valid).
    let ns1 = wait::until(
        "replica 1 admitting",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            scoped_reseller(cluster, &client, &r1, &scope1)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await
    .map_err(|e| e.context(logs()))?;
    let ns2 = wait::until(
        "replica 2 admitting",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            scoped_reseller(cluster, &client, &r2, &scope2)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await
    .map_err(|e| e.context(logs()))?;
    let (users1, users2) = (
        Api::<EndUser>::namespaced(client.clone(), &ns1),
        Api::<EndUser>::namespaced(client.clone(), &ns2),
    );
    let claims: Api<DomainClaim> = Api::all(client.clone());
    println!("two replicas ready after {:?}", started.elapsed());

    let (mut wins1, mut wins2) = (0, 0);
    for round in 0..ROUNDS {
        let domain = format!("race{id}-{round}.example.jp");
        let name = format!("u{round}");
        let (e1, e2) = (
            end_user(&ns1, &name, &[&domain]),
            end_user(&ns2, &name, &[&domain]),
        );
        let pp = PostParams::default();
        let (a, b) = tokio::join!(users1.create(&pp, &e1), users2.create(&pp, &e2));
        let (winner, loser) = match (&a, &b) {
            (Ok(_), Err(e)) => {
                wins1 += 1;
                (ns1.as_str(), e.to_string())
            }
            (Err(e), Ok(_)) => {
                wins2 += 1;
                (ns2.as_str(), e.to_string())
            }
            (Ok(_), Ok(_)) => anyhow::bail!(
                "round {round}: both resellers were admitted {domain}\n{}",
                logs()
            ),
            (Err(x), Err(y)) => anyhow::bail!("round {round}: both refused: {x} / {y}"),
        };
        let rule = format!("spec.domains[0]: domain {domain} is already used by another end user");
        assert!(loser.contains(&rule), "round {round}: {loser}");
        let claim = claims.get(&domain).await?;
        assert!(
            claim.is_held_by(winner, &name),
            "round {round}: the claim names {:?}, the winner is {winner}/{name}",
            claim.spec.end_user
        );
    }
    println!(
        "{ROUNDS} rounds: reseller 1 won {wins1}, reseller 2 won {wins2}; {:?} in all",
        started.elapsed()
    );

    // An update keeps its own claim; a refused update leaves the other's claim alone.
    let domain = format!("race{id}-0.example.jp");
    let holder = claims.get(&domain).await?.spec.end_user;
    let (own, other) = if holder.namespace == ns1 {
        (&users1, &users2)
    } else {
        (&users2, &users1)
    };
    let mut eu = own.get("u0").await?;
    eu.spec.suspended = true;
    own.replace("u0", &PostParams::default(), &eu).await?;
    // The other reseller won some round (or none: then there is nothing to update).
    if let Some(mut eu) = other
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .next()
    {
        eu.spec.domains = vec![domain.clone()];
        let name = eu.name_any();
        let refused = other.replace(&name, &PostParams::default(), &eu).await;
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("spec.domains[0]"),
            "an update taking a held domain: {message:?}"
        );
    }
    assert_eq!(claims.get(&domain).await?.spec.end_user, holder);
    let listed = claims.list(&ListParams::default()).await?.items;
    let ours = listed
        .iter()
        .filter(|c| c.name_any().starts_with(&format!("race{id}-")))
        .count();
    assert_eq!(
        ours, ROUNDS,
        "one claim per domain, none left by a refused admission"
    );
    drop((replica1, replica2));
    println!("done after {:?}", started.elapsed());
    Ok(())
}

async fn ingress_hosts(client: &Client, ns: &str) -> anyhow::Result<Vec<String>> {
    let mut hosts: Vec<String> = Api::<Ingress>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .flat_map(|i| i.spec.iter().flat_map(|s| s.rules.iter().flatten()))
        .filter_map(|r| r.host.clone())
        .collect();
    hosts.sort();
    Ok(hosts)
}

fn conflict_of(eu: &EndUser) -> Option<String> {
    let conditions = &eu.status.as_ref()?.conditions;
    oem_crds::conditions::find(conditions, "DomainConflict")
        .filter(|c| c.status == oem_crds::ConditionStatus::True)
        .map(|c| c.message.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_user_written_past_the_webhooks_is_not_served_a_domain_another_holds()
-> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let cluster = Cluster::shared().await?;
    let operator = Operator::start(
        cluster,
        OperatorOptions {
            env: vec![
                ("OEM_MONITOR_ENABLED".into(), "false".into()),
                ("OEM_RESYNC_INTERVAL".into(), "10s".into()),
                ("OEM_SPEC_RETRY".into(), "3s".into()),
            ],
            ..Default::default()
        },
    )
    .await?;
    let client = cluster.client().await?;
    let id = std::process::id() % 100000;
    let (r1, r2) = (format!("dco{id}a"), format!("dco{id}b"));
    let _cleanup = Cleanup {
        cluster: cluster.clone(),
        resellers: vec![r1.clone(), r2.clone()],
    };
    let web = json!({"web": {"phpVersion": "8.4"}});
    let ns1 = hosting::reseller_with_namespace(&client, &r1, json!([])).await?;
    let ns2 = hosting::reseller_with_namespace(&client, &r2, json!([])).await?;
    hosting::apply_course(&client, hosting::course(&ns1, "basic", "1Gi", web.clone())).await?;
    hosting::apply_course(&client, hosting::course(&ns2, "basic", "1Gi", web)).await?;
    let shared = format!("shared{id}.example.jp");
    let own = format!("own{id}.example.jp");
    let claims: Api<DomainClaim> = Api::all(client.clone());
    let limit = Duration::from_secs(90);

    // No webhooks here: the operator claims the holder's domain itself.
    let mut holder = hosting::enduser(&ns1, "holder", "basic", "2025-01-01", json!({}));
    holder["spec"]["domains"] = json!([shared]);
    hosting::apply_enduser(&client, holder).await?;
    wait::until(
        "the holder's claim",
        limit,
        Duration::from_millis(250),
        || async {
            match claims.get_opt(&shared).await {
                Ok(Some(c)) if c.is_held_by(&ns1, "holder") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .map_err(|e| e.context(operator.log_tail(30)))?;

    // The intruder names the held domain and one of its own.
    let mut intruder = hosting::enduser(&ns2, "intruder", "basic", "2025-01-01", json!({}));
    intruder["spec"]["domains"] = json!([shared, own]);
    hosting::apply_enduser(&client, intruder).await?;
    let users2: Api<EndUser> = Api::namespaced(client.clone(), &ns2);
    let eu = wait::until(
        "the intruder's DomainConflict",
        limit,
        Duration::from_millis(250),
        || async {
            let eu = users2.get("intruder").await.map_err(|e| e.to_string())?;
            match conflict_of(&eu) {
                Some(_)
                    if eu
                        .status
                        .as_ref()
                        .is_some_and(|s| s.hosting_namespace.is_some()) =>
                {
                    Ok(eu)
                }
                _ => Err(format!("{:?}", eu.status)),
            }
        },
    )
    .await
    .map_err(|e| e.context(operator.log_tail(30)))?;
    let message = conflict_of(&eu).unwrap_or_default();
    assert!(
        message.contains(&shared) && !message.contains(&own),
        "{message}"
    );
    let hosting_ns = hosting::hosting_namespace(&eu)?;
    let hosts = wait::until(
        "the intruder's own Ingress",
        limit,
        Duration::from_millis(250),
        || async {
            let hosts = ingress_hosts(&client, &hosting_ns)
                .await
                .map_err(|e| e.to_string())?;
            if hosts.contains(&own) {
                Ok(hosts)
            } else {
                Err(format!("{hosts:?}"))
            }
        },
    )
    .await?;
    assert_eq!(
        hosts,
        std::slice::from_ref(&own),
        "the held domain is not served to the intruder"
    );
    let events = cluster.kubectl_ok(
        &[
            "get",
            "events",
            "-n",
            &ns2,
            "--field-selector",
            "reason=DomainConflict,involvedObject.name=intruder",
            "-o",
            "name",
        ],
        None,
    )?;
    assert!(!events.trim().is_empty(), "a Warning event says why");
    assert!(
        claims.get(&shared).await?.is_held_by(&ns1, "holder"),
        "the claim stays the holder's"
    );
    println!("conflict reported after {:?}", started.elapsed());

    // The holder goes: its claim is released, and the domain is served on a later reconcile.
    Api::<EndUser>::namespaced(client.clone(), &ns1)
        .delete("holder", &DeleteParams::default())
        .await?;
    wait::until(
        "the domain served to the intruder",
        limit,
        Duration::from_millis(500),
        || async {
            let hosts = ingress_hosts(&client, &hosting_ns)
                .await
                .map_err(|e| e.to_string())?;
            let eu = users2.get("intruder").await.map_err(|e| e.to_string())?;
            if hosts.contains(&shared) && conflict_of(&eu).is_none() {
                Ok(())
            } else {
                Err(format!("{hosts:?} {:?}", conflict_of(&eu)))
            }
        },
    )
    .await
    .map_err(|e| e.context(operator.log_tail(30)))?;
    assert!(claims.get(&shared).await?.is_held_by(&ns2, "intruder"));
    println!("domain handed over after {:?}", started.elapsed());
    Ok(())
}
