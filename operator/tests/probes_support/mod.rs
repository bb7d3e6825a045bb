//! Test harness of the probe tests: a lab directory with a per-run PKI (CA, server, expired and
//! untrusted certificates), real daemons started on free 127.0.0.1 ports with their state in
//! the lab (see `daemons.rs`), misbehaving servers of our own (`fake.rs`), and helpers to build
//! probers and targets. Every wait is bounded; daemons are stopped by PID when dropped, and
//! the shared ones when the test process exits.
#![allow(dead_code)]

pub mod daemons;
pub mod fake;

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use oem_operator::monitor::probes::{ProbeConfig, ProbeOutcome, Prober, ServiceName, Target};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};

/// The probe timeout against real daemons: generous, so a loaded machine does not flake.
pub const DAEMON_TIMEOUT: Duration = Duration::from_secs(5);
/// The probe timeout in tests that expect a timeout.
pub const SHORT_TIMEOUT: Duration = Duration::from_millis(500);

/// A domain the server certificates are valid for besides localhost: the end user's domain in
/// the monitoring end-to-end test, which shares this harness.
pub const MONITORED_DOMAIN: &str = "www.e2e-monitoring.jp";

/// Certificates and keys of this run, as PEM files.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
    pub untrusted_cert: PathBuf,
    pub untrusted_key: PathBuf,
    /// notAfter of the valid server certificate, seconds since the epoch.
    pub server_not_after: i64,
    /// notAfter of the expired one.
    pub expired_not_after: i64,
}

/// The directory everything of this test run lives in.
pub struct Lab {
    pub dir: PathBuf,
    pub pki: Pki,
}

static LAB: OnceLock<Lab> = OnceLock::new();
/// Shared daemons, stopped when the process exits.
static RUNNING: Mutex<Vec<Daemon>> = Mutex::new(Vec::new());

/// The lab, created on first use. Fails the test when it cannot run here.
pub fn lab() -> &'static Lab {
    LAB.get_or_init(|| match create_lab() {
        Ok(lab) => lab,
        Err(e) => panic!("creating the probe test lab: {e}"),
    })
}

fn create_lab() -> Result<Lab, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the probe tests start real daemons and must run as root".into());
    }
    let dir = tempfile::Builder::new()
        .prefix("oem-probes-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    // Daemons drop privileges (postfix, dovecot, postgres): they must reach their state.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    let pki = write_pki(&dir.join("pki")).map_err(|e| format!("writing the PKI: {e}"))?;
    // SAFETY: registers a plain extern "C" function.
    unsafe { libc::atexit(stop_everything) };
    Ok(Lab { dir, pki })
}

extern "C" fn stop_everything() {
    let daemons = match RUNNING.lock() {
        Ok(mut running) => std::mem::take(&mut *running),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for daemon in &daemons {
        daemon.signal(daemon.stop_signal);
    }
    drop(daemons);
    if let Some(lab) = LAB.get() {
        let _ = fs::remove_dir_all(&lab.dir);
    }
}

fn write_pki(dir: &Path) -> Result<Pki, Box<dyn std::error::Error>> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "oem-hosting probe test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    // The last name is the end user's domain in the monitoring end-to-end test.
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        MONITORED_DOMAIN.to_owned(),
    ];

    let write = |name: &str, text: String| -> io::Result<PathBuf> {
        let path = dir.join(name);
        fs::write(&path, text)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        Ok(path)
    };
    let ca = write("ca.pem", ca_cert.pem())?;

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(names.clone())?;
    server.not_before = date_time_ymd(2024, 1, 1);
    server.not_after = date_time_ymd(2099, 6, 30);
    let server_not_after = server.not_after.unix_timestamp();
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let expired_key = KeyPair::generate()?;
    let mut expired = CertificateParams::new(names.clone())?;
    expired.not_before = date_time_ymd(2020, 1, 1);
    expired.not_after = date_time_ymd(2021, 1, 1);
    let expired_not_after = expired.not_after.unix_timestamp();
    let expired_cert = expired.signed_by(&expired_key, &issuer)?;

    let untrusted_key = KeyPair::generate()?;
    let untrusted_cert = CertificateParams::new(names)?.self_signed(&untrusted_key)?;

    Ok(Pki {
        ca,
        server_cert: write("server.pem", server_cert.pem())?,
        server_key: write("server.key", server_key.serialize_pem())?,
        expired_cert: write("expired.pem", expired_cert.pem())?,
        expired_key: write("expired.key", expired_key.serialize_pem())?,
        untrusted_cert: write("untrusted.pem", untrusted_cert.pem())?,
        untrusted_key: write("untrusted.key", untrusted_key.serialize_pem())?,
        server_not_after,
        expired_not_after,
    })
}

