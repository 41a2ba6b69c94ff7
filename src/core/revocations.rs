//! Revocation across processes. Every process caches verified credentials
//! (`core::cache`); a revocation, sign-out or disable made by another process (or
//! the CLI, or by hand in SQL) must reach that cache within a second.
//!
//! Each process polls three indexed columns every
//! [`revocation_poll_interval`](crate::config::Config::revocation_poll_interval)
//! (500 ms by default): tokens revoked, users disabled and sessions ended since
//! its last poll (minus [`OVERLAP`] for clock skew between writers; evicting
//! twice is harmless). On PostgreSQL, writers also
//! `NOTIFY tokengate_revocations` in the same transaction, naming the revoked
//! tokens' digests when they fit: a listener evicts those at once, then wakes
//! the poll (at most one per [`MIN_POLL_GAP`]) for what a notice does not
//! carry (events for `accessTokenEvents`, sessions ended, users disabled, too
//! many digests, a grace period's cutoff); the timer remains as the catch-up for a missed notification or a dropped
//! listener connection.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{access_token, session_end, user};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect};
use tokio::sync::{watch, Notify};

use super::cache::Kind;
use super::live::TokenChange;
use crate::core::Core;

/// The PostgreSQL channel revocations are announced on.
pub const CHANNEL: &str = "tokengate_revocations";
/// The channel new tokens are announced on (for `accessTokenEvents`; revoked
/// tokens named in a notice are evicted before any poll, so a poll delayed
/// by [`MIN_POLL_GAP`] after an issue does not delay their eviction).
pub const CREATED_CHANNEL: &str = "tokengate_tokens";
/// How far each poll looks back before the previous one.
pub const OVERLAP: Duration = Duration::from_secs(5);
/// Shortest gap between two polls woken by notifications: a burst of
/// revocations (or of issues, which notify subscribers) is caught by one poll
/// per gap instead of one per notification, each of which reads the whole
/// overlap window again. An isolated revocation is still seen at once.
pub const MIN_POLL_GAP: Duration = Duration::from_millis(50);
/// How long ended-session markers are kept (sessions live far less).
const SESSION_END_RETENTION: chrono::Duration = chrono::Duration::days(2);

/// Announces a revocation to other processes (PostgreSQL; a no-op on SQLite,
/// whose other processes rely on the poll). Call inside the revoking transaction
/// so the notification is delivered on commit.
pub async fn notify(conn: &impl ConnectionTrait) -> Result<(), sea_orm::DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared(&format!("NOTIFY {CHANNEL}"))
            .await?;
    }
    Ok(())
}

/// Prefix of a notification that names the revoked tokens' digests.
const TOKENS_PAYLOAD: &str = "t:";
/// Longest payload sent (PostgreSQL's limit is 8000 bytes); more digests than
/// fit are announced without a payload, and listeners poll.
const MAX_PAYLOAD: usize = 7_900;

/// Announces revoked tokens to other processes (PostgreSQL; a no-op on
/// SQLite): the notification carries their digests, so a listener evicts them
/// without a poll (it polls anyway when it has `accessTokenEvents`
/// subscribers, who are told which token ended and how). Call inside the
/// revoking transaction.
pub async fn notify_revoked<'a>(
    conn: &impl ConnectionTrait,
    digests: impl Iterator<Item = &'a [u8]>,
) -> Result<(), sea_orm::DbErr> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let mut payload = String::from(TOKENS_PAYLOAD);
    for (i, d) in digests.enumerate() {
        if i > 0 {
            payload.push(',');
        }
        URL_SAFE_NO_PAD.encode_string(d, &mut payload);
        if payload.len() > MAX_PAYLOAD {
            return notify(conn).await;
        }
    }
    // Digests are base64url: nothing in them needs quoting.
    conn.execute_unprepared(&format!("NOTIFY {CHANNEL}, '{payload}'"))
        .await?;
    Ok(())
}

/// Evicts the tokens a notification names; `false` when it names none (a
/// notification without a payload: poll).
fn evict_named(core: &Core, payload: &str) -> bool {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let Some(list) = payload.strip_prefix(TOKENS_PAYLOAD) else {
        return false;
    };
    let mut any = false;
    for d in list
        .split(',')
        .filter_map(|d| URL_SAFE_NO_PAD.decode(d).ok())
    {
        core.credentials.evict(Kind::Token, &d);
        core.live.token_revoked(&d);
        any = true;
    }
    any
}

/// Announces a new token to other processes' `accessTokenEvents` subscribers
/// (PostgreSQL; a no-op on SQLite). Call inside the issuing transaction.
pub async fn notify_created(conn: &impl ConnectionTrait) -> Result<(), sea_orm::DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared(&format!("NOTIFY {CREATED_CHANNEL}"))
            .await?;
    }
    Ok(())
}

