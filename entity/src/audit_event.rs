//! Who did what, when, and from which address.

use sea_orm::entity::prelude::*;

/// A row of `audit_events`: one recorded action. Rows are only ever inserted.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    /// Assigned by the database, increasing with insertion.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// When the action happened.
    pub at: DateTimeUtc,
    /// The user who acted, when known.
    pub actor_id: Option<String>,
    /// e.g. `sign_in`, `sign_in_failed`, `token_issued`.
    pub action: String,
    /// What the action was about (a user id, a token id).
    pub subject: Option<String>,
    /// The client address of the request; `None` when there was none (the CLI).
    pub ip: Option<String>,
    /// Free-form JSON detail; never secrets.
    pub detail: Option<String>,
    /// Whose thing the subject is (a token's owner), when it is not the actor's.
    pub owner_id: Option<String>,
}

/// The table's relations: none.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
