//! The oem-hosting operator as a library, so tests reach every part; `main.rs` only wires it.

pub mod alerting;
pub mod apply;
pub mod clock;
pub mod config;
pub mod context;
pub mod controllers;
pub mod error;
pub mod hosting;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod monitor;
pub mod naming;
pub mod telemetry;
pub mod usage;

/// Resolves when the process is asked to stop (SIGINT or SIGTERM): the long-running loops
/// (monitor, usage reporter, alert controller) end on it.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
