//! On SQLite, the busiest writers' transactions committed together.
//!
//! SQLite writes one transaction at a time, and each commit writes every page
//! it changed to the WAL: for an issued token about twenty (a token's six
//! indexes and its audit event's four), most of them the same pages as the
//! previous issue's. So one thread writes for the whole process: it takes the
//! writes waiting in arrival order, runs each in a savepoint of one open
//! transaction, and commits them together (group commit). A write that fails
//! (returns an error) is rolled back to its savepoint and fails alone; the
//! writes before and after it in the batch commit. Each caller learns its
//! result only once the batch has committed, so nothing is acted on (a cache
//! evicted, an event published, a token handed out) that a failed commit
//! would undo. A failed commit, a savepoint that cannot be opened, released
//! or rolled back, or a write that panics fails every write of its batch.
//!
//! Every write must open with a write statement, as each did when it had a
//! transaction of its own: the batch then takes SQLite's write lock at its
//! first statement, and no write reads a snapshot that a later upgrade to
//! writing could find stale.
//!
//! Batches are as large as the queue is deep, up to [`MAX_BATCH`]: a lone
//! write commits at once, and under load the commits grow fewer rather than
//! the queue longer. PostgreSQL writes concurrently and does not come here.
//!
//! The writer runs on a thread of its own (a current-thread Tokio runtime),
//! not as a task among the requests: its writes are one chain of statements,
//! each a hand-off to the connection's thread and back, and as a task it
//! waited behind request tasks at every step when the workers were busy.

use std::fmt::{Debug, Display};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_graphql::futures_util::FutureExt;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionError, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

/// Writes committed in one transaction at most: bounds the time a write
/// waits behind others in its batch (an issue takes well under a
/// millisecond; an expiry page or a last-used flush, a few).
pub const MAX_BATCH: usize = 64;

/// Tells one caller its result, once the batch's fate is known: `None` when
/// the batch committed, else why it did not.
type Finish = Box<dyn FnOnce(Option<&str>) + Send>;

/// One write, type-erased: run in a savepoint of the batch, it answers how to
/// finish (`None`: not run, its caller gone) and whether the batch can go on (`false` when a savepoint could
/// not be opened, released or rolled back, which leaves the transaction in
/// an unknown state).
type Job = Box<
    dyn for<'c> FnOnce(
            &'c DatabaseTransaction,
        ) -> Pin<Box<dyn Future<Output = Option<(Finish, bool)>> + Send + 'c>>
        + Send,
>;

/// The queue of the writer thread; the core holds it.
pub struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
    counts: Arc<Counts>,
}

/// Writes and commits so far, served at `/metrics`.
#[derive(Debug, Default)]
pub struct Counts {
    /// Writes run in committed batches (those rolled back alone, to their
    /// savepoint, included).
    pub writes: AtomicU64,
    /// Transactions committed (each one batch of writes).
    pub commits: AtomicU64,
}