/// A directory of the lab for one daemon.
pub fn lab_dir(name: &str) -> Result<PathBuf, String> {
    let dir = lab().dir.join(name);
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// The path of a daemon binary, or why the test fails.
pub fn require(path: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(path);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: run e2e/daemons/install.sh (as root) to install the test daemons",
            path.display()
        ))
    }
}

/// A running daemon; stopped (stop signal, then SIGKILL after 5 s) when dropped.
pub struct Daemon {
    pub name: String,
    child: Child,
    stop_signal: i32,
    log: PathBuf,
}

impl Daemon {
    /// Starts `command` with output to `<dir>/<name>.out`; it dies with the test process.
    pub fn start(
        name: &str,
        mut command: Command,
        dir: &Path,
        stop_signal: i32,
    ) -> Result<Self, String> {
        let log = dir.join(format!("{name}.out"));
        let out = fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
        let child = spawn(command).map_err(|e| format!("starting {name}: {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            stop_signal,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: i32) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: sends a signal to our own child, which we have not reaped yet.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// The end of the daemon's output, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// Waits until every port accepts a connection; fails early when the daemon exits.
    pub fn wait_listening(&mut self, ports: &[u16], within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        for &port in ports {
            loop {
                if TcpStream::connect_timeout(
                    &([127, 0, 0, 1], port).into(),
                    Duration::from_millis(200),
                )
                .is_ok()
                {
                    break;
                }
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(format!(
                        "{} exited ({status}) before listening on {port}:\n{}",
                        self.name,
                        self.log_tail()
                    ));
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{} not listening on {port} within {within:?}:\n{}",
                        self.name,
                        self.log_tail()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Keeps the daemon running until the test process exits.
    pub fn keep(self) {
        match RUNNING.lock() {
            Ok(mut running) => running.push(self),
            Err(poisoned) => poisoned.into_inner().push(self),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal(self.stop_signal);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns from one long-lived thread: the parent-death signal fires when the spawning thread
/// ends, and test threads end after each test.
fn spawn(command: Command) -> io::Result<Child> {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::spawn(move || {
            for (mut command, reply) in rx {
                let _ = reply.send(command.spawn());
            }
        });
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .map_err(|_| io::Error::other("spawner lock poisoned"))?
        .send((command, reply))
        .map_err(|_| io::Error::other("spawner thread gone"))?;
    answer
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| io::Error::other("spawner did not answer"))?
}

/// Runs a setup command to completion within `within`; its output goes to `<dir>/<name>.out`.
pub fn run_setup(name: &str, command: Command, dir: &Path, within: Duration) -> Result<(), String> {
    let mut daemon = Daemon::start(name, command, dir, libc::SIGKILL)?;
    let deadline = Instant::now() + within;
    loop {
        match daemon.child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!("{name} failed ({status}):\n{}", daemon.log_tail()));
            }
            Ok(None) if Instant::now() > deadline => {
                return Err(format!(
                    "{name} did not finish within {within:?}:\n{}",
                    daemon.log_tail()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("{name}: {e}")),
        }
    }
}

fn tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(3000)));
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// `n` distinct free ports on 127.0.0.1 (held together while chosen).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    free_ports(1)[0]
}

/// A prober trusting the lab CA, allowed only loopback.
pub fn prober(timeout: Duration) -> Prober {
    prober_allowing(timeout, &["127.0.0.0/8"])
}

pub fn prober_allowing(timeout: Duration, nets: &[&str]) -> Prober {
    let config = ProbeConfig {
        timeout,
        pod_cidrs: vec![],
        service_cidrs: vec![],
        allow: nets.iter().map(|n| n.parse().expect("network")).collect(),
        ca_file: Some(lab().pki.ca.clone()),
        icmp: true,
    };
    Prober::new(config).expect("prober")
}

/// A target on 127.0.0.1 whose domain (Host, TLS name) is `localhost`.
pub fn target(service: ServiceName, port: u16) -> Target {
    Target::new(service, "127.0.0.1", Some(port)).with_domain("localhost")
}

#[track_caller]
pub fn assert_up(outcome: &ProbeOutcome) {
    eprintln!("{} up: {}", outcome.service, outcome.reason);
    assert!(outcome.up, "expected up, got down: {outcome:#?}");
    assert!(outcome.failure.is_none());
}

#[track_caller]
pub fn assert_down(outcome: &ProbeOutcome, reason_contains: &str) {
    eprintln!("{} down: {}", outcome.service, outcome.reason);
    assert!(!outcome.up, "expected down, got up: {outcome:#?}");
    assert!(
        outcome.reason.contains(reason_contains),
        "reason {:?} lacks {reason_contains:?}",
        outcome.reason
    );
}
