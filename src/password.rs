//! Password hashing with argon2id at OWASP's recommended parameters
//! (m = 19 MiB, t = 2, p = 1: the `argon2` crate's defaults), always off the
//! async workers.

use std::sync::{Once, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::AppError;

/// argon2id works in a 19 MiB block per hash. glibc's malloc serves a block
/// that large from its own mapping, but the first time one is freed it raises
/// its threshold past that size, so every later block comes from the heap and
/// stays resident after the hash: 19 MiB per blocking thread that ever hashed,
/// held for good. Fixing the threshold (which also stops it moving) keeps
/// blocks of 4 MiB and more in mappings that go back to the system when freed.
/// Other allocators manage this themselves; elsewhere this does nothing.
fn return_hash_memory_when_done() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt takes no pointers and only changes a tuning value;
        // glibc takes the main arena's lock while it does. It runs once
        // (`Once`), before the first hash.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        }
    });
}

/// Hashes a password into a PHC string.
pub async fn hash(password: String) -> Result<String, AppError> {
    return_hash_memory_when_done();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(AppError::internal)
    })
    .await
    .map_err(AppError::internal)?
}

/// A hash of nothing in particular, verified against when the email is unknown so
/// that unknown accounts cost the same time as wrong passwords.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"tokengate-timing-equaliser", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Verifies `password` against `phc`; with `None`, burns the same time and fails.
pub async fn verify(password: String, phc: Option<String>) -> bool {
    return_hash_memory_when_done();
    tokio::task::spawn_blocking(move || {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| dummy_hash().to_owned());
        let ok = PasswordHash::new(&phc)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && known
    })
    .await
    .unwrap_or(false)
}

/// Rules for a new password.
pub fn validate_new(password: &str) -> Result<(), AppError> {
    let len = password.chars().count();
    if len < 12 {
        return Err(AppError::BadInput(
            "the password must be at least 12 characters long".into(),
        ));
    }
    if len > 1024 {
        return Err(AppError::BadInput(
            "the password must be at most 1024 characters long".into(),
        ));
    }
    Ok(())
}

/// Computes the timing-equaliser hash ahead of the first sign-in.
pub async fn warm_up() {
    return_hash_memory_when_done();
    let _ = tokio::task::spawn_blocking(dummy_hash).await;
}
