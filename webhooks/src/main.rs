//! The webhook server: configuration, caches, certificate, then the HTTPS endpoints until
//! SIGINT/SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use oem_supervisor::Supervisor;
use oem_webhooks::cache::Caches;
use oem_webhooks::claims::Claims;
use oem_webhooks::config::Config;
use oem_webhooks::domains::ClusterClaims;
use oem_webhooks::server::{self, State};
use oem_webhooks::tls;

/// How long the server gets to end after SIGTERM before it is aborted: well within the pod's
/// grace period and the 10 s a stop should take.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // Listening from here on: a SIGTERM while starting stops the server once started.
    let stop_signal = oem_supervisor::stop_signal();
    let config = Config::from_args(std::env::args().skip(1))?;
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes client configuration")?;

    let serving = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let serving = tls::ServingCert::new(tls::load(cert, key)?);
            tls::reload_on_change(
                serving.clone(),
                cert.clone(),
                key.clone(),
                config.reload_interval,
            );
            serving
        }
        _ => {
            let generated = tls::generate(&config.service_dns)?;
            let serving = tls::ServingCert::new(tls::certified_key(
                generated.cert_pem.as_bytes(),
                generated.key_pem.as_bytes(),
            )?);
            tokio::spawn(tls::patch_ca_bundles(
                client.clone(),
                generated.ca_pem,
                config.validating_configs.clone(),
                config.mutating_configs.clone(),
            ));
            serving
        }
    };

    let max_window = jiff::SignedDuration::try_from(config.max_maintenance_window)
        .unwrap_or(oem_webhooks::rules::maintenance::DEFAULT_MAX_WINDOW);
    let cluster_claims = ClusterClaims::new(client.clone(), config.claim_timeout);
    let caches = Caches::start(client, config.policy.clone(), config.secret_timeout)
        .with_max_maintenance_window(max_window);
    tokio::time::timeout(std::time::Duration::from_secs(60), caches.ready())
        .await
        .context("the caches did not fill within 60s")??;
    let state = State {
        caches,
        claims: Arc::new(Claims::new(config.claim_ttl)),
        cluster_claims: Some(cluster_claims),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %config.listen, "serving admission webhooks");
    let client_ca = match &config.client_ca {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("reading the client CA {}", path.display()))?,
        ),
        None => None,
    };
    let tls = tls::server_config_for_clients(serving, client_ca.as_deref())?;
    let mut supervisor = Supervisor::new(STOP_GRACE);
    let stop = supervisor.stop();
    supervisor.add("HTTPS server", async move {
        tokio::select! {
            () = server::serve(listener, tls, server::routes(state)) => {}
            _ = stop.requested() => {}
        }
        Ok(())
    });
    supervisor
        .run(stop_signal)
        .await
        .context("the webhook server stopped")?;
    tracing::info!("shut down");
    Ok(())
}
