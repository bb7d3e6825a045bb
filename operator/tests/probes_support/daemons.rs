//! The real daemons of the probe tests, each started in the foreground on free 127.0.0.1
//! ports with a minimal configuration and its state in the lab: nginx (http, https with a
//! valid, an expired and an untrusted certificate, and a 503 server), vsftpd (ftp with
//! explicit TLS), postfix (smtp, smtps), dovecot (imap, imaps, pop3, pop3s), postgresql and
//! mariadb. Shared instances start once per test process, on first use.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::{Daemon, free_ports, lab, lab_dir, require, run_setup};

/// A daemon's setup and start: seconds when the machine is idle, but mariadb-install-db took
/// over 30 s while the real-node tests started their pods beside these tests on two cores.
const START_WITHIN: Duration = Duration::from_secs(120);

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn shared<T>(
    cell: &'static OnceLock<Result<T, String>>,
    start: fn() -> Result<(Daemon, T), String>,
) -> &'static T {
    let started = cell.get_or_init(|| {
        start().map(|(daemon, ports)| {
            daemon.keep();
            ports
        })
    });
    match started {
        Ok(ports) => ports,
        Err(e) => panic!("{e}"),
    }
}

/// nginx's ports.
pub struct Nginx {
    pub http: u16,
    pub https: u16,
    pub expired: u16,
    pub untrusted: u16,
    pub failing: u16,
}

pub fn nginx() -> &'static Nginx {
    static CELL: OnceLock<Result<Nginx, String>> = OnceLock::new();
    shared(&CELL, || start_nginx("nginx-shared"))
}

