//! An issued access token. The token itself is never stored: only its SHA-256.

use sea_orm::entity::prelude::*;

/// A row of `access_tokens`: one issued token, active, expired or revoked.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_tokens")]
pub struct Model {
    /// The JWT's `jti`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The owner (`users.id`, a person or a service account): the JWT's `sub`.
    pub user_id: String,
    /// A label, not unique. A named API token replaces (revokes) the owner's
    /// active token of the same name. Client-credentials tokens are named
    /// `client_credentials` (single active token: it rotates the same way) or
    /// `client_credentials <uuid>`; exchanged tokens `exchanged from <parent's name>`.
    pub name: String,
    /// SHA-256 of the whole compact JWT.
    pub digest: Vec<u8>,
    /// Space-separated scopes.
    pub scopes: String,
    /// When it was issued (the JWT's `iat`).
    pub created_at: DateTimeUtc,
    /// The JWT's `exp`; `None` for a non-expiring token.
    pub expires_at: Option<DateTimeUtc>,
    /// When a request last presented it, written in batches (so it may lag);
    /// `None` if never used.
    pub last_used_at: Option<DateTimeUtc>,
    /// The peer address of that last use (written with `last_used_at`).
    pub last_used_ip: Option<String>,
    /// When it was revoked; `None` while it is not. Set once, never cleared.
    pub revoked_at: Option<DateTimeUtc>,
    /// The user whose action revoked it (tokens exchanged from it carry the
    /// same); `None` when not revoked, or revoked from the CLI.
    pub revoked_by: Option<String>,
    /// The token that created this one, when a token (not a session) did.
    pub parent_id: Option<String>,
    /// Set for tokens issued to machine clients.
    pub client_id: Option<String>,
    /// How it was issued. Exchanged tokens die with their parent.
    pub grant: Grant,
    /// The smallest expiry-warning window already announced to webhooks, in
    /// seconds; `Some(0)` once `token.expired` was; `None` before any.
    pub expiry_notice: Option<i64>,
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

/// The table's relations: each token belongs to a user.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    /// The owner, by `user_id`.
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
