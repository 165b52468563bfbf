//! Users' passwords: Argon2id hashes (PHC strings), computed off the async threads and a few
//! at a time. Each hash takes ~19 MiB and a core for tens of milliseconds; unbounded, a burst
//! of parallel logins (each failing one costs a hash, as a known user does) would fill the
//! blocking pool and the memory with them.

use std::time::Duration;

use axum::http::StatusCode;

use crate::http::ApiError;
use crate::model::access::check_password;
use crate::store::Store;

/// Argon2id hashes computed at once: each takes ~19 MiB and a core for tens of ms, so parallel
/// logins (or user adds) wait their turn here instead of filling the blocking pool.
fn hashing() -> &'static tokio::sync::Semaphore {
    static HASHING: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    HASHING.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

/// How long a hash waits for its turn before the request is refused as busy.
const HASHING_WAIT: Duration = Duration::from_secs(5);

/// A turn to compute a hash, or "busy" (503) after [`HASHING_WAIT`].
async fn hashing_turn() -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    let busy = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many password checks at once: try again in a moment",
        )
    };
    tokio::time::timeout(HASHING_WAIT, hashing().acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())
}

/// An Argon2id hash (PHC string) of `password`, off the async threads.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    check_password(&password)?;
    let _turn = hashing_turn().await?;
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no randomness available"))?;
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))
}

/// Whether `password` matches the PHC string `hash` (a malformed hash matches nothing); an
/// error when too many checks are waiting.
pub(super) async fn verify_password(password: String, hash: String) -> Result<bool, ApiError> {
    let _turn = hashing_turn().await?;
    Ok(tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        PasswordHash::new(&hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false))
}

/// Whether `password` is the one of the user `name` (for a change of one's own password).
pub async fn password_matches(
    store: &Store,
    name: &str,
    password: String,
) -> Result<bool, ApiError> {
    match store.user_named(name).await? {
        Some((_, hash)) => verify_password(password, hash).await,
        None => Ok(false),
    }
}

/// An Argon2id hash of a random password nobody knows, verified against for unknown users.
pub(super) const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3s3Ei0mIOEkUwHi0b8m5l3dS0Qy2wN7l0FqWqkqQZ0Y";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        let verify = |p: &str, h: &str| verify_password(p.into(), h.into());
        assert!(verify("correct horse", &hash).await.expect("turn"));
        assert!(!verify("wrong horse", &hash).await.expect("turn"));
        assert!(!verify("x", DUMMY_HASH).await.expect("turn"));
        assert!(hash_password("short".into()).await.is_err());
    }
}