/// Polls once: evicts what was revoked, disabled or ended at or after `since`.
pub async fn poll(core: &Core, since: DateTime<Utc>) -> Result<(), sea_orm::DbErr> {
    // Read even with no `accessTokenEvents` subscriber: publishing records
    // them as seen, so a later subscriber is not told of them.
    let created: Vec<(String, String)> = access_token::Entity::find()
        .select_only()
        .column(access_token::Column::Id)
        .column(access_token::Column::UserId)
        .filter(access_token::Column::CreatedAt.gte(since))
        .into_tuple()
        .all(&core.db)
        .await?;
    for (id, user_id) in &created {
        core.token_events.publish(TokenChange::Created, id, user_id);
    }
    type Revoked = (Vec<u8>, String, String, String, Option<DateTime<Utc>>);
    let revoked: Vec<Revoked> = access_token::Entity::find()
        .select_only()
        .column(access_token::Column::Digest)
        .column(access_token::Column::Id)
        .column(access_token::Column::UserId)
        .column(access_token::Column::Name)
        .column(access_token::Column::RevokedAt)
        .filter(access_token::Column::RevokedAt.gte(since))
        // A rotated token in its grace period is revoked once it ends.
        .filter(access_token::Column::RevokedAt.lte(Utc::now()))
        .into_tuple()
        .all(&core.db)
        .await?;
    for (d, id, user_id, name, revoked_at) in &revoked {
        core.credentials.evict(Kind::Token, d);
        core.live.token_revoked(d);
        // Rotation by name revokes the old token at the instant the new one
        // is created, in one transaction.
        if core.token_events.ended(id) {
            continue; // already published here
        }
        let successor = access_token::Entity::find()
            .filter(access_token::Column::UserId.eq(user_id.as_str()))
            .filter(access_token::Column::Name.eq(name.as_str()))
            .filter(access_token::Column::CreatedAt.between(
                revoked_at.map(|t| t - chrono::Duration::seconds(1)),
                revoked_at.map(|t| t + chrono::Duration::seconds(1)),
            ))
            .filter(access_token::Column::Id.ne(id.as_str()))
            .one(&core.db)
            .await?;
        let change = if successor.is_some() {
            TokenChange::Rotated
        } else {
            TokenChange::Revoked
        };
        core.token_events.publish(change, id, user_id);
    }
    let users: Vec<String> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::DisabledAt.gte(since))
        .into_tuple()
        .all(&core.db)
        .await?;
    for u in &users {
        core.credentials.evict_user(u);
        core.live.user_disabled(u);
    }
    let sessions: Vec<Vec<u8>> = session_end::Entity::find()
        .select_only()
        .column(session_end::Column::Digest)
        .filter(session_end::Column::EndedAt.gte(since))
        .into_tuple()
        .all(&core.db)
        .await?;
    for d in &sessions {
        core.credentials.evict(Kind::Session, d);
        core.live.session_ended(d);
    }
    Ok(())
}

/// Whether this process's PostgreSQL listener has subscribed (cleared when its
/// connection fails; never set on SQLite). A revocation committed while it is
/// subscribed wakes the poll at once.
pub struct Listening(watch::Sender<bool>);

impl Default for Listening {
    fn default() -> Self {
        Listening(watch::Sender::new(false))
    }
}

impl Listening {
    fn set(&self, subscribed: bool) {
        self.0.send_replace(subscribed);
    }

    /// Resolves once the listener is subscribed (at once if it is).
    pub async fn subscribed(&self) {
        let _ = self.0.subscribe().wait_for(|s| *s).await;
    }
}

/// Deletes ended-session markers nobody needs any more.
async fn prune(core: &Core) -> Result<(), sea_orm::DbErr> {
    session_end::Entity::delete_many()
        .filter(session_end::Column::EndedAt.lt(Utc::now() - SESSION_END_RETENTION))
        .exec(&core.db)
        .await?;
    Ok(())
}

/// Listens on PostgreSQL and wakes the poller on every notification; reconnects
/// after a failure (the timer covers the gap).
async fn listen(core: Arc<Core>, wake: Arc<Notify>) {
    use sea_orm::sqlx::postgres::PgListener;
    loop {
        let pool = core.db.get_postgres_connection_pool();
        let result: Result<(), sea_orm::sqlx::Error> = async {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen_all([CHANNEL, CREATED_CHANNEL]).await?;
            core.revocation_listener.set(true);
            loop {
                let n = listener.recv().await?;
                // Named tokens are evicted here and now. The poll still runs
                // (at most one per MIN_POLL_GAP): it records each change as
                // published, so a subscriber arriving later is not told of
                // one that happened before it subscribed, but for those
                // committed within the gap before the poll.
                if n.channel() == CHANNEL {
                    evict_named(&core, n.payload());
                }
                wake.notify_one();
            }
        }
        .await;
        core.revocation_listener.set(false);
        if let Err(e) = result {
            tracing::warn!(error = %e, "revocation listener lost its connection; retrying");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs the poller (and, on PostgreSQL, the listener) until the task is aborted.
pub async fn run(core: Arc<Core>) {
    let wake = Arc::new(Notify::new());
    let _listener = (core.db.get_database_backend() == DbBackend::Postgres)
        .then(|| AbortOnDrop(tokio::spawn(listen(core.clone(), wake.clone()))));
    let overlap = chrono::Duration::from_std(OVERLAP).unwrap_or_default();
    let mut last = Utc::now();
    let mut polls: u64 = 0;
    let mut previous = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(core.config.revocation_poll_interval) => {}
            _ = wake.notified() => {
                // Notifications arriving meanwhile are folded into this poll.
                tokio::time::sleep_until(previous + MIN_POLL_GAP).await;
            }
        }
        previous = tokio::time::Instant::now();
        let started = Utc::now();
        match poll(&core, last - overlap).await {
            Ok(()) => last = started,
            Err(e) => tracing::warn!(error = %e, "revocation poll failed; retrying"),
        }
        polls += 1;
        if polls % 10_000 == 1 {
            if let Err(e) = prune(&core).await {
                tracing::warn!(error = %e, "could not prune ended sessions");
            }
        }
    }
}

/// Stops the listener when the poller is stopped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
