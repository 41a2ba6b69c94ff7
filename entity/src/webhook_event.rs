//! The webhook outbox: one row per event, written in the same transaction as
//! the change it describes.

use sea_orm::entity::prelude::*;

/// A row of `webhook_events`: an event and the exact body every receiver gets.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    /// Assigned by the database.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The `webhook-id` header, `msg_<uuid>`: the same on every attempt, so
    /// receivers can drop duplicates.
    pub message_id: String,
    /// `token.created`, `token.rotated`, `token.revoked`, `token.expiring`, `token.expired`.
    pub event_type: String,
    /// The JSON body, `{"type", "timestamp", "data"}`; never a secret.
    pub payload: String,
    /// When the change happened.
    pub created_at: DateTimeUtc,
}

/// The table's relations: none declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
