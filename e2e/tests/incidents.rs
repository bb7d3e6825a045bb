//! Incidents end to end (SPEC §6–§8) on the local control plane, time-scaled (the 10 minutes
//! of the specification are 20 s here): a hung PostgreSQL (real, SIGSTOP) of an end user → an Incident
//! opens at the first failure → level 1 restarts its workload → exactly one e-mail and one
//! signed webhook when the outage reaches the (scaled) 10 minutes → the server answers again →
//! Resolved, the recovery notice names the report deadline of the reseller's calendar → an SRE
//! records the cause → the report e-mail. In embedded mode (with the operator killed between
//! detection and notification), in Prometheus mode (real Prometheus loading the chart's rules;
//! plus mass mail: a mail counter above the course's rate locks the account until the reseller
//! lifts the lock) and in Alertmanager mode (with the reseller's webhook down for a while, the
//! operator killed after the notice, and resolves never pushed: the new operator learns the
//! outage and its end from Alertmanager's API). Real SMTP (aiosmtpd with STARTTLS and AUTH),
//! Prometheus and Alertmanager from Debian.

mod incidents_support;
#[path = "../../operator/tests/probes_support/mod.rs"]
mod probes_support;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::ensure;

use incidents_support::{Hooks, MailExporter, unfold};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use oem_crds::{EndUser, Incident};
use oem_e2e::dashboards::{self, PanelQuery};
use oem_e2e::hosting::{self, apply_course, apply_enduser};
use oem_e2e::operator::{self, Operator, OperatorOptions, SINGLE_REPLICA};
use oem_e2e::prometheus::{
    Alertmanager, Prometheus, PrometheusOptions, ScrapeTarget, SmtpSink, SmtpSinkOptions,
};
use oem_e2e::{Cluster, free_port, wait};
use oem_operator::alerting::calendar::Calendar;
use oem_operator::alerting::notify::{IDEMPOTENCY_MAIL_HEADER, SIGNATURE_HEADER, sign};
use oem_operator::alerting::rules;
use probes_support::daemons::{self, HungPostgres};
use serde_json::{Value, json};

/// The specification's 10 minutes, scaled.
const TEN_MINUTES: Duration = Duration::from_secs(20);
const HMAC_KEY: &[u8] = b"e2e-webhook-key";

/// The tests share one control plane and one operator's pid file: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Embedded,
    Prometheus,
    Alertmanager,
}

/// Everything one scenario runs against.
struct Bench {
    cluster: &'static Cluster,
    client: Client,
    /// The operator, or with a stand-by the replica that leads.
    operator: Operator,
    /// A second replica following the Lease, whose name is the second field; the leader's
    /// name is `leader`.
    standby: Option<(Operator, String)>,
    leader: String,
    /// Replicas started so far (for new names).
    replicas: usize,
    env: Vec<(String, String)>,
    smtp: SmtpSink,
    hooks: Hooks,
    /// The server while an outage hangs it.
    hung: Option<HungPostgres>,
    ns: String,
    reseller: String,
    prometheus: Option<Prometheus>,
    _alertmanager: Option<Alertmanager>,
    mail: Option<MailExporter>,
    _dir: tempfile::TempDir,
}

fn text(v: &Value, path: &[&str]) -> String {
    let mut at = v;
    for p in path {
        at = &at[*p];
    }
    at.as_str().unwrap_or_default().to_owned()
}