/// A private nginx in `lab/<name>`, stopped when the daemon is dropped.
pub fn start_nginx(name: &str) -> Result<(Daemon, Nginx), String> {
    let bin = require("/usr/sbin/nginx")?;
    let dir = lab_dir(name)?;
    let pki = &lab().pki;
    let p = free_ports(5);
    let ports = Nginx {
        http: p[0],
        https: p[1],
        expired: p[2],
        untrusted: p[3],
        failing: p[4],
    };
    let d = dir.display();
    let tls = |port: u16, cert: &PathBuf, key: &PathBuf| {
        format!(
            "server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {}; ssl_certificate_key {}; \
             location / {{ return 200 \"ok\\n\"; }} }}\n",
            cert.display(),
            key.display()
        )
    };
    let config = format!(
        "daemon off;\nuser root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n default_type text/plain;\n\
         client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
         server {{ listen 127.0.0.1:{http}; location / {{ return 200 \"ok\\n\"; }} }}\n\
         server {{ listen 127.0.0.1:{failing}; location / {{ return 503; }} }}\n{}{}{}}}\n",
        tls(ports.https, &pki.server_cert, &pki.server_key),
        tls(ports.expired, &pki.expired_cert, &pki.expired_key),
        tls(ports.untrusted, &pki.untrusted_cert, &pki.untrusted_key),
        http = ports.http,
        failing = ports.failing,
    );
    write(&dir.join("nginx.conf"), &config)?;
    let mut command = Command::new(bin);
    command
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(dir.join("error.log"));
    let mut daemon = Daemon::start("nginx", command, &dir, libc::SIGTERM)?;
    daemon.wait_listening(&p, START_WITHIN)?;
    Ok((daemon, ports))
}

/// vsftpd's control port (explicit TLS on the same port).
pub fn vsftpd() -> u16 {
    static CELL: OnceLock<Result<u16, String>> = OnceLock::new();
    *shared(&CELL, start_vsftpd)
}

fn start_vsftpd() -> Result<(Daemon, u16), String> {
    let bin = require("/usr/sbin/vsftpd")?;
    let dir = lab_dir("vsftpd")?;
    let pki = &lab().pki;
    for sub in ["empty", "root"] {
        fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
    }
    let port = free_ports(1)[0];
    let d = dir.display();
    let config = format!(
        "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n\
         anonymous_enable=YES\nno_anon_password=YES\nanon_root={d}/root\nlocal_enable=NO\n\
         write_enable=NO\nftp_username=nobody\nnopriv_user=nobody\nsecure_chroot_dir={d}/empty\n\
         seccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\nxferlog_enable=NO\n\
         vsftpd_log_file={d}/vsftpd.log\nssl_enable=YES\nallow_anon_ssl=YES\n\
         force_local_data_ssl=NO\nforce_local_logins_ssl=NO\nrequire_ssl_reuse=NO\n\
         ssl_ciphers=HIGH\nrsa_cert_file={}\nrsa_private_key_file={}\n",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    write(&dir.join("vsftpd.conf"), &config)?;
    let mut command = Command::new(bin);
    command.arg(dir.join("vsftpd.conf"));
    let mut daemon = Daemon::start("vsftpd", command, &dir, libc::SIGTERM)?;
    daemon.wait_listening(&[port], START_WITHIN)?;
    Ok((daemon, port))
}

/// postfix's ports.
pub struct Postfix {
    pub smtp: u16,
    pub smtps: u16,
}

pub fn postfix() -> &'static Postfix {
    static CELL: OnceLock<Result<Postfix, String>> = OnceLock::new();
    shared(&CELL, start_postfix)
}

/// Postfix with a private config_directory, queue and data directory: `postfix check`
/// creates the queue's layout, then `master -d` runs in the foreground.
fn start_postfix() -> Result<(Daemon, Postfix), String> {
    let postfix = require("/usr/sbin/postfix")?;
    let master = require("/usr/lib/postfix/sbin/master")?;
    let dir = lab_dir("postfix")?;
    let pki = &lab().pki;
    let conf = dir.join("conf");
    for sub in ["conf", "queue", "data"] {
        fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
    }
    let chown = Command::new("chown")
        .arg("postfix")
        .arg(dir.join("data"))
        .status();
    if !chown.is_ok_and(|s| s.success()) {
        return Err("chown postfix of the data directory failed".into());
    }
    let p = free_ports(2);
    let d = dir.display();
    let main_cf = format!(
        "compatibility_level = 3.6\nqueue_directory = {d}/queue\ndata_directory = {d}/data\n\
         command_directory = /usr/sbin\ndaemon_directory = /usr/lib/postfix/sbin\n\
         meta_directory = /etc/postfix\nshlib_directory = /usr/lib/postfix\n\
         mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = probe-test.localdomain\n\
         mydestination =\nalias_maps =\nalias_database =\ninet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\nsmtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\n\
         smtpd_tls_security_level = may\nmaillog_file = {d}/postfix.log\n\
         maillog_file_prefixes = {d}\n",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    let master_cf = format!(
        "127.0.0.1:{smtp} inet n - n - - smtpd\n\
         127.0.0.1:{smtps} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt\n\
         cleanup unix n - n - 0 cleanup\ntlsmgr unix - - n 1000? 1 tlsmgr\n\
         rewrite unix - - n - - trivial-rewrite\nbounce unix - - n - 0 bounce\n\
         defer unix - - n - 0 bounce\ntrace unix - - n - 0 bounce\nverify unix - - n - 1 verify\n\
         proxymap unix - - n - - proxymap\nanvil unix - - n - 1 anvil\n\
         scache unix - - n - 1 scache\npostlog unix-dgram n - n - 1 postlogd\n",
        smtp = p[0],
        smtps = p[1]
    );
    write(&conf.join("main.cf"), &main_cf)?;
    write(&conf.join("master.cf"), &master_cf)?;
    let mut check = Command::new(postfix);
    check.arg("-c").arg(&conf).arg("check");
    run_setup("postfix-check", check, &dir, START_WITHIN)?;
    let mut command = Command::new(master);
    command.arg("-d").arg("-c").arg(&conf);
    let mut daemon = Daemon::start("postfix", command, &dir, libc::SIGTERM)?;
    daemon.wait_listening(&p, START_WITHIN)?;
    Ok((
        daemon,
        Postfix {
            smtp: p[0],
            smtps: p[1],
        },
    ))
}

/// dovecot's ports.
pub struct Dovecot {
    pub imap: u16,
    pub imaps: u16,
    pub pop3: u16,
    pub pop3s: u16,
}

pub fn dovecot() -> &'static Dovecot {
    static CELL: OnceLock<Result<Dovecot, String>> = OnceLock::new();
    shared(&CELL, start_dovecot)
}

fn start_dovecot() -> Result<(Daemon, Dovecot), String> {
    start_dovecot_on("dovecot", &free_ports(4))
}

/// A private dovecot in `lab/<name>` on the given imap, imaps, pop3 and pop3s ports (again
/// on the same ports after a stop, to test recovery), stopped when the daemon is dropped.
pub fn start_dovecot_on(name: &str, p: &[u16]) -> Result<(Daemon, Dovecot), String> {
    let bin = require("/usr/sbin/dovecot")?;
    require("/usr/lib/dovecot/imap-login")?;
    require("/usr/lib/dovecot/pop3-login")?;
    let dir = lab_dir(name)?;
    let pki = &lab().pki;
    let d = dir.display();
    let config = format!(
        "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
         protocols = imap pop3\nlisten = 127.0.0.1\nssl = yes\nssl_cert = <{}\nssl_key = <{}\n\
         ssl_min_protocol = TLSv1.2\nmail_location = maildir:{d}/mail/%u\n\
         passdb {{\n driver = static\n args = password=unused-by-probes\n}}\n\
         userdb {{\n driver = static\n args = uid=nobody gid=nogroup home={d}/mail/%u\n}}\n\
         service imap-login {{\n inet_listener imap {{\n  port = {}\n }}\n\
          inet_listener imaps {{\n  port = {}\n  ssl = yes\n }}\n}}\n\
         service pop3-login {{\n inet_listener pop3 {{\n  port = {}\n }}\n\
          inet_listener pop3s {{\n  port = {}\n  ssl = yes\n }}\n}}\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        p[0],
        p[1],
        p[2],
        p[3]
    );
    write(&dir.join("dovecot.conf"), &config)?;
    let mut command = Command::new(bin);
    command.arg("-F").arg("-c").arg(dir.join("dovecot.conf"));
    let mut daemon = Daemon::start(name, command, &dir, libc::SIGTERM)?;
    daemon.wait_listening(p, START_WITHIN)?;
    Ok((
        daemon,
        Dovecot {
            imap: p[0],
            imaps: p[1],
            pop3: p[2],
            pop3s: p[3],
        },
    ))
}

/// postgresql's port.
pub fn postgres() -> u16 {
    static CELL: OnceLock<Result<u16, String>> = OnceLock::new();
    *shared(&CELL, start_postgres)
}

/// The newest installed PostgreSQL's bin directory.
fn postgres_bin() -> Result<PathBuf, String> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "/usr/lib/postgresql/*/bin/postgres is missing: run e2e/daemons/install.sh (as root) \
         to install the test daemons"
            .to_owned()
    })
}

/// uid and gid of a system user, from /etc/passwd.
fn system_user(name: &str) -> Result<(u32, u32), String> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&name) && fields.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| format!("user {name} not found: run e2e/daemons/install.sh"))
}

