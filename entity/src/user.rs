//! A person who signs in, or a service account's identity: either owns tokens.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub email: String,
    /// PHC-formatted argon2id hash.
    pub password_hash: String,
    pub role: Role,
    pub created_at: DateTimeUtc,
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

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