impl Writer {
    /// Starts the writer's thread on `db` (SQLite: the connection kept for
    /// writers). It ends when the writer is dropped, after its last batch.
    pub fn start(db: DatabaseConnection) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::unbounded_channel();
        let counts = Arc::new(Counts::default());
        let task = run(db, queue, Arc::clone(&counts));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("tokengate-writer".into())
            .spawn(move || runtime.block_on(task))?;
        Ok(Writer { jobs, counts })
    }

    /// Writes and commits so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Runs `work` in the next batch, as `TransactionTrait::transaction`
    /// would in a transaction of its own: `Err(Transaction)` when `work`
    /// failed (its writes undone), `Err(Connection)` when the database did.
    /// Once begun, the work runs to its end even if this future is dropped;
    /// dropped before its turn, it is not run.
    pub async fn write<F, T, E>(&self, work: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send
            + 'static,
        T: Send + 'static,
        E: Display + Debug + Send + 'static,
    {
        let (tell, told) = oneshot::channel();
        let job: Job = Box::new(move |batch| {
            Box::pin(async move {
                // A caller gone before its turn (a client that hung up) had
                // nothing written, as when its own transaction was dropped:
                // once written, what it would do after the commit (evict,
                // publish, hand the token out) would be left undone.
                if tell.is_closed() {
                    return None;
                }
                let result = batch.transaction(work).await;
                let sound = !matches!(result, Err(TransactionError::Connection(_)));
                let finish: Finish = Box::new(move |failed| {
                    let result = match (result, failed) {
                        (Ok(_), Some(why)) => {
                            Err(TransactionError::Connection(DbErr::Custom(why.to_owned())))
                        }
                        (result, _) => result,
                    };
                    // The caller may have gone; its write stands or falls alike.
                    let _ = tell.send(result);
                });
                Some((finish, sound))
            })
        });
        if self.jobs.send(job).is_err() {
            return Err(stopped());
        }
        told.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped<E>() -> TransactionError<E> {
    TransactionError::Connection(DbErr::Custom(
        "the write was not committed: the SQLite writer failed (see the log)".to_owned(),
    ))
}

async fn run(db: DatabaseConnection, mut queue: mpsc::UnboundedReceiver<Job>, counts: Arc<Counts>) {
    while let Some(first) = queue.recv().await {
        let batch = match db.begin().await {
            Ok(batch) => batch,
            Err(e) => {
                // Dropped unrun, the job tells its caller the writer failed.
                tracing::error!(error = %e, "could not begin a write transaction");
                drop(first);
                continue;
            }
        };
        let mut finishes: Vec<Finish> = Vec::new();
        let mut sound = true;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            // A panic in one write must not end the thread (and every write
            // after it): the batch is rolled back and its callers told.
            match AssertUnwindSafe(job(&batch)).catch_unwind().await {
                Ok(Some((finish, ok))) => {
                    finishes.push(finish);
                    sound = ok;
                }
                Ok(None) => {}
                Err(_) => {
                    tracing::error!("a write panicked; its batch is rolled back");
                    sound = false;
                }
            }
            if !sound || finishes.len() >= MAX_BATCH {
                break;
            }
            next = queue.try_recv().ok();
        }
        let failed = if sound {
            match batch.commit().await {
                Ok(()) => None,
                Err(e) => {
                    tracing::error!(error = %e, "could not commit a batch of writes");
                    Some(format!("the write was not committed: {e}"))
                }
            }
        } else {
            if let Err(e) = batch.rollback().await {
                tracing::error!(error = %e, "could not roll back a batch of writes");
            }
            Some("the write was rolled back with its batch: another write in it failed (see the log)".to_owned())
        };
        if failed.is_none() {
            counts.commits.fetch_add(1, Ordering::Relaxed);
            counts
                .writes
                .fetch_add(finishes.len() as u64, Ordering::Relaxed);
        }
        for finish in finishes {
            finish(failed.as_deref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

    async fn database() -> DatabaseConnection {
        let mut opts = sea_orm::ConnectOptions::new("sqlite::memory:");
        opts.max_connections(1).sqlx_logging(false);
        let db = Database::connect(opts).await.unwrap();
        db.execute_unprepared("CREATE TABLE t (n INTEGER NOT NULL)")
            .await
            .unwrap();
        db
    }

    fn insert(n: i64) -> Statement {
        Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO t (n) VALUES (?)",
            [n.into()],
        )
    }

    /// Polls a write once (which queues it) and checks it waits for its batch.
    async fn queue<F: Future + Unpin>(write: &mut F) {
        std::future::poll_fn(|cx| {
            assert!(Pin::new(&mut *write).poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
    }

    async fn rows(db: &DatabaseConnection) -> Vec<i64> {
        let rows = db
            .query_all(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT n FROM t ORDER BY n",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get_by_index(0).unwrap())
            .collect()
    }

    /// Writes queued while one runs commit with it, in one transaction; the
    /// one that fails is undone alone and told its own error.
    #[tokio::test]
    async fn queued_writes_commit_together_and_a_failure_fails_alone() {
        let db = database().await;
        let writer = Arc::new(Writer::start(db.clone()).unwrap());
        let (open, gate) = oneshot::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let first = tokio::spawn({
            let writer = Arc::clone(&writer);
            async move {
                writer
                    .write::<_, _, String>(move |txn| {
                        Box::pin(async move {
                            txn.execute(insert(1)).await.map_err(|e| e.to_string())?;
                            started.send(()).ok();
                            gate.await.ok();
                            Ok(1)
                        })
                    })
                    .await
            }
        });
        running.await.unwrap();
        // Queued (their first poll sends them) while the first holds the batch open.
        let mut failing = Box::pin(writer.write::<_, i64, String>(|txn| {
            Box::pin(async move {
                txn.execute(insert(2)).await.map_err(|e| e.to_string())?;
                Err("refused".to_owned())
            })
        }));
        let mut third = Box::pin(writer.write::<_, _, String>(|txn| {
            Box::pin(async move {
                txn.execute(insert(3)).await.map_err(|e| e.to_string())?;
                Ok(3)
            })
        }));
        queue(&mut failing).await;
        queue(&mut third).await;
        open.send(()).unwrap();
        let (failing, third) = (failing.await, third.await);
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert!(
            matches!(&failing, Err(TransactionError::Transaction(e)) if e == "refused"),
            "{failing:?}"
        );
        assert_eq!(third.unwrap(), 3);
        assert_eq!(rows(&db).await, vec![1, 3]);
        assert_eq!(writer.counts().commits.load(Ordering::Relaxed), 1);
        assert_eq!(writer.counts().writes.load(Ordering::Relaxed), 3);
    }

    /// A caller gone before its write's turn (a client that hung up) has
    /// nothing written, as when its own transaction was dropped unrun.
    #[tokio::test]
    async fn a_write_dropped_before_its_turn_is_not_run() {
        let db = database().await;
        let writer = Writer::start(db.clone()).unwrap();
        let (open, gate) = oneshot::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let mut first = Box::pin(writer.write::<_, _, String>(move |txn| {
            Box::pin(async move {
                txn.execute(insert(1)).await.map_err(|e| e.to_string())?;
                started.send(()).ok();
                gate.await.ok();
                Ok(1)
            })
        }));
        let mut gone = Box::pin(writer.write::<_, _, String>(|txn| {
            Box::pin(async move {
                txn.execute(insert(2)).await.map_err(|e| e.to_string())?;
                Ok(2)
            })
        }));
        queue(&mut first).await;
        running.await.unwrap();
        queue(&mut gone).await;
        drop(gone);
        open.send(()).unwrap();
        assert_eq!(first.await.unwrap(), 1);
        assert_eq!(rows(&db).await, vec![1]);
        assert_eq!(writer.counts().writes.load(Ordering::Relaxed), 1);
    }

    /// A write that panics takes its batch down with it (its callers are
    /// told), and the writer goes on with the next.
    #[tokio::test]
    async fn a_panic_rolls_back_its_batch_and_the_writer_goes_on() {
        let db = database().await;
        let writer = Writer::start(db.clone()).unwrap();
        let panicking = writer.write::<_, (), String>(|txn| {
            Box::pin(async move {
                txn.execute(insert(1)).await.map_err(|e| e.to_string())?;
                panic!("a bug in a write");
            })
        });
        assert!(matches!(
            panicking.await,
            Err(TransactionError::Connection(_))
        ));
        let after = writer
            .write::<_, _, String>(|txn| {
                Box::pin(async move {
                    txn.execute(insert(2)).await.map_err(|e| e.to_string())?;
                    Ok(2)
                })
            })
            .await;
        assert_eq!(after.unwrap(), 2);
        assert_eq!(rows(&db).await, vec![2]);
    }
}
