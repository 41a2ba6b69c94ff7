use sea_orm_migration::prelude::*;

/// An index of each owner's active tokens (not revoked), for the per-account
/// cap's count on every issue (issue 14). Without it the count visited every
/// token the owner ever held, revoked ones included, inside the issuing
/// transaction: a rotating service's issues grew slower with its history.
/// Partial indexes have the same syntax on SQLite and PostgreSQL.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_access_tokens_active ON access_tokens (user_id, expires_at) \
                 WHERE revoked_at IS NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX idx_access_tokens_active")
            .await?;
        Ok(())
    }
}
