//! Live connections (GraphQL over WebSocket) and what ends them: each open
//! connection registers the credential it authenticated with, and the
//! revocation machinery that already evicts cached credentials — the hooks of
//! the revoking process and the cross-process poll/NOTIFY — also signals the
//! connections holding that credential. No connection polls the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Why a live connection's credential stopped being valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The token was revoked (directly, by rotation, or with its parent).
    TokenRevoked,
    /// The session was signed out.
    SessionEnded,
    /// The owner (user or service account) was disabled.
    OwnerDisabled,
}

/// What a connection authenticated with.
#[derive(Clone, Debug)]
pub struct Held {
    /// SHA-256 of the token, when authenticated by one.
    pub token: Option<[u8; 32]>,
    /// SHA-256 of the session cookie value, when authenticated by one.
    pub session: Option<[u8; 32]>,
    /// The principal's user id.
    pub user_id: String,
}

struct Entry {
    held: Held,
    tx: watch::Sender<Option<Ended>>,
}

#[derive(Default)]
struct Inner {
    entries: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
}

/// Every live connection of this process.
#[derive(Clone, Default)]
pub struct LiveConnections(Arc<Inner>);

/// One registered connection; dropping it unregisters.
pub struct Registration {
    id: u64,
    live: LiveConnections,
    /// Becomes `Some` when the credential ends.
    pub ended: watch::Receiver<Option<Ended>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.live.lock().remove(&self.id);
    }
}

impl LiveConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.0.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection, unless its user already has `max_per_user` open.
    pub fn register(&self, held: Held, max_per_user: usize) -> Option<Registration> {
        let mut entries = self.lock();
        let open = entries
            .values()
            .filter(|e| e.held.user_id == held.user_id)
            .count();
        if open >= max_per_user {
            return None;
        }
        let id = self.0.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        entries.insert(id, Entry { held, tx });
        Some(Registration {
            id,
            live: self.clone(),
            ended: rx,
        })
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.lock().len()
    }

    fn end_where(&self, why: Ended, matches: impl Fn(&Held) -> bool) {
        for e in self.lock().values() {
            if matches(&e.held) {
                e.tx.send_replace(Some(why));
            }
        }
    }

    /// Ends connections authenticated by the token of that digest.
    pub fn token_revoked(&self, digest: &[u8]) {
        self.end_where(Ended::TokenRevoked, |h| {
            h.token.as_ref().is_some_and(|t| t.as_slice() == digest)
        });
    }

    /// Ends connections authenticated by the session of that digest.
    pub fn session_ended(&self, digest: &[u8]) {
        self.end_where(Ended::SessionEnded, |h| {
            h.session.as_ref().is_some_and(|s| s.as_slice() == digest)
        });
    }

    /// Ends every connection of that user or service account.
    pub fn user_disabled(&self, user_id: &str) {
        self.end_where(Ended::OwnerDisabled, |h| h.user_id == user_id);
    }
}

/// What happened to a token, for `accessTokenEvents`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenChange {
    /// Issued (by any path: the API, the CLI, OAuth).
    Created,
    /// Revoked (directly, or with its parent).
    Revoked,
    /// Revoked because another token was issued under its name.
    Rotated,
    /// Active and expiring within a day ([`EXPIRING_WITHIN`]).
    Expiring,
}

/// How close to its expiry a token is announced as expiring.
pub const EXPIRING_WITHIN: chrono::Duration = chrono::Duration::hours(24);

/// One token change, as every process learns of it.
#[derive(Clone, Debug)]
pub struct TokenEvent {
    /// What happened.
    pub change: TokenChange,
    /// The token's id.
    pub token_id: String,
    /// Its owner.
    pub user_id: String,
}

/// Token changes fanned out to subscribers. The process making a change
/// publishes it at once; the revocation poll (woken by PostgreSQL's NOTIFY)
/// publishes what other processes did. Each change is published once per
/// process: the poll's overlap would otherwise repeat it.
pub struct TokenEvents {
    tx: tokio::sync::broadcast::Sender<TokenEvent>,
    seen: Mutex<HashMap<(String, bool), std::time::Instant>>,
    /// Tokens announced as expiring, with when (kept past their last day).
    expiring: Mutex<HashMap<String, std::time::Instant>>,
    /// When the maps were last pruned.
    pruned: Mutex<std::time::Instant>,
}

impl Default for TokenEvents {
    fn default() -> Self {
        TokenEvents {
            tx: tokio::sync::broadcast::channel(1024).0,
            seen: Mutex::default(),
            expiring: Mutex::default(),
            pruned: Mutex::new(std::time::Instant::now()),
        }
    }
}

/// How long a published change is remembered (beyond the poll's overlap).
const SEEN_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl TokenEvents {
    /// Publishes a change unless it was published recently (a token's
    /// expiring: unless it was ever announced by this process).
    pub fn publish(&self, change: TokenChange, token_id: &str, user_id: &str) {
        let now = std::time::Instant::now();
        if change == TokenChange::Expiring {
            let mut announced = self.expiring.lock().unwrap_or_else(|e| e.into_inner());
            let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
            if now.duration_since(*pruned) > SEEN_FOR {
                let day = std::time::Duration::from_secs(25 * 3600);
                announced.retain(|_, at| now.duration_since(*at) < day);
                *pruned = now;
            }
            if announced.insert(token_id.to_owned(), now).is_some() {
                return;
            }
        } else {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            // Pruned at most once per SEEN_FOR, so publishing stays O(1).
            let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
            if now.duration_since(*pruned) > SEEN_FOR {
                seen.retain(|_, at| now.duration_since(*at) < SEEN_FOR);
                *pruned = now;
            }
            // A token is created once and ends once (revoked or rotated):
            // whichever report of its end comes first stands.
            let key = (token_id.to_owned(), change == TokenChange::Created);
            if seen
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < SEEN_FOR)
            {
                return;
            }
            seen.insert(key, now);
        }
        // No subscriber is not an error.
        let _ = self.tx.send(TokenEvent {
            change,
            token_id: token_id.to_owned(),
            user_id: user_id.to_owned(),
        });
    }

    /// Whether this token's end (revoked or rotated) was published recently.
    pub fn ended(&self, token_id: &str) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&(token_id.to_owned(), false))
            .is_some_and(|at| at.elapsed() < SEEN_FOR)
    }

    /// Whether anyone in this process listens (`accessTokenEvents`).
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// A receiver of every change published from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<TokenEvent> {
        self.tx.subscribe()
    }
}
