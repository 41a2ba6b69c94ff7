//! A session that was ended (signed out). The session row is deleted; this
//! marker lets other processes evict the session from their caches.

use sea_orm::entity::prelude::*;

/// A row of `session_ends`: the digest of a session that was signed out, kept
/// two days.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_ends")]
pub struct Model {
    /// The ended session's digest (`sessions.digest`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub digest: Vec<u8>,
    /// When it was signed out.
    pub ended_at: DateTimeUtc,
}

/// The table's relations: none.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
