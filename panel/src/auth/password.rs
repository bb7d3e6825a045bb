//! Login passwords as the panel keeps them: an argon2id hash with a random salt per Secret
//! version, derived once when the Secret changed (keyed by its resourceVersion). The plain
//! password lives only for the length of the request that reads the Secret.

use std::collections::HashMap;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use crate::config::HashCost;

/// Why a hash could not be made (bad parameters; never the password).
#[derive(Debug, thiserror::Error)]
#[error("argon2id: {0}")]
pub struct HashError(String);

fn hasher(cost: HashCost) -> Result<Argon2<'static>, HashError> {
    let params =
        Params::new(cost.memory_kib, cost.passes, 1, None).map_err(|e| HashError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string (`$argon2id$v=19$m=...$salt$hash`) of `password` with a fresh 128-bit salt.
/// Slow on purpose: call it off the async threads.
pub fn hash(password: &str, cost: HashCost) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    let hashed = hasher(cost)?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| HashError(e.to_string()))?;
    Ok(hashed.to_string())
}

/// Whether `password` matches the PHC string `phc`; argon2 compares the outputs in constant
/// time. A malformed `phc` matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Which Secret key holds a login password.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretKey {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

/// One hash per password Secret, with the resourceVersion it was derived from.
#[derive(Debug, Default)]
pub struct Hashes {
    by_secret: HashMap<SecretKey, (String, String)>,
}

impl Hashes {
    /// The hash of the Secret at `version`, if derived already.
    pub fn get(&self, secret: &SecretKey, version: &str) -> Option<String> {
        self.by_secret
            .get(secret)
            .filter(|(v, _)| v == version)
            .map(|(_, phc)| phc.clone())
    }

    pub fn insert(&mut self, secret: SecretKey, version: String, phc: String) {
        self.by_secret.insert(secret, (version, phc));
    }

    /// Forgets a hash (the password was changed through the panel).
    pub fn forget(&mut self, secret: &SecretKey) {
        self.by_secret.remove(secret);
    }
}

/// A hash of no one's password, verified against when the login ID is unknown so that an
/// unknown ID takes as long to refuse as a wrong password.
pub fn decoy(cost: HashCost) -> Result<String, HashError> {
    hash(&crate::auth::random_token(), cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest cost the configuration accepts, to keep tests fast.
    const CHEAP: HashCost = HashCost {
        memory_kib: 8 * 1024,
        passes: 1,
    };

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("correct horse battery", CHEAP).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse batterY", &phc));
        assert!(!verify("", &phc));
    }

    #[test]
    fn the_same_password_gets_a_different_salt_each_time() {
        let a = hash("same password", CHEAP).unwrap();
        let b = hash("same password", CHEAP).unwrap();
        assert_ne!(a, b);
        assert!(verify("same password", &a) && verify("same password", &b));
    }

    #[test]
    fn a_malformed_hash_matches_nothing() {
        assert!(!verify("x", "not a phc string"));
    }

    #[test]
    fn a_hash_is_kept_for_its_secret_version_only() {
        let mut hashes = Hashes::default();
        let key = SecretKey {
            namespace: "reseller-a".into(),
            name: "shop-login".into(),
            key: "password".into(),
        };
        hashes.insert(key.clone(), "41".into(), "$phc".into());
        assert_eq!(hashes.get(&key, "41").as_deref(), Some("$phc"));
        assert_eq!(
            hashes.get(&key, "42"),
            None,
            "a changed Secret is hashed again"
        );
        hashes.forget(&key);
        assert_eq!(hashes.get(&key, "41"), None);
    }
}
