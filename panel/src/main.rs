//! oem-panel: loads the configuration, connects to the API server, fills its caches and serves
//! the panel until SIGINT/SIGTERM or until a watch ends.

use std::process::ExitCode;
use std::sync::Arc;

use oem_panel::app::App;
use oem_panel::config::Config;
use oem_panel::{auth, cache, server};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // Listening from here on: a SIGTERM while starting stops the panel once started.
    let stop_signal = oem_supervisor::stop_signal();
    let args: Vec<String> = std::env::args().collect();
    let config = match Config::load(&args) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            return ExitCode::from(2);
        }
    };
    // `--check-config`: load and validate the configuration, then stop (the chart's tests
    // check what the chart renders this way).
    if args.iter().any(|a| a == "--check-config") {
        tracing::info!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    let kube_config = match kube::Config::infer().await {
        Ok(kube_config) => kube_config,
        Err(error) => {
            tracing::error!(%error, "no Kubernetes configuration (kubeconfig or in-cluster)");
            return ExitCode::from(1);
        }
    };
    let client = match kube::Client::try_from(kube_config.clone()) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build a Kubernetes client");
            return ExitCode::from(1);
        }
    };
    let hasher = match auth::password::Hasher::start(config.hash_cost) {
        Ok(hasher) => hasher,
        Err(error) => {
            tracing::error!(%error, "cannot hash with the configured cost");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.http_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(addr = %config.http_addr, %error, "cannot listen");
            return ExitCode::from(1);
        }
    };
    let (caches, writers) = cache::stores();
    let timeouts = config.timeouts;
    let addr = config.http_addr;
    let app = Arc::new(
        App::new(config, caches.clone(), client.clone(), hasher).with_kube_config(kube_config),
    );
    tokio::spawn(server::serve_on(listener, app.clone(), timeouts));
    tracing::info!(%addr, "serving the panel; filling the caches");
    let watches = cache::run(client, writers);
    tokio::pin!(watches);
    tokio::select! {
        ready = caches.wait_ready() => {
            if ready.is_err() {
                tracing::error!("a watch ended before its first list");
                return ExitCode::from(1);
            }
        }
        _ = &mut watches => {
            tracing::error!("the watches ended");
            return ExitCode::from(1);
        }
    }
    app.set_ready();
    tracing::info!("caches filled; ready");
    tokio::select! {
        _ = &mut watches => {
            tracing::error!("the watches ended");
            ExitCode::from(1)
        }
        () = stop_signal => {
            tracing::info!("shut down");
            ExitCode::SUCCESS
        }
    }
}