fn scaled_rules(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let secs = format!("{}s", TEN_MINUTES.as_secs());
    let values: BTreeMap<String, String> = [
        ("serviceDownFor", secs.as_str()),
        ("hostDownFor", secs.as_str()),
        ("massMailWindow", "10s"),
        ("massMailFor", "2s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let text = rules::render(rules::DEFAULT_RULES, &values).map_err(anyhow::Error::msg)?;
    let path = dir.join("alert-rules.yaml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Starts a stand-by replica named `name`: the same settings, its own health address.
async fn start_standby(
    cluster: &Cluster,
    env: &[(String, String)],
    name: &str,
) -> anyhow::Result<Operator> {
    let mut env = env.to_vec();
    env.retain(|(k, _)| k != "OEM_HTTP_ADDR");
    env.push((
        "OEM_HTTP_ADDR".into(),
        format!("127.0.0.1:{}", free_port()?),
    ));
    let standby = Operator::start(
        cluster,
        OperatorOptions {
            env,
            replica: Some(name.into()),
            ..Default::default()
        },
    )
    .await?;
    ensure!(
        !standby.leads().await?,
        "the stand-by {name} leads beside the leader"
    );
    Ok(standby)
}

async fn bench(
    mode: Mode,
    reseller_suffix: &str,
    webhook_down: bool,
    with_standby: bool,
) -> anyhow::Result<Bench> {
    let cluster = Cluster::shared().await?;
    let client = cluster.client().await?;
    let dir = tempfile::tempdir()?;
    let smtp = SmtpSink::start(SmtpSinkOptions {
        tls: true,
        user: Some(("notify".into(), "mail-secret".into())),
        fail_first: 0,
        host: None,
    })
    .await?;
    let password_file = dir.path().join("smtp-password");
    std::fs::write(&password_file, "mail-secret\n")?;
    let ca_file = dir.path().join("smtp-ca.pem");
    std::fs::write(&ca_file, smtp.ca_pem().unwrap_or_default())?;
    let hooks = Hooks::start().await?;
    hooks.down.store(webhook_down, Ordering::SeqCst);
    let db_port = tokio::task::spawn_blocking(daemons::postgres).await?;
    let reseller = format!("inc{reseller_suffix}{}", std::process::id() % 100000);
    let op_addr = format!("127.0.0.1:{}", free_port()?);
    let notify = json!({
        "smtpHost": "127.0.0.1", "smtpPort": smtp.port, "starttls": "required",
        "from": "noc@provider.example", "username": "notify",
        "passwordFile": password_file, "smtpCaFile": ca_file,
        "timeout": "5s", "webhookTimeout": "3s", "plainHttpWebhooks": true,
        "maxAttempts": 30, "backoffBase": "1s", "backoffMax": "2s"
    });
    let mut env: Vec<(String, String)> = [
        ("OEM_HTTP_ADDR", op_addr.as_str()),
        ("OEM_PROBE_INTERVAL", "2s"),
        ("OEM_PROBE_RETRY_INTERVAL", "1s"),
        ("OEM_PROBE_TIMEOUT", "1s"),
        ("OEM_PROBE_ALLOW", "127.0.0.0/8"),
        ("OEM_RESYNC_INTERVAL", "20s"),
        ("OEM_ALERT_POLL_INTERVAL", "1s"),
        ("OEM_NOTIFY_AFTER", "20s"),
        ("OEM_ALERT_FOR", "20s"),
        ("OEM_RESTART_BACKOFF", "5s"),
        ("OEM_REPORT_LEAD_TIME", "1h"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.push(("OEM_NOTIFY".into(), notify.to_string()));
    let (mut prometheus, mut alertmanager, mut mail) = (None, None, None);
    if mode != Mode::Embedded {
        let rules_file = scaled_rules(dir.path())?;
        let mut scrape = vec![ScrapeTarget::new("oem-operator", &op_addr)];
        let mut alertmanagers = Vec::new();
        if mode == Mode::Prometheus {
            let exporter = MailExporter::start(&reseller, "mailer", 2).await?;
            scrape.push(ScrapeTarget::new(
                "tenant-mail",
                &format!("127.0.0.1:{}", exporter.port),
            ));
            mail = Some(exporter);
        } else {
            let token = "am-bearer-token";
            let am_config = format!(
                "route:\n  receiver: oem\n  group_by: [alertname, reseller, enduser, service]\n  \
                 group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1m\nreceivers:\n- name: oem\n  \
                 webhook_configs:\n  - url: http://{op_addr}/alertmanager/webhook\n    send_resolved: false\n    \
                 http_config:\n      authorization:\n        type: Bearer\n        credentials: {token}\n"
            );
            let am = Alertmanager::start(&am_config).await?;
            alertmanagers.push(am.addr.clone());
            let am_url = am.url();
            alertmanager = Some(am);
            env.push(("OEM_ALERT_SOURCE".into(), "alertmanager".into()));
            env.push(("OEM_ALERTMANAGER_TOKEN".into(), token.into()));
            // Resolves are not pushed (send_resolved: false): they reach the operator only
            // through Alertmanager's API, read every poll, as after a restart.
            env.push(("OEM_ALERTMANAGER_URL".into(), am_url));
        }
        let prom = Prometheus::start(PrometheusOptions {
            scrape,
            scrape_interval: Duration::from_secs(1),
            evaluation_interval: Duration::from_secs(1),
            rule_files: vec![rules_file],
            alertmanagers,
            backfill_openmetrics: None,
        })
        .await?;
        if mode == Mode::Prometheus {
            env.push(("OEM_PROMETHEUS_URL".into(), prom.url()));
        }
        prometheus = Some(prom);
    }
    let operator = Operator::start(cluster, OperatorOptions::with_env(env.clone())).await?;
    let standby = if with_standby {
        Some((
            start_standby(cluster, &env, "inc-standby-1").await?,
            "inc-standby-1".to_owned(),
        ))
    } else {
        None
    };

    let contacts = json!([{
        "name": "desk", "email": format!("desk@{reseller}.example.jp"), "language": "en",
        "webhook": {"url": hooks.url(), "secretRef": {"name": "hook-key"}}
    }]);
    let mut spec = hosting::reseller(&reseller, json!([]));
    spec["spec"]["contacts"] = contacts;
    let ns = hosting::apply_reseller(&client, spec).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "hook-key"},
        "stringData": {"hmacKey": String::from_utf8_lossy(HMAC_KEY)}
    }))?;
    secrets.create(&PostParams::default(), &secret).await?;
    hosting::apply_postgresql_course(&client, &ns).await?;
    let endpoints = json!({"monitoring": {"endpoints": [
        {"service": "postgresql", "host": "127.0.0.1", "port": db_port}
    ]}});
    apply_enduser(
        &client,
        hosting::enduser(&ns, "shop", "db", "2025-01-01", endpoints),
    )
    .await?;
    Ok(Bench {
        cluster,
        client,
        operator,
        standby,
        leader: SINGLE_REPLICA.to_owned(),
        replicas: 2,
        env,
        smtp,
        hooks,
        hung: None,
        ns,
        reseller,
        prometheus,
        _alertmanager: alertmanager,
        mail,
        _dir: dir,
    })
}

impl Bench {
    /// Until the end user's postgresql is Up (and its hosting namespace known).
    async fn wait_db_up(&self) -> anyhow::Result<()> {
        let api: Api<EndUser> = Api::namespaced(self.client.clone(), &self.ns);
        wait::until(
            "postgresql Up",
            Duration::from_secs(120),
            Duration::from_millis(300),
            || async {
                let eu = api.get("shop").await.map_err(|e| e.to_string())?;
                let v = serde_json::to_value(&eu).map_err(|e| e.to_string())?;
                let up = v["status"]["services"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| text(s, &["service"]) == "postgresql" && text(s, &["state"]) == "Up");
                let sts = v["status"]["hostingNamespace"].as_str().is_some();
                if up && sts {
                    Ok(())
                } else {
                    Err(format!("{}", v["status"]))
                }
            },
        )
        .await
        .map_err(|e| self.context(e))
    }

    /// SIGKILL, as a crash would, then a new operator with the same settings; with a
    /// stand-by, SIGKILL the leader, wait for the stand-by to lead, and start a new stand-by.
    async fn restart_operator(&mut self, mode: Mode, outage: Instant) -> anyhow::Result<()> {
        if let Some((standby, name)) = self.standby.take() {
            let holder = operator::lease_holder(self.cluster)?;
            ensure!(
                holder.as_deref() == Some(self.leader.as_str()),
                "the Lease is held by {holder:?}, not by the leader {}",
                self.leader
            );
            self.operator.kill()?;
            let killed = Instant::now();
            standby
                .wait_leading(Duration::from_secs(25))
                .await
                .map_err(|e| self.context(e))?;
            eprintln!(
                "[{mode:?}] leader {} SIGKILLed {:?} after the outage began; {name} led {:?} later",
                self.leader,
                outage.elapsed().saturating_sub(killed.elapsed()),
                killed.elapsed()
            );
            self.operator = standby;
            self.leader = name;
            self.replicas += 1;
            let next = format!("inc-standby-{}", self.replicas);
            let fresh = start_standby(self.cluster, &self.env, &next).await?;
            self.standby = Some((fresh, next));
            return Ok(());
        }
        self.operator.kill()?;
        eprintln!(
            "[{mode:?}] operator killed {:?} after the outage began",
            outage.elapsed()
        );
        self.operator =
            Operator::start(self.cluster, OperatorOptions::with_env(self.env.clone())).await?;
        eprintln!(
            "[{mode:?}] operator back {:?} after the outage began",
            outage.elapsed()
        );
        Ok(())
    }

    fn context(&self, e: anyhow::Error) -> anyhow::Error {
        e.context(format!("operator log:\n{}", self.operator.log_tail(40)))
    }

    /// The end user's incidents of one kind and service.
    async fn incidents(&self, service: &str, kind: &str) -> anyhow::Result<Vec<Incident>> {
        let api: Api<Incident> = Api::namespaced(self.client.clone(), &self.ns);
        Ok(api
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|i| {
                let v = serde_json::to_value(&i.spec).unwrap_or_default();
                text(&v, &["service"]) == service && text(&v, &["kind"]) == kind
            })
            .collect())
    }

    /// Deletes the scenario's end users, so later operators do not monitor servers that are
    /// gone with this scenario (their finalizers finish under whichever operator runs next).
    async fn retire(&self) -> anyhow::Result<()> {
        let api: Api<EndUser> = Api::namespaced(self.client.clone(), &self.ns);
        for eu in api.list(&Default::default()).await?.items {
            api.delete(&eu.name_any(), &Default::default()).await?;
        }
        Ok(())
    }

    /// Waits until the one incident of `service`/`kind` satisfies `check`.
    async fn wait_incident(
        &self,
        service: &str,
        kind: &str,
        what: &str,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Incident> {
        wait::until(what, limit, Duration::from_millis(300), || async {
            let found = self
                .incidents(service, kind)
                .await
                .map_err(|e| e.to_string())?;
            match found.as_slice() {
                [one] => {
                    let v = serde_json::to_value(one).map_err(|e| e.to_string())?;
                    if check(&v) {
                        Ok(one.clone())
                    } else {
                        Err(format!("status {}", v["status"]))
                    }
                }
                many => Err(format!("{} incidents", many.len())),
            }
        })
        .await
        .map_err(|e| self.context(e))
    }

    /// Mails of one notice event (by the idempotency header the transport sets).
    fn mails(&self, event: &str) -> anyhow::Result<Vec<String>> {
        // Only this scenario's reseller: end users other tests left behind may be failing too.
        let prefix = format!("{IDEMPOTENCY_MAIL_HEADER}: {}-", event.to_ascii_lowercase());
        let rcpt = format!("X-Sink-Rcpt-To: desk@{}.example.jp", self.reseller);
        Ok(self
            .smtp
            .messages()?
            .into_iter()
            .filter(|m| m.contains(&prefix) && m.contains(&rcpt))
            .collect())
    }

    async fn wait_mails(
        &self,
        event: &str,
        count: usize,
        limit: Duration,
    ) -> anyhow::Result<Vec<String>> {
        wait::until(
            &format!("{count} {event} mail(s)"),
            limit,
            Duration::from_millis(300),
            || async {
                let found = self.mails(event).map_err(|e| e.to_string())?;
                if found.len() >= count {
                    Ok(found)
                } else {
                    Err(format!("{} so far", found.len()))
                }
            },
        )
        .await
        .map_err(|e| self.context(e))
    }
}

fn events(incident: &Value) -> Vec<String> {
    incident["status"]["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| text(e, &["event"]))
        .collect()
}

fn time_of(incident: &Value, field: &str) -> Option<jiff::Timestamp> {
    text(incident, &["status", field]).parse().ok()
}

/// Webhook calls of `event` that were answered 200, each signature checked.
fn delivered_hooks(bench: &Bench, event: &str) -> Vec<Value> {
    bench
        .hooks
        .calls()
        .into_iter()
        .filter(|c| c.answered == 200)
        .filter_map(|c| {
            let body: Value = serde_json::from_str(&c.body).ok()?;
            (text(&body, &["event"]) == event).then_some((c, body))
        })
        .map(|(call, body)| {
            let header = call
                .headers
                .get(&SIGNATURE_HEADER.to_ascii_lowercase())
                .cloned()
                .unwrap_or_default();
            let t: i64 = header
                .split(',')
                .find_map(|p| p.strip_prefix("t="))
                .and_then(|t| t.parse().ok())
                .unwrap_or_default();
            assert_eq!(
                header,
                sign(HMAC_KEY, t, call.body.as_bytes()),
                "the webhook is signed with the reseller's key"
            );
            assert_eq!(
                call.headers.get("idempotency-key").map(String::as_str),
                body["idempotencyKey"].as_str(),
                "the Idempotency-Key header"
            );
            body
        })
        .collect()
}

/// When a scenario kills the operator (SIGKILL, as a crash) and starts it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    Never,
    /// Between detection and the outage notice.
    BeforeNotice,
    /// After the notice, while the service is still down: the recovery comes to the new one.
    BeforeRecovery,
    /// Both (the leader each time, with a stand-by taking over).
    Both,
}

/// The whole flow of one outage; `crash` kills and restarts the operator between
/// detection and notification.
async fn outage(mut bench: Bench, mode: Mode, crash: Crash) -> anyhow::Result<Bench> {
    bench.wait_db_up().await?;

    let stopped_at = jiff::Timestamp::now();
    let clock = Instant::now();
    bench.hung = Some(daemons::hang_postgres().map_err(anyhow::Error::msg)?);
    let detect_limit = if mode == Mode::Alertmanager {
        TEN_MINUTES + Duration::from_secs(20)
    } else {
        Duration::from_secs(20)
    };
    let opened = bench
        .wait_incident(
            "postgresql",
            "ServiceDown",
            "the incident to open",
            detect_limit,
            |_| true,
        )
        .await?;
    eprintln!(
        "[{mode:?}] incident {} opened {:?} after the stop",
        opened.name_any(),
        clock.elapsed()
    );
    let v = serde_json::to_value(&opened)?;
    let started = time_of(&v, "startedAt").unwrap_or(stopped_at);
    let lag = started.duration_since(stopped_at).as_secs_f64();
    if !(-1.0..=6.0).contains(&lag) {
        return Err(bench.context(anyhow::anyhow!(
            "startedAt is the first failure, but it is {lag}s after the hang (at {stopped_at}); \
             the incident: {}",
            v["status"]
        )));
    }

    if matches!(crash, Crash::BeforeNotice | Crash::Both) {
        assert!(
            v["status"]["notifiedAt"].is_null(),
            "killed before the notice"
        );
        bench.restart_operator(mode, clock).await?;
    }

    if mode != Mode::Alertmanager {
        bench
            .wait_incident(
                "postgresql",
                "ServiceDown",
                "level 1 restart",
                Duration::from_secs(15),
                |v| events(v).contains(&"Restarted".to_owned()),
            )
            .await?;
    }
    let notified = bench
        .wait_incident(
            "postgresql",
            "ServiceDown",
            "the outage notice",
            TEN_MINUTES + Duration::from_secs(30),
            |v| !v["status"]["notifiedAt"].is_null(),
        )
        .await?;
    let v = serde_json::to_value(&notified)?;
    let to_notice = time_of(&v, "notifiedAt")
        .zip(time_of(&v, "startedAt"))
        .map(|(n, s)| n.duration_since(s).as_secs_f64())
        .unwrap_or_default();
    eprintln!("[{mode:?}] notified {to_notice:.1}s after the first failure");
    assert!(
        to_notice >= TEN_MINUTES.as_secs_f64() && to_notice <= TEN_MINUTES.as_secs_f64() + 8.0,
        "the notice at the scaled 10 minutes from the first failure: {to_notice}"
    );
    let outage_mails = bench
        .wait_mails("outage", 1, Duration::from_secs(10))
        .await?;
    let mail = unfold(&outage_mails[0]);
    assert!(mail.contains("Service outage"), "{mail}");
    assert!(
        mail.contains(&format!("desk@{}.example.jp", bench.reseller)),
        "{mail}"
    );
    assert!(
        mail.contains("X-Sink-TLS: yes") && mail.contains("X-Sink-Auth-User: notify"),
        "STARTTLS and AUTH: {mail}"
    );

    // The webhook: once, signed; when the receiver was down, delivered once when it is back.
    if bench.hooks.down.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let refused = bench
            .hooks
            .calls()
            .iter()
            .filter(|c| c.answered == 503)
            .count();
        assert!(
            refused >= 2,
            "retried while the receiver was down: {refused} attempts"
        );
        assert!(delivered_hooks(&bench, "outage").is_empty());
        bench.hooks.down.store(false, Ordering::SeqCst);
        eprintln!("[{mode:?}] webhook receiver back after {refused} refused attempts");
    }
    wait::until(
        "the outage webhook",
        Duration::from_secs(15),
        Duration::from_millis(300),
        || async {
            if delivered_hooks(&bench, "outage").is_empty() {
                Err("none yet".to_owned())
            } else {
                Ok(())
            }
        },
    )
    .await
    .map_err(|e| bench.context(e))?;

    if matches!(crash, Crash::BeforeRecovery | Crash::Both) {
        bench.restart_operator(mode, clock).await?;
    }

    // The service answers again.
    let restarted_at = Instant::now();
    if let Some(hung) = bench.hung.take() {
        hung.resume().map_err(anyhow::Error::msg)?;
    }
    let resolved_limit = if mode == Mode::Alertmanager {
        Duration::from_secs(40)
    } else {
        Duration::from_secs(20)
    };
    let resolved = bench
        .wait_incident(
            "postgresql",
            "ServiceDown",
            "Resolved",
            resolved_limit,
            |v| text(v, &["status", "phase"]) == "Resolved",
        )
        .await?;
    eprintln!(
        "[{mode:?}] resolved {:?} after the server came back",
        restarted_at.elapsed()
    );
    let v = serde_json::to_value(&resolved)?;
    let resolved_at = time_of(&v, "resolvedAt").ok_or_else(|| anyhow::anyhow!("no resolvedAt"))?;
    let calendar = Calendar::from_spec(&Default::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let due = calendar.report_due(resolved_at);
    assert_eq!(
        time_of(&v, "reportDueBy"),
        Some(due),
        "the end of the next business day in Tokyo"
    );
    let recovered = bench
        .wait_mails("recovered", 1, Duration::from_secs(15))
        .await?;
    let due_text = due
        .to_zoned(calendar.time_zone().clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string();
    assert!(
        unfold(&recovered[0]).contains(&due_text),
        "the deadline {due_text} in:\n{}",
        recovered[0]
    );

    // An SRE records the cause: the report goes out.
    let incidents: Api<Incident> = Api::namespaced(bench.client.clone(), &bench.ns);
    incidents
        .patch(
            &resolved.name_any(),
            &PatchParams::apply("sre").force(),
            &Patch::Apply(json!({
                "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Incident",
                "spec": {"cause": "the database ran out of connections after a runaway batch job"}
            })),
        )
        .await?;
    let reported = bench
        .wait_incident(
            "postgresql",
            "ServiceDown",
            "Reported",
            Duration::from_secs(20),
            |v| text(v, &["status", "phase"]) == "Reported",
        )
        .await?;
    let report = bench
        .wait_mails("report", 1, Duration::from_secs(10))
        .await?;
    let report_text = unfold(&report[0]);
    assert!(
        report_text.contains("runaway batch job"),
        "the cause in the report:\n{report_text}"
    );

    // Exactly once each, by e-mail and by webhook.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(bench.mails("outage")?.len(), 1, "one outage e-mail");
    assert_eq!(bench.mails("report")?.len(), 1, "one report e-mail");
    assert_eq!(bench.mails("recovered")?.len(), 1, "one recovery e-mail");
    assert_eq!(
        delivered_hooks(&bench, "outage").len(),
        1,
        "one outage webhook"
    );
    let reported = incidents.get(&reported.name_any()).await?;
    let v = serde_json::to_value(&reported)?;
    let timeline = events(&v);
    for expected in ["Down", "Detected", "Notified", "Recovered", "Reported"] {
        assert!(
            timeline.contains(&expected.to_owned()),
            "{expected} in {timeline:?}"
        );
    }
    if mode != Mode::Alertmanager {
        assert!(timeline.contains(&"Restarted".to_owned()), "{timeline:?}");
    }
    let records = v["status"]["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        records.iter().all(|r| text(r, &["state"]) == "Sent"),
        "{records:?}"
    );
    // `OEM_WRITE_EXAMPLES=1` refreshes the documented example from this run; a plain test run
    // leaves the working tree alone.
    if mode == Mode::Embedded && std::env::var_os("OEM_WRITE_EXAMPLES").is_some() {
        let yaml = bench.cluster.kubectl_ok(
            &[
                "get",
                "incident",
                "-n",
                &bench.ns,
                &reported.name_any(),
                "-o",
                "yaml",
            ],
            None,
        )?;
        let docs = oem_e2e::cluster::repo_root().join("docs");
        std::fs::write(docs.join("incident-example.yaml"), yaml)?;
        std::fs::write(docs.join("incident-report-example.eml"), &report[0])?;
    }
    // About this test's reseller: the shared cluster also holds other tests' leftovers, whose
    // namespaces the restarted operator may read a moment before it has bound its Secret role
    // there again (a retried, passing refusal).
    let log = bench.operator.log_tail(100_000);
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("forbidden") && l.contains(&bench.reseller))
        .collect();
    assert!(
        refused.is_empty(),
        "the chart's ClusterRole covers the alert controller:\n{}",
        refused.join("\n")
    );
    let metrics = bench.operator.metrics().await?;
    for series in [
        "oem_notifications_total{channel=\"email\",event=\"report\",result=\"sent\"}",
        "oem_incident_time_to_recover_seconds_count",
    ] {
        assert!(metrics.contains(series), "{series} exported");
    }
    if mode != Mode::Alertmanager {
        assert!(
            metrics
                .contains("oem_remediations_total{action=\"restart\",level=\"1\",result=\"ok\"}"),
            "restart counted"
        );
    }
    Ok(bench)
}

#[tokio::test]
async fn embedded_mode_outage_notified_once_even_when_the_operator_is_killed() -> anyhow::Result<()>
{
    let _one = SERIAL.lock().await;
    let t = Instant::now();
    let bench = bench(Mode::Embedded, "e", false, false).await?;
    outage(bench, Mode::Embedded, Crash::BeforeNotice)
        .await?
        .retire()
        .await?;
    eprintln!("embedded mode: {:?}", t.elapsed());
    Ok(())
}

/// Two replicas (issue 18): the leader is SIGKILLed between detection and the notice, and the
/// new leader SIGKILLed again between the notice and the recovery; each time the stand-by
/// takes over, and the contact still gets exactly one outage notice, one recovery notice and
/// one report.
#[tokio::test]
async fn two_replicas_notify_once_when_the_leader_dies_before_the_notice_and_before_the_recovery()
-> anyhow::Result<()> {
    let _one = SERIAL.lock().await;
    let t = Instant::now();
    let bench = bench(Mode::Embedded, "h", false, true).await?;
    outage(bench, Mode::Embedded, Crash::Both)
        .await?
        .retire()
        .await?;
    eprintln!("two replicas, two leader kills: {:?}", t.elapsed());
    Ok(())
}

#[tokio::test]
async fn alertmanager_mode_outage_with_the_webhook_receiver_down_for_a_while() -> anyhow::Result<()>
{
    let _one = SERIAL.lock().await;
    let t = Instant::now();
    let bench = bench(Mode::Alertmanager, "a", true, false).await?;
    outage(bench, Mode::Alertmanager, Crash::BeforeRecovery)
        .await?
        .retire()
        .await?;
    eprintln!("alertmanager mode: {:?}", t.elapsed());
    Ok(())
}

#[tokio::test]
async fn prometheus_mode_outage_and_mass_mail_lock() -> anyhow::Result<()> {
    let _one = SERIAL.lock().await;
    let t = Instant::now();
    let bench = bench(Mode::Prometheus, "p", false, false).await?;
    let bench = outage(bench, Mode::Prometheus, Crash::Never).await?;
    eprintln!("prometheus mode outage: {:?}", t.elapsed());
    incident_panels_have_data(&bench).await?;
    mass_mail(&bench).await?;
    bench.retire().await?;
    eprintln!("prometheus mode with mass mail: {:?}", t.elapsed());
    Ok(())
}

/// The dashboards' panels on incident metrics (the dashboards test covers the others) return
/// data from this Prometheus, which scraped the operator through a whole incident.
async fn incident_panels_have_data(bench: &Bench) -> anyhow::Result<()> {
    let prometheus = bench
        .prometheus
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("Prometheus mode runs a Prometheus"))?;
    let mut vars = dashboards::builtin_variables();
    vars.insert("reseller".into(), bench.reseller.clone());
    vars.insert("datasource".into(), "prometheus".into());
    let checked = wait::until(
        "every incident panel to return data",
        Duration::from_secs(60),
        Duration::from_secs(2),
        || async {
            let results = dashboards::run_all(prometheus, &vars)
                .await
                .map_err(|e| e.to_string())?;
            let incident: Vec<PanelQuery> = results
                .into_iter()
                .filter(PanelQuery::on_incident_metrics)
                .collect();
            let missing: Vec<PanelQuery> =
                incident.iter().filter(|r| !r.has_data()).cloned().collect();
            if incident.is_empty() {
                Err("no panel queries incident metrics".to_owned())
            } else if missing.is_empty() {
                Ok(incident)
            } else {
                Err(dashboards::report(&missing))
            }
        },
    )
    .await?;
    eprintln!(
        "incident panels with data: {}\n{}",
        checked.len(),
        dashboards::report(&checked)
    );
    Ok(())
}

/// A suspended end user (so its mail services are not probed) whose mail server reports
/// sending above its course's 100 an hour: locked, told, then unlocked by the reseller.
async fn mass_mail(bench: &Bench) -> anyhow::Result<()> {
    let client = &bench.client;
    apply_course(
        client,
        hosting::course(
            &bench.ns,
            "mail",
            "1Gi",
            json!({"mail": {"maxSendsPerHour": 100}}),
        ),
    )
    .await?;
    apply_enduser(
        client,
        hosting::enduser(
            &bench.ns,
            "mailer",
            "mail",
            "2025-01-01",
            json!({"suspended": true}),
        ),
    )
    .await?;
    let endusers: Api<EndUser> = Api::namespaced(client.clone(), &bench.ns);
    let hosting_ns = wait::until(
        "the mailer's hosting namespace",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || async {
            let eu = endusers.get("mailer").await.map_err(|e| e.to_string())?;
            hosting::hosting_namespace(&eu).map_err(|e| e.to_string())
        },
    )
    .await?;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &hosting_ns);
    let smtp_open = || async {
        policies
            .get_opt("allow-smtp-egress")
            .await
            .map(|p| p.is_some())
            .map_err(|e| e.to_string())
    };
    wait::until(
        "SMTP egress open",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || async {
            if smtp_open().await? {
                Ok(())
            } else {
                Err("closed".into())
            }
        },
    )
    .await?;
    let mail = bench
        .mail
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no mail exporter"))?;
    // The limit is scraped before the burst begins.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t = Instant::now();
    mail.sending.store(true, Ordering::SeqCst);
    let locked = bench
        .wait_incident(
            "smtp",
            "MassMail",
            "the mass-mail lock",
            Duration::from_secs(40),
            |v| events(v).contains(&"MailLocked".to_owned()),
        )
        .await?;
    eprintln!("mail locked {:?} after the burst began", t.elapsed());
    mail.sending.store(false, Ordering::SeqCst);
    wait::until(
        "SMTP egress closed and mailLocked",
        Duration::from_secs(20),
        Duration::from_millis(300),
        || async {
            let eu = endusers.get("mailer").await.map_err(|e| e.to_string())?;
            let locked = eu.status.as_ref().is_some_and(|s| s.mail_locked);
            if locked && !smtp_open().await? {
                Ok(())
            } else {
                Err(format!("mailLocked {locked}"))
            }
        },
    )
    .await
    .map_err(|e| bench.context(e))?;
    let told = bench
        .wait_mails("maillock", 1, Duration::from_secs(15))
        .await?;
    assert!(
        unfold(&told[0]).contains("Outbound mail locked"),
        "{}",
        told[0]
    );
    let metrics = bench.operator.metrics().await?;
    assert!(
        metrics.lines().any(|l| l.starts_with("oem_mail_locked{")
            && l.contains("enduser=\"mailer\"")
            && l.ends_with(" 1")),
        "oem_mail_locked exported"
    );

    // The reseller lifts the lock (docs/incidents.md).
    bench.cluster.kubectl_ok(
        &[
            "annotate",
            "enduser",
            "mailer",
            "-n",
            &bench.ns,
            "hosting.oem.dev/mail-unlock=yes",
        ],
        None,
    )?;
    wait::until(
        "SMTP egress open again",
        Duration::from_secs(20),
        Duration::from_millis(300),
        || async {
            let eu = endusers.get("mailer").await.map_err(|e| e.to_string())?;
            let locked = eu.status.as_ref().is_some_and(|s| s.mail_locked);
            let annotated = eu.annotations().contains_key("hosting.oem.dev/mail-unlock");
            if !locked && !annotated && smtp_open().await? {
                Ok(())
            } else {
                Err(format!("mailLocked {locked}, annotated {annotated}"))
            }
        },
    )
    .await
    .map_err(|e| bench.context(e))?;
    let lifted = bench
        .wait_incident(
            "smtp",
            "MassMail",
            "the mass-mail incident resolved",
            Duration::from_secs(10),
            |v| text(v, &["status", "phase"]) == "Resolved",
        )
        .await?;
    assert_eq!(lifted.name_any(), locked.name_any());
    assert_eq!(bench.mails("maillock")?.len(), 1, "told once");
    assert!(
        !bench.operator.log_tail(100_000).contains("forbidden"),
        "the chart's ClusterRole covers mail locks"
    );
    Ok(())
}
