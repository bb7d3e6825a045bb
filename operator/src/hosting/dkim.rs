//! DKIM keys (RFC 6376) of an end user's mail: one RSA key per end user, made once by the
//! operator and kept in the hosting namespace's `dkim` Secret, so it survives every restart and
//! the public key the end user published stays valid. The mail image signs outgoing mail with
//! it; `status.dns` lists the public key's TXT record.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rsa::RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{EncodePublicKey, LineEnding};

/// The Secret of the hosting namespace holding the DKIM key (mounted into the mail pod).
pub const DKIM_SECRET: &str = "dkim";
/// Its key: the private key, PEM (PKCS #1), as MTAs read it.
pub const KEY_PRIVATE: &str = "private-key";
/// Annotation on the Secret carrying the public key (base64 DER SubjectPublicKeyInfo, the `p=`
/// of the TXT record), so the operator knows it from the Secret's cached metadata.
pub const ANNOTATION_PUBLIC_KEY: &str = "hosting.oem.dev/dkim-public-key";

/// RFC 8301: signers use at least 1024 bits and should use 2048.
const BITS: usize = 2048;

/// A fresh key: its private half as PEM and its public half as the TXT record's `p=`.
pub struct DkimKey {
    pub private_pem: String,
    pub public: String,
}

/// Makes a key (a quarter of a second of one core; run it off the async threads).
pub fn generate() -> Result<DkimKey, String> {
    let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, BITS)
        .map_err(|e| format!("generating an RSA key: {e}"))?;
    let private_pem = key
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| format!("encoding the RSA key: {e}"))?;
    Ok(DkimKey {
        public: public_of_key(&key)?,
        private_pem: private_pem.to_string(),
    })
}

/// The public half (`p=`) of a PEM private key, e.g. one a provider put in the Secret by hand.
pub fn public_of(private_pem: &str) -> Result<String, String> {
    let key = RsaPrivateKey::from_pkcs1_pem(private_pem)
        .map_err(|e| format!("not an RSA private key in PEM (PKCS #1): {e}"))?;
    public_of_key(&key)
}

fn public_of_key(key: &RsaPrivateKey) -> Result<String, String> {
    let pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| format!("encoding the public key: {e}"))?;
    // The PEM's body is the base64 of the DER the TXT record carries.
    Ok(pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>())
}

/// The TXT record that publishes `public` (`p=`).
pub fn txt_record(public: &str) -> String {
    format!("v=DKIM1; k=rsa; p={public}")
}

/// The `dkim` Secret of `namespace` holding `key`, its public half in an annotation.
pub fn secret(namespace: &str, labels: BTreeMap<String, String>, key: &DkimKey) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(DKIM_SECRET.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_PUBLIC_KEY.to_owned(),
                key.public.clone(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(
            KEY_PRIVATE.to_owned(),
            key.private_pem.clone(),
        )])),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gives_back_its_public_half_and_a_dkim_record() {
        let key = generate().unwrap();
        assert!(
            key.private_pem
                .starts_with("-----BEGIN RSA PRIVATE KEY-----")
        );
        assert_eq!(public_of(&key.private_pem).unwrap(), key.public);
        // 2048 bits: a 294-byte SubjectPublicKeyInfo, 392 characters of base64.
        assert_eq!(key.public.len(), 392);
        assert!(txt_record(&key.public).starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"));
        let other = generate().unwrap();
        assert_ne!(other.public, key.public, "each key is fresh");
    }

    #[test]
    fn what_is_not_a_key_is_refused() {
        assert!(
            public_of("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")
                .is_err()
        );
    }
}
