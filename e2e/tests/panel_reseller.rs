//! The resellers' panel end to end: the operator issues each reseller's panel login into the
//! provider's namespace and lets the panel act as the reseller's panel user; the panel runs
//! as its own process under its own roles; a cookie-keeping HTTP client uses it as a browser
//! would. Every write goes through the real API server as the reseller (impersonation), so
//! RBAC and validation answer as they answer kubectl.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use oem_crds::{Course, EndUser, Incident};
use oem_e2e::hosting::{self, apply_course, wait_phase};
use oem_e2e::operator::{OPERATOR_NAMESPACE, Operator, OperatorOptions};
use oem_e2e::panel::{Answer, Panel, PanelClient, issued_reseller_password};
use oem_e2e::wait;
use oem_e2e::webhooks::{SCOPE_LABEL, WebhookConfigs, WebhookServer};
use oem_e2e::{Cluster, free_port};
use serde_json::json;
use tokio::sync::OnceCell;

const LIMIT: Duration = Duration::from_secs(120);

struct Fixture {
    _operator: Operator,
    /// The admission webhooks, for the namespace of `mine` (its refusals reach the forms).
    _webhooks: (WebhookConfigs, WebhookServer),
    panel: Panel,
    /// Two resellers of this binary: the one signed in, and the other.
    mine: String,
    other: String,
}

static FIXTURE: OnceCell<Fixture> = OnceCell::const_new();

async fn fixture() -> anyhow::Result<(&'static Cluster, Client, &'static Fixture)> {
    let cluster = Cluster::shared().await?;
    let f = FIXTURE
        .get_or_try_init(|| async {
            let operator = Operator::start(
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
            let client = cluster.client().await?;
            let id = std::process::id() % 100000;
            let (mine, other) = (format!("rpa{id}"), format!("rpb{id}"));
            for reseller in [&mine, &other] {
                let namespace =
                    hosting::reseller_with_namespace(&client, reseller, json!([])).await?;
                apply_course(
                    &client,
                    hosting::course(&namespace, "standard", "1Gi", hosting::web_and_db()),
                )
                .await?;
            }
            // The admission webhooks judge what is written in `mine`'s namespace.
            let scope = format!("rp{id}");
            let configs =
                WebhookConfigs::register(cluster, &client, &scope, free_port()?, &scope).await?;
            let server = WebhookServer::start(cluster, &configs)?;
            configs.wait_ca_bundle(&client).await?;
            Api::<Namespace>::all(client.clone())
                .patch(
                    &format!("reseller-{mine}"),
                    &PatchParams::apply("e2e-webhooks-scope").force(),
                    &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": format!("reseller-{mine}"), "labels": {SCOPE_LABEL: scope}}})),
                )
                .await?;
            let panel = Panel::start(cluster, "").await?;
            anyhow::Ok(Fixture {
                _operator: operator,
                _webhooks: (configs, server),
                panel,
                mine,
                other,
            })
        })
        .await?;
    Ok((cluster, cluster.client().await?, f))
}

async fn signed_in(client: &Client, f: &Fixture) -> anyhow::Result<PanelClient> {
    let password = issued_reseller_password(client, &f.mine).await?;
    let browser = PanelClient::new(&f.panel.url)?;
    let answer = browser.reseller_login(&f.mine, "admin", &password).await?;
    anyhow::ensure!(
        answer.status == 303 && answer.header("location") == format!("/r/{}/customers", f.mine),
        "sign-in: {} {}\n{}",
        answer.status,
        answer.header("location"),
        f.panel.log_tail(30)
    );
    Ok(browser)
}

/// The page at `path` once the panel's cache holds what it shows (200, not 404).
async fn once_cached(browser: &PanelClient, path: &str) -> anyhow::Result<Answer> {
    wait::until(
        "the panel's cache",
        LIMIT,
        Duration::from_millis(250),
        || async {
            let page = browser.get(path).await.map_err(|e| e.to_string())?;
            (page.status == 200)
                .then_some(page)
                .ok_or_else(|| "not yet".to_owned())
        },
    )
    .await
}

/// The CSRF token of the page at `path`.
async fn csrf(browser: &PanelClient, path: &str) -> anyhow::Result<String> {
    let page = browser.get(path).await?;
    anyhow::ensure!(page.status == 200, "{path}: {}", page.status);
    page.field("csrf")
        .ok_or_else(|| anyhow::anyhow!("{path} has no form"))
}

fn new_customer<'a>(csrf: &'a str, name: &'a str, domains: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("name", name),
        ("loginId", name),
        ("contractName", "山田商店"),
        ("customerNumber", "C-100"),
        ("contactEmail", "yamada@example.jp"),
        ("courseRef", "standard"),
        ("domains", domains),
        ("contractDate", "2025-01-01"),
        ("startDate", "2025-01-01"),
    ]
}

