//! The deployment's issuers. The most recently chosen one is written into new
//! tokens; every issuer the deployment has had still verifies.

use sea_orm::entity::prelude::*;

/// A row of `issuers`: one `iss` value the deployment has used.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "issuers")]
pub struct Model {
    /// The `iss` claim, such as `https://auth.example.com`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub issuer: String,
    /// When it was last chosen (at first start, or by a changed `--issuer`).
    pub chosen_at: DateTimeUtc,
}

/// The table's relations: none.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
