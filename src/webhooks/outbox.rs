//! The outbox: an event is written in the same transaction as the change it
//! describes, with one delivery row per subscribed webhook, so a committed
//! change is never without its event (and a rolled-back one never has one).

use chrono::{DateTime, SecondsFormat, Utc};
use entity::{access_token, user, webhook, webhook_delivery, webhook_event};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, NotSet, QuerySelect, Set};
use serde_json::{json, Value};

/// The webhooks of one transaction, read once (with a share lock on
/// PostgreSQL; SQLite has one writer at a time): a concurrent deleteWebhook
/// waits for the transaction, then its cascade removes what it queued,
/// instead of failing the change.
pub struct Outbox {
    /// (webhook id, its space-separated event types)
    hooks: Vec<(String, String)>,
}

impl Outbox {
    /// The outbox kept in `slot`, opened there by the first call (for a
    /// transaction that must not read the webhooks before its first write:
    /// on SQLite a transaction opens with its write).
    pub async fn open_once<'s>(
        slot: &'s mut Option<Outbox>,
        txn: &impl ConnectionTrait,
    ) -> Result<&'s Outbox, sea_orm::DbErr> {
        if slot.is_none() {
            *slot = Some(Outbox::open(txn).await?);
        }
        Ok(slot.as_ref().expect("opened above"))
    }

    /// Reads the registered webhooks on the caller's transaction.
    pub async fn open(txn: &impl ConnectionTrait) -> Result<Outbox, sea_orm::DbErr> {
        let hooks = webhook::Entity::find()
            .lock_shared()
            .all(txn)
            .await?
            .into_iter()
            .map(|w| (w.id, w.events))
            .collect();
        Ok(Outbox { hooks })
    }

    fn subscribers(&self, event_type: &str) -> Vec<String> {
        self.hooks
            .iter()
            .filter(|(_, events)| events.split(' ').any(|e| e == event_type))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Queues `event_type` about `token` (its fields, then `extra`'s
    /// additions) for every webhook subscribed to it; with none, does no work
    /// at all (no owner lookup, no rows).
    pub async fn token_event(
        &self,
        txn: &impl ConnectionTrait,
        event_type: &'static str,
        token: &access_token::Model,
        extra: impl FnOnce(&mut Value),
        now: DateTime<Utc>,
    ) -> Result<(), sea_orm::DbErr> {
        let hooks = self.subscribers(event_type);
        if hooks.is_empty() {
            return Ok(());
        }
        let mut data = token_data(txn, token).await?;
        extra(&mut data);
        enqueue(txn, hooks, event_type, data, now).await
    }
}

/// Writes one event and a delivery row per webhook in `hooks`.
async fn enqueue(
    txn: &impl ConnectionTrait,
    hooks: Vec<String>,
    event_type: &'static str,
    data: Value,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let payload = json!({
        "type": event_type,
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    });
    let event = webhook_event::ActiveModel {
        id: NotSet,
        message_id: Set(format!("msg_{}", uuid::Uuid::now_v7().simple())),
        event_type: Set(event_type.to_owned()),
        payload: Set(payload.to_string()),
        created_at: Set(now),
    }
    .insert(txn)
    .await?;
    let rows = hooks
        .into_iter()
        .map(|webhook_id| webhook_delivery::ActiveModel {
            id: NotSet,
            event_id: Set(event.id),
            webhook_id: Set(webhook_id),
            status: Set("pending".into()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            claimed_until: Set(None),
            last_attempt_at: Set(None),
            response_status: Set(None),
            last_error: Set(None),
            delivered_at: Set(None),
            created_at: Set(now),
        });
    webhook_delivery::Entity::insert_many(rows)
        .exec(txn)
        .await?;
    Ok(())
}

/// A token's fields for an event's `data`, with its owner's id and email:
/// never its value or digest.
async fn token_data(
    txn: &impl ConnectionTrait,
    token: &access_token::Model,
) -> Result<Value, sea_orm::DbErr> {
    let email = user::Entity::find_by_id(token.user_id.as_str())
        .one(txn)
        .await?
        .map(|u| u.email);
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
    Ok(json!({
        "id": token.id,
        "name": token.name,
        "scopes": token.scopes.split_whitespace().collect::<Vec<_>>(),
        "createdAt": time(Some(token.created_at)),
        "expiresAt": time(token.expires_at),
        "revokedAt": time(token.revoked_at),
        "lastUsedAt": time(token.last_used_at),
        "grant": grant_name(token.grant),
        "clientId": token.client_id,
        "owner": { "id": token.user_id, "email": email },
    }))
}

fn grant_name(g: access_token::Grant) -> &'static str {
    match g {
        access_token::Grant::Api => "api",
        access_token::Grant::ClientCredentials => "client_credentials",
        access_token::Grant::TokenExchange => "token_exchange",
    }
}

/// Wakes this process's delivery worker after a commit that queued events
/// (other processes find them at their next poll).
pub fn wake(core: &crate::core::Core) {
    core.webhook_wake.notify_one();
}
