//! Signalling and stopping the programs the tests run as children: SIGTERM then a bounded wait,
//! as a kubelet stops a pod.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Sends `signal` to `child`, which this process has not reaped (so its PID is still its own).
pub fn signal(child: &Child, signal: i32) -> anyhow::Result<()> {
    let pid = i32::try_from(child.id()).context("the child's pid")?;
    // SAFETY: signals a child of this process that has not been reaped.
    if unsafe { libc::kill(pid, signal) } != 0 {
        bail!(
            "signal {signal} to {pid}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Waits at most `limit` for `child` to exit by itself; `None` when it still runs.
pub fn wait_exit(child: &mut Child, limit: Duration) -> anyhow::Result<Option<ExitStatus>> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().context("waiting for the child")? {
            return Ok(Some(status));
        }
        if started.elapsed() >= limit {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM to `child` and waits at most `limit` for it to exit; returns how it exited
/// and how long it took. Past the limit it is killed (SIGKILL) and that is the error.
pub fn terminate(child: &mut Child, limit: Duration) -> anyhow::Result<(ExitStatus, Duration)> {
    let started = Instant::now();
    signal(child, libc::SIGTERM)?;
    match wait_exit(child, limit)? {
        Some(status) => Ok((status, started.elapsed())),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("still running {limit:?} after SIGTERM: killed")
        }
    }
}
