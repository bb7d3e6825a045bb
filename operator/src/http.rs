//! The operator's HTTP endpoints: `/healthz` (process alive), `/readyz` (connected to the
//! API server) and `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::{Encoder, Registry, TextEncoder};
use warp::Filter;
use warp::http::StatusCode;

/// What the HTTP server shares with the rest of the operator.
#[derive(Clone, Default)]
pub struct State {
    ready: Arc<AtomicBool>,
    registry: Registry,
}

impl State {
    pub fn new(registry: Registry) -> Self {
        Self {
            ready: Arc::default(),
            registry,
        }
    }

    /// Marks the operator ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders every registered metric in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        if let Err(error) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::warn!(%error, "encoding metrics failed");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// The routes, separate from binding so tests can call them with `warp::test`.
pub fn routes(
    state: State,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let healthz = warp::path!("healthz").map(|| "ok");
    let ready_state = state.clone();
    let readyz = warp::path!("readyz").map(move || {
        if ready_state.is_ready() {
            warp::reply::with_status("ok", StatusCode::OK)
        } else {
            warp::reply::with_status("not ready", StatusCode::SERVICE_UNAVAILABLE)
        }
    });
    let metrics = warp::path!("metrics").map(move || {
        warp::reply::with_header(
            state.render_metrics(),
            "content-type",
            "text/plain; version=0.0.4",
        )
    });
    warp::get().and(healthz.or(readyz).or(metrics))
}

/// Serves the routes on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, state: State) {
    warp::serve(routes(state)).run(addr).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readyz_reports_unavailable_until_marked_ready() {
        let state = State::default();
        let api = routes(state.clone());
        let before = warp::test::request().path("/readyz").reply(&api).await;
        assert_eq!(before.status(), StatusCode::SERVICE_UNAVAILABLE);
        state.set_ready(true);
        let after = warp::test::request().path("/readyz").reply(&api).await;
        assert_eq!(after.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_renders_registered_counters() {
        let registry = Registry::new();
        let counter = prometheus::IntCounter::new("oem_test_total", "test counter").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc();
        let api = routes(State::new(registry));
        let res = warp::test::request().path("/metrics").reply(&api).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body = String::from_utf8_lossy(res.body()).into_owned();
        assert!(body.contains("oem_test_total 1"), "{body}");
    }
}
