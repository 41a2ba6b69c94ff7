//! Token queries and mutations (SPEC §5). Resolvers only translate; the rules
//! live in [`crate::tokens`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use entity::access_token;
use sea_orm::EntityTrait;

use async_graphql::{Context, Object, ID};

use super::types::{AccessToken, UpdateAccessTokenPayload};
use super::{boxed, core_of, ip, principal, requires_scope};
use crate::auth::{may_act_on_tokens, TokenAccess};
use crate::core::live::TokenChange;
use crate::core::Core;
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
        #[graphql(desc = "At most this many (1 to 500); all when not given.")] first: Option<i32>,
        #[graphql(desc = "The id of the previous page's last token.")] after: Option<ID>,
    ) -> async_graphql::Result<Vec<AccessToken>> {
        let p = principal(ctx).gql()?;
        let owner = owner_id.map_or_else(|| p.user_id.clone(), |id| id.0);
        may_act_on_tokens(p, &owner, TokenAccess::Read).gql()?;
        let page = super::page(first, after).gql()?;
        let rows = boxed(tokens::list(
            &core_of(ctx).gql()?.db,
            &owner,
            include_inactive.unwrap_or(false),
            &page,
        ))
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
        match boxed(tokens::get_visible(
            &core_of(ctx).gql()?.db,
            p,
            &id,
            TokenAccess::Read,
        ))
        .await
        {
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
            None => boxed(tokens::issue(core, p, req, ip(ctx))).await,
            Some(id) => {
                boxed(service_accounts::issue_api_token(
                    core,
                    p,
                    &id,
                    req,
                    ip(ctx),
                ))
                .await
            }
        }
        .gql()?;
        core.metrics.tokens_issued.fetch_add(1, Ordering::Relaxed);
        Ok(UpdateAccessTokenPayload {
            success: true,
            session_jwt: issued.token.expose().to_owned(),
            access_token: AccessToken(issued.record),
        })
    }

    /// Rotates a token: a new one with the same name, scopes and length of
    /// life, shown this once; the old one keeps working for `gracePeriod`
    /// seconds (at most 86400) and is then revoked. With no `id`, the token in
    /// use rotates itself. A token already rotated or revoked is refused.
    #[graphql(directive = requires_scope::apply("tokens:write"))]
    async fn rotate_access_token(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        #[graphql(default_with = "Some(0)")] grace_period: Option<i32>,
    ) -> async_graphql::Result<UpdateAccessTokenPayload> {
        let core = core_of(ctx).gql()?;
        let issued = boxed(tokens::rotate(
            core,
            principal(ctx).gql()?,
            id.as_ref().map(|i| i.as_str()),
            i64::from(grace_period.unwrap_or(0)),
            ip(ctx),
        ))
        .await
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
            boxed(tokens::revoke(core, principal(ctx).gql()?, &id, ip(ctx)))
                .await
                .gql()?,
        ))
    }
}

/// What happened to one of your tokens.
#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
pub enum AccessTokenEventKind {
    /// Issued, by any path (the API, the console, the CLI, OAuth).
    Created,
    /// Revoked: directly, or with the token it was exchanged from.
    Revoked,
    /// Revoked because another token was issued under its name (that one
    /// arrives as `CREATED`).
    Rotated,
    /// Still active, and expiring within a day.
    Expiring,
}

/// A change to one of your tokens, pushed by `accessTokenEvents`.
#[derive(async_graphql::SimpleObject)]
pub struct AccessTokenEvent {
    /// Created, rotated, revoked, or expiring within a day.
    pub kind: AccessTokenEventKind,
    /// The token's record as it is now (never the token itself).
    pub token: AccessToken,
}

/// tokengate's subscriptions.
#[derive(Default)]
pub struct TokenSubscription;

#[async_graphql::Subscription]
impl TokenSubscription {
    /// Your tokens being created, rotated, revoked and entering their last
    /// day, as it happens, on this process
    /// or any other sharing the database.
    #[graphql(directive = requires_scope::apply("tokens:read"))]
    async fn access_token_events(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl async_graphql::futures_util::Stream<Item = AccessTokenEvent>>
    {
        let user_id = principal(ctx).gql()?.user_id.clone();
        let core: Arc<Core> = ctx
            .data::<Arc<Core>>()
            .map_err(|_| crate::AppError::internal("GraphQL executed without the core"))
            .gql()?
            .clone();
        let events = core.token_events.subscribe();
        Ok(async_graphql::futures_util::stream::unfold(
            (events, core, user_id),
            |(mut events, core, user_id)| async move {
                loop {
                    let event = match events.recv().await {
                        Ok(e) => e,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    };
                    if event.user_id != user_id {
                        continue;
                    }
                    let Ok(Some(row)) = access_token::Entity::find_by_id(event.token_id.as_str())
                        .one(&core.db)
                        .await
                    else {
                        continue;
                    };
                    let kind = match event.change {
                        TokenChange::Created => AccessTokenEventKind::Created,
                        TokenChange::Revoked => AccessTokenEventKind::Revoked,
                        TokenChange::Rotated => AccessTokenEventKind::Rotated,
                        TokenChange::Expiring => AccessTokenEventKind::Expiring,
                    };
                    let item = AccessTokenEvent {
                        kind,
                        token: AccessToken(row),
                    };
                    return Some((item, (events, core, user_id)));
                }
            },
        ))
    }
}
