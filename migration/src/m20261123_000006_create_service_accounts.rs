use sea_orm_migration::prelude::*;

use super::m20261123_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ServiceAccounts {
    Table,
    UserId,
    Name,
    ClientId,
    SecretDigest,
    Scopes,
    AccessTokenLifetime,
    SingleActiveToken,
    CreatedAt,
    CreatedBy,
    DisabledAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ServiceAccounts::Table)
                    .col(
                        ColumnDef::new(ServiceAccounts::UserId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ServiceAccounts::Name).string().not_null())
                    .col(
                        ColumnDef::new(ServiceAccounts::ClientId)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(ServiceAccounts::SecretDigest)
                            .binary()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ServiceAccounts::Scopes).string().not_null())
                    .col(
                        ColumnDef::new(ServiceAccounts::AccessTokenLifetime)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ServiceAccounts::SingleActiveToken)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ServiceAccounts::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ServiceAccounts::CreatedBy).string().null())
                    .col(
                        ColumnDef::new(ServiceAccounts::DisabledAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ServiceAccounts::Table, ServiceAccounts::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ServiceAccounts::Table).to_owned())
            .await
    }
}
