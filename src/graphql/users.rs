//! Queries about people: `me` and `users`.

use async_graphql::{Context, Object, ID};

use super::types::User;
use super::{boxed, core_of, principal, requires_scope};
use crate::error::GqlResult;
use crate::users;

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user, or the owner of the token in use.
    #[graphql(directive = requires_scope::apply("me:read"))]
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        // Read with the credential (and cached with it): no database read here.
        Ok(User::from(principal(ctx).gql()?))
    }

    /// Every user (administrators).
    #[graphql(directive = requires_scope::apply("users:read"))]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many (1 to 500); all when not given.")] first: Option<i32>,
        #[graphql(desc = "The id of the previous page's last user.")] after: Option<ID>,
    ) -> async_graphql::Result<Vec<User>> {
        let page = super::page(first, after).gql()?;
        Ok(boxed(users::list(&core_of(ctx).gql()?.db, &page))
            .await
            .gql()?
            .into_iter()
            .map(User::from)
            .collect())
    }
}
