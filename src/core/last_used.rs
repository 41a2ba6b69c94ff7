//! `lastUsedAt`, kept off the request path: requests note the time in memory;
//! a background task writes the notes in one transaction per flush, at most once
//! per token per [`MIN_WRITE_GAP`]. The stored time lags the real one by at most
//! `MIN_WRITE_GAP` + the flush interval (a minute with the defaults).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entity::access_token;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

/// Shortest gap between two writes of one token's last-used time.
pub const MIN_WRITE_GAP: Duration = Duration::from_secs(45);

/// A use: when, and from which address when known.
type Use = (DateTime<Utc>, Option<IpAddr>);

#[derive(Default)]
struct State {
    /// Latest use not yet written, per token id, and the address it came from.
    pending: HashMap<String, Use>,
    /// When each token's last-used time was last written.
    written: HashMap<String, Instant>,
}

/// The in-memory batch of last-used times.
#[derive(Default)]
pub struct LastUsed {
    state: Mutex<State>,
    writes: AtomicU64,
}

impl LastUsed {
    /// Notes a use (from `ip` when known); costs one map insert.
    pub fn touch(&self, token_id: &str, at: DateTime<Utc>, ip: Option<IpAddr>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.pending.get_mut(token_id) {
            Some((t, known)) => {
                *t = at;
                if ip.is_some() {
                    *known = ip;
                }
            }
            None => {
                s.pending.insert(token_id.to_owned(), (at, ip));
            }
        }
    }

    /// Row writes made so far (for `/metrics` and tests).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Writes every note whose token was not written within the gap (all of them
    /// when `force`, as at shutdown).
    /// On SQLite the write goes through the core's writer (`Core::write`),
    /// and only when something is due.
    pub async fn flush(&self, core: &super::Core, force: bool) {
        let now = Instant::now();
        let due: Vec<(String, Use)> = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let State { pending, written } = &mut *s;
            written.retain(|_, at| now.duration_since(*at) < MIN_WRITE_GAP);
            let ids: Vec<String> = pending
                .keys()
                .filter(|id| force || !written.contains_key(*id))
                .cloned()
                .collect();
            ids.into_iter()
                .map(|id| {
                    let at = pending.remove(&id).unwrap_or_else(|| (Utc::now(), None));
                    written.insert(id.clone(), now);
                    (id, at)
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let count = due.len() as u64;
        let result = core
            .write::<_, _, sea_orm::DbErr>(move |txn| {
                Box::pin(async move {
                    for (id, (at, ip)) in due {
                        let mut update = access_token::Entity::update_many()
                            .col_expr(access_token::Column::LastUsedAt, Expr::value(at));
                        if let Some(ip) = ip {
                            update = update.col_expr(
                                access_token::Column::LastUsedIp,
                                Expr::value(ip.to_string()),
                            );
                        }
                        update
                            .filter(access_token::Column::Id.eq(id))
                            .exec(txn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .await;
        match result {
            Ok(()) => {
                self.writes.fetch_add(count, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "could not write last-used times"),
        }
    }
}
