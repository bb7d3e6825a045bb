//! Login passwords as the panel keeps them: an argon2id digest with a random 128-bit salt per
//! Secret version, derived once when the Secret changed (keyed by its resourceVersion). The
//! plain password lives only for the length of the request that reads the Secret.
//!
//! Hashing runs on a fixed pool of worker threads (`hashCost.workers`), each with its own
//! argon2 memory allocated once: memory stays at workers x `memoryKib` however many logins
//! arrive at once (one buffer per request would leave every allocator arena holding one),
//! and a flood of logins queues instead of taking every core.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;

use crate::config::HashCost;

/// Why a digest could not be made (bad parameters, workers gone; never the password).
#[derive(Debug, thiserror::Error)]
#[error("argon2id: {0}")]
pub struct HashError(String);

/// A salted argon2id digest.
#[derive(Clone, PartialEq, Eq)]
pub struct Digest {
    salt: [u8; 16],
    hash: [u8; 32],
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digest(<redacted>)")
    }
}

impl Digest {
    /// A digest of no one's password, verified against when the login ID is unknown so that
    /// an unknown ID takes the same work as a wrong password.
    pub fn decoy() -> Self {
        let mut digest = Digest {
            salt: [0; 16],
            hash: [0; 32],
        };
        rand::rng().fill_bytes(&mut digest.salt);
        rand::rng().fill_bytes(&mut digest.hash);
        digest
    }
}

struct Job {
    password: String,
    salt: [u8; 16],
    reply: tokio::sync::oneshot::Sender<Result<[u8; 32], HashError>>,
}

/// The pool of hashing threads.
#[derive(Clone)]
pub struct Hasher {
    jobs: mpsc::Sender<Job>,
}

impl Hasher {
    /// Starts `cost.workers` threads, each with `cost.memoryKib` of argon2 memory.
    pub fn start(cost: HashCost) -> Result<Self, HashError> {
        let params = Params::new(cost.memory_kib, cost.passes, 1, Some(32))
            .map_err(|e| HashError(e.to_string()))?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for worker in 0..cost.workers.max(1) {
            let queue = queue.clone();
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{worker}"))
                .spawn(move || {
                    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                    let mut memory = vec![Block::default(); argon2.params().block_count()];
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let mut out = [0u8; 32];
                        let result = argon2
                            .hash_password_into_with_memory(
                                job.password.as_bytes(),
                                &job.salt,
                                &mut out,
                                &mut memory,
                            )
                            .map(|()| out)
                            .map_err(|e| HashError(e.to_string()));
                        let _ = job.reply.send(result);
                    }
                })
                .map_err(|e| HashError(format!("starting a hashing thread: {e}")))?;
        }
        Ok(Self { jobs })
    }

    async fn run(&self, password: &str, salt: [u8; 16]) -> Result<[u8; 32], HashError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job {
                password: password.to_owned(),
                salt,
                reply,
            })
            .map_err(|_| HashError("the hashing threads ended".into()))?;
        answer
            .await
            .map_err(|_| HashError("a hashing thread ended".into()))?
    }

    /// The digest of `password` with a fresh salt.
    pub async fn hash(&self, password: &str) -> Result<Digest, HashError> {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let hash = self.run(password, salt).await?;
        Ok(Digest { salt, hash })
    }

    /// Whether `password` has this digest, compared in constant time.
    pub async fn verify(&self, password: &str, digest: &Digest) -> Result<bool, HashError> {
        let hash = self.run(password, digest.salt).await?;
        Ok(super::same_secret(&hash, &digest.hash))
    }
}

/// Which Secret key holds a login password.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretKey {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

/// One digest per password Secret, with the resourceVersion it was derived from.
#[derive(Debug, Default)]
pub struct Hashes {
    by_secret: HashMap<SecretKey, (String, Digest)>,
}

impl Hashes {
    /// The digest of the Secret at `version`, if derived already.
    pub fn get(&self, secret: &SecretKey, version: &str) -> Option<Digest> {
        self.by_secret
            .get(secret)
            .filter(|(v, _)| v == version)
            .map(|(_, digest)| digest.clone())
    }

    pub fn insert(&mut self, secret: SecretKey, version: String, digest: Digest) {
        self.by_secret.insert(secret, (version, digest));
    }

    /// Forgets a digest (the password was changed through the panel).
    pub fn forget(&mut self, secret: &SecretKey) {
        self.by_secret.remove(secret);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest cost the configuration accepts, to keep tests fast.
    const CHEAP: HashCost = HashCost {
        memory_kib: 8 * 1024,
        passes: 1,
        workers: 2,
    };

    #[tokio::test]
    async fn a_digest_verifies_its_password_only() {
        let hasher = Hasher::start(CHEAP).unwrap();
        let digest = hasher.hash("correct horse battery").await.unwrap();
        assert!(
            hasher
                .verify("correct horse battery", &digest)
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("correct horse batterY", &digest)
                .await
                .unwrap()
        );
        assert!(!hasher.verify("", &digest).await.unwrap());
        assert_eq!(format!("{digest:?}"), "Digest(<redacted>)");
    }

    #[tokio::test]
    async fn the_same_password_gets_a_different_salt_each_time() {
        let hasher = Hasher::start(CHEAP).unwrap();
        let a = hasher.hash("same password").await.unwrap();
        let b = hasher.hash("same password").await.unwrap();
        assert_ne!(a, b);
        assert!(hasher.verify("same password", &a).await.unwrap());
        assert!(hasher.verify("same password", &b).await.unwrap());
    }

    #[tokio::test]
    async fn the_result_is_argon2id_as_specified() {
        // RFC 9106's parameters through the same call, compared with a fresh instance.
        let hasher = Hasher::start(CHEAP).unwrap();
        let digest = hasher.hash("password").await.unwrap();
        let params = Params::new(CHEAP.memory_kib, CHEAP.passes, 1, Some(32)).unwrap();
        let mut expected = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(b"password", &digest.salt, &mut expected)
            .unwrap();
        assert_eq!(digest.hash, expected);
    }

    #[tokio::test]
    async fn many_requests_at_once_share_the_workers() {
        let hasher = Hasher::start(CHEAP).unwrap();
        let digest = hasher.hash("p").await.unwrap();
        let checks = (0..8).map(|_| {
            let hasher = hasher.clone();
            let digest = digest.clone();
            tokio::spawn(async move { hasher.verify("p", &digest).await.unwrap() })
        });
        for check in checks {
            assert!(check.await.unwrap());
        }
    }

    #[tokio::test]
    async fn a_decoy_matches_nothing() {
        let hasher = Hasher::start(CHEAP).unwrap();
        assert!(!hasher.verify("", &Digest::decoy()).await.unwrap());
    }

    #[test]
    fn a_digest_is_kept_for_its_secret_version_only() {
        let mut hashes = Hashes::default();
        let key = SecretKey {
            namespace: "reseller-a".into(),
            name: "shop-login".into(),
            key: "password".into(),
        };
        let digest = Digest::decoy();
        hashes.insert(key.clone(), "41".into(), digest.clone());
        assert_eq!(hashes.get(&key, "41"), Some(digest));
        assert_eq!(
            hashes.get(&key, "42"),
            None,
            "a changed Secret is hashed again"
        );
        hashes.forget(&key);
        assert_eq!(hashes.get(&key, "41"), None);
    }
}
