//! Probe engine benchmark (prints figures, never fails on them).
//!
//! 1. Side by side against the same local daemons (nginx http, postfix smtp, dovecot pop3 and
//!    imap, plain text, started here on 127.0.0.1): N probes of each service by our engine
//!    (in process) and by Prometheus blackbox_exporter (driven through its `/probe` endpoint),
//!    both with the same bounded concurrency; CPU seconds from `/proc/<pid>/stat` (utime +
//!    stime) of blackbox_exporter and of this process while our engine runs; probes per CPU
//!    second for each and their ratio.
//! 2. A time-compressed sweep of 10,000 end users × 12 services through the real scheduler
//!    (`monitor::scheduler`) and prober: CPU and peak memory (VmHWM) of this process. The 12
//!    services are probed as http, smtp, pop3 and imap against the same daemons (three each):
//!    the TLS daemons are left out to keep the daemons, not the engine, from being the limit.
//!
//! Usage: `cargo run --release -p oem-e2e --bin bench-probes [N]` (as root, after
//! `e2e/daemons/install-bench.sh`). Bounded: every phase has a time limit.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use oem_e2e::free_port;
use oem_operator::monitor::probes::{ProbeConfig, Prober, ServiceName, Target};
use oem_operator::monitor::scheduler::{Owner, Retry, Schedule};

const CONCURRENCY: usize = 32;
const SWEEP_USERS: usize = 10_000;
const SWEEP_SERVICES: usize = 12;
const SWEEP_CONCURRENCY: usize = 64;
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
const SWEEP_LIMIT: Duration = Duration::from_secs(100);
const PHASE_LIMIT: Duration = Duration::from_secs(25);

