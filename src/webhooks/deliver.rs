//! The delivery worker: claims due deliveries (each row by one worker at a
//! time, across processes: `FOR UPDATE SKIP LOCKED` on PostgreSQL, SQLite's
//! single writer), signs them per the Standard Webhooks specification and
//! POSTs them, each on its own task, so a slow or dead receiver delays no
//! other. A non-2xx answer, an error or a timeout schedules a retry with
//! exponential backoff until `--webhook-retry-for` (a day) has passed since
//! the event; then the delivery is `failed`. A worker that dies mid-attempt
//! leaves its claim to expire, and the row is attempted again: at least once.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, SubsecRound, Utc};
use entity::{webhook, webhook_delivery, webhook_event};
use hmac::{Hmac, Mac};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter,
};

use crate::core::Core;

/// Most deliveries one claim takes.
const BATCH: u64 = 32;
/// Most attempts in flight to one webhook from one process: a slow receiver
/// holds at most these, and the rest of the batch goes to the others.
const PER_WEBHOOK: usize = 8;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2 * 3600);

/// Signs `body` as Standard Webhooks does: base64 of HMAC-SHA256, keyed by the
/// secret's decoded bytes, over `id.timestamp.body`; answers the
/// `webhook-signature` value (`v1,<base64>`).
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &str) -> Option<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{message_id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    Some(format!("v1,{}", b64.encode(mac.finalize().into_bytes())))
}

/// The wait before attempt `attempts + 1`: `base`, doubled per attempt made,
/// at most two hours, ±10 % so receivers that failed together are not
/// retried together.
pub fn backoff(base: Duration, attempts: i32) -> Duration {
    use rand::Rng;
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let wait = base
        .saturating_mul(2u32.saturating_pow(exp))
        .min(MAX_BACKOFF);
    wait.mul_f64(rand::thread_rng().gen_range(0.9..1.1))
}

/// Runs the worker until the task is aborted: a claim whenever woken (an
/// event committed here) or every `--webhook-poll-interval` (events from
/// other processes, retries coming due).
pub async fn run(core: Arc<Core>) {
    let client = super::target::client(
        core.config.allow_private_webhook_targets,
        core.config.webhook_timeout,
    );
    let busy: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    // Pruned at start, then hourly.
    let mut pruned: Option<tokio::time::Instant> = None;
    let mut counted = tokio::time::Instant::now() - core.config.webhook_poll_interval;
    loop {
        if pruned.is_none_or(|p| p.elapsed() >= Duration::from_secs(3600)) {
            pruned = Some(tokio::time::Instant::now());
            if let Err(e) = prune(&core).await {
                tracing::warn!(error = %e, "could not prune old webhook deliveries");
            }
        }
        let claimed = match claim(&core, &busy).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim webhook deliveries");
                Vec::new()
            }
        };
        let full = claimed.len() as u64 == BATCH;
        // At most PER_WEBHOOK in flight to one webhook: the rest of a batch
        // that went to one receiver is handed back at once.
        let mut excess = Vec::new();
        let mut start = Vec::new();
        {
            let mut b = busy.lock().expect("busy map");
            for job in claimed {
                let n = b.entry(job.webhook.id.clone()).or_default();
                if *n >= PER_WEBHOOK {
                    excess.push(job.delivery);
                } else {
                    *n += 1;
                    start.push(job);
                }
            }
        }
        if let Err(e) = release(&core, &excess).await {
            tracing::warn!(error = %e, "could not hand back webhook deliveries");
        }
        for job in start {
            let (core, client, busy) = (core.clone(), client.clone(), busy.clone());
            tokio::spawn(async move {
                let hook = job.webhook.id.clone();
                attempt(&core, &client, job).await;
                let mut b = busy.lock().expect("busy map");
                if let Some(n) = b.get_mut(&hook) {
                    *n -= 1;
                    if *n == 0 {
                        b.remove(&hook);
                    }
                }
                drop(b);
                // A slot freed: claim again without waiting for the poll.
                core.webhook_wake.notify_one();
            });
        }
        // The gauge is refreshed at most once per poll interval, not after
        // every attempt that wakes this loop.
        if counted.elapsed() >= core.config.webhook_poll_interval {
            counted = tokio::time::Instant::now();
            if let Ok(n) = pending(&core).await {
                core.metrics
                    .webhook_pending
                    .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
            }
        }
        if !full {
            let _ = tokio::time::timeout(
                core.config.webhook_poll_interval,
                core.webhook_wake.notified(),
            )
            .await;
        }
    }
}

