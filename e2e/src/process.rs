//! Stopping the programs the tests run as a kubelet stops a pod: SIGTERM, then a bounded wait.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Sends SIGTERM to `child` and waits at most `limit` for it to exit; returns how it exited
/// and how long it took. Past the limit it is killed (SIGKILL) and that is the error.
pub fn terminate(child: &mut Child, limit: Duration) -> anyhow::Result<(ExitStatus, Duration)> {
    let pid = i32::try_from(child.id()).context("the child's pid")?;
    let started = Instant::now();
    // SAFETY: signals a child of this process that has not been reaped.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        bail!("SIGTERM to {pid}: {}", std::io::Error::last_os_error());
    }
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().context("waiting for the child")? {
            return Ok((status, started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("still running {limit:?} after SIGTERM: killed")
}
