use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SessionEnds {
    Table,
    Digest,
    EndedAt,
}

#[derive(DeriveIden)]
enum AccessTokens {
    Table,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    DisabledAt,
}

/// What other processes poll to evict cached credentials: ended sessions (whose
/// rows are deleted) and indexes on the revocation and disable times.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SessionEnds::Table)
                    .col(
                        ColumnDef::new(SessionEnds::Digest)
                            .binary()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SessionEnds::EndedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_session_ends_ended_at")
                    .table(SessionEnds::Table)
                    .col(SessionEnds::EndedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_access_tokens_revoked_at")
                    .table(AccessTokens::Table)
                    .col(AccessTokens::RevokedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_disabled_at")
                    .table(Users::Table)
                    .col(Users::DisabledAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_users_disabled_at")
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_access_tokens_revoked_at")
                    .table(AccessTokens::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(SessionEnds::Table).to_owned())
            .await
    }
}
