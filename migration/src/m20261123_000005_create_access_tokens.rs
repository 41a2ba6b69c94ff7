use sea_orm_migration::prelude::*;

use super::m20261123_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AccessTokens {
    Table,
    Id,
    UserId,
    Name,
    Digest,
    Scopes,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
    RevokedBy,
    ParentId,
    ClientId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AccessTokens::Table)
                    .col(
                        ColumnDef::new(AccessTokens::Id)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AccessTokens::UserId).string().not_null())
                    .col(ColumnDef::new(AccessTokens::Name).string().not_null())
                    .col(
                        ColumnDef::new(AccessTokens::Digest)
                            .binary()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(AccessTokens::Scopes).string().not_null())
                    .col(
                        ColumnDef::new(AccessTokens::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AccessTokens::ExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(AccessTokens::LastUsedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(AccessTokens::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(AccessTokens::RevokedBy).string().null())
                    .col(ColumnDef::new(AccessTokens::ParentId).string().null())
                    .col(ColumnDef::new(AccessTokens::ClientId).string().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(AccessTokens::Table, AccessTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
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
            .create_index(
                Index::create()
                    .name("idx_access_tokens_parent")
                    .table(AccessTokens::Table)
                    .col(AccessTokens::ParentId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AccessTokens::Table).to_owned())
            .await
    }
}