/// Hands claimed deliveries back untried: unclaimed, the attempt uncounted.
async fn release(core: &Core, rows: &[webhook_delivery::Model]) -> Result<(), sea_orm::DbErr> {
    for d in rows {
        let mut update = webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::ClaimedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                webhook_delivery::Column::Attempts,
                Expr::col(webhook_delivery::Column::Attempts).sub(1),
            )
            .filter(webhook_delivery::Column::Id.eq(d.id));
        if let Some(claim) = d.claimed_until {
            update = update.filter(webhook_delivery::Column::ClaimedUntil.eq(claim));
        }
        update.exec(&core.db).await?;
    }
    Ok(())
}

/// How long delivered and failed deliveries are kept (then pruned, with
/// events no delivery refers to any more).
const KEEP: chrono::Duration = chrono::Duration::days(7);

/// Deletes finished deliveries older than [`KEEP`] and events left without deliveries.
async fn prune(core: &Core) -> Result<(), sea_orm::DbErr> {
    let before = Utc::now() - KEEP;
    webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::Status.ne("pending"))
        .filter(webhook_delivery::Column::CreatedAt.lt(before))
        .exec(&core.db)
        .await?;
    let mut live = Query::select();
    live.column(webhook_delivery::Column::EventId)
        .from(webhook_delivery::Entity);
    webhook_event::Entity::delete_many()
        .filter(webhook_event::Column::Id.not_in_subquery(live))
        .exec(&core.db)
        .await?;
    Ok(())
}

async fn pending(core: &Core) -> Result<u64, sea_orm::DbErr> {
    webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq("pending"))
        .count(&core.db)
        .await
}

/// One claimed delivery with what sending it needs.
struct Job {
    delivery: webhook_delivery::Model,
    event: webhook_event::Model,
    webhook: webhook::Model,
}

/// Claims up to [`BATCH`] due deliveries for this worker until their lease
/// ends (the timeout and a margin), skipping webhooks already at
/// [`PER_WEBHOOK`] attempts in flight here.
async fn claim(
    core: &Core,
    busy: &Mutex<HashMap<String, usize>>,
) -> Result<Vec<Job>, sea_orm::DbErr> {
    let now = Utc::now().trunc_subsecs(6);
    // Long enough for an attempt to end (twice its timeout, and a margin),
    // short enough that a dead worker's claims come back soon.
    let lease = now
        + chrono::Duration::from_std(core.config.webhook_timeout * 2 + Duration::from_secs(5))
            .unwrap_or(chrono::Duration::seconds(60));
    let full: Vec<String> = busy
        .lock()
        .expect("busy map")
        .iter()
        .filter(|(_, n)| **n >= PER_WEBHOOK)
        .map(|(k, _)| k.clone())
        .collect();
    let mut due = Query::select();
    due.column(webhook_delivery::Column::Id)
        .from(webhook_delivery::Entity)
        .and_where(webhook_delivery::Column::Status.eq("pending"))
        .and_where(webhook_delivery::Column::NextAttemptAt.lte(now))
        .cond_where(
            Condition::any()
                .add(webhook_delivery::Column::ClaimedUntil.is_null())
                .add(webhook_delivery::Column::ClaimedUntil.lt(now)),
        )
        .order_by(webhook_delivery::Column::NextAttemptAt, sea_orm::Order::Asc)
        .limit(BATCH);
    if !full.is_empty() {
        due.and_where(webhook_delivery::Column::WebhookId.is_not_in(full));
    }
    if core.db.get_database_backend() == DbBackend::Postgres {
        due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let claimed = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::ClaimedUntil, Expr::value(lease))
        .col_expr(
            webhook_delivery::Column::Attempts,
            Expr::col(webhook_delivery::Column::Attempts).add(1),
        )
        .filter(webhook_delivery::Column::Id.in_subquery(due))
        .exec_with_returning(&core.db)
        .await?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let events = webhook_event::Entity::find()
        .filter(webhook_event::Column::Id.is_in(claimed.iter().map(|d| d.event_id)))
        .all(&core.db)
        .await?;
    let hooks = webhook::Entity::find()
        .filter(webhook::Column::Id.is_in(claimed.iter().map(|d| d.webhook_id.clone())))
        .all(&core.db)
        .await?;
    Ok(claimed
        .into_iter()
        .filter_map(|delivery| {
            let event = events.iter().find(|e| e.id == delivery.event_id)?.clone();
            let webhook = hooks.iter().find(|w| w.id == delivery.webhook_id)?.clone();
            Some(Job {
                delivery,
                event,
                webhook,
            })
        })
        .collect())
}

