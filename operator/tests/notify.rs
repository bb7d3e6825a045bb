//! Notices delivered to real servers on loopback: the repository's SMTP sink
//! (`e2e/daemons/smtp_sink.py`, aiosmtpd with STARTTLS and AUTH, run by Debian's python3) and a
//! webhook receiver inside the test. A missing aiosmtpd or openssl fails the tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use oem_crds::incident::{Channel, IncidentKind, NotificationEvent, event};
use oem_crds::reseller::Language;
use oem_operator::alerting::notify::{
    IDEMPOTENCY_HEADER, IDEMPOTENCY_MAIL_HEADER, Notice, Notifier, NotifyConfig, NotifyError,
    SIGNATURE_HEADER, StartTls, Target, idempotency_key, render,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const PYTHON: &str = "/usr/bin/python3";
const SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/daemons/smtp_sink.py");
const USER: &str = "notify";
const PASSWORD: &str = "correct horse battery";
const FROM: &str = "notice@mail.example.jp";
const TO: &str = "ops@reseller.example";
const UID: &str = "0b7e4a52-1c9d-4f7e-9a51-2f0d6c3b8e11";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A one-hour http outage of end user taro, as the incident controller would fill it.
fn notice(event: NotificationEvent) -> Notice {
    Notice {
        event,
        incident: "taro-http-20260305".into(),
        kind: IncidentKind::ServiceDown,
        brand: "さくらウェブ".into(),
        end_user: "taro".into(),
        contract_name: "山田商店".into(),
        customer_number: None,
        service: "http".into(),
        started_at: ts("2026-03-05T01:00:00Z"),
        notified_at: Some(ts("2026-03-05T01:10:00Z")),
        resolved_at: Some(ts("2026-03-05T02:00:00Z")),
        report_due_by: Some(ts("2026-03-06T08:00:00Z")),
        timeline: vec![
            (ts("2026-03-05T01:00:00Z"), event::DOWN.into(), None),
            (ts("2026-03-05T02:00:00Z"), event::RECOVERED.into(), None),
        ],
        actions: vec!["restarted the web server".into()],
        cause: None,
        deferral_reason: None,
        time_zone: TimeZone::get("Asia/Tokyo").unwrap(),
    }
}

/// A CA and a certificate for 127.0.0.1 it signed, written as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn write_pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    pki
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[derive(Default)]
struct SinkOptions {
    tls: bool,
    require_tls: bool,
    auth: bool,
    fail_first: u32,
}

/// The SMTP sink, killed when dropped.
struct Sink {
    _child: Child,
    port: u16,
    mail: PathBuf,
    pki: Pki,
    password_file: PathBuf,
    _dir: TempDir,
}

async fn start_sink(options: SinkOptions) -> Sink {
    let dir = TempDir::new().unwrap();
    let pki = write_pki(dir.path());
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let mail = dir.path().join("mail");
    let port = free_port();
    let stderr = std::fs::File::create(dir.path().join("sink.log")).unwrap();
    let mut command = Command::new(PYTHON);
    command
        .arg(SINK)
        .args(["--port", &port.to_string()])
        .arg("--dir")
        .arg(&mail)
        .args(["--fail-first", &options.fail_first.to_string()])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);
    if options.tls {
        command
            .arg("--cert")
            .arg(&pki.cert)
            .arg("--key")
            .arg(&pki.key);
    }
    if options.require_tls {
        command.arg("--require-tls");
    }
    if options.auth {
        command
            .args(["--user", USER])
            .arg("--password-file")
            .arg(&password_file);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("starting {PYTHON} {SINK}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    let log = || std::fs::read_to_string(dir.path().join("sink.log")).unwrap_or_default();
    match ready {
        Ok(Ok(Some(line))) if line == format!("ready {port}") => {}
        other => panic!(
            "the SMTP sink did not start ({other:?}); is python3-aiosmtpd installed?\n{}",
            log()
        ),
    }
    Sink {
        _child: child,
        port,
        mail,
        pki,
        password_file,
        _dir: dir,
    }
}

impl Sink {
    /// A configuration reaching this sink; STARTTLS trusting the sink's CA.
    fn config(&self, starttls: StartTls, auth: bool) -> NotifyConfig {
        NotifyConfig {
            smtp_host: "127.0.0.1".into(),
            smtp_port: self.port,
            starttls,
            from: FROM.into(),
            username: auth.then(|| USER.to_owned()),
            password_file: auth.then(|| self.password_file.clone()),
            smtp_ca_file: Some(self.pki.ca.clone()),
            timeout: Duration::from_secs(10),
            ..NotifyConfig::default()
        }
    }

    /// The saved messages, in order, parsed by Python's own e-mail package.
    fn messages(&self) -> Vec<Mail> {
        let Ok(entries) = std::fs::read_dir(&self.mail) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files.iter().map(|f| parse_mail(f)).collect()
    }
}

/// A received message: its headers (decoded) and its text body (decoded).
#[derive(Debug, serde::Deserialize)]
struct Mail {
    headers: HashMap<String, String>,
    body: String,
}

impl Mail {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no header {name} in {:#?}", self.headers))
    }
}

fn parse_mail(path: &Path) -> Mail {
    const SCRIPT: &str = "import email, email.policy, json, sys\n\
        m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n\
        print(json.dumps({'headers': {k: str(v) for k, v in m.items()}, 'body': m.get_content()}))\n";
    let out = std::process::Command::new(PYTHON)
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Text with mail line endings (CRLF) and trailing blank lines normalised away.
fn text(body: &str) -> String {
    body.replace("\r\n", "\n").trim_end().to_owned()
}

fn email_key(event: NotificationEvent, channel: Channel, to: &str) -> String {
    idempotency_key(UID, event, channel, to)
}

#[tokio::test]
async fn email_goes_over_starttls_with_auth_from_the_brand_with_an_id_from_the_key() {
    let sink = start_sink(SinkOptions {
        tls: true,
        require_tls: true,
        auth: true,
        ..SinkOptions::default()
    })
    .await;
    let notifier = Notifier::new(sink.config(StartTls::Required, true)).unwrap();
    let notice = notice(NotificationEvent::Outage);
    let key = email_key(NotificationEvent::Outage, Channel::Email, TO);
    let target = Target::Email { to: TO.into() };
    notifier.deliver(&target, &notice, &key).await.unwrap();

    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let mail = &mails[0];
    assert_eq!(mail.header("X-Sink-TLS"), "yes");
    assert_eq!(mail.header("X-Sink-Auth-User"), USER);
    assert_eq!(mail.header("X-Sink-Mail-From"), FROM);
    assert_eq!(mail.header("X-Sink-Rcpt-To"), TO);
    assert_eq!(mail.header("From"), format!("さくらウェブ <{FROM}>"));
    assert_eq!(mail.header("To"), TO);
    assert_eq!(
        mail.header("Subject"),
        "【さくらウェブ】障害発生のお知らせ: 山田商店 (http)"
    );
    assert_eq!(
        mail.header("Message-ID"),
        format!("<{key}@mail.example.jp>")
    );
    assert_eq!(mail.header(IDEMPOTENCY_MAIL_HEADER), key);
    assert!(mail.header("Content-Type").starts_with("text/plain"));
    assert_eq!(text(&mail.body), text(&render(&notice, Language::Ja).text));
    assert!(
        mail.body.contains("発生日時: 2026-03-05 10:00 JST"),
        "{}",
        mail.body
    );
    for (name, value) in &mail.headers {
        assert!(
            !value.to_lowercase().contains("oem-hosting"),
            "{name}: {value}"
        );
    }
    assert!(!mail.body.to_lowercase().contains("oem-hosting"));
}

#[tokio::test]
async fn english_contacts_and_fax_gateways_get_the_english_text() {
    let sink = start_sink(SinkOptions {
        tls: true,
        auth: true,
        ..SinkOptions::default()
    })
    .await;
    let notifier = Notifier::new(sink.config(StartTls::Opportunistic, true)).unwrap();
    let notice = notice(NotificationEvent::Report);
    let fax = "0312345678@fax.example";
    let email = Target::Email { to: TO.into() };
    let gateway = Target::Fax {
        gateway_email: fax.into(),
    };
    let email_id = email_key(NotificationEvent::Report, Channel::Email, TO);
    let fax_id = email_key(NotificationEvent::Report, Channel::Fax, fax);
    notifier
        .deliver_in(&email, &notice, Language::En, &email_id)
        .await
        .unwrap();
    notifier
        .deliver_in(&gateway, &notice, Language::En, &fax_id)
        .await
        .unwrap();

    let mails = sink.messages();
    assert_eq!(mails.len(), 2, "{mails:#?}");
    let expected = render(&notice, Language::En);
    for (mail, to, id) in [(&mails[0], TO, &email_id), (&mails[1], fax, &fax_id)] {
        assert_eq!(mail.header("X-Sink-TLS"), "yes");
        assert_eq!(mail.header("X-Sink-Rcpt-To"), to);
        assert_eq!(
            mail.header("Subject"),
            "[さくらウェブ] Incident report: 山田商店 (http)"
        );
        assert_eq!(mail.header("Message-ID"), format!("<{id}@mail.example.jp>"));
        assert_eq!(text(&mail.body), text(&expected.text));
        assert!(mail.body.contains("Downtime: 1 h"), "{}", mail.body);
        assert!(
            mail.body.contains("Cause:\n  under investigation"),
            "{}",
            mail.body
        );
    }
}

#[tokio::test]
async fn a_refused_password_is_a_permanent_error() {
    let sink = start_sink(SinkOptions {
        tls: true,
        require_tls: true,
        auth: true,
        ..SinkOptions::default()
    })
    .await;
    let wrong = sink.pki.ca.with_file_name("wrong-password");
    std::fs::write(&wrong, "not the password").unwrap();
    let mut config = sink.config(StartTls::Required, true);
    config.password_file = Some(wrong);
    let notifier = Notifier::new(config).unwrap();
    let err = notifier
        .deliver(
            &Target::Email { to: TO.into() },
            &notice(NotificationEvent::Outage),
            "outage-email-refused",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Smtp { .. }), "{err}");
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("535"), "{err}");
    assert!(!err.to_string().contains("not the password"), "{err}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_stopped_smtp_server_is_a_retryable_error() {
    let config = NotifyConfig {
        smtp_host: "127.0.0.1".into(),
        smtp_port: free_port(),
        starttls: StartTls::None,
        from: FROM.into(),
        ..NotifyConfig::default()
    };
    let notifier = Notifier::new(config).unwrap();
    let err = notifier
        .deliver(
            &Target::Email { to: TO.into() },
            &notice(NotificationEvent::Outage),
            "outage-email-down",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Smtp { .. }), "{err}");
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_transient_451_is_retryable_and_the_retry_keeps_the_message_id() {
    // No TLS: AUTH over plain text, as a relay on loopback may be configured.
    let sink = start_sink(SinkOptions {
        auth: true,
        fail_first: 1,
        ..SinkOptions::default()
    })
    .await;
    let notifier = Notifier::new(sink.config(StartTls::None, true)).unwrap();
    let notice = notice(NotificationEvent::Recovered);
    let key = email_key(NotificationEvent::Recovered, Channel::Email, TO);
    let target = Target::Email { to: TO.into() };
    let err = notifier.deliver(&target, &notice, &key).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("451"), "{err}");
    assert!(sink.messages().is_empty());

    notifier.deliver(&target, &notice, &key).await.unwrap();
    let mails = sink.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].header("X-Sink-TLS"), "no");
    assert_eq!(mails[0].header("X-Sink-Auth-User"), USER);
    assert_eq!(
        mails[0].header("Message-ID"),
        format!("<{key}@mail.example.jp>")
    );
}

