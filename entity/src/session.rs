//! A browser session. Only the SHA-256 digest of the session id is stored.

use sea_orm::entity::prelude::*;

/// A row of `sessions`: one signed-in browser, until it expires or signs out.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    /// SHA-256 of the 256-bit session id carried by the cookie.
    #[sea_orm(primary_key, auto_increment = false)]
    pub digest: Vec<u8>,
    /// The signed-in user.
    pub user_id: String,
    /// When the user signed in.
    pub created_at: DateTimeUtc,
    /// When the session stops being accepted; a session is never extended.
    pub expires_at: DateTimeUtc,
    /// The client address that signed in.
    pub ip: Option<String>,
}

/// The table's relations: each session belongs to a user.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    /// The signed-in user, by `user_id`.
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
