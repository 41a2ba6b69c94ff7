//! The verified-credential cache: a token or session id seen before costs one
//! SHA-256 and one map lookup instead of a signature check and a database read.
//!
//! Keyed by the SHA-256 of the presented credential (so a hit skips JWT decoding
//! entirely), bounded in size, each entry living no longer than its credential
//! nor [`MAX_AGE`]. Revocation, sign-out and disabling evict at once in the
//! process that made them, and within a poll period everywhere else
//! (`core::revocations`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::sync::Cache;

use crate::auth::Principal;

/// Most entries kept.
pub const CAPACITY: u64 = 200_000;
/// Longest an entry lives without being verified again.
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// What kind of credential a digest belongs to (a session id is never a token).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An access token (a compact JWT).
    Token,
    /// A session cookie's value.
    Session,
}

#[derive(Clone)]
struct Entry {
    principal: Arc<Principal>,
    expires_at: Option<DateTime<Utc>>,
}

/// The cache and its hit/miss counters.
pub struct CredentialCache {
    entries: Cache<(Kind, [u8; 32]), Entry>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for CredentialCache {
    fn default() -> Self {
        CredentialCache {
            entries: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(MAX_AGE)
                .support_invalidation_closures()
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

impl CredentialCache {
    /// The cached principal for a credential that has not expired by `now`.
    pub fn get(&self, kind: Kind, digest: &[u8; 32], now: DateTime<Utc>) -> Option<Arc<Principal>> {
        let found = self
            .entries
            .get(&(kind, *digest))
            .filter(|e| e.expires_at.is_none_or(|exp| exp > now));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found.map(|e| e.principal)
    }

    /// Remembers a verified credential: `expires_at` is the credential's own
    /// expiry (`None`: it has none), and the entry lives no longer than [`MAX_AGE`].
    pub fn insert(
        &self,
        kind: Kind,
        digest: [u8; 32],
        principal: Arc<Principal>,
        expires_at: Option<DateTime<Utc>>,
    ) {
        self.entries.insert(
            (kind, digest),
            Entry {
                principal,
                expires_at,
            },
        );
    }

    /// Forgets one credential (a revoked token, an ended session).
    pub fn evict(&self, kind: Kind, digest: &[u8]) {
        if let Ok(d) = <[u8; 32]>::try_from(digest) {
            self.entries.invalidate(&(kind, d));
        }
    }

    /// Forgets every credential of a user (disabled).
    pub fn evict_user(&self, user_id: &str) {
        let user_id = user_id.to_owned();
        if let Err(e) = self
            .entries
            .invalidate_entries_if(move |_, e| e.principal.user_id == user_id)
        {
            tracing::warn!(error = %e, "could not evict a disabled user's credentials; clearing the cache");
            self.entries.invalidate_all();
        }
    }

    /// Lookups answered from the cache since start.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that had to verify the credential since start.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}
