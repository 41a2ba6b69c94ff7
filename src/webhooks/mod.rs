//! Webhooks (SPEC §10): administrators register receivers; token changes are
//! written to an outbox in the same transaction as the change ([`outbox`]);
//! [`deliver`] signs them per the Standard Webhooks specification and sends
//! them with retries; [`expiry`] finds tokens entering a warning window or
//! expiring.

pub mod deliver;
pub mod expiry;
pub mod outbox;
mod target;

use base64::Engine;
use chrono::Utc;
use entity::{webhook, webhook_delivery, webhook_event};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use crate::audit::{self, Event};
use crate::auth::secret::Secret;
use crate::core::Core;
use crate::error::{AppError, AppResult};
pub use target::{check_url, is_private};

/// Every event type a webhook may subscribe to.
pub const EVENT_TYPES: [&str; 5] = [
    "token.created",
    "token.rotated",
    "token.revoked",
    "token.expiring",
    "token.expired",
];

/// Most webhooks one deployment may register.
pub const MAX_WEBHOOKS: u64 = 100;

/// A freshly registered webhook and its signing secret (shown this once).
#[derive(Debug)]
pub struct Created {
    /// The stored row.
    pub webhook: webhook::Model,
    /// `whsec_<base64>`; the same value the row holds, returned to its creator only here.
    pub secret: Secret,
}

/// Validates an event list: not empty, every name known; duplicates dropped,
/// order kept.
pub fn parse_events(events: &[String]) -> AppResult<Vec<&'static str>> {
    if events.is_empty() {
        return Err(AppError::BadInput(format!(
            "events is empty: name at least one of {}",
            EVENT_TYPES.join(", ")
        )));
    }
    let mut out: Vec<&'static str> = Vec::new();
    for e in events {
        let known = EVENT_TYPES
            .iter()
            .find(|t| **t == e.trim())
            .ok_or_else(|| {
                AppError::BadInput(format!(
                    "unknown event `{}`: events are {}",
                    e.chars().take(64).collect::<String>(),
                    EVENT_TYPES.join(", ")
                ))
            })?;
        if !out.contains(known) {
            out.push(known);
        }
    }
    Ok(out)
}

/// Registers a webhook. Bad input (URL, events) is refused and nothing is written.
pub async fn create(
    core: &Core,
    actor_id: Option<&str>,
    url: &str,
    events: &[String],
    ip: Option<&str>,
) -> AppResult<Created> {
    let url = check_url(url, core.config.allow_private_webhook_targets, true).await?;
    let events = parse_events(events)?.join(" ");
    let secret = new_secret();
    let row = webhook::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        url: Set(url),
        events: Set(events),
        secret: Set(secret.expose().to_owned()),
        created_at: Set(Utc::now()),
        created_by: Set(actor_id.map(str::to_owned)),
    };
    let actor = actor_id.map(str::to_owned);
    let ip = ip.map(str::to_owned);
    let webhook = core
        .db
        .transaction::<_, _, AppError>(move |txn| {
            Box::pin(async move {
                use sea_orm::ConnectionTrait;
                // One creation at a time, so the count below is exact: an
                // advisory lock on PostgreSQL; SQLite holds its write lock
                // from the first write.
                if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
                    txn.execute_unprepared("SELECT pg_advisory_xact_lock(7305100001)")
                        .await?;
                }
                let row = row.insert(txn).await?;
                if webhook::Entity::find().count(txn).await? > MAX_WEBHOOKS {
                    return Err(AppError::BadInput(format!(
                        "this deployment already has {MAX_WEBHOOKS} webhooks, the most allowed: delete one first"
                    )));
                }
                audit::record(
                    txn,
                    Event {
                        actor_id: actor.as_deref(),
                        action: "webhook_created",
                        subject: Some(&row.id),
                        ip: ip.as_deref(),
                        detail: Some(serde_json::json!({ "url": row.url, "events": row.events })),
                        owner_id: None,
                    },
                )
                .await;
                Ok(row)
            })
        })
        .await?;
    Ok(Created { webhook, secret })
}

/// Every webhook, oldest first.
pub async fn list(core: &Core) -> AppResult<Vec<webhook::Model>> {
    Ok(webhook::Entity::find()
        .order_by_asc(webhook::Column::CreatedAt)
        .order_by_asc(webhook::Column::Id)
        .all(&core.db)
        .await?)
}

/// Deletes a webhook and its pending deliveries; answers the deleted row.
pub async fn delete(
    core: &Core,
    actor_id: Option<&str>,
    id: &str,
    ip: Option<&str>,
) -> AppResult<webhook::Model> {
    let id = id.to_owned();
    let actor = actor_id.map(str::to_owned);
    let ip = ip.map(str::to_owned);
    let row = core
        .db
        .transaction::<_, _, AppError>(move |txn| {
            Box::pin(async move {
                let row = webhook::Entity::find_by_id(id.as_str())
                    .one(txn)
                    .await?
                    .ok_or_else(|| AppError::NotFound(format!("no webhook with id `{id}`")))?;
                // Its deliveries go with it (ON DELETE CASCADE).
                webhook::Entity::delete_by_id(id.as_str()).exec(txn).await?;
                audit::record(
                    txn,
                    Event {
                        actor_id: actor.as_deref(),
                        action: "webhook_deleted",
                        subject: Some(&row.id),
                        ip: ip.as_deref(),
                        detail: Some(serde_json::json!({ "url": row.url })),
                        owner_id: None,
                    },
                )
                .await;
                Ok(row)
            })
        })
        .await?;
    Ok(row)
}

/// A delivery with its event's id and type, for the administrators' view.
#[derive(Debug)]
pub struct DeliveryView {
    /// The delivery row.
    pub delivery: webhook_delivery::Model,
    /// The event's `webhook-id` (`msg_…`).
    pub message_id: String,
    /// The event type.
    pub event_type: String,
}

/// A webhook's most recent deliveries, newest first.
pub async fn recent_deliveries(
    core: &Core,
    webhook_id: &str,
    first: u64,
) -> AppResult<Vec<DeliveryView>> {
    let rows = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::WebhookId.eq(webhook_id))
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(first)
        .all(&core.db)
        .await?;
    let ids: Vec<i64> = rows.iter().map(|d| d.event_id).collect();
    let events = webhook_event::Entity::find()
        .filter(webhook_event::Column::Id.is_in(ids))
        .all(&core.db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|delivery| {
            let e = events.iter().find(|e| e.id == delivery.event_id)?;
            Some(DeliveryView {
                message_id: e.message_id.clone(),
                event_type: e.event_type.clone(),
                delivery,
            })
        })
        .collect())
}

/// A new signing secret: `whsec_` and 32 random bytes in standard base64, the
/// shape Standard Webhooks libraries accept.
fn new_secret() -> Secret {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}
