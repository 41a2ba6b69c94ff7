//! A person who signs in, or a service account's identity: either owns tokens.

use sea_orm::entity::prelude::*;

/// A row of `users`: a person, or a service account's identity.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// A UUIDv7; a service account's is also its `service_accounts.user_id`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The sign-in name, unique; a person's is stored trimmed and lowercase. A
    /// service account's is `<client_id>@clients.tokengate.invalid`; service
    /// accounts never sign in.
    #[sea_orm(unique)]
    pub email: String,
    /// PHC-formatted argon2id hash; `!` for a service account, which no
    /// password matches.
    pub password_hash: String,
    /// What the user may do by default.
    pub role: Role,
    /// When the user was created.
    pub created_at: DateTimeUtc,
    /// When the user was disabled; `None` while enabled. A disabled user's
    /// sessions and tokens are refused.
    pub disabled_at: Option<DateTimeUtc>,
}

/// A user's role, stored as its name. An unknown name in the database is an
/// error when the row is read, never silently another role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Role {
    /// Holds every scope.
    #[sea_orm(string_value = "admin")]
    Admin,
    /// Holds every scope but `users:*`.
    #[sea_orm(string_value = "member")]
    Member,
    /// A service account's identity: its scopes come from its account.
    #[sea_orm(string_value = "service")]
    Service,
}

impl Role {
    /// The stored name: `admin`, `member` or `service`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Service => "service",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The table's relations: none.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
