//! Serving certificates. From files (`--tls-cert`/`--tls-key`), re-read when they change so a
//! rotated certificate (cert-manager, a mounted Secret) is served without a restart; or, when
//! none are given, a CA and serving certificate generated at start, the CA written into the
//! `caBundle` of the configured webhook configurations.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::Client;
use kube::api::{Api, PostParams};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate being served; swapped whole when the files change.
#[derive(Debug)]
pub struct ServingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServingCert {
    pub fn new(key: CertifiedKey) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Arc::new(key)),
        })
    }

    pub fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
    }

    /// The leaf certificate now served (for tests and logs).
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .cert[0]
            .clone()
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// A rustls server configuration serving whatever `cert` holds at each handshake.
pub fn server_config(cert: Arc<ServingCert>) -> anyhow::Result<Arc<ServerConfig>> {
    server_config_for_clients(cert, None)
}

/// [`server_config`] that, given `client_ca_pem` (PEM CA certificates), admits only clients
/// presenting a certificate signed by one of them: the handshake of any other client fails
/// before a byte of HTTP is read.
pub fn server_config_for_clients(
    cert: Arc<ServingCert>,
    client_ca_pem: Option<&[u8]>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(ca.context("the client CA file is not PEM")?)
                    .context("a client CA certificate is not valid")?;
            }
            anyhow::ensure!(!roots.is_empty(), "the client CA file holds no certificate");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .context("building the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A certified key from PEM text.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("the certificate file is not PEM")?;
    anyhow::ensure!(
        !chain.is_empty(),
        "the certificate file holds no certificate"
    );
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).context("the key file holds no private key")?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .context("the private key type is not supported")?;
    Ok(CertifiedKey::new(chain, signing))
}

/// Reads the certificate and key files.
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let cert_pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let key_pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    certified_key(&cert_pem, &key_pem)
}

fn modified(paths: &[&Path]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Polls the files' modification times every `interval` and swaps in the new certificate when
/// they change and parse; a half-written or broken pair keeps the old one served.
pub fn reload_on_change(
    serving: Arc<ServingCert>,
    cert: PathBuf,
    key: PathBuf,
    interval: Duration,
) {
    tokio::spawn(async move {
        let mut seen = modified(&[&cert, &key]);
        loop {
            tokio::time::sleep(interval).await;
            let now = modified(&[&cert, &key]);
            if now == seen {
                continue;
            }
            match load(&cert, &key) {
                Ok(k) => {
                    serving.replace(k);
                    seen = now;
                    tracing::info!(cert = %cert.display(), "serving certificate reloaded");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "new serving certificate not usable yet; keeping the old one")
                }
            }
        }
    });
}

/// A generated CA and the serving certificate it signed.
pub struct Generated {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Generates a CA and a serving certificate for 127.0.0.1 and `service_dns` (and its
/// `.cluster.local` form).
pub fn generate(service_dns: &str) -> anyhow::Result<Generated> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "oem-hosting webhooks CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    if !service_dns.is_empty() {
        names.push(service_dns.to_owned());
        names.push(format!("{service_dns}.cluster.local"));
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, service_dns);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Generated {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Writes `ca_pem` into every webhook of the named configurations, retrying (they may be
/// created after the server starts) until each has it.
pub async fn patch_ca_bundles(
    client: Client,
    ca_pem: String,
    validating: Vec<String>,
    mutating: Vec<String>,
) {
    let bundle = ByteString(ca_pem.into_bytes());
    let vapi: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mapi: Api<MutatingWebhookConfiguration> = Api::all(client);
    let mut pending_v = validating;
    let mut pending_m = mutating;
    let mut delay = Duration::from_millis(200);
    while !pending_v.is_empty() || !pending_m.is_empty() {
        let mut still_v = Vec::new();
        for name in pending_v {
            let done = async {
                let mut c = vapi.get(&name).await?;
                for w in c.webhooks.iter_mut().flatten() {
                    w.client_config.ca_bundle = Some(bundle.clone());
                }
                vapi.replace(&name, &PostParams::default(), &c).await
            }
            .await;
            match done {
                Ok(_) => tracing::info!(%name, "caBundle written"),
                Err(e) => {
                    tracing::debug!(%name, error = %e, "caBundle not written yet");
                    still_v.push(name);
                }
            }
        }
        let mut still_m = Vec::new();
        for name in pending_m {
            let done = async {
                let mut c = mapi.get(&name).await?;
                for w in c.webhooks.iter_mut().flatten() {
                    w.client_config.ca_bundle = Some(bundle.clone());
                }
                mapi.replace(&name, &PostParams::default(), &c).await
            }
            .await;
            match done {
                Ok(_) => tracing::info!(%name, "caBundle written"),
                Err(e) => {
                    tracing::debug!(%name, error = %e, "caBundle not written yet");
                    still_m.push(name);
                }
            }
        }
        pending_v = still_v;
        pending_m = still_m;
        if !pending_v.is_empty() || !pending_m.is_empty() {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_servable() {
        let g = generate("oem-hosting-webhooks.oem-hosting.svc").unwrap();
        let key = certified_key(g.cert_pem.as_bytes(), g.key_pem.as_bytes()).unwrap();
        assert_eq!(key.cert.len(), 1);
        assert!(g.ca_pem.contains("BEGIN CERTIFICATE"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn changed_files_are_served_after_the_next_poll() {
        let dir = std::env::temp_dir().join(format!("oem-webhooks-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        let first = generate("a.svc").unwrap();
        std::fs::write(&cert, &first.cert_pem).unwrap();
        std::fs::write(&key, &first.key_pem).unwrap();
        let serving = ServingCert::new(load(&cert, &key).unwrap());
        let before = serving.leaf();
        reload_on_change(
            serving.clone(),
            cert.clone(),
            key.clone(),
            Duration::from_millis(20),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = generate("b.svc").unwrap();
        // mtime resolution can be coarse: make sure the new files look newer.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&key, &second.key_pem).unwrap();
        std::fs::write(&cert, &second.cert_pem).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while serving.leaf() == before && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_ne!(serving.leaf(), before);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
