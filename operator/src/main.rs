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
    if let Err(error) = register_memory(&registry) {
        tracing::error!(%error, "registering the memory metrics failed");
        return ExitCode::from(1);
    }
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

/// The process's own figures (`process_resident_memory_bytes`, CPU, open files) and the
/// allocator's (`oem_operator_heap_bytes`), both read at each scrape.
fn register_memory(registry: &prometheus::Registry) -> prometheus::Result<()> {
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    registry.register(Box::new(Heap::new()?))
}

/// jemalloc's figures: what the live objects take (`allocated`), the pages holding them
/// (`active`), the heap's resident pages (`resident`: active, dirty pages not yet purged and
/// the allocator's own `metadata`). Resident minus allocated is what fragmentation and
/// unpurged pages cost.
struct Heap {
    bytes: prometheus::IntGaugeVec,
}

impl Heap {
    fn new() -> prometheus::Result<Self> {
        let bytes = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "oem_operator_heap_bytes",
                "The allocator's bytes by kind: allocated (live objects), active (their pages), \
                 resident (heap pages in memory), metadata (the allocator's own)",
            ),
            &["kind"],
        )?;
        Ok(Heap { bytes })
    }
}

impl prometheus::core::Collector for Heap {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.bytes.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use tikv_jemalloc_ctl::{epoch, stats};
        // The figures are those of the last epoch: advance it to read today's.
        if let Err(error) = epoch::advance() {
            tracing::warn!(%error, "cannot refresh the allocator's figures");
            return Vec::new();
        }
        type Read = fn() -> tikv_jemalloc_ctl::Result<usize>;
        let kinds: [(&str, Read); 4] = [
            ("allocated", stats::allocated::read),
            ("active", stats::active::read),
            ("resident", stats::resident::read),
            ("metadata", stats::metadata::read),
        ];
        for (kind, read) in kinds {
            match read() {
                Ok(bytes) => self
                    .bytes
                    .with_label_values(&[kind])
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX)),
                Err(error) => tracing::warn!(kind, %error, "cannot read the allocator's figure"),
            }
        }
        self.bytes.collect()
    }
}
