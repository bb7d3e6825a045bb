//! oem-operator: loads the configuration, connects to the API server, serves health and
//! metrics, and runs its parts (controllers, monitor, usage reporter, alert controller) under
//! one supervisor until SIGINT/SIGTERM; a part that ends first stops the process non-zero.
//! The parts that write run only while this replica leads (`leader.rs`); every replica serves
//! health and metrics.

use std::process::ExitCode;
use std::sync::Arc;

use oem_operator::clock::{FileClock, SharedClock, SystemClock};
use oem_operator::config::Config;
use oem_operator::context::Context;
use oem_operator::leader::{self, Elector};
use oem_operator::metrics::Metrics;
use oem_operator::{controllers, http, telemetry};
use oem_supervisor::Supervisor;

/// How long the parts get to end after SIGTERM (or after one of them ended) before they are
/// aborted: within the pod's grace period and the 10 s an SRE expects a stop to take.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(8);
/// What the leading parts get of it: the rest is for giving the Lease up.
const LEADING_GRACE: std::time::Duration = std::time::Duration::from_secs(6);

/// jemalloc, purging freed memory in the background: the operator's heap swings with watch
/// re-lists and bursts of reconciles, and glibc's allocator kept what they freed (see
/// docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    // Listening from here on: a SIGTERM while starting stops the operator once started.
    let stop_signal = oem_supervisor::stop_signal();
    let args: Vec<String> = std::env::args().collect();
    let config = match Config::load(&args) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            return ExitCode::from(2);
        }
    };
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build a Kubernetes client (kubeconfig or in-cluster)");
            return ExitCode::from(1);
        }
    };
    let registry = prometheus::Registry::new();
    let metrics = match Metrics::register(&registry) {
        Ok(metrics) => metrics,
        Err(error) => {
            tracing::error!(%error, "registering metrics failed");
            return ExitCode::from(1);
        }
    };
    let leader = match prometheus::IntGauge::new(
        "oem_operator_leader",
        "1 while this replica leads (runs the controllers, the monitor and the alerting)",
    )
    .and_then(|gauge| registry.register(Box::new(gauge.clone())).map(|()| gauge))
    {
        Ok(gauge) => gauge,
        Err(error) => {
            tracing::error!(%error, "registering the leader metric failed");
            return ExitCode::from(1);
        }
    };
    let inbox = oem_operator::alerting::AlertInbox::default();
    let token = match config.alerting.alertmanager_token() {
        Ok(token) => token,
        Err(error) => {
            tracing::error!(%error, "cannot read the Alertmanager token");
            return ExitCode::from(2);
        }
    };
    let mut state = http::State::new(registry, metrics.families.clone());
    if let Some(token) = token {
        state = state.with_receiver(http::Receiver {
            inbox: inbox.clone(),
            token,
            alert_for: config.alerting.alert_for,
            leader: leader.clone(),
        });
    }
    let listener = match tokio::net::TcpListener::bind(config.http_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(addr = %config.http_addr, %error,
                "cannot listen for /healthz, /readyz and /metrics (httpAddr)");
            return ExitCode::from(2);
        }
    };
    let mut supervisor = Supervisor::new(STOP_GRACE);
    supervisor.add(
        "HTTP server",
        http::serve(listener, state.clone(), supervisor.stop()),
    );
    match client.apiserver_version().await {
        Ok(info) => tracing::info!(version = %info.git_version, "connected to the API server"),
        Err(error) => {
            tracing::error!(%error, "cannot reach the API server");
            return ExitCode::from(1);
        }
    }
    let identity = match oem_operator::identity::own_subject(&client).await {
        Ok(subject) => subject,
        Err(error) => {
            tracing::error!(%error, "cannot learn the operator's own identity");
            return ExitCode::from(1);
        }
    };
    tracing::info!(kind = %identity.kind, name = %identity.name, "running as");
    let clock: SharedClock = match &config.clock_file {
        Some(path) => Arc::new(FileClock::new(path.clone())),
        None => Arc::new(SystemClock),
    };
    tracing::info!(addr = %config.http_addr, "serving /healthz, /readyz and /metrics");
    let elector = Elector::new(
        client.clone(),
        &config.network.monitor_namespace,
        leader::identity(),
        config.leader_election.clone(),
    );
    let ctx = Context::new(client, config, clock, metrics, identity);
    let stop = supervisor.stop();
    supervisor.add(
        "leadership",
        leader::lead(elector, leader, stop, LEADING_GRACE, move |parts| {
            controllers::add_parts(parts, &ctx, inbox.clone())
        }),
    );
    state.set_ready(true);
    match supervisor.run(stop_signal).await {
        Ok(()) => {
            tracing::info!("shut down");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "the operator stops: one of its parts ended");
            ExitCode::from(1)
        }
    }
}
