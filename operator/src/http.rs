//! The operator's HTTP endpoints: `/healthz` (process alive), `/readyz` (connected to the
//! API server), `/metrics` (Prometheus text format) and, when a token is configured,
//! `POST /alertmanager/webhook` (Alertmanager's webhook receiver, bearer-token authenticated).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus::{Encoder, Registry, TextEncoder};
use warp::Filter;
use warp::http::StatusCode;

use crate::alerting::AlertInbox;
use crate::alerting::source::PushedNotification;

/// Alertmanager's receiver: where pushed alerts go and the token they must carry.
#[derive(Clone)]
pub struct Receiver {
    pub inbox: AlertInbox,
    pub token: String,
    /// The rules' `for:`, to date an alert back to its first failure.
    pub alert_for: Duration,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("token", &"<redacted>")
            .finish()
    }
}

/// What the HTTP server shares with the rest of the operator.
#[derive(Clone, Default)]
pub struct State {
    ready: Arc<AtomicBool>,
    registry: Registry,
    receiver: Option<Receiver>,
}

impl State {
    pub fn new(registry: Registry) -> Self {
        Self {
            ready: Arc::default(),
            registry,
            receiver: None,
        }
    }

    /// Serves Alertmanager's webhook receiver.
    pub fn with_receiver(mut self, receiver: Receiver) -> Self {
        self.receiver = Some(receiver);
        self
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
    let receiver = state.receiver.clone();
    let alertmanager = warp::post()
        .and(warp::path!("alertmanager" / "webhook"))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::content_length_limit(4 << 20))
        .and(warp::body::bytes())
        .map(move |auth: Option<String>, body: bytes::Bytes| {
            let reply = |code: StatusCode, text: &'static str| warp::reply::with_status(text, code);
            let Some(receiver) = &receiver else {
                return reply(StatusCode::NOT_FOUND, "no alertmanager receiver configured");
            };
            let presented = auth
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or("");
            if !same_secret(presented.as_bytes(), receiver.token.as_bytes()) {
                return reply(StatusCode::UNAUTHORIZED, "bad or missing bearer token");
            }
            let Ok(note) = serde_json::from_slice::<PushedNotification>(&body) else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    "not an Alertmanager webhook notification",
                );
            };
            let taken = receiver
                .inbox
                .receive(&note, receiver.alert_for, jiff::Timestamp::now());
            tracing::debug!(
                alerts = note.alerts.len(),
                taken,
                "alertmanager notification received"
            );
            reply(StatusCode::OK, "ok")
        });
    let metrics = warp::path!("metrics").map(move || {
        warp::reply::with_header(
            state.render_metrics(),
            "content-type",
            "text/plain; version=0.0.4",
        )
    });
    warp::get()
        .and(healthz.or(readyz).or(metrics))
        .or(alertmanager)
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    async fn the_alertmanager_receiver_wants_the_bearer_token() {
        let inbox = AlertInbox::default();
        let state = State::default().with_receiver(Receiver {
            inbox: inbox.clone(),
            token: "s3cret".into(),
            alert_for: Duration::from_secs(600),
        });
        let api = routes(state);
        let body = r#"{"version":"4","status":"firing","alerts":[{"status":"firing",
            "startsAt":"2026-03-02T01:10:00Z","labels":{"alertname":"HostingServiceDown",
            "reseller":"sakura","enduser":"shop","service":"imap"}}]}"#;
        let post = |auth: &'static str| {
            warp::test::request()
                .method("POST")
                .path("/alertmanager/webhook")
                .header("authorization", auth)
                .body(body)
        };
        assert_eq!(
            post("Bearer wrong").reply(&api).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert!(inbox.observe().active.is_empty());
        assert_eq!(
            post("Bearer s3cret").reply(&api).await.status(),
            StatusCode::OK
        );
        assert_eq!(inbox.observe().active.len(), 1);
    }

    #[tokio::test]
    async fn without_a_token_there_is_no_receiver() {
        let api = routes(State::default());
        let res = warp::test::request()
            .method("POST")
            .path("/alertmanager/webhook")
            .body("{}")
            .reply(&api)
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
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
