use sea_orm_migration::prelude::*;

/// Rotation by name looks for the owner's tokens of one name that are still
/// active (not revoked, or revoked only at the end of a grace period). The
/// index on `(user_id, name)` led it to every token that name ever had, each
/// read from the table to test `revoked_at`: a service that rotates a token
/// named `ci` every hour made every rotation slower than the last. With
/// `revoked_at` in the index, the active one is a point lookup and the ones in
/// a grace period a short range (issue 14). It replaces the old index, which
/// is its prefix.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_access_tokens_user_name_revoked")
                    .table(AccessTokens::Table)
                    .col(AccessTokens::UserId)
                    .col(AccessTokens::Name)
                    .col(AccessTokens::RevokedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_access_tokens_user_name")
                    .table(AccessTokens::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_access_tokens_user_name")
                    .table(AccessTokens::Table)
                    .col(AccessTokens::UserId)
                    .col(AccessTokens::Name)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_access_tokens_user_name_revoked")
                    .table(AccessTokens::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum AccessTokens {
    Table,
    UserId,
    Name,
    RevokedAt,
}
