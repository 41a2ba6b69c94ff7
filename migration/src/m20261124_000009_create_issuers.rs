use sea_orm_migration::prelude::*;

/// The deployment's issuers (`iss`): the newest chosen one goes into new tokens;
/// every one ever chosen keeps verifying (tokens still expire on their own).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Issuers {
    Table,
    Issuer,
    ChosenAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Issuers::Table)
                    .col(
                        ColumnDef::new(Issuers::Issuer)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Issuers::ChosenAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Issuers::Table).to_owned())
            .await
    }
}