#[tokio::test]
async fn a_reseller_creates_a_customer_sees_it_active_and_suspends_it() -> anyhow::Result<()> {
    let (_, client, f) = fixture().await?;
    let browser = signed_in(&client, f).await?;
    let ns = format!("reseller-{}", f.mine);
    let token = csrf(&browser, &format!("/r/{}/customers/new", f.mine)).await?;
    // Bad input: the API server's message next to the field, and nothing created.
    let bad = browser
        .post(
            &format!("/r/{}/customers/new", f.mine),
            &new_customer(&token, "yamada", "Bad_Name.example.jp"),
        )
        .await?;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.body.contains("id=\"f-domains-error\"") && bad.body.contains("spec.domains"),
        "the refusal is shown at the domains field:\n{}",
        bad.body
    );
    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &ns);
    assert!(
        endusers.get_opt("yamada").await?.is_none(),
        "nothing half-saved"
    );
    // The form, right.
    let created = browser
        .post(
            &format!("/r/{}/customers/new", f.mine),
            &new_customer(&token, "yamada", "yamada.example.jp\nwww.yamada.example.jp"),
        )
        .await?;
    assert_eq!(
        created.status,
        303,
        "{}\n{}",
        created.body,
        f.panel.log_tail(20)
    );
    let eu = wait_phase(&client, &ns, "yamada", "Active", LIMIT).await?;
    let managers: Vec<String> = eu
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.contains(&"oem-hosting-panel".to_owned()),
        "{managers:?}"
    );
    assert_eq!(eu.spec.domains.len(), 2);
    let page = browser
        .get(&format!("/r/{}/customers/yamada", f.mine))
        .await?;
    assert!(page.body.contains("山田商店"), "{}", page.body);
    let list = browser.get(&format!("/r/{}/customers", f.mine)).await?;
    assert!(
        list.body.contains("yamada.example.jp (+1)"),
        "{}",
        list.body
    );
    // Suspend.
    let token = page.field("csrf").unwrap_or_default();
    let suspended = browser
        .post(
            &format!("/r/{}/customers/yamada/suspend", f.mine),
            &[("csrf", &token)],
        )
        .await?;
    assert_eq!(suspended.status, 303, "{}", suspended.body);
    let eu = wait_phase(&client, &ns, "yamada", "Suspended", LIMIT).await?;
    assert!(eu.spec.suspended);
    assert_eq!(
        eu.spec.contract_name, "山田商店",
        "the rest of the spec is kept"
    );
    // Resume, then delete (the confirmation box is required).
    let resumed = browser
        .post(
            &format!("/r/{}/customers/yamada/unsuspend", f.mine),
            &[("csrf", &token)],
        )
        .await?;
    assert_eq!(resumed.status, 303, "{}", resumed.body);
    let eu = wait_phase(&client, &ns, "yamada", "Active", LIMIT).await?;
    assert!(!eu.spec.suspended);
    let unconfirmed = browser
        .post(
            &format!("/r/{}/customers/yamada/delete", f.mine),
            &[("csrf", &token)],
        )
        .await?;
    assert_eq!(unconfirmed.status, 422, "deleting needs the confirmation");
    assert!(endusers.get_opt("yamada").await?.is_some());
    let deleted = browser
        .post(
            &format!("/r/{}/customers/yamada/delete", f.mine),
            &[("csrf", &token), ("confirm", "yes")],
        )
        .await?;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    wait::until(
        "the end user gone",
        LIMIT,
        Duration::from_millis(500),
        || async {
            match endusers.get_opt("yamada").await {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err("still there".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_panel_cannot_reach_another_resellers_objects() -> anyhow::Result<()> {
    let (cluster, client, f) = fixture().await?;
    let browser = signed_in(&client, f).await?;
    let other_ns = format!("reseller-{}", f.other);
    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &other_ns);
    hosting::apply_enduser(
        &client,
        hosting::enduser(
            &other_ns,
            "secret-shop",
            "standard",
            "2025-01-01",
            json!({}),
        ),
    )
    .await?;
    let token = csrf(&browser, &format!("/r/{}/customers", f.mine)).await?;
    for path in [
        format!("/r/{}/customers", f.other),
        format!("/r/{}/customers/secret-shop", f.other),
        format!("/r/{}/customers/secret-shop", f.mine),
        format!("/r/{}/usage", f.other),
    ] {
        let answer = browser.get(&path).await?;
        assert_eq!(answer.status, 404, "{path}");
        assert!(!answer.body.contains("secret-shop"), "{path}");
    }
    for path in [
        format!("/r/{}/customers/secret-shop/suspend", f.other),
        format!("/r/{}/customers/secret-shop/suspend", f.mine),
        format!("/r/{}/customers/secret-shop/delete", f.mine),
    ] {
        let answer = browser
            .post(&path, &[("csrf", &token), ("confirm", "yes")])
            .await?;
        assert_eq!(answer.status, 404, "{path}");
    }
    assert!(!endusers.get("secret-shop").await?.spec.suspended);
    // What the API server lets the panel do: act as a reseller's panel ServiceAccount, in that
    // reseller's namespace, and as no one else; and that account has the reseller's rights
    // in its own namespace only.
    let panel_sa = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:oem-panel");
    let can = |args: &[&str]| -> anyhow::Result<bool> {
        let out = cluster.kubectl(&[&["auth", "can-i"], args].concat(), None)?;
        Ok(String::from_utf8_lossy(&out.stdout).trim() == "yes")
    };
    let mine_ns = format!("reseller-{}", f.mine);
    let mine_user = format!("system:serviceaccount:{mine_ns}:oem-hosting-reseller-panel");
    let panel_account = "serviceaccounts/oem-hosting-reseller-panel";
    wait::until(
        "the panel's impersonation binding",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            can(&[
                "impersonate",
                panel_account,
                "-n",
                &mine_ns,
                "--as",
                &panel_sa,
            ])
            .map_err(|e| e.to_string())?
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
        },
    )
    .await?;
    for (what, args) in [
        ("a user", vec!["impersonate", "users/alice@example.jp"]),
        (
            "another account of the reseller",
            vec!["impersonate", "serviceaccounts/default", "-n", &mine_ns],
        ),
        (
            "the operator",
            vec![
                "impersonate",
                "serviceaccounts/oem-operator",
                "-n",
                OPERATOR_NAMESPACE,
            ],
        ),
        (
            "a panel account outside a reseller namespace",
            vec!["impersonate", panel_account, "-n", "default"],
        ),
        ("a group", vec!["impersonate", "groups/system:masters"]),
    ] {
        let mut args = args;
        args.extend(["--as", panel_sa.as_str()]);
        assert!(!can(&args)?, "the panel may impersonate {what}");
    }
    assert!(can(&[
        "patch", "endusers", "-n", &mine_ns, "--as", &mine_user
    ])?);
    assert!(can(&[
        "patch",
        "incidents",
        "-n",
        &mine_ns,
        "--as",
        &mine_user
    ])?);
    assert!(!can(&[
        "get", "endusers", "-n", &other_ns, "--as", &mine_user
    ])?);
    assert!(!can(&[
        "get",
        "secrets",
        "-n",
        OPERATOR_NAMESPACE,
        "--as",
        &mine_user
    ])?);
    Ok(())
}

#[tokio::test]
async fn a_field_gitops_applies_is_shown_as_such_and_not_fought_over() -> anyhow::Result<()> {
    let (_, client, f) = fixture().await?;
    let ns = format!("reseller-{}", f.mine);
    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &ns);
    let value = hosting::enduser(&ns, "gitops", "standard", "2025-01-01", json!({}));
    endusers
        .patch(
            "gitops",
            &PatchParams::apply("argocd").force(),
            &Patch::Apply(&value),
        )
        .await?;
    let browser = signed_in(&client, f).await?;
    let path = format!("/r/{}/customers/gitops", f.mine);
    let page = once_cached(&browser, &path).await?;
    assert!(
        page.body.contains("id=\"f-contractName-managed\"") && page.body.contains("argocd"),
        "{}",
        page.body
    );
    let token = page.field("csrf").unwrap_or_default();
    let live = endusers.get("gitops").await?;
    let refused = browser
        .post(
            &path,
            &[
                ("csrf", token.as_str()),
                ("contractName", "Taken Over Ltd"),
                ("contactEmail", &live.spec.contact_email),
                ("courseRef", "standard"),
                ("domains", &live.spec.domains.join("\n")),
                ("contractDate", &live.spec.contract_date.to_string()),
                ("startDate", &live.spec.start_date.to_string()),
            ],
        )
        .await?;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("id=\"f-contractName-error\""),
        "{}",
        refused.body
    );
    let after = endusers.get("gitops").await?;
    assert_eq!(after.spec.contract_name, live.spec.contract_name);
    assert_eq!(
        after.resource_version(),
        live.resource_version(),
        "nothing written"
    );
    Ok(())
}