/// What one attempt came to.
enum Outcome {
    Delivered(u16),
    Refused(u16),
    Failed(String),
}

/// Sends one delivery and records the outcome on its row (only while the
/// claim is still this worker's).
async fn attempt(core: &Core, client: &reqwest::Client, job: Job) {
    let started = Utc::now();
    let outcome = send(core, client, &job).await;
    let now = Utc::now();
    let d = &job.delivery;
    let mut update = webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_delivery::Column::LastAttemptAt,
            Expr::value(started),
        )
        .filter(webhook_delivery::Column::Id.eq(d.id))
        .filter(webhook_delivery::Column::Status.eq("pending"));
    if let Some(claim) = d.claimed_until {
        update = update.filter(webhook_delivery::Column::ClaimedUntil.eq(claim));
    }
    let m = &core.metrics;
    let (status, error) = match &outcome {
        Outcome::Delivered(s) => (Some(*s), None),
        Outcome::Refused(s) => (Some(*s), Some(format!("the receiver answered HTTP {s}"))),
        Outcome::Failed(e) => (None, Some(e.clone())),
    };
    update = update
        .col_expr(
            webhook_delivery::Column::ResponseStatus,
            Expr::value(status.map(i32::from)),
        )
        .col_expr(
            webhook_delivery::Column::LastError,
            Expr::value(error.clone()),
        );
    if let Outcome::Delivered(_) = outcome {
        m.webhook_delivered.fetch_add(1, Ordering::Relaxed);
        update = update
            .col_expr(webhook_delivery::Column::Status, Expr::value("delivered"))
            .col_expr(webhook_delivery::Column::DeliveredAt, Expr::value(now));
    } else {
        let wait = backoff(core.config.webhook_retry_base, d.attempts);
        let next = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(2));
        let give_up = core.config.webhook_retry_for;
        let deadline =
            d.created_at + chrono::Duration::from_std(give_up).unwrap_or(chrono::Duration::days(1));
        if next > deadline {
            m.webhook_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                webhook = %job.webhook.id,
                event = %job.event.message_id,
                attempts = d.attempts,
                error = error.as_deref().unwrap_or(""),
                "webhook delivery failed for good: retries exhausted"
            );
            update = update.col_expr(webhook_delivery::Column::Status, Expr::value("failed"));
        } else {
            m.webhook_retries.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                webhook = %job.webhook.id,
                event = %job.event.message_id,
                attempts = d.attempts,
                retry_in_ms = wait.as_millis() as u64,
                error = error.as_deref().unwrap_or(""),
                "webhook delivery failed; will retry"
            );
            update = update.col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(next));
        }
    }
    if let Err(e) = update.exec(&core.db).await {
        tracing::warn!(error = %e, "could not record a webhook delivery's outcome");
    }
}

async fn send(core: &Core, client: &reqwest::Client, job: &Job) -> Outcome {
    let url = match super::check_url(
        &job.webhook.url,
        core.config.allow_private_webhook_targets,
        false,
    )
    .await
    {
        Ok(u) => u,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let timestamp = Utc::now().timestamp();
    let Some(signature) = sign(
        &job.webhook.secret,
        &job.event.message_id,
        timestamp,
        &job.event.payload,
    ) else {
        return Outcome::Failed("the webhook's secret is not a whsec_ value".into());
    };
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &job.event.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(job.event.payload.clone())
        .send()
        .await;
    match sent {
        Ok(resp) if resp.status().is_success() => Outcome::Delivered(resp.status().as_u16()),
        Ok(resp) => Outcome::Refused(resp.status().as_u16()),
        Err(e) if e.is_timeout() => Outcome::Failed("timed out".into()),
        // Without the URL: a receiver's URL may carry a secret in its path.
        Err(e) => Outcome::Failed(crate::error::chain(&e.without_url())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's test vectors.
    #[test]
    fn signs_like_the_specification() {
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(5);
        let first = backoff(base, 1);
        assert!(first >= Duration::from_millis(4500) && first <= Duration::from_millis(5500));
        let fourth = backoff(base, 4);
        assert!(fourth >= Duration::from_secs(36) && fourth <= Duration::from_secs(44));
        assert!(backoff(base, 40) <= MAX_BACKOFF.mul_f64(1.1));
    }
}
