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
