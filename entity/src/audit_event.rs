//! Who did what, when, and from which address.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    /// The user who acted, when known.
    pub actor_id: Option<String>,
    /// e.g. `sign_in`, `sign_in_failed`, `token_issued`.
    pub action: String,
    /// What the action was about (a user id, a token id).
    pub subject: Option<String>,
    pub ip: Option<String>,
    /// Free-form JSON detail; never secrets.
    pub detail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
