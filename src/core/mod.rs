//! The core: everything a request or a command can reach, opened once by
//! [`Core::open`]. Services, the guard and the background tasks take `&Core`;
//! the GraphQL schema, the router and the cookie policy live above it (in
//! `app`), so the command line opens a core and never builds a schema.

pub mod cache;
pub mod keys;
pub mod last_used;
pub mod live;
pub mod revocations;
pub mod throttle;
pub mod writer;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use sea_orm::DatabaseConnection;

use crate::auth::scopes::Scopes;
use crate::config::Config;
use crate::db;
use crate::metrics::Metrics;
use cache::{CredentialCache, Kind};
use keys::KeyRing;
use last_used::LastUsed;
use throttle::SignInThrottle;

/// What every path needs: the database, the settings, the deployment's keys and
/// issuers, the verified-credential cache, the throttles, the last-used batch
/// and the metrics.
pub struct Core {
    /// The connection pool, migrations applied.
    pub db: DatabaseConnection,
    /// The resolved settings this core was opened with.
    pub config: Config,
    /// The address this process was opened for (the bound one when serving).
    pub listen: SocketAddr,
    /// The deployment's signing keys and issuers.
    pub keys: KeyRing,
    /// Failed sign-ins, per account and per address.
    pub throttle: SignInThrottle,
    /// Failed client authentications at the OAuth endpoints.
    pub client_throttle: SignInThrottle,
    /// Last-used times noted by requests, written in batches.
    pub last_used: LastUsed,
    /// Verified credentials seen recently (digest → principal).
    pub credentials: CredentialCache,
    /// Whether the revocation listener is subscribed (PostgreSQL).
    pub revocation_listener: crate::core::revocations::Listening,
    /// Counters served at `/metrics`.
    pub metrics: Metrics,
    /// The deployment's scopes: tokengate's and the application's.
    pub scopes: Scopes,
    /// Open WebSocket connections, ended when their credential is.
    pub live: live::LiveConnections,
    /// Token changes for `accessTokenEvents`, from this process and others.
    pub token_events: live::TokenEvents,
    /// Wakes the webhook delivery worker when this process queues events.
    pub webhook_wake: tokio::sync::Notify,
    /// On SQLite, the thread that writes for this process's busiest writers
    /// (issuing and revoking tokens, the expiry scan, last-used times),
    /// committing them in batches: see [`Core::write`].
    writer: Option<writer::Writer>,
}

impl Core {
    /// Connects, applies migrations, records the deployment's issuer on its
    /// first start (`--issuer`, else `http://<listen>`), and loads the signing keys.
    pub async fn open(config: Config, listen: SocketAddr) -> anyhow::Result<Core> {
        let scopes = Scopes::new(&config.scopes).map_err(anyhow::Error::msg)?;
        let db = db::connect(&config.database_url).await?;
        db::migrate(&db, config.migrations).await?;
        keys::choose_issuer(&db, config.issuer.as_deref(), &format!("http://{listen}")).await?;
        let verify_window =
            (!config.allow_non_expiring_tokens).then_some(config.max_token_lifetime);
        let keys = KeyRing::load(&db, verify_window).await?;
        let sqlite =
            sea_orm::ConnectionTrait::get_database_backend(&db) == sea_orm::DbBackend::Sqlite;
        let writer = db::connect_writer(&config.database_url)
            .await?
            .or_else(|| sqlite.then(|| db.clone()))
            .map(writer::Writer::start)
            .transpose()?;
        Ok(Core {
            db,
            listen,
            keys,
            throttle: SignInThrottle::default(),
            client_throttle: SignInThrottle::default(),
            last_used: LastUsed::default(),
            credentials: CredentialCache::default(),
            revocation_listener: Default::default(),
            metrics: Metrics::default(),
            scopes,
            live: Default::default(),
            token_events: Default::default(),
            webhook_wake: Default::default(),
            writer,
            config,
        })
    }

    /// Runs `work` in a transaction, as `TransactionTrait::transaction`
    /// does: on PostgreSQL in one of its own, on SQLite in a savepoint of
    /// the writer thread's next batch ([`writer`]), committed with the writes
    /// queued beside it. On SQLite `work` must open with a write (see
    /// [`writer`]), and once begun it runs to its end even if the caller
    /// goes; on PostgreSQL a caller that goes rolls its transaction back.
    ///
    /// SQLite has one writer at a time. Writers that find it busy sleep in
    /// SQLite's busy handler, in steps that grow to 100 ms and without any
    /// order, so under concurrent issuing the unlucky ones waited half a
    /// second while the lock sat idle between sleeps. One thread writing in
    /// arrival order, on one connection kept for it ([`db::connect_writer`],
    /// whose page cache then stays valid), means the database lock is almost
    /// always free when asked for, and a batch's commit writes each changed
    /// page once for all its writes.
    pub async fn write<F, T, E>(&self, work: F) -> Result<T, sea_orm::TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c sea_orm::DatabaseTransaction,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, E>> + Send + 'c>,
            > + Send
            + 'static,
        T: Send + 'static,
        E: std::fmt::Display + std::fmt::Debug + Send + 'static,
    {
        match &self.writer {
            Some(writer) => writer.write(work).await,
            None => sea_orm::TransactionTrait::transaction(&self.db, work).await,
        }
    }

    /// On SQLite, the writer thread's writes and commits so far.
    pub fn write_counts(&self) -> Option<&writer::Counts> {
        self.writer.as_ref().map(writer::Writer::counts)
    }

    /// Where this process is reached: the configured `--issuer`, else
    /// `http://<listen address>` (the deployment's issuer may name the address
    /// of its first start).
    pub fn base_url(&self) -> String {
        self.config
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// Called after a revocation commits: evicts the token here at once (other
    /// processes learn of it from `core::revocations`).
    pub fn on_token_revoked(&self, digest: &[u8]) {
        self.metrics.tokens_revoked.fetch_add(1, Ordering::Relaxed);
        self.credentials.evict(Kind::Token, digest);
        self.live.token_revoked(digest);
    }

    /// Called after a user (or service account) is disabled.
    pub fn on_user_disabled(&self, user_id: &str) {
        self.credentials.evict_user(user_id);
        self.live.user_disabled(user_id);
    }

    /// Called after a sign-out commits.
    pub fn on_session_ended(&self, digest: &[u8]) {
        self.credentials.evict(Kind::Session, digest);
        self.live.session_ended(digest);
    }
}
