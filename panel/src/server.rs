//! The HTTP server: warp routes in front of [`app::handle`], served by hyper with a header-read
//! timeout (which is also the idle timeout of keep-alive connections) and a maximum connection
//! age, the TCP peer put into each request for the per-address limits.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use warp::Filter;

use crate::app::{self, App};
use crate::config::ServerTimeouts;
use crate::web::{Peer, Reply, Request};

/// Largest form body accepted.
const BODY_LIMIT: u64 = 16 * 1024;

/// Every request goes to [`app::handle`]; nothing is rejected by warp itself.
pub fn routes(app: Arc<App>) -> impl Filter<Extract = (Reply,), Error = Infallible> + Clone {
    let body = warp::post()
        .and(warp::body::content_length_limit(BODY_LIMIT))
        .and(warp::body::bytes())
        .or(warp::any().map(Bytes::new))
        .unify();
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<Peer>())
        .and(body)
        .then(
            move |method, path: warp::path::FullPath, query, headers, peer: Option<Peer>, body| {
                let app = app.clone();
                let request = Request {
                    method,
                    path: path.as_str().to_owned(),
                    query,
                    headers,
                    body,
                    peer: peer.map(|p| p.0),
                };
                app::handle(app, request)
            },
        )
}

/// Serves on every connection `listener` accepts, until the process ends.
pub async fn serve_on(listener: tokio::net::TcpListener, app: Arc<App>, timeouts: ServerTimeouts) {
    use hyper::service::Service as _;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    let routes = routes(app);
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
        let inner = TowerToHyperService::new(warp::service(routes.clone()));
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(Peer(peer));
                inner.call(request)
            },
        );
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
