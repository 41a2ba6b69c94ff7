//! The GraphQL schema: roots merged per domain, scope guards on every field,
//! and limits on depth, complexity and aliases. Built without any I/O, so
//! `tokengate schema` runs anywhere.

pub mod http;
mod limits;
mod service_accounts;
mod tokens;
mod types;
mod users;

use async_graphql::{Context, EmptySubscription, Guard, MergedObject, Schema};

use std::sync::Arc;

use crate::auth::{Principal, Scope};
use crate::core::Core;
use crate::error::{AppError, GqlResult};

/// Deepest selection accepted: room for the standard introspection query that
/// GraphQL tools send (about 14 levels), little more.
pub const MAX_DEPTH: usize = 16;
/// Largest complexity (fields, roughly) accepted.
pub const MAX_COMPLEXITY: usize = 500;
/// Most aliases accepted in one document.
pub const MAX_ALIASES: usize = 30;

#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    users::UserQuery,
    tokens::TokenQuery,
    service_accounts::ServiceAccountQuery,
);

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    tokens::TokenMutation,
    service_accounts::ServiceAccountMutation,
);

pub type AppSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Builds the schema; request data (state, principal) is added per request.
pub fn build_schema() -> AppSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
    .limit_recursive_depth(32)
    .limit_directives(10)
    .extension(limits::AliasLimit(MAX_ALIASES))
    .finish()
}

/// The SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    build_schema().sdl()
}

/// What a resolver knows about the HTTP request.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub ip: String,
}

/// Field guard: the principal must hold `Scope`.
pub struct RequireScope(pub Scope);

impl Guard for RequireScope {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        principal(ctx).and_then(|p| p.require_scope(self.0)).gql()
    }
}

pub(crate) fn principal<'a>(ctx: &'a Context<'_>) -> Result<&'a Principal, AppError> {
    ctx.data::<Principal>()
        .map_err(|_| AppError::internal("GraphQL executed without a principal"))
}

pub(crate) fn core_of<'a>(ctx: &'a Context<'_>) -> Result<&'a Core, AppError> {
    ctx.data::<Arc<Core>>()
        .map(Arc::as_ref)
        .map_err(|_| AppError::internal("GraphQL executed without the core"))
}

pub(crate) fn ip<'a>(ctx: &'a Context<'_>) -> Option<&'a str> {
    ctx.data::<RequestMeta>().ok().map(|m| m.ip.as_str())
}