#[tokio::test]
async fn a_reseller_records_an_incidents_cause_and_makes_a_course() -> anyhow::Result<()> {
    let (_, client, f) = fixture().await?;
    let ns = format!("reseller-{}", f.mine);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let name = "yamada-http-e2e";
    incidents
        .patch(
            name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(json!({
                "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Incident",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"endUser": "yamada", "service": "http", "kind": "ServiceDown"}
            })),
        )
        .await?;
    let browser = signed_in(&client, f).await?;
    let path = format!("/r/{}/incidents/{name}", f.mine);
    let page = once_cached(&browser, &path).await?;
    let token = page.field("csrf").unwrap_or_default();
    let cause = "the database ran out of connections after a runaway batch job";
    let saved = browser
        .post(
            &path,
            &[("csrf", &token), ("what", "cause"), ("cause", cause)],
        )
        .await?;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(
        incidents.get(name).await?.spec.cause.as_deref(),
        Some(cause)
    );
    // And the deferral of its report, with its reason.
    let reason = "waiting for the storage vendor's analysis";
    let deferred = browser
        .post(
            &path,
            &[
                ("csrf", &token),
                ("what", "reportDeferral"),
                ("reportDeferral", reason),
            ],
        )
        .await?;
    assert_eq!(deferred.status, 303, "{}", deferred.body);
    let incident = incidents.get(name).await?;
    assert_eq!(
        incident.spec.report_deferral.map(|d| d.reason).as_deref(),
        Some(reason)
    );
    assert_eq!(
        incident.spec.cause.as_deref(),
        Some(cause),
        "the cause is kept"
    );
    // A course: a bad quantity is named at its field; a good one is created.
    let courses = format!("/r/{}/courses/new", f.mine);
    let token = csrf(&browser, &courses).await?;
    let form = |cpu: &'static str| -> Vec<(&str, &str)> {
        vec![
            ("csrf", token.as_str()),
            ("name", "premium"),
            ("displayName", "プレミアム"),
            ("resources.cpu", cpu),
            ("resources.memory", "2Gi"),
            ("resources.storage", "20Gi"),
            ("limits.domains", "5"),
            ("services.web.phpVersion", "8.2"),
        ]
    };
    let answer = browser.post(&courses, &form("lots")).await?;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert!(
        answer.body.contains("id=\"f-resources-cpu-error\""),
        "{}",
        answer.body
    );
    let answer = browser.post(&courses, &form("1")).await?;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let course: Course = Api::namespaced(client.clone(), &ns).get("premium").await?;
    assert_eq!(course.spec.display_name, "プレミアム");
    assert_eq!(course.name_any(), "premium");
    Ok(())
}