/// Processes started here, killed on drop.
struct Daemons(Vec<(String, Child)>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_listening(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("{what} not listening on {port} within 20s")
}

fn spawn(
    daemons: &mut Daemons,
    name: &str,
    dir: &Path,
    command: &mut Command,
) -> anyhow::Result<u32> {
    let log = fs::File::create(dir.join(format!("{name}.out")))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting {name}: {e}"))?;
    let pid = child.id();
    daemons.0.push((name.to_owned(), child));
    Ok(pid)
}

struct Ports {
    http: u16,
    smtp: u16,
    pop3: u16,
    imap: u16,
}

fn start_daemons(dir: &Path, daemons: &mut Daemons) -> anyhow::Result<Ports> {
    let ports = Ports {
        http: free_port()?,
        smtp: free_port()?,
        pop3: free_port()?,
        imap: free_port()?,
    };
    // nginx
    let nginx = dir.join("nginx");
    fs::create_dir_all(&nginx)?;
    let n = nginx.display();
    fs::write(
        nginx.join("nginx.conf"),
        format!(
            "daemon off;\nuser root;\nworker_processes 1;\npid {n}/nginx.pid;\nerror_log {n}/error.log;\n\
             events {{ worker_connections 1024; }}\nhttp {{\n access_log off;\n\
             client_body_temp_path {n}/body; proxy_temp_path {n}/proxy; fastcgi_temp_path {n}/fastcgi;\n\
             uwsgi_temp_path {n}/uwsgi; scgi_temp_path {n}/scgi;\n\
             server {{ listen 127.0.0.1:{}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n",
            ports.http
        ),
    )?;
    spawn(
        daemons,
        "nginx",
        &nginx,
        Command::new("/usr/sbin/nginx")
            .arg("-c")
            .arg(nginx.join("nginx.conf"))
            .arg("-p")
            .arg(&nginx)
            .arg("-e")
            .arg(nginx.join("error.log")),
    )?;
    // postfix
    let postfix = dir.join("postfix");
    for sub in ["conf", "queue", "data"] {
        fs::create_dir_all(postfix.join(sub))?;
    }
    Command::new("chown")
        .arg("postfix")
        .arg(postfix.join("data"))
        .status()?;
    let p = postfix.display();
    fs::write(
        postfix.join("conf/main.cf"),
        format!(
            "compatibility_level = 3.6\nqueue_directory = {p}/queue\ndata_directory = {p}/data\n\
             command_directory = /usr/sbin\ndaemon_directory = /usr/lib/postfix/sbin\n\
             meta_directory = /etc/postfix\nshlib_directory = /usr/lib/postfix\n\
             mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = bench.localdomain\n\
             mydestination =\nalias_maps =\nalias_database =\ninet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\nmaillog_file = {p}/postfix.log\nmaillog_file_prefixes = {p}\n\
             default_process_limit = 200\nsmtpd_client_connection_rate_limit = 0\n\
             smtpd_client_connection_count_limit = 0\n"
        ),
    )?;
    fs::write(
        postfix.join("conf/master.cf"),
        format!(
            "127.0.0.1:{} inet n - n - - smtpd\ncleanup unix n - n - 0 cleanup\n\
             rewrite unix - - n - - trivial-rewrite\nbounce unix - - n - 0 bounce\n\
             defer unix - - n - 0 bounce\ntrace unix - - n - 0 bounce\nverify unix - - n - 1 verify\n\
             proxymap unix - - n - - proxymap\nanvil unix - - n - 1 anvil\n\
             scache unix - - n - 1 scache\npostlog unix-dgram n - n - 1 postlogd\n",
            ports.smtp
        ),
    )?;
    let check = Command::new("/usr/sbin/postfix")
        .arg("-c")
        .arg(postfix.join("conf"))
        .arg("check")
        .status()?;
    anyhow::ensure!(check.success(), "postfix check failed");
    spawn(
        daemons,
        "postfix",
        &postfix,
        Command::new("/usr/lib/postfix/sbin/master")
            .arg("-d")
            .arg("-c")
            .arg(postfix.join("conf")),
    )?;
    // dovecot, plain text only
    let dovecot = dir.join("dovecot");
    fs::create_dir_all(&dovecot)?;
    let d = dovecot.display();
    fs::write(
        dovecot.join("dovecot.conf"),
        format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
             protocols = imap pop3\nlisten = 127.0.0.1\nssl = no\nmail_location = maildir:{d}/mail/%u\n\
             passdb {{\n driver = static\n args = password=unused\n}}\n\
             userdb {{\n driver = static\n args = uid=nobody gid=nogroup home={d}/mail/%u\n}}\n\
             service imap-login {{\n inet_listener imap {{\n  port = {}\n }}\n\
              inet_listener imaps {{\n  port = 0\n }}\n process_limit = 200\n}}\n\
             service pop3-login {{\n inet_listener pop3 {{\n  port = {}\n }}\n\
              inet_listener pop3s {{\n  port = 0\n }}\n process_limit = 200\n}}\n",
            ports.imap, ports.pop3
        ),
    )?;
    spawn(
        daemons,
        "dovecot",
        &dovecot,
        Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(dovecot.join("dovecot.conf")),
    )?;
    for (port, what) in [
        (ports.http, "nginx"),
        (ports.smtp, "postfix"),
        (ports.pop3, "dovecot pop3"),
        (ports.imap, "dovecot imap"),
    ] {
        wait_listening(port, what)?;
    }
    Ok(ports)
}

