//! Secret values: random generation, digests and constant-time comparison.
//!
//! Plaintext secrets live in [`Secret`], whose `Debug` prints only its name, so
//! they cannot reach a log line through a `{:?}`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A plaintext secret (a session id, a token, a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a plaintext received or read elsewhere (a cookie, a header, a prompt).
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// 256 bits from the OS RNG, base64url without padding (43 characters).
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Secret(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The plaintext. Call it only where the secret must leave the type: sent
    /// once to its owner, hashed, or checked.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the plaintext: what the database stores and looks up by.
    pub fn digest(&self) -> [u8; 32] {
        sha256(self.0.as_bytes())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares two byte strings in time independent of where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}
