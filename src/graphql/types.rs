//! GraphQL object types. Separate from the entities, so columns such as the token
//! digest can never be published by accident.

use async_graphql::{Context, Enum, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::{access_token, user};

use super::{boxed, core_of, principal, requires_scope};
use crate::auth::{may_act_on_tokens, TokenAccess};
use crate::error::GqlResult;
use crate::tokens;

/// Whether a token can be used now.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum TokenStatus {
    Active,
    Expired,
    Revoked,
}

/// An access token's record. Never carries the token itself.
pub struct AccessToken(pub access_token::Model);

#[Object]
impl AccessToken {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn scopes(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        let scopes = &core_of(ctx).gql()?.scopes;
        Ok(scopes.names(scopes.parse_stored(&self.0.scopes)))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Null only for a non-expiring token, where configuration allows them.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// Kept to within a minute.
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    /// The address that last used it (the peer of the connection), kept like `lastUsedAt`.
    async fn last_used_ip(&self) -> Option<&str> {
        self.0.last_used_ip.as_deref()
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    async fn status(&self) -> TokenStatus {
        match tokens::status(&self.0, Utc::now()) {
            tokens::Status::Active => TokenStatus::Active,
            tokens::Status::Expired => TokenStatus::Expired,
            tokens::Status::Revoked => TokenStatus::Revoked,
        }
    }
}

/// A person who signs in and owns tokens: the user's public fields only (no
/// password hash, never published by accident).
pub struct User {
    id: String,
    email: String,
    role: user::Role,
    created_at: DateTime<Utc>,
}

impl From<user::Model> for User {
    fn from(u: user::Model) -> Self {
        User {
            id: u.id,
            email: u.email,
            role: u.role,
            created_at: u.created_at,
        }
    }
}

impl From<&crate::auth::Principal> for User {
    /// The caller's own account, as the guard read it with the credential.
    fn from(p: &crate::auth::Principal) -> Self {
        User {
            id: p.user_id.clone(),
            email: p.email.clone(),
            role: p.role,
            created_at: p.user_created_at,
        }
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn email(&self) -> &str {
        &self.email
    }
    /// `admin`, `member`, or `service` for a service account's identity.
    async fn role(&self) -> &str {
        self.role.as_str()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// This user's tokens, newest first (your own, or anyone's for an
    /// administrator with `users:read`).
    #[graphql(directive = requires_scope::apply("tokens:read"))]
    async fn access_tokens(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(false)")] include_inactive: Option<bool>,
        #[graphql(desc = "At most this many (1 to 500); all when not given.")] first: Option<i32>,
        #[graphql(desc = "The id of the previous page's last token.")] after: Option<ID>,
    ) -> async_graphql::Result<Vec<AccessToken>> {
        let p = principal(ctx).gql()?;
        may_act_on_tokens(p, &self.id, TokenAccess::Read).gql()?;
        let page = super::page(first, after).gql()?;
        let rows = boxed(tokens::list(
            &core_of(ctx).gql()?.db,
            &self.id,
            include_inactive.unwrap_or(false),
            &page,
        ))
        .await
        .gql()?;
        Ok(rows.into_iter().map(AccessToken).collect())
    }
}

/// The answer to `updateAccessToken`: the one response that ever carries a token.
#[derive(SimpleObject)]
pub struct UpdateAccessTokenPayload {
    pub success: bool,
    /// The new token, shown this once: use it as `Authorization: Bearer <sessionJwt>`.
    pub session_jwt: String,
    pub access_token: AccessToken,
}
