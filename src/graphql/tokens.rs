//! Token queries and mutations (SPEC §5). Resolvers only translate; the rules
//! live in [`crate::tokens`].

use std::sync::atomic::Ordering;

use async_graphql::{Context, Object, ID};

use super::types::{AccessToken, UpdateAccessTokenPayload};
use super::{core_of, ip, principal, requires_scope};
use crate::auth::{may_act_on_tokens, TokenAccess};
use crate::error::GqlResult;
use crate::service_accounts;
use crate::tokens::{self, IssueRequest};

#[derive(Default)]
pub struct TokenQuery;

#[Object]
impl TokenQuery {
    /// Your tokens, newest first; only active ones unless `includeInactive`.
    #[graphql(directive = requires_scope::apply("tokens:read"))]
    async fn access_tokens(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(false)")] include_inactive: Option<bool>,
        #[graphql(
            desc = "Administrators with `users:read`: another user's or service account's tokens."
        )]
        owner_id: Option<ID>,
    ) -> async_graphql::Result<Vec<AccessToken>> {
        let p = principal(ctx).gql()?;
        let owner = owner_id.map_or_else(|| p.user_id.clone(), |id| id.0);
        may_act_on_tokens(p, &owner, TokenAccess::Read).gql()?;
        let rows = tokens::list(
            &core_of(ctx).gql()?.db,
            &owner,
            include_inactive.unwrap_or(false),
        )
        .await
        .gql()?;
        Ok(rows.into_iter().map(AccessToken).collect())
    }

    /// One of your tokens (administrators with `users:read`: anyone's); null when
    /// there is none you may read.
    #[graphql(directive = requires_scope::apply("tokens:read"))]
    async fn access_token(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<AccessToken>> {
        let p = principal(ctx).gql()?;
        match tokens::get_visible(&core_of(ctx).gql()?.db, p, &id, TokenAccess::Read).await {
            Ok(t) => Ok(Some(AccessToken(t))),
            Err(crate::AppError::NotFound(_)) => Ok(None),
            Err(e) => Err(e).gql(),
        }
    }
}

#[derive(Default)]
pub struct TokenMutation;

#[Object]
impl TokenMutation {
    /// Issues a token valid until `expirationTime` (Unix seconds). Issuing under a
    /// name that already has an active token replaces it: the earlier one is revoked.
    #[graphql(directive = requires_scope::apply("tokens:write"))]
    async fn update_access_token(
        &self,
        ctx: &Context<'_>,
        expiration_time: Option<i32>,
        #[graphql(default_with = "Some(\"default\".to_string())")] name: Option<String>,
        scopes: Option<Vec<String>>,
        #[graphql(
            desc = "Administrators: issue a named API token for this service account, within its scopes."
        )]
        service_account_id: Option<ID>,
    ) -> async_graphql::Result<UpdateAccessTokenPayload> {
        let core = core_of(ctx).gql()?;
        let req = IssueRequest {
            name: name.unwrap_or_else(|| "default".into()),
            expiration_time: expiration_time.map(i64::from),
            scopes,
        };
        let p = principal(ctx).gql()?;
        let issued = match service_account_id {
            None => tokens::issue(core, p, req, ip(ctx)).await,
            Some(id) => service_accounts::issue_api_token(core, p, &id, req, ip(ctx)).await,
        }
        .gql()?;
        core.metrics.tokens_issued.fetch_add(1, Ordering::Relaxed);
        Ok(UpdateAccessTokenPayload {
            success: true,
            session_jwt: issued.token.expose().to_owned(),
            access_token: AccessToken(issued.record),
        })
    }

    /// Revokes one of your tokens (administrators with `users:write`: anyone's).
    /// The very next request with it is refused.
    #[graphql(directive = requires_scope::apply("tokens:write"))]
    async fn revoke_access_token(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<AccessToken> {
        let core = core_of(ctx).gql()?;
        Ok(AccessToken(
            tokens::revoke(core, principal(ctx).gql()?, &id, ip(ctx))
                .await
                .gql()?,
        ))
    }
}
