//! Opening the database and running migrations.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use migration::{MigrationTrait, Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// Opens a pool sized for the backend.
///
/// SQLite: WAL so readers never wait for the writer, foreign keys on, a busy
/// timeout so concurrent writers queue instead of failing, and a small pool
/// (sea-orm would default to one connection, serialising every read). The
/// per-acquire ping is turned off: a local file cannot have gone away.
pub async fn connect(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    if is_sqlite(url) {
        Database::connect(sqlite_options(url, 8)).await
    } else {
        let mut opts = options(url);
        opts.max_connections(16).min_connections(1);
        Database::connect(opts).await
    }
}

/// On SQLite, a second pool of one connection for the busiest writers
/// (issuing, revoking, the expiry scan, last-used times), on which the
/// core's writer thread commits them in batches (`Core::write`); `None` elsewhere, and for an in-memory
/// database (a second connection would open another database).
///
/// SQLite empties a connection's page cache whenever another connection has
/// changed the database since it last looked; writers spread over the
/// readers' pool found their cache emptied at nearly every transaction and
/// read the same pages again. A connection that alone writes keeps its
/// cache (BENCHMARKS.md gives what it bought).
pub async fn connect_writer(url: &str) -> Result<Option<DatabaseConnection>, sea_orm::DbErr> {
    if !is_sqlite(url) || url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    Database::connect(sqlite_options(url, 1)).await.map(Some)
}

/// Runs a `SELECT COUNT(…)` and answers its number.
pub async fn count(
    conn: &impl sea_orm::ConnectionTrait,
    query: &sea_orm::sea_query::SelectStatement,
) -> Result<i64, DbErr> {
    let backend = conn.get_database_backend();
    match conn.query_one(backend.build(query)).await? {
        Some(row) => row.try_get_by_index::<i64>(0),
        None => Ok(0),
    }
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

fn options(url: &str) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10));
    opts
}

fn sqlite_options(url: &str, connections: u32) -> ConnectOptions {
    let mut opts = options(url);
    opts.max_connections(connections)
        .min_connections(1)
        .test_before_acquire(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
        });
    opts
}

/// Applies every pending migration, tokengate's and the application's.
pub async fn migrate(db: &DatabaseConnection, migrations: Migrations) -> Result<(), DbErr> {
    (migrations.0)(db).await
}

type MigrateFn = for<'a> fn(
    &'a DatabaseConnection,
) -> Pin<Box<dyn Future<Output = Result<(), DbErr>> + Send + 'a>>;

/// The migrations a deployment applies: tokengate's, then an application's
/// (SPEC §7), recorded in the same `seaql_migrations` table, so an
/// application's migration names must not collide with tokengate's
/// (`mYYYYMMDD_NNNNNN_…`; prefix yours with the application's name).
#[derive(Clone, Copy)]
pub struct Migrations(MigrateFn);

impl Migrations {
    /// tokengate's own migrations and `A`'s after them.
    pub fn with<A: MigratorTrait + 'static>() -> Migrations {
        Migrations(|db| Box::pin(Both::<A>::up(db, None)))
    }
}

impl Default for Migrations {
    /// tokengate's own migrations only.
    fn default() -> Self {
        Migrations::with::<NoMigrations>()
    }
}

impl fmt::Debug for Migrations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Migrations")
    }
}

/// An application without tables of its own.
pub struct NoMigrations;

#[async_trait::async_trait]
impl MigratorTrait for NoMigrations {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        Vec::new()
    }
}

struct Both<A>(PhantomData<A>);

#[async_trait::async_trait]
impl<A: MigratorTrait + 'static> MigratorTrait for Both<A> {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = Migrator::migrations();
        all.extend(A::migrations());
        all
    }
}

/// A page of a listing that can grow without bound: at most `first` rows
/// (all when `None`, as before listings took pages), after the row whose id
/// is `after` (the last one of the page before).
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// How many rows; `None`: every remaining one.
    pub first: Option<u64>,
    /// The id of the previous page's last row.
    pub after: Option<String>,
}

/// The largest `first` a listing accepts.
pub const MAX_PAGE: u64 = 500;
