//! Password hashing with Argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane), stored as
//! PHC strings.
//!
//! Hashing is deliberately expensive, so it runs on tokio's blocking pool behind a
//! semaphore: a login storm queues on the semaphore instead of starving the async
//! runtime or exhausting memory (each hash holds 19 MiB). Verifying an unknown user's
//! login runs the same work against a precomputed dummy hash, so "no such user" and
//! "wrong password" take the same time.

use crate::error::PasswordHashError;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's Password Storage Cheat Sheet: m = 19 MiB, t = 2, p = 1.
    pub const OWASP: Argon2Params = Argon2Params {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::OWASP
    }
}

/// Settings for [`PasswordHasher`].
#[derive(Clone, Debug)]
pub struct PasswordHasherConfig {
    pub params: Argon2Params,
    /// Hashes computed at once; more wait their turn. Default: the number of CPUs.
    pub max_concurrent: usize,
}

impl Default for PasswordHasherConfig {
    fn default() -> Self {
        Self {
            params: Argon2Params::OWASP,
            max_concurrent: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        }
    }
}

/// Hashes and verifies passwords. Cheap to clone; clones share the concurrency limit.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    argon2: Argon2<'static>,
    params: Argon2Params,
    permits: Semaphore,
    /// A hash of a random password with the current parameters, verified against when
    /// the user does not exist.
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .field("available_permits", &self.inner.permits.available_permits())
            .finish()
    }
}

impl PasswordHasher {
    /// Builds the hasher. Computes the dummy hash right away (one hash's worth of CPU
    /// time), so call it once at start-up.
    pub fn new(cfg: PasswordHasherConfig) -> Result<Self, PasswordHashError> {
        let params = Params::new(
            cfg.params.memory_kib,
            cfg.params.iterations,
            cfg.params.parallelism,
            None,
        )
        .map_err(|e| PasswordHashError::Params(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_password = hex::encode(crate::random::random_bytes::<16>());
        let dummy_hash = hash_with(&argon2, dummy_password.as_bytes())?;
        Ok(Self {
            inner: Arc::new(Inner {
                argon2,
                params: cfg.params,
                permits: Semaphore::new(cfg.max_concurrent.max(1)),
                dummy_hash,
            }),
        })
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) to store.
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordHashError> {
        self.run_blocking(move |inner| {
            hash_with(&inner.argon2, password.expose_secret().as_bytes())
        })
        .await?
    }

    /// Whether `password` matches `stored`. With `stored = None` (no such user) the same
    /// work is done against the dummy hash and the answer is `false`.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<bool, PasswordHashError> {
        self.run_blocking(move |inner| {
            let (phc, known) = match &stored {
                Some(phc) => (phc.as_str(), true),
                None => (inner.dummy_hash.as_str(), false),
            };
            let parsed =
                PasswordHash::new(phc).map_err(|_| PasswordHashError::InvalidStoredHash)?;
            let matches = inner
                .argon2
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok();
            Ok(matches && known)
        })
        .await?
    }

    /// Whether `stored` was made with other parameters (or another algorithm) than the
    /// current ones, so it should be re-hashed after the next successful login.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return true;
        };
        let p = self.inner.params;
        let decimal = |name: &str| parsed.params.get_decimal(name);
        parsed.algorithm.as_str() != "argon2id"
            || parsed.version != Some(Version::V0x13.into())
            || decimal("m") != Some(p.memory_kib)
            || decimal("t") != Some(p.iterations)
            || decimal("p") != Some(p.parallelism)
    }

    async fn run_blocking<T, F>(&self, work: F) -> Result<T, PasswordHashError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> T + Send + 'static,
    {
        let inner = self.inner.clone();
        // The semaphore lives as long as `inner` and is never closed.
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordHashError::TaskFailed)?;
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|_| PasswordHashError::TaskFailed)
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &[u8]) -> Result<String, PasswordHashError> {
    let salt = SaltString::encode_b64(&crate::random::random_bytes::<16>())
        .map_err(|e| PasswordHashError::Hashing(e.to_string()))?;
    argon2
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordHashError::Hashing(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters so debug-build tests stay quick; one test covers the real ones.
    fn cheap() -> PasswordHasher {
        PasswordHasher::new(PasswordHasherConfig {
            params: Argon2Params {
                memory_kib: 256,
                iterations: 1,
                parallelism: 1,
            },
            max_concurrent: 2,
        })
        .unwrap()
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s)
    }

    #[tokio::test]
    async fn owasp_parameters_round_trip() {
        let hasher = PasswordHasher::new(PasswordHasherConfig::default()).unwrap();
        let phc = hasher
            .hash(secret("correct horse battery staple"))
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            hasher
                .verify(secret("correct horse battery staple"), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(secret("correct horse battery stapler"), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(!hasher.needs_rehash(&phc));
    }

    #[tokio::test]
    async fn salts_differ_and_wrong_passwords_fail() {
        let hasher = cheap();
        let a = hasher.hash(secret("same password here")).await.unwrap();
        let b = hasher.hash(secret("same password here")).await.unwrap();
        assert_ne!(a, b, "a fresh salt per hash");
        assert!(
            hasher
                .verify(secret("same password here"), Some(a))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(secret("Same password here"), Some(b))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_user_runs_against_the_dummy_and_fails() {
        let hasher = cheap();
        assert!(
            !hasher
                .verify(secret("anything at all"), None)
                .await
                .unwrap()
        );
        // The dummy hash is a real hash with the current parameters, so the work matches.
        assert!(!hasher.needs_rehash(&hasher.inner.dummy_hash));
    }

    #[tokio::test]
    async fn garbage_stored_hash_is_an_error_not_a_match() {
        let hasher = cheap();
        let err = hasher
            .verify(secret("whatever"), Some("not-a-phc-string".to_owned()))
            .await
            .unwrap_err();
        assert!(matches!(err, PasswordHashError::InvalidStoredHash));
    }

    #[tokio::test]
    async fn other_parameters_need_a_rehash() {
        let cheap = cheap();
        let old = cheap.hash(secret("long enough password")).await.unwrap();
        let current = PasswordHasher::new(PasswordHasherConfig {
            params: Argon2Params {
                memory_kib: 512,
                iterations: 1,
                parallelism: 1,
            },
            max_concurrent: 1,
        })
        .unwrap();
        assert!(current.needs_rehash(&old));
        // Old hashes still verify: the parameters come from the PHC string.
        assert!(
            current
                .verify(secret("long enough password"), Some(old))
                .await
                .unwrap()
        );
        assert!(current.needs_rehash("$2b$12$somebcrypthashvalue"));
    }

    #[tokio::test]
    async fn concurrency_is_limited_by_the_semaphore() {
        let hasher = cheap();
        let held = hasher.inner.permits.acquire_many(2).await.unwrap();
        let h2 = hasher.clone();
        let mut task = tokio::spawn(async move { h2.hash(secret("queued password")).await });
        let waited = tokio::time::timeout(std::time::Duration::from_millis(300), &mut task).await;
        assert!(waited.is_err(), "waits while all permits are taken");
        drop(held);
        assert!(task.await.unwrap().unwrap().starts_with("$argon2id$"));
    }

    #[test]
    fn debug_output_has_no_hash_material() {
        let hasher = cheap();
        let debug = format!("{hasher:?}");
        assert!(!debug.contains(&hasher.inner.dummy_hash));
        assert!(!debug.contains("argon2id$"));
    }
}
