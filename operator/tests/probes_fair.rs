//! The schedule's fair share with real probes and real sockets (issue 15 item 3): reseller A's
//! 1,000 targets point at a black hole on loopback (a listener whose accept queue is full and
//! never accepted, so every connect hangs until the probe timeout), reseller B's target at a
//! closed port (down at once). The loop is the monitor engine's: at most `SLOTS` probes, due
//! targets taken from the schedule as slots free up. A's re-checks need more than the slots
//! can serve; B's re-checks must still start within one re-check (plus a probe timeout) of
//! being due.

mod probes_support;

use std::collections::HashMap;
use std::time::Duration;

use oem_operator::monitor::probes::ServiceName;
use oem_operator::monitor::scheduler::{Owner, Retry, Schedule};
use probes_support::{SHORT_TIMEOUT, closed_port, prober, target};
use tokio::task::JoinSet;
use tokio::time::Instant;

const SLOTS: usize = 64;
const INTERVAL: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(1);
const RUN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    reseller: &'static str,
    n: usize,
}

impl Owner for Key {
    fn owner(&self) -> &str {
        self.reseller
    }
}

/// A loopback listener nobody accepts on, its queue filled: further connects hang.
async fn black_hole() -> (socket2::Socket, Vec<tokio::net::TcpStream>, u16) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().expect("address");
    socket.bind(&addr.into()).expect("bind");
    socket.listen(0).expect("listen");
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .expect("port");
    let mut held = Vec::new();
    for _ in 0..8 {
        let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
        match tokio::time::timeout(Duration::from_millis(300), connect).await {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(e)) => panic!("filling the black hole's queue: {e}"),
            Err(_) => return (socket, held, port),
        }
    }
    panic!("the listener's queue never filled: connects still complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_holed_targets_of_one_reseller_leave_anothers_rechecks_on_time() {
    let (_listener, _held, hole) = black_hole().await;
    let closed = closed_port();
    let prober = std::sync::Arc::new(prober(SHORT_TIMEOUT));
    let mut targets = HashMap::new();
    for n in 0..1000 {
        targets.insert(Key { reseller: "a", n }, target(ServiceName::Http, hole));
    }
    let b = Key {
        reseller: "b",
        n: 0,
    };
    targets.insert(b.clone(), target(ServiceName::Http, closed));
    let ids: Vec<(Key, String)> = targets
        .keys()
        .map(|k| (k.clone(), format!("enduser/{}/u{}/http", k.reseller, k.n)))
        .collect();
    let start = Instant::now();
    let mut schedule = Schedule::new(INTERVAL, Retry::fixed(RETRY), start);
    schedule.sync(ids.iter().map(|(k, id)| (k.clone(), id.as_str())), start);

    let mut running: JoinSet<(Key, bool, Duration)> = JoinSet::new();
    let mut b_due: Option<Instant> = None;
    // (when B's probe was due, how late it started) after A filled the slots.
    let mut b_late: Vec<(Duration, Duration)> = Vec::new();
    let (mut a_probes, mut a_timeouts) = (0usize, 0usize);
    let end = start + RUN;
    while Instant::now() < end {
        let now = Instant::now();
        for key in schedule.take_due(now, SLOTS - running.len()) {
            if key == b
                && let Some(due) = b_due.take()
            {
                b_late.push((due - start, now.saturating_duration_since(due)));
            }
            let prober = prober.clone();
            let t = targets[&key].clone();
            running.spawn(async move {
                let outcome = prober.probe(&t).await;
                (key, outcome.up, outcome.duration)
            });
        }
        let mut wake = end;
        if running.len() < SLOTS
            && let Some(due) = schedule.next_due()
        {
            wake = wake.min(due);
        }
        tokio::select! {
            Some(done) = running.join_next(), if !running.is_empty() => {
                let (key, up, took) = done.expect("probe task");
                assert!(!up, "{key:?} answered");
                if key.reseller == "a" {
                    a_probes += 1;
                    a_timeouts += usize::from(took >= SHORT_TIMEOUT);
                }
                let due = schedule.record(&key, up, Instant::now());
                if key == b {
                    b_due = due;
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    running.abort_all();
    // A's probes hang until the timeout (the black hole works), more than the slots serve:
    // 1,000 re-checks a second wanted, 64 / 0.5 s = 128 a second served.
    eprintln!("A: {a_probes} probes, {a_timeouts} timed out; B: {b_late:?}");
    assert!(a_probes > 1000, "{a_probes}");
    assert!(
        a_timeouts * 10 >= a_probes * 9,
        "{a_timeouts} of {a_probes}"
    );
    // Once A fills the slots (after its first interval), B's re-checks start on time.
    let crowded: Vec<Duration> = b_late
        .iter()
        .filter(|(due, _)| *due > INTERVAL + RETRY)
        .map(|(_, late)| *late)
        .collect();
    let worst = crowded.iter().max().copied().unwrap_or_default();
    eprintln!(
        "B's worst lateness beside A: {worst:?} over {} re-checks",
        crowded.len()
    );
    // The bar: at most one re-check (plus a probe timeout) late; the fair share
    // keeps it near zero (tens of milliseconds), first-in first-out was 6.4 s late here.
    assert!(
        worst <= RETRY + SHORT_TIMEOUT,
        "B's re-check started {worst:?} late"
    );
    // About one a second (its retry interval): B is not starved of re-checks.
    assert!(crowded.len() >= 10, "{b_late:?}");
}
