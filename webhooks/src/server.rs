//! The HTTPS endpoints: `POST /validate`, `POST /mutate` (AdmissionReview v1) and
//! `GET /healthz`, warp filters served over tokio-rustls with a certificate that can be
//! swapped at any handshake.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use warp::Filter;
use warp::http::StatusCode;

use crate::cache::Caches;
use crate::claims::Claims;
use crate::review::{self, Endpoint};

/// What every request shares.
#[derive(Clone)]
pub struct State {
    pub caches: Caches,
    pub claims: Arc<Claims>,
}

/// The largest AdmissionReview accepted (the API server's own object limit is 3 MiB).
const MAX_BODY: u64 = 4 * 1024 * 1024;

async fn answer(
    endpoint: Endpoint,
    body: bytes::Bytes,
    state: State,
) -> Result<impl warp::Reply, Infallible> {
    let started = std::time::Instant::now();
    let review = match review::decode(&body) {
        Err(e) => kube::core::admission::AdmissionResponse::invalid(e).into_review(),
        Ok(req) => {
            let response = match endpoint {
                Endpoint::Mutate => review::mutate(&req),
                Endpoint::Validate => {
                    let view = state.caches.view(review::password_secret(&req)).await;
                    review::validate(&req, &view, &state.claims)
                }
            };
            tracing::info!(
                ?endpoint,
                kind = %req.kind.kind,
                namespace = req.namespace.as_deref().unwrap_or(""),
                name = %req.name,
                operation = ?req.operation,
                allowed = response.allowed,
                millis = started.elapsed().as_millis() as u64,
                "admission"
            );
            response.into_review()
        }
    };
    Ok(warp::reply::json(&review))
}

/// The routes.
pub fn routes(
    state: State,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone + Send + Sync + 'static
{
    let with_state = warp::any().map(move || state.clone());
    let validate = warp::path("validate")
        .and(warp::path::end())
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .and(with_state.clone())
        .and_then(|body, state| answer(Endpoint::Validate, body, state));
    let mutate = warp::path("mutate")
        .and(warp::path::end())
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .and(with_state)
        .and_then(|body, state| answer(Endpoint::Mutate, body, state));
    let healthz = warp::path("healthz")
        .and(warp::path::end())
        .and(warp::get())
        .map(|| "ok");
    validate
        .or(mutate)
        .unify()
        .map(|r| Box::new(r) as Box<dyn warp::Reply>)
        .or(healthz.map(|r| Box::new(r) as Box<dyn warp::Reply>))
        .unify()
        .recover(|_| async {
            Ok::<_, Infallible>(Box::new(warp::reply::with_status(
                "not found",
                StatusCode::NOT_FOUND,
            )) as Box<dyn warp::Reply>)
        })
        .unify()
}

/// Accepts TLS connections on `listener` and serves `routes` on each, HTTP/1.1 or HTTP/2.
pub async fn serve<F>(listener: TcpListener, tls: Arc<rustls::ServerConfig>, routes: F)
where
    F: Filter<Error = Infallible> + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(warp::service(routes.clone()));
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