/// PostgreSQL refuses to run as root: initdb and postgres run as the `postgres` user.
fn start_postgres() -> Result<(Daemon, u16), String> {
    let bin = postgres_bin()?;
    let (uid, gid) = system_user("postgres")?;
    let dir = lab_dir("postgres")?;
    let (data, socket) = (dir.join("data"), dir.join("socket"));
    for sub in [&data, &socket] {
        fs::create_dir_all(sub).map_err(|e| e.to_string())?;
        std::os::unix::fs::chown(sub, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    let as_postgres = |program: PathBuf| {
        let mut command = Command::new(program);
        command
            .uid(uid)
            .gid(gid)
            .current_dir(&dir)
            .env("HOME", &dir);
        command
    };
    let mut initdb = as_postgres(bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync"]);
    run_setup("initdb", initdb, &dir, START_WITHIN)?;
    // TLS on, so the probe's SSLRequest is answered 'S'; the key must belong to postgres.
    let pki = &lab().pki;
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    for (from, to, mode) in [
        (&pki.server_cert, &cert, 0o644),
        (&pki.server_key, &key, 0o600),
    ] {
        fs::copy(from, to).map_err(|e| e.to_string())?;
        fs::set_permissions(to, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
        std::os::unix::fs::chown(to, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    let port = free_ports(1)[0];
    let mut command = as_postgres(bin.join("postgres"));
    command.arg("-D").arg(&data).arg("-k").arg(&socket).args([
        "-p",
        &port.to_string(),
        "-h",
        "127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "ssl=on",
    ]);
    command
        .arg("-c")
        .arg(format!("ssl_cert_file={}", cert.display()))
        .arg("-c")
        .arg(format!("ssl_key_file={}", key.display()));
    // SIGINT: fast shutdown (SIGTERM would wait for clients).
    let mut daemon = Daemon::start("postgres", command, &dir, libc::SIGINT)?;
    daemon.wait_listening(&[port], START_WITHIN)?;
    // Listening is not ready: until recovery ends, postgres answers 57P03 "starting up".
    let deadline = std::time::Instant::now() + START_WITHIN;
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .map_err(|e| format!("running pg_isready: {e}"))?;
        if ready.success() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "postgres on port {port} not ready within {START_WITHIN:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((daemon, port))
}

/// mariadb's port.
pub fn mariadb() -> u16 {
    static CELL: OnceLock<Result<u16, String>> = OnceLock::new();
    *shared(&CELL, start_mariadb)
}

fn start_mariadb() -> Result<(Daemon, u16), String> {
    let install = require("/usr/bin/mariadb-install-db")?;
    let bin = require("/usr/sbin/mariadbd")?;
    let dir = lab_dir("mariadb")?;
    let data = dir.join("data");
    let mut setup = Command::new(install);
    setup
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]);
    run_setup("mariadb-install-db", setup, &dir, START_WITHIN)?;
    let port = free_ports(1)[0];
    let d = dir.display();
    let mut command = Command::new(bin);
    command.arg("--no-defaults").args([
        format!("--datadir={}", data.display()),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--socket={d}/mysql.sock"),
        format!("--pid-file={d}/mysql.pid"),
        format!("--log-error={d}/error.log"),
        "--user=root".to_owned(),
        "--skip-log-bin".to_owned(),
        "--skip-name-resolve".to_owned(),
        "--innodb-buffer-pool-size=16M".to_owned(),
    ]);
    let mut daemon = Daemon::start("mariadb", command, &dir, libc::SIGTERM)?;
    daemon.wait_listening(&[port], START_WITHIN)?;
    Ok((daemon, port))
}

/// The shared PostgreSQL hung: its postmaster and every child stopped (SIGSTOP), so its port
/// still accepts connections (the kernel's backlog) but nothing answers, as a wedged server
/// does. [`HungPostgres::resume`] continues them (SIGCONT); so does dropping the guard, so a
/// failing test leaves no stopped server behind for the next one.
pub struct HungPostgres {
    postmaster: u32,
    resumed: bool,
}

/// Hangs the shared PostgreSQL (started first if need be).
pub fn hang_postgres() -> Result<HungPostgres, String> {
    postgres();
    let pid_file = lab_dir("postgres")?.join("data/postmaster.pid");
    let text = fs::read_to_string(&pid_file)
        .map_err(|e| format!("reading {}: {e}", pid_file.display()))?;
    let postmaster = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .map_err(|e| format!("the postmaster's pid in {}: {e}", pid_file.display()))?;
    signal_tree(postmaster, libc::SIGSTOP)?;
    Ok(HungPostgres {
        postmaster,
        resumed: false,
    })
}

impl HungPostgres {
    /// Continues the server: it answers again.
    pub fn resume(mut self) -> Result<(), String> {
        self.resumed = true;
        signal_tree(self.postmaster, libc::SIGCONT)
    }
}

impl Drop for HungPostgres {
    fn drop(&mut self) {
        if !self.resumed {
            let _ = signal_tree(self.postmaster, libc::SIGCONT);
        }
    }
}

/// Signals a process and its children.
fn signal_tree(pid: u32, signal: i32) -> Result<(), String> {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map_err(|e| format!("the children of {pid}: {e}"))?;
    let mut pids: Vec<i32> = children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    pids.push(i32::try_from(pid).map_err(|e| e.to_string())?);
    for p in pids {
        // SAFETY: signals processes this test process started.
        if unsafe { libc::kill(p, signal) } != 0 {
            return Err(format!(
                "signal {signal} to {p}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