#[tokio::test]
async fn an_admission_webhooks_refusal_is_shown_at_the_field_it_names() -> anyhow::Result<()> {
    let (_, client, f) = fixture().await?;
    // A domain another reseller's end user serves: only the webhook (cluster-wide uniqueness)
    // knows, and it refuses the write as kubectl would be refused.
    let other_ns = format!("reseller-{}", f.other);
    hosting::apply_enduser(
        &client,
        hosting::enduser(&other_ns, "taken", "standard", "2025-01-01", json!({})),
    )
    .await?;
    let taken = Api::<EndUser>::namespaced(client.clone(), &other_ns)
        .get("taken")
        .await?
        .spec
        .domains
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the end user has no domain"))?;
    let browser = signed_in(&client, f).await?;
    let token = csrf(&browser, &format!("/r/{}/customers/new", f.mine)).await?;
    let refused = wait::until(
        "the webhook's refusal",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let answer = browser
                .post(
                    &format!("/r/{}/customers/new", f.mine),
                    &new_customer(&token, "copycat", &taken),
                )
                .await
                .map_err(|e| e.to_string())?;
            let status = answer.status;
            (status == 422 && answer.body.contains("already used"))
                .then_some(answer)
                .ok_or_else(|| format!("{status}"))
        },
    )
    .await?;
    assert!(
        refused.body.contains("id=\"f-domains-error\"")
            && refused.body.contains(&format!(
                "domain {taken} is already used by another end user"
            )),
        "{}",
        refused.body
    );
    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &format!("reseller-{}", f.mine));
    assert!(
        endusers.get_opt("copycat").await?.is_none(),
        "nothing half-saved"
    );
    Ok(())
}
