//! One event on its way to one webhook: its attempts and their outcome.

use sea_orm::entity::prelude::*;

/// A row of `webhook_deliveries`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    /// Assigned by the database.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The event (`webhook_events.id`).
    pub event_id: i64,
    /// The receiver (`webhooks.id`).
    pub webhook_id: String,
    /// `pending`, `delivered` or `failed` (retries exhausted).
    pub status: String,
    /// Attempts made so far.
    pub attempts: i32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: DateTimeUtc,
    /// A worker holds the row until then; after, another may claim it (the
    /// holder died mid-attempt).
    pub claimed_until: Option<DateTimeUtc>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<DateTimeUtc>,
    /// The receiver's HTTP status on the last attempt, when it answered.
    pub response_status: Option<i32>,
    /// Why the last attempt failed, when it did.
    pub last_error: Option<String>,
    /// When a 2xx answer was received.
    pub delivered_at: Option<DateTimeUtc>,
    /// When the event was queued for this receiver.
    pub created_at: DateTimeUtc,
}

/// The table's relations: none declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
