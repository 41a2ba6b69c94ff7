//! An issued access token. The token itself is never stored: only its SHA-256.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_tokens")]
pub struct Model {
    /// The JWT's `jti`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// SHA-256 of the whole compact JWT.
    pub digest: Vec<u8>,
    /// Space-separated scopes.
    pub scopes: String,
    pub created_at: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_by: Option<String>,
    /// The token that created this one, when a token (not a session) did.
    pub parent_id: Option<String>,
    /// Set for tokens issued to machine clients.
    pub client_id: Option<String>,
    /// How it was issued. Exchanged tokens die with their parent.
    pub grant: Grant,
}

/// How a token was issued, stored as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Grant {
    /// `updateAccessToken` or the CLI.
    #[sea_orm(string_value = "api")]
    Api,
    /// OAuth client credentials (RFC 6749 §4.4).
    #[sea_orm(string_value = "client_credentials")]
    ClientCredentials,
    /// RFC 8693 token exchange: revoked with its parent.
    #[sea_orm(string_value = "token_exchange")]
    TokenExchange,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
