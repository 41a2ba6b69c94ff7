//! A registered webhook receiver (SPEC §10).

use sea_orm::entity::prelude::*;

/// A row of `webhooks`: where events are sent, which ones, and the secret
/// they are signed with.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    /// A UUID v7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The absolute http(s) URL deliveries are POSTed to.
    pub url: String,
    /// Space-separated event types, such as `token.created token.revoked`.
    pub events: String,
    /// The Standard Webhooks signing secret, `whsec_<base64>`. Kept as is:
    /// signing needs it (unlike tokens, which are stored as digests).
    pub secret: String,
    /// When it was registered.
    pub created_at: DateTimeUtc,
    /// The administrator who registered it; `None` from the CLI.
    pub created_by: Option<String>,
}

/// The table's relations: none declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
