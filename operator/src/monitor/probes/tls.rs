//! TLS for every TLS service (https, ftps, smtps, pop3s, imaps): one rustls client setup that
//! verifies servers against the configured roots (a CA file, or the system's) and records the
//! leaf certificate's notAfter, so an expired or untrusted certificate is down with the reason
//! and the expiry is still reported.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::error::ProbeError;

/// Why the TLS roots cannot be loaded (a configuration error, reported at start).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("reading CA file {path}: {message}")]
    ReadCa { path: PathBuf, message: String },
    #[error("CA file {path} holds no certificate")]
    NoCertificates { path: PathBuf },
    #[error("CA file {path}: {source}")]
    BadCertificate {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("no system root certificates found; configure a CA file")]
    NoSystemRoots,
    #[error("building the certificate verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

/// The shared part of TLS: roots and verifier, built once.
#[derive(Clone)]
pub struct TlsClient {
    verifier: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Trusts the certificates of `ca_file` (PEM), or the system's roots without one.
    pub fn new(ca_file: Option<&Path>) -> Result<Self, TlsSetupError> {
        let mut roots = RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let read_error = |e: rustls::pki_types::pem::Error| TlsSetupError::ReadCa {
                    path: path.to_owned(),
                    message: e.to_string(),
                };
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(read_error)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(read_error)?;
                if certs.is_empty() {
                    return Err(TlsSetupError::NoCertificates {
                        path: path.to_owned(),
                    });
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|source| TlsSetupError::BadCertificate {
                            path: path.to_owned(),
                            source,
                        })?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                let (added, _unparsable) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err(TlsSetupError::NoSystemRoots);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()?;
        Ok(Self { verifier, provider })
    }

    /// A handshake for one connection to `name`, with its own expiry recorder.
    pub(crate) fn prepare(&self, name: &str) -> Result<Handshake, ProbeError> {
        let server_name = ServerName::try_from(name.to_owned()).map_err(|_| {
            ProbeError::InvalidTarget(format!("{name:?} is not a valid TLS server name"))
        })?;
        let recorder = Arc::new(RecordingVerifier {
            inner: self.verifier.clone(),
            leaf_not_after: Mutex::new(None),
        });
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ProbeError::Tls {
                name: name.to_owned(),
                message: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth();
        Ok(Handshake {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            name: name.to_owned(),
            recorder,
        })
    }
}

/// One TLS handshake in preparation.
pub(crate) struct Handshake {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    name: String,
    recorder: Arc<RecordingVerifier>,
}

impl Handshake {
    pub(crate) async fn run<S>(&self, stream: S) -> Result<TlsStream<S>, ProbeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.connector
            .connect(self.server_name.clone(), stream)
            .await
            .map_err(|e| ProbeError::Tls {
                name: self.name.clone(),
                message: handshake_failure(&e),
            })
    }

    /// The leaf certificate's notAfter, once the server presented one.
    pub(crate) fn leaf_not_after(&self) -> Option<SystemTime> {
        *self
            .recorder
            .leaf_not_after
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The precise reason of a failed handshake: rustls's own error where there is one.
fn handshake_failure(err: &io::Error) -> String {
    if let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return match tls {
            rustls::Error::InvalidMessage(_) => format!("the server does not speak TLS ({tls})"),
            _ => tls.to_string(),
        };
    }
    match err.kind() {
        io::ErrorKind::UnexpectedEof => "connection closed during the handshake".to_owned(),
        _ => err.to_string(),
    }
}

/// The notAfter of a DER certificate.
pub fn leaf_not_after(der: &[u8]) -> Option<SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let secs = cert.validity().not_after.timestamp();
    let offset = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(offset)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(offset)
    }
}

/// Verifies like webpki, remembering the leaf's notAfter first so an expired certificate's
/// expiry is known too.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    leaf_not_after: Mutex<Option<SystemTime>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let expiry = leaf_not_after(end_entity);
        *self
            .leaf_not_after
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = expiry;
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_not_after_of_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2030, 1, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let expiry = leaf_not_after(cert.der()).unwrap();
        let secs = expiry.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(secs.as_secs(), 1_893_542_400);
    }

    #[test]
    fn garbage_has_no_expiry() {
        assert_eq!(leaf_not_after(b"not a certificate"), None);
        assert_eq!(leaf_not_after(&[]), None);
    }

    #[test]
    fn missing_ca_file_is_a_setup_error() {
        let err = TlsClient::new(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("reading CA file /nonexistent/ca.pem")
        );
    }

    #[test]
    fn invalid_server_name_is_an_invalid_target() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec![])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.pem()).unwrap();
        let client = TlsClient::new(Some(&path)).unwrap();
        assert!(matches!(
            client.prepare("bad name!"),
            Err(ProbeError::InvalidTarget(_))
        ));
    }
}