/// CPU seconds (user + system) of a process so far.
fn cpu_seconds(pid: &str) -> f64 {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which ends with the last ')'.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Peak resident memory of this process, MiB.
fn peak_rss_mib() -> f64 {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn start_blackbox(dir: &Path, daemons: &mut Daemons) -> anyhow::Result<(u16, u32)> {
    let bin = [
        "/usr/bin/prometheus-blackbox-exporter",
        "/usr/bin/blackbox_exporter",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .ok_or_else(|| {
        anyhow::anyhow!("blackbox_exporter missing: run e2e/daemons/install-bench.sh")
    })?;
    let config = dir.join("blackbox.yml");
    fs::write(
        &config,
        "modules:\n\
         \x20 http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n\
         \x20 smtp_banner:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      preferred_ip_protocol: ip4\n      query_response:\n        - expect: \"^220\"\n        - send: \"QUIT\\r\"\n\
         \x20 pop3_banner:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      preferred_ip_protocol: ip4\n      query_response:\n        - expect: \"^\\\\+OK\"\n        - send: \"QUIT\\r\"\n\
         \x20 imap_banner:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      preferred_ip_protocol: ip4\n      query_response:\n        - expect: \"^\\\\* OK\"\n        - send: \"a1 LOGOUT\\r\"\n",
    )?;
    let port = free_port()?;
    let pid = spawn(
        daemons,
        "blackbox_exporter",
        dir,
        Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
    )?;
    wait_listening(port, "blackbox_exporter")?;
    Ok((port, pid))
}

/// Runs `n` of `probe` with bounded concurrency, within the phase limit; returns
/// (probes done, succeeded, wall seconds).
async fn drive<F, Fut>(n: usize, concurrency: usize, probe: F) -> (usize, usize, f64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let deadline = started + PHASE_LIMIT;
    let results: Vec<bool> = futures::stream::iter(0..n)
        .take_while(|_| std::future::ready(Instant::now() < deadline))
        .map(|_| probe())
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let ok = results.iter().filter(|up| **up).count();
    (results.len(), ok, started.elapsed().as_secs_f64())
}

fn prober() -> anyhow::Result<Arc<Prober>> {
    let config = ProbeConfig {
        timeout: Duration::from_secs(5),
        pod_cidrs: vec![],
        service_cidrs: vec![],
        allow: vec!["127.0.0.0/8".parse()?],
        ca_file: None,
        icmp: false,
    };
    Ok(Arc::new(Prober::new(config)?))
}

async fn compare(n: usize, ports: &Ports, blackbox: (u16, u32)) -> anyhow::Result<()> {
    let prober = prober()?;
    let me = std::process::id().to_string();
    let bb_pid = blackbox.1.to_string();
    println!(
        "\n{:<6} {:>6} {:>6} {:>8} {:>10} | {:>6} {:>6} {:>8} {:>10} | {:>7}",
        "probe", "ours", "up", "cpu s", "probes/cpu", "bb", "up", "cpu s", "probes/cpu", "ratio"
    );
    for (service, port, module) in [
        (ServiceName::Http, ports.http, "http_2xx"),
        (ServiceName::Smtp, ports.smtp, "smtp_banner"),
        (ServiceName::Pop3, ports.pop3, "pop3_banner"),
        (ServiceName::Imap, ports.imap, "imap_banner"),
    ] {
        let target = Target::new(service, "127.0.0.1", Some(port));
        let cpu0 = cpu_seconds(&me);
        let (ours, ours_up, _) = drive(n, CONCURRENCY, || {
            let prober = prober.clone();
            let target = target.clone();
            async move { prober.probe(&target).await.up }
        })
        .await;
        let ours_cpu = cpu_seconds(&me) - cpu0;

        let url = if service == ServiceName::Http {
            format!(
                "http://127.0.0.1:{}/probe?module={module}&target=http://127.0.0.1:{port}/",
                blackbox.0
            )
        } else {
            format!(
                "http://127.0.0.1:{}/probe?module={module}&target=127.0.0.1:{port}",
                blackbox.0
            )
        };
        let cpu0 = cpu_seconds(&bb_pid);
        let (bb, bb_up, _) = drive(n, CONCURRENCY, || {
            let url = url.clone();
            async move {
                matches!(oem_e2e::http_get(&url).await, Ok((200, body)) if body.contains("probe_success 1"))
            }
        })
        .await;
        let bb_cpu = cpu_seconds(&bb_pid) - cpu0;
        let rate = |n: usize, cpu: f64| n as f64 / cpu.max(1.0 / clock_ticks());
        println!(
            "{:<6} {:>6} {:>6} {:>8.2} {:>10.0} | {:>6} {:>6} {:>8.2} {:>10.0} | {:>6.1}x",
            service.as_str(),
            ours,
            ours_up,
            ours_cpu,
            rate(ours, ours_cpu),
            bb,
            bb_up,
            bb_cpu,
            rate(bb, bb_cpu),
            rate(ours, ours_cpu) / rate(bb, bb_cpu)
        );
    }
    println!(
        "(CPU: /proc/<pid>/stat utime+stime; ours in process, blackbox_exporter's own process; \
         concurrency {CONCURRENCY}; the daemons' CPU is not counted for either)"
    );
    Ok(())
}

/// A sweep's target: (end user, service slot), all of one reseller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key(usize, usize);

impl Owner for Key {
    fn owner(&self) -> &str {
        "bench"
    }
}

/// 10,000 end users × 12 services through the scheduler and prober, compressed into one
/// `SWEEP_INTERVAL`.
async fn sweep(ports: &Ports) -> anyhow::Result<()> {
    let prober = prober()?;
    let me = std::process::id().to_string();
    let by_slot = [
        (ServiceName::Http, ports.http),
        (ServiceName::Smtp, ports.smtp),
        (ServiceName::Pop3, ports.pop3),
        (ServiceName::Imap, ports.imap),
    ];
    let mut targets: HashMap<Key, Target> = HashMap::new();
    let mut ids = Vec::new();
    for user in 0..SWEEP_USERS {
        for slot in 0..SWEEP_SERVICES {
            let (service, port) = by_slot[slot % by_slot.len()];
            targets.insert(
                Key(user, slot),
                Target::new(service, "127.0.0.1", Some(port)),
            );
            ids.push((Key(user, slot), format!("enduser/bench/u{user}/{slot}")));
        }
    }
    let total = targets.len();
    let cpu0 = cpu_seconds(&me);
    let started = tokio::time::Instant::now();
    let retry = Retry::fixed(Duration::from_secs(5));
    let mut schedule = Schedule::new(SWEEP_INTERVAL, retry, started);
    schedule.sync(ids.iter().map(|(k, id)| (*k, id.as_str())), started);
    drop(ids);
    let mut running = tokio::task::JoinSet::new();
    let mut done = 0usize;
    let mut up = 0usize;
    let deadline = started + SWEEP_LIMIT;
    while done < total && tokio::time::Instant::now() < deadline {
        let now = tokio::time::Instant::now();
        let free = SWEEP_CONCURRENCY - running.len();
        for key in schedule.take_due(now, free) {
            let prober = prober.clone();
            let target = targets[&key].clone();
            running.spawn(async move { prober.probe(&target).await.up });
        }
        let wake = match schedule.next_due() {
            Some(due) if running.len() < SWEEP_CONCURRENCY => due.min(deadline),
            _ => deadline,
        };
        tokio::select! {
            // A sweep is one pass: a finished target is not recorded, so not rescheduled.
            Some(Ok(ok)) = running.join_next(), if !running.is_empty() => {
                done += 1;
                up += usize::from(ok);
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&me) - cpu0;
    let per_probe = cpu / done.max(1) as f64;
    println!(
        "\nsweep: {SWEEP_USERS} end users × {SWEEP_SERVICES} services = {total} targets spread \
         over a {}s interval (concurrency {SWEEP_CONCURRENCY}): {done} probed ({up} up) in \
         {wall:.1}s ({:.0} probes/s, bounded by the local daemons and the shared machine), \
         CPU {cpu:.1}s = {:.0} probes per CPU-second; a full sweep extrapolates to {:.0} CPU-s, \
         {:.1}% of one core over the real 600 s interval; peak RSS {:.0} MiB with every target \
         scheduled",
        SWEEP_INTERVAL.as_secs(),
        done as f64 / wall.max(0.01),
        1.0 / per_probe.max(1e-9),
        per_probe * total as f64,
        per_probe * total as f64 / 600.0 * 100.0,
        peak_rss_mib()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let dir = std::env::temp_dir().join(format!("oem-bench-probes-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let mut daemons = Daemons(Vec::new());
    let ports = start_daemons(&dir, &mut daemons)?;
    println!(
        "daemons on 127.0.0.1: nginx {}, postfix {}, dovecot pop3 {} imap {}",
        ports.http, ports.smtp, ports.pop3, ports.imap
    );
    match start_blackbox(&dir, &mut daemons) {
        Ok(blackbox) => compare(n, &ports, blackbox).await?,
        Err(e) => println!("skipping the comparison: {e}"),
    }
    sweep(&ports).await?;
    drop(daemons);
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}
