//! The HTTPS endpoints: `POST /validate`, `POST /mutate` (AdmissionReview v1) and
//! `GET /healthz`, warp filters served over tokio-rustls with a certificate that can be
//! swapped at any handshake.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use warp::Filter;
use warp::http::StatusCode;

use crate::cache::Caches;
use crate::claims::Claims;
use crate::domains::ClusterClaims;
use crate::review::{self, Endpoint};

/// What every request shares.
#[derive(Clone)]
pub struct State {
    pub caches: Caches,
    pub claims: Arc<Claims>,
    /// The cluster's domain claims (`None`: not recorded, for tests of the HTTP layer only).
    pub cluster_claims: Option<ClusterClaims>,
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
                    let cached = state.caches.view(None, None).await;
                    let secret = review::password_secret(&req, &cached);
                    let view = state.caches.view(secret, review::course_named(&req)).await;
                    let response = review::validate(&req, &view, &state.claims);
                    match (
                        review::domains_to_claim(&req, &response),
                        &state.cluster_claims,
                    ) {
                        (Some(wanted), Some(cluster)) => match cluster.claim(&wanted).await {
                            Ok(()) => response,
                            Err(refusal) => {
                                state.claims.lock().release(&wanted.owner());
                                response.deny(refusal)
                            }
                        },
                        _ => response,
                    }
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

/// How long a client may take over a request's headers; hyper also starts this timer when a
/// keep-alive connection goes idle, so it closes idle HTTP/1 connections too.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is asked to close after this long, whatever it does (HTTP/2 has no idle
/// timer of its own; the API server simply reconnects).
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);

/// Accepts TLS connections on `listener` and serves `routes` on each, HTTP/1.1 or HTTP/2.
pub async fn serve<F>(listener: TcpListener, tls: Arc<rustls::ServerConfig>, routes: F)
where
    F: Filter<Error = Infallible> + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    serve_with(
        listener,
        tls,
        routes,
        HEADER_READ_TIMEOUT,
        MAX_CONNECTION_AGE,
    )
    .await
}

/// [`serve`] with the timeouts given (tests shorten them).
pub async fn serve_with<F>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    routes: F,
    header_read: Duration,
    max_age: Duration,
) where
    F: Filter<Error = Infallible> + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(header_read))
        .keep_alive_timeout(header_read);
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
        let builder = builder.clone();
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
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = tokio::time::sleep(max_age) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::tls;

    /// A server with the given header timeout; its address and a TLS connector trusting it.
    async fn served(header_read: Duration) -> (std::net::SocketAddr, tokio_rustls::TlsConnector) {
        let generated = tls::generate("").unwrap();
        let key = tls::certified_key(generated.cert_pem.as_bytes(), generated.key_pem.as_bytes())
            .unwrap();
        let config = tls::server_config(tls::ServingCert::new(key)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes = warp::any().map(|| "ok");
        tokio::spawn(serve_with(
            listener,
            config,
            routes,
            header_read,
            Duration::from_secs(60),
        ));
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(generated.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        (addr, tokio_rustls::TlsConnector::from(Arc::new(client)))
    }

    /// A client config trusting `ca_pem`, presenting `client` (cert, key PEM) if given.
    fn client_config(ca_pem: &str, client: Option<&tls::Generated>) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        match client {
            None => builder.with_no_client_auth(),
            Some(c) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(c.cert_pem.as_bytes())
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap(),
                    rustls_pki_types::PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
        }
    }

    /// Sends one GET over `config`; the status line, or the error.
    async fn get(
        addr: std::net::SocketAddr,
        config: rustls::ClientConfig,
    ) -> Result<String, String> {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        Ok(text.lines().next().unwrap_or_default().to_owned())
    }

    #[tokio::test]
    async fn with_a_client_ca_only_a_client_with_a_certificate_it_signed_is_answered() {
        let server = tls::generate("").unwrap();
        // A second CA and its leaf: the client certificate.
        let clients = tls::generate("").unwrap();
        let stranger = tls::generate("").unwrap();
        let key =
            tls::certified_key(server.cert_pem.as_bytes(), server.key_pem.as_bytes()).unwrap();
        let config = tls::server_config_for_clients(
            tls::ServingCert::new(key),
            Some(clients.ca_pem.as_bytes()),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, config, warp::any().map(|| "ok")));

        let with_cert = get(addr, client_config(&server.ca_pem, Some(&clients))).await;
        assert_eq!(with_cert.as_deref(), Ok("HTTP/1.1 200 OK"));
        let without = get(addr, client_config(&server.ca_pem, None)).await;
        assert!(
            without.is_err() || without.as_deref() == Ok(""),
            "answered without a certificate: {without:?}"
        );
        let other_ca = get(addr, client_config(&server.ca_pem, Some(&stranger))).await;
        assert!(
            other_ca.is_err() || other_ca.as_deref() == Ok(""),
            "answered a certificate of another CA: {other_ca:?}"
        );
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_cut_off() {
        let (addr, connector) = served(Duration::from_millis(200)).await;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut stream = connector.connect(name, tcp).await.unwrap();
        stream
            .write_all(b"POST /validate HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the connection stayed open");
    }
}
