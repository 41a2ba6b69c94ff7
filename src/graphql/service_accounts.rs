//! Service accounts (SPEC §5 "Machine clients"): administrators create them, rotate
//! their secrets and disable them.

use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::service_account;

use super::{boxed, core_of, ip, principal, requires_scope};
use crate::error::GqlResult;
use crate::service_accounts::{self, NewServiceAccount, DEFAULT_LIFETIME_SECS};

/// A machine client: authenticates at /oauth2/token with its client id and secret.
pub struct ServiceAccount(pub service_account::Model);

#[Object]
impl ServiceAccount {
    async fn id(&self) -> ID {
        ID(self.0.user_id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn client_id(&self) -> &str {
        &self.0.client_id
    }
    async fn scopes(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        let scopes = &core_of(ctx).gql()?.scopes;
        Ok(scopes.names(scopes.parse_stored(&self.0.scopes)))
    }
    /// Seconds a client-credentials token lives (default 28800, 8 hours).
    async fn access_token_lifetime(&self) -> i32 {
        i32::try_from(self.0.access_token_lifetime).unwrap_or(i32::MAX)
    }
    /// Issuing a token ends the client's earlier ones.
    async fn single_active_token(&self) -> bool {
        self.0.single_active_token
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn disabled_at(&self) -> Option<DateTime<Utc>> {
        self.0.disabled_at
    }
}

/// A service account with its client secret: the one response that carries it.
#[derive(SimpleObject)]
pub struct ServiceAccountSecretPayload {
    pub service_account: ServiceAccount,
    /// Shown this once; only its digest is stored.
    pub client_secret: String,
}

#[derive(Default)]
pub struct ServiceAccountQuery;

#[Object]
impl ServiceAccountQuery {
    /// Every service account (administrators).
    #[graphql(directive = requires_scope::apply("users:read"))]
    async fn service_accounts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many (1 to 500); all when not given.")] first: Option<i32>,
        #[graphql(desc = "The id of the previous page's last service account.")] after: Option<ID>,
    ) -> async_graphql::Result<Vec<ServiceAccount>> {
        let page = super::page(first, after).gql()?;
        Ok(
            boxed(service_accounts::list(&core_of(ctx).gql()?.db, &page))
                .await
                .gql()?
                .into_iter()
                .map(ServiceAccount)
                .collect(),
        )
    }
}

#[derive(Default)]
pub struct ServiceAccountMutation;

#[Object]
impl ServiceAccountMutation {
    /// Creates a machine client; its secret is in this response only.
    #[graphql(directive = requires_scope::apply("users:write"))]
    async fn create_service_account(
        &self,
        ctx: &Context<'_>,
        name: String,
        scopes: Vec<String>,
        #[graphql(default_with = "Some(28800)")] access_token_lifetime: Option<i32>,
        #[graphql(default_with = "Some(false)")] single_active_token: Option<bool>,
    ) -> async_graphql::Result<ServiceAccountSecretPayload> {
        let req = NewServiceAccount {
            name,
            scopes,
            access_token_lifetime: access_token_lifetime
                .map(i64::from)
                .unwrap_or(DEFAULT_LIFETIME_SECS),
            single_active_token: single_active_token.unwrap_or(false),
        };
        let (account, secret) = boxed(service_accounts::create(
            core_of(ctx).gql()?,
            principal(ctx).gql()?,
            req,
            ip(ctx),
        ))
        .await
        .gql()?;
        Ok(ServiceAccountSecretPayload {
            service_account: ServiceAccount(account),
            client_secret: secret.expose().to_owned(),
        })
    }

    /// Replaces the client secret; the old one stops working at once.
    #[graphql(directive = requires_scope::apply("users:write"))]
    async fn rotate_service_account_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<ServiceAccountSecretPayload> {
        let (account, secret) = boxed(service_accounts::rotate_secret(
            core_of(ctx).gql()?,
            principal(ctx).gql()?,
            &id,
            ip(ctx),
        ))
        .await
        .gql()?;
        Ok(ServiceAccountSecretPayload {
            service_account: ServiceAccount(account),
            client_secret: secret.expose().to_owned(),
        })
    }

    /// Disables the account: its secret and every token it holds stop working.
    #[graphql(directive = requires_scope::apply("users:write"))]
    async fn disable_service_account(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<ServiceAccount> {
        Ok(ServiceAccount(
            boxed(service_accounts::disable(
                core_of(ctx).gql()?,
                principal(ctx).gql()?,
                &id,
                ip(ctx),
            ))
            .await
            .gql()?,
        ))
    }
}
