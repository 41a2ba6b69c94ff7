//! Schema changes, one per file, applied in order by `tokengate migrate` and on `serve`.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_users;
mod m20261123_000002_create_sessions;
mod m20261123_000003_create_audit_events;
mod m20261123_000004_create_signing_keys;
mod m20261123_000005_create_access_tokens;
mod m20261123_000006_create_service_accounts;
mod m20261123_000007_add_grant_to_access_tokens;
mod m20261123_000008_create_session_ends_and_revocation_indexes;
mod m20261124_000009_create_issuers;
mod m20261124_000010_add_last_used_ip_to_access_tokens;
mod m20261124_000011_create_webhooks;
mod m20261124_000012_index_active_tokens;
mod m20261124_000013_index_tokens_by_name_and_revocation;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_users::Migration),
            Box::new(m20261123_000002_create_sessions::Migration),
            Box::new(m20261123_000003_create_audit_events::Migration),
            Box::new(m20261123_000004_create_signing_keys::Migration),
            Box::new(m20261123_000005_create_access_tokens::Migration),
            Box::new(m20261123_000006_create_service_accounts::Migration),
            Box::new(m20261123_000007_add_grant_to_access_tokens::Migration),
            Box::new(m20261123_000008_create_session_ends_and_revocation_indexes::Migration),
            Box::new(m20261124_000009_create_issuers::Migration),
            Box::new(m20261124_000010_add_last_used_ip_to_access_tokens::Migration),
            Box::new(m20261124_000011_create_webhooks::Migration),
            Box::new(m20261124_000012_index_active_tokens::Migration),
            Box::new(m20261124_000013_index_tokens_by_name_and_revocation::Migration),
        ]
    }
}
