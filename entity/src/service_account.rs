//! A machine client. Its identity is a `users` row with role `service` (same id),
//! so its tokens, disabling and ownership work like a person's.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "service_accounts")]
pub struct Model {
    /// Also the backing user's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    pub name: String,
    #[sea_orm(unique)]
    pub client_id: String,
    /// SHA-256 of the 256-bit client secret.
    pub secret_digest: Vec<u8>,
    /// Space-separated scopes the client may be granted.
    pub scopes: String,
    /// Seconds a client-credentials token lives.
    pub access_token_lifetime: i64,
    /// Issuing a client-credentials token revokes the client's earlier ones.
    pub single_active_token: bool,
    pub created_at: DateTimeUtc,
    pub created_by: Option<String>,
    pub disabled_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
