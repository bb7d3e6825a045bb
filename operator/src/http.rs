//! The operator's HTTP endpoints: `/healthz` (process alive), `/readyz` (connected to the
//! API server), `/metrics` (Prometheus text format) and, when a token is configured,
//! `POST /alertmanager/webhook` (Alertmanager's webhook receiver, bearer-token authenticated).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus::{Encoder, Registry, TextEncoder};
use warp::Filter;
use warp::http::StatusCode;

use crate::alerting::AlertInbox;
use crate::alerting::source::PushedNotification;
use crate::gauges::Families;

/// Alertmanager's receiver: where pushed alerts go and the token they must carry.
#[derive(Clone)]
pub struct Receiver {
    pub inbox: AlertInbox,
    pub token: String,
    /// The rules' `for:`, to date an alert back to its first failure.
    pub alert_for: Duration,
    /// `oem_operator_leader`: only the leading replica takes alerts in; a follower answers
    /// 503, Alertmanager retries, and the Service may send the retry to the leader.
    pub leader: prometheus::IntGauge,
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
    /// The families with a series per tenant, kept outside the registry (`gauges.rs`).
    families: Families,
    receiver: Option<Receiver>,
}

impl State {
    pub fn new(registry: Registry, families: Families) -> Self {
        Self {
            ready: Arc::default(),
            registry,
            families,
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

    /// Renders every metric, the registry's and the tenant families, in the Prometheus text
    /// format.
    pub fn render_metrics(&self) -> String {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        if let Err(error) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::warn!(%error, "encoding metrics failed");
        }
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        self.families.write_text(&mut text);
        text
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
            if receiver.leader.get() != 1 {
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this replica does not lead; send again",
                );
            }
            let Ok(note) = serde_json::from_slice::<PushedNotification>(&body) else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    "not an Alertmanager webhook notification",
                );
            };
            let taken = receiver
                .inbox
                .receive(&note, receiver.alert_for, jiff::Timestamp::now())
                .len();
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

/// How long the server waits for a client. A client that trickles its request headers, or
/// keeps an idle connection open, must not hold a connection (and a task) for ever.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the whole of a request's headers; hyper also starts it when a keep-alive
    /// connection goes idle, so it is the idle timeout of HTTP/1 connections as well.
    pub header_read: Duration,
    /// After this long a connection is asked to close, whatever it does (HTTP/2 has no idle
    /// timer of its own).
    pub max_connection_age: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(300),
        }
    }
}

/// Serves the routes on `listener` until `stop`; `/readyz` answers 503 from the moment a stop
/// is asked (a part ended, or the stop signal came), so no traffic is sent to a stopping
/// operator.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: State,
    stop: oem_supervisor::Stop,
) -> Result<(), String> {
    let unready = state.clone();
    let stopping = stop.requested();
    tokio::select! {
        _ = serve_on(listener, state, Timeouts::default()) => {}
        _ = stopping => unready.set_ready(false),
    }
    Ok(())
}

/// Serves the routes on every connection `listener` accepts, bounded by `timeouts`.
pub async fn serve_on(listener: tokio::net::TcpListener, state: State, timeouts: Timeouts) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    let routes = routes(state);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(timeouts.header_read))
        .keep_alive_timeout(timeouts.header_read);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(warp::service(routes.clone()));
        let builder = builder.clone();
        tokio::spawn(async move {
            let connection = builder.serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = tokio::time::sleep(timeouts.max_connection_age) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

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
        let leader = prometheus::IntGauge::new("leader", "leads").unwrap();
        let state = State::default().with_receiver(Receiver {
            inbox: inbox.clone(),
            token: "s3cret".into(),
            alert_for: Duration::from_secs(600),
            leader: leader.clone(),
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
        // A follower sends Alertmanager to try again (possibly another replica).
        assert_eq!(
            post("Bearer s3cret").reply(&api).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(inbox.observe().active.is_empty());
        leader.set(1);
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

    /// A server on a free port with short timeouts; its address.
    async fn served(timeouts: Timeouts) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_on(listener, State::default(), timeouts));
        addr
    }

    /// Reads until the server closes the connection; what it sent.
    async fn until_closed(stream: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut seen = Vec::new();
        let read = stream.read_to_end(&mut seen);
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the server closes the connection")
            .ok();
        String::from_utf8_lossy(&seen).into_owned()
    }

    #[tokio::test]
    async fn a_client_trickling_its_headers_is_cut_off() {
        use tokio::io::AsyncWriteExt;
        let addr = served(Timeouts {
            header_read: Duration::from_millis(200),
            max_connection_age: Duration::from_secs(60),
        })
        .await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // The rest of the headers never comes.
        let started = std::time::Instant::now();
        until_closed(&mut stream).await;
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed() {
        use tokio::io::AsyncWriteExt;
        let addr = served(Timeouts {
            header_read: Duration::from_millis(200),
            max_connection_age: Duration::from_secs(60),
        })
        .await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        // Answered, then closed once idle, without a second request.
        let seen = until_closed(&mut stream).await;
        assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    }

    #[tokio::test]
    async fn metrics_renders_registered_counters_and_tenant_families() {
        let registry = Registry::new();
        let counter = prometheus::IntCounter::new("oem_test_total", "test counter").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc();
        let families = Families::default();
        let gauges = families
            .gauges("oem_test_up", "test gauge", &["enduser"])
            .unwrap();
        gauges.set(&["alice"], 1.0);
        let api = routes(State::new(registry, families));
        let res = warp::test::request().path("/metrics").reply(&api).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body = String::from_utf8_lossy(res.body()).into_owned();
        assert!(body.contains("oem_test_total 1"), "{body}");
        assert!(
            body.contains("oem_test_up{enduser=\"alice\"} 1\n"),
            "{body}"
        );
    }
}