#[tokio::test]
async fn required_starttls_refuses_a_server_without_it() {
    let sink = start_sink(SinkOptions::default()).await;
    let notifier = Notifier::new(sink.config(StartTls::Required, false)).unwrap();
    let err = notifier
        .deliver(
            &Target::Email { to: TO.into() },
            &notice(NotificationEvent::Outage),
            "outage-email-plain",
        )
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    assert!(sink.messages().is_empty());
}

/// Headers and body of one request the receiver got.
type Request = (warp::http::HeaderMap, Vec<u8>);

/// A webhook receiver answering with a settable status, recording each request.
struct Receiver {
    port: u16,
    status: Arc<AtomicU16>,
    requests: Arc<Mutex<Vec<Request>>>,
    server: tokio::task::JoinHandle<()>,
}

async fn start_receiver() -> Receiver {
    use warp::Filter;
    let status = Arc::new(AtomicU16::new(200));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (s, r) = (status.clone(), requests.clone());
    let route = warp::post()
        .and(warp::path("hook"))
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(move |headers, body: bytes::Bytes| {
            r.lock().unwrap().push((headers, body.to_vec()));
            let code = warp::http::StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
            warp::reply::with_status("", code)
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(warp::serve(route).incoming(listener).run());
    Receiver {
        port,
        status,
        requests,
        server,
    }
}

impl Receiver {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook?token=s3cret-in-query", self.port)
    }
}

/// HMAC-SHA256 of `data` by the openssl command line, independent of the code under test.
async fn openssl_hmac(key: &str, data: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is needed to check signatures");
    child.stdin.take().unwrap().write_all(data).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().rsplit(' ').next().unwrap().to_owned()
}

#[tokio::test]
async fn webhook_notice_is_signed_and_carries_the_idempotency_key() {
    let receiver = start_receiver().await;
    let notifier = Notifier::new(NotifyConfig::default()).unwrap();
    let secret = "reseller-hmac-key";
    let target = Target::Webhook {
        url: receiver.url(),
        secret: Some(secret.as_bytes().to_vec()),
    };
    let key = idempotency_key(
        UID,
        NotificationEvent::Outage,
        Channel::Webhook,
        &target.address(),
    );
    let before = Timestamp::now().as_second();
    notifier
        .deliver(&target, &notice(NotificationEvent::Outage), &key)
        .await
        .unwrap();

    let requests = receiver.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (headers, body) = &requests[0];
    assert_eq!(headers[IDEMPOTENCY_HEADER], key.as_str());
    assert_eq!(headers["content-type"], "application/json");
    let signature = headers[SIGNATURE_HEADER].to_str().unwrap().to_owned();
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature header {signature}"));
    let t: i64 = t.parse().unwrap();
    assert!((before..=Timestamp::now().as_second()).contains(&t), "{t}");
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    assert_eq!(v1, openssl_hmac(secret, &signed).await);
    assert_ne!(v1, openssl_hmac("another-key", &signed).await);

    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(json["idempotencyKey"], key.as_str());
    assert_eq!(json["event"], "outage");
    assert_eq!(json["brand"], "さくらウェブ");
    assert_eq!(json["contractName"], "山田商店");
    assert_eq!(json["service"], "http");
    assert_eq!(json["startedAt"], "2026-03-05T01:00:00Z");
    assert_eq!(json["timeZone"], "Asia/Tokyo");
    receiver.server.abort();
}

#[tokio::test]
async fn webhook_without_a_key_is_sent_unsigned() {
    let receiver = start_receiver().await;
    let notifier = Notifier::new(NotifyConfig::default()).unwrap();
    let target = Target::Webhook {
        url: receiver.url(),
        secret: None,
    };
    notifier
        .deliver(
            &target,
            &notice(NotificationEvent::Recovered),
            "recovered-webhook-1",
        )
        .await
        .unwrap();
    let requests = receiver.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].0.get(SIGNATURE_HEADER).is_none());
    assert_eq!(requests[0].0[IDEMPOTENCY_HEADER], "recovered-webhook-1");
    receiver.server.abort();
}

