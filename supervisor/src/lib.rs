//! How the long-running programs (the operator, the webhooks, the panel) run and stop.
//!
//! A program is a set of named parts (controllers, loops, servers), each a task. The
//! [`Supervisor`] runs them until the stop signal (SIGINT or SIGTERM: what the kubelet sends a
//! stopping pod) or until one part ends before any stop was asked: a controller whose watch
//! ended, a loop that returned an error, a task that panicked. Either way every part is then
//! asked to stop through its [`Stop`] and given a grace period to end; whatever still runs
//! after it is aborted, so the process ends in bounded time. A part ending early is an error
//! naming the part: the program exits non-zero and its pod restarts, rather than running on
//! without the part while `/readyz` says all is well.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// Listens for SIGINT and SIGTERM from this call on, and resolves on the first. Call it first
/// thing in `main` (inside the runtime): the handlers are installed at the call, not when the
/// future is first polled, so a signal that comes while the program is still starting stops
/// it cleanly once started instead of killing it by the default action. Without a handler
/// (it cannot be installed) that signal does not count, and that is logged.
pub fn stop_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &'static str| {
        let installed = signal(kind);
        async move {
            match installed {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::error!(%error, signal = name, "cannot listen for this stop signal");
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    let term = listen(SignalKind::terminate(), "SIGTERM");
    let int = listen(SignalKind::interrupt(), "SIGINT");
    async move {
        tokio::select! {
            () = term => {}
            () = int => {}
        }
    }
}

/// A part's view of the stop. Every part gets a clone and ends soon after
/// [`requested`](Stop::requested) resolves.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Resolves once a stop is asked (at once if it already was).
    pub fn requested(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.0.clone();
        async move {
            // An error means the supervisor is gone: nothing runs the parts any more either.
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    }

    /// Whether a stop was asked.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// A stop that is never asked, for tests that run one part by itself.
    pub fn never() -> Stop {
        let (sender, receiver) = watch::channel(false);
        // The sender is kept alive for ever, so `requested` pends instead of resolving.
        std::mem::forget(sender);
        Stop(receiver)
    }
}

/// Why a supervised program stopped other than by its stop signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ended {
    #[error("{part} ended on its own before any stop was asked")]
    Early { part: &'static str },
    #[error("{part} failed: {message}")]
    Failed { part: &'static str, message: String },
    #[error("{part} panicked")]
    Panicked { part: &'static str },
}

type Part = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// The parts of one program and how long they get to stop.
pub struct Supervisor {
    parts: Vec<(&'static str, Part)>,
    sender: watch::Sender<bool>,
    grace: Duration,
}

impl Supervisor {
    /// Parts asked to stop get `grace` to end before they are aborted.
    pub fn new(grace: Duration) -> Self {
        Self {
            parts: Vec::new(),
            sender: watch::channel(false).0,
            grace,
        }
    }

    /// The stop every part watches.
    pub fn stop(&self) -> Stop {
        Stop(self.sender.subscribe())
    }

    /// Adds a part. It should run until its [`Stop`] is requested; returning before that (with
    /// `Ok` or `Err`) ends the program with an error naming it.
    pub fn add(
        &mut self,
        name: &'static str,
        part: impl Future<Output = Result<(), String>> + Send + 'static,
    ) {
        self.parts.push((name, Box::pin(part)));
    }

    /// Runs every part until `signal` resolves (then `Ok`) or a part ends first (then the
    /// error naming it). Either way all parts are asked to stop and waited for, at most the
    /// grace period; those still running then are aborted and named in the log.
    pub async fn run(self, signal: impl Future<Output = ()>) -> Result<(), Ended> {
        let Supervisor {
            parts,
            sender,
            grace,
        } = self;
        let mut running = JoinSet::new();
        let mut names = HashMap::new();
        for (name, part) in parts {
            let handle = running.spawn(part);
            names.insert(handle.id(), name);
        }
        let outcome = tokio::select! {
            _ = signal => {
                tracing::info!("stop signal received: stopping every part");
                Ok(())
            }
            Some(joined) = running.join_next_with_id() => {
                let ended = match joined {
                    Ok((id, Ok(()))) => Ended::Early { part: name_of(&names, id) },
                    Ok((id, Err(message))) => Ended::Failed { part: name_of(&names, id), message },
                    Err(error) => Ended::Panicked { part: name_of(&names, error.id()) },
                };
                tracing::error!(error = %ended, "a part ended: stopping the others");
                Err(ended)
            }
        };
        let _ = sender.send(true);
        let drained = tokio::time::timeout(grace, async {
            while let Some(joined) = running.join_next_with_id().await {
                match joined {
                    Ok((id, Err(message))) => {
                        tracing::warn!(part = name_of(&names, id), %message, "a part failed while stopping")
                    }
                    Err(error) if error.is_panic() => {
                        tracing::warn!(part = name_of(&names, error.id()), "a part panicked while stopping")
                    }
                    _ => {}
                }
            }
        })
        .await;
        if drained.is_err() {
            let mut left: Vec<&str> = Vec::new();
            running.abort_all();
            while let Some(joined) = running.join_next_with_id().await {
                if let Err(error) = joined {
                    left.push(name_of(&names, error.id()));
                }
            }
            left.sort_unstable();
            tracing::warn!(parts = ?left, ?grace, "parts still running after the grace period were aborted");
        }
        outcome
    }
}

fn name_of(names: &HashMap<tokio::task::Id, &'static str>, id: tokio::task::Id) -> &'static str {
    names.get(&id).copied().unwrap_or("a part")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A part that runs until its stop, then records that it ended cleanly.
    async fn polite(stop: Stop, ended: Arc<AtomicBool>) -> Result<(), String> {
        stop.requested().await;
        ended.store(true, Ordering::SeqCst);
        Ok(())
    }

    #[tokio::test]
    async fn a_sigterm_before_the_first_poll_is_kept_not_fatal() {
        let stop = stop_signal();
        // Were the handler installed only at the first poll, this would end the test process.
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(5), stop)
            .await
            .expect("the SIGTERM sent before the first poll resolves the stop");
    }

    #[tokio::test(start_paused = true)]
    async fn the_stop_signal_stops_every_part_and_is_no_error() {
        let mut supervisor = Supervisor::new(Duration::from_secs(5));
        let ended = Arc::new(AtomicBool::new(false));
        supervisor.add("watcher", polite(supervisor.stop(), ended.clone()));
        let outcome = supervisor
            .run(tokio::time::sleep(Duration::from_secs(1)))
            .await;
        assert_eq!(outcome, Ok(()));
        assert!(ended.load(Ordering::SeqCst), "the part saw the stop");
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_ending_early_stops_the_others_and_names_it() {
        let mut supervisor = Supervisor::new(Duration::from_secs(5));
        let ended = Arc::new(AtomicBool::new(false));
        supervisor.add("monitor", polite(supervisor.stop(), ended.clone()));
        supervisor.add("enduser controller", async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(())
        });
        let outcome = supervisor.run(std::future::pending()).await;
        assert_eq!(
            outcome,
            Err(Ended::Early {
                part: "enduser controller"
            })
        );
        assert!(ended.load(Ordering::SeqCst), "the monitor was stopped too");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_or_panicking_part_is_named_with_its_error() {
        let mut supervisor = Supervisor::new(Duration::from_secs(5));
        supervisor.add("alerting", async {
            Err("the notification transport cannot be set up".to_owned())
        });
        supervisor.add("idle", {
            let stop = supervisor.stop();
            async move {
                stop.requested().await;
                Ok(())
            }
        });
        let error = supervisor.run(std::future::pending()).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "alerting failed: the notification transport cannot be set up"
        );

        let mut supervisor = Supervisor::new(Duration::from_secs(5));
        supervisor.add("usage", async { panic!("a bug") });
        let outcome = supervisor.run(std::future::pending()).await;
        assert_eq!(outcome, Err(Ended::Panicked { part: "usage" }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_that_ignores_the_stop_is_aborted_after_the_grace_period() {
        let mut supervisor = Supervisor::new(Duration::from_secs(3));
        let dropped = Arc::new(AtomicBool::new(false));
        struct OnDrop(Arc<AtomicBool>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let guard = OnDrop(dropped.clone());
        supervisor.add("stubborn", async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(())
        });
        let started = tokio::time::Instant::now();
        let outcome = supervisor.run(async {}).await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert!(dropped.load(Ordering::SeqCst), "the part was aborted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_asked_before_a_part_waits_resolves_at_once() {
        let supervisor = Supervisor::new(Duration::from_secs(1));
        let stop = supervisor.stop();
        assert!(!stop.is_requested());
        let _ = supervisor.sender.send(true);
        assert!(stop.is_requested());
        tokio::time::timeout(Duration::from_millis(1), stop.requested())
            .await
            .expect("already requested");
        let never = Stop::never();
        assert!(
            tokio::time::timeout(Duration::from_secs(60), never.requested())
                .await
                .is_err()
        );
    }
}
