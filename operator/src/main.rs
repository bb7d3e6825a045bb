//! oem-operator: connects to the API server and serves health and metrics.

use std::net::SocketAddr;

use oem_operator::{http, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    telemetry::init();
    let addr: SocketAddr = match std::env::var("OEM_HTTP_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8080".into())
        .parse()
    {
        Ok(addr) => addr,
        Err(error) => {
            tracing::error!(%error, "OEM_HTTP_ADDR is not a socket address (host:port)");
            return std::process::ExitCode::from(2);
        }
    };
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build a Kubernetes client (kubeconfig or in-cluster)");
            return std::process::ExitCode::from(1);
        }
    };
    let state = http::State::new(prometheus::Registry::new());
    tokio::spawn(http::serve(addr, state.clone()));
    match client.apiserver_version().await {
        Ok(info) => {
            tracing::info!(version = %info.git_version, platform = %info.platform, "connected to the API server");
            state.set_ready(true);
        }
        Err(error) => {
            tracing::error!(%error, "cannot reach the API server");
            return std::process::ExitCode::from(1);
        }
    }
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::error!(%error, "cannot listen for shutdown signals");
    }
    tracing::info!("shutting down");
    std::process::ExitCode::SUCCESS
}