#[tokio::test]
async fn webhook_server_errors_are_retryable_client_errors_permanent() {
    let receiver = start_receiver().await;
    let notifier = Notifier::new(NotifyConfig::default()).unwrap();
    let target = Target::Webhook {
        url: receiver.url(),
        secret: Some(b"k".to_vec()),
    };
    let notice = notice(NotificationEvent::Outage);
    for (status, retryable) in [
        (503, true),
        (500, true),
        (429, true),
        (400, false),
        (404, false),
    ] {
        receiver.status.store(status, Ordering::SeqCst);
        let err = notifier
            .deliver(&target, &notice, "outage-webhook-x")
            .await
            .unwrap_err();
        assert!(
            matches!(err, NotifyError::WebhookStatus { status: s, .. } if s == status),
            "{err}"
        );
        assert_eq!(err.is_retryable(), retryable, "{status}: {err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
    assert_eq!(receiver.requests.lock().unwrap().len(), 5);

    // The receiver goes away: connection refused is worth retrying. (A fresh notifier, so no
    // kept-alive connection to the old server is reused.)
    receiver.server.abort();
    let _ = receiver.server.await;
    let notifier = Notifier::new(NotifyConfig::default()).unwrap();
    let err = notifier
        .deliver(&target, &notice, "outage-webhook-x")
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::WebhookSend { .. }), "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}
