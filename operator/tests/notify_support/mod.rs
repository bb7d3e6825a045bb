//! The servers the notify tests deliver to, on loopback: the repository's SMTP sink
//! (`e2e/daemons/smtp_sink.py`, aiosmtpd with STARTTLS and AUTH, run by Debian's python3, so a
//! missing aiosmtpd fails the tests) and a webhook receiver recording each request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oem_operator::alerting::notify::{NotifyConfig, StartTls};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

pub const PYTHON: &str = "/usr/bin/python3";
const SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/daemons/smtp_sink.py");
pub const USER: &str = "notify";
const PASSWORD: &str = "correct horse battery";
pub const FROM: &str = "notice@mail.example.jp";

/// A CA and a certificate for 127.0.0.1 it signed, written as PEM files.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn write_pki(dir: &Path) -> Pki {
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

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[derive(Default)]
pub struct SinkOptions {
    pub tls: bool,
    pub require_tls: bool,
    pub auth: bool,
    pub fail_first: u32,
}

/// The SMTP sink, killed when dropped.
pub struct Sink {
    _child: Child,
    pub port: u16,
    pub mail: PathBuf,
    pub pki: Pki,
    pub password_file: PathBuf,
    _dir: TempDir,
}

pub async fn start_sink(options: SinkOptions) -> Sink {
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
    pub fn config(&self, starttls: StartTls, auth: bool) -> NotifyConfig {
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
    pub fn messages(&self) -> Vec<Mail> {
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
pub struct Mail {
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no header {name} in {:#?}", self.headers))
    }
}

pub fn parse_mail(path: &Path) -> Mail {
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
pub fn text(body: &str) -> String {
    body.replace("\r\n", "\n").trim_end().to_owned()
}

/// Headers and body of one request the receiver got.
pub type Request = (warp::http::HeaderMap, Vec<u8>);

/// A webhook receiver answering with a settable status, recording each request.
pub struct Receiver {
    pub port: u16,
    pub status: Arc<AtomicU16>,
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub server: tokio::task::JoinHandle<()>,
}

pub async fn start_receiver() -> Receiver {
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
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook?token=s3cret-in-query", self.port)
    }
}

/// HMAC-SHA256 of `data` by the openssl command line, independent of the code under test.
pub async fn openssl_hmac(key: &str, data: &[u8]) -> String {
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
