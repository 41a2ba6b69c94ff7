//! A machine client. Its identity is a `users` row with role `service` (same id),
//! so its tokens, disabling and ownership work like a person's.

use sea_orm::entity::prelude::*;

/// A row of `service_accounts`: a machine client and its OAuth credentials.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "service_accounts")]
pub struct Model {
    /// Also the backing user's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// A label chosen by the administrator who created it.
    pub name: String,
    /// The OAuth `client_id`: `tgc_` and 22 random characters.
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
    /// When it was created.
    pub created_at: DateTimeUtc,
    /// The administrator who created it (tokengate always sets it).
    pub created_by: Option<String>,
    /// When it was disabled (its backing user too); `None` while enabled.
    pub disabled_at: Option<DateTimeUtc>,
}

/// The table's relations: none.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
