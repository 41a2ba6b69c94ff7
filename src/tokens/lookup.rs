//! Finding tokens: one by id as the one rule allows, or a user's list.

use chrono::Utc;
use entity::access_token;
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

use crate::auth::{may_act_on_tokens, Principal, TokenAccess};
use crate::error::{AppError, AppResult};

/// Finds a token the principal may act on by [`may_act_on_tokens`]. A token it
/// may not even read is reported as not found (no existence leak); one it may
/// read but not write, as FORBIDDEN naming the scope.
pub async fn get_visible(
    db: &DatabaseConnection,
    principal: &Principal,
    id: &str,
    access: TokenAccess,
) -> AppResult<access_token::Model> {
    let not_found = || {
        AppError::NotFound(format!(
            "no access token with id `{id}`; list yours with accessTokens"
        ))
    };
    let token = access_token::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(not_found)?;
    if may_act_on_tokens(principal, &token.user_id, TokenAccess::Read).is_err() {
        return Err(not_found());
    }
    may_act_on_tokens(principal, &token.user_id, access)?;
    Ok(token)
}

/// A token's record by id, whoever owns it (for the operator's CLI).
pub async fn find(db: &DatabaseConnection, id: &str) -> AppResult<Option<access_token::Model>> {
    Ok(access_token::Entity::find_by_id(id).one(db).await?)
}

/// Lists a user's tokens, newest first (by creation, then id); only active
/// ones unless asked; one [`Page`](crate::db::Page) of them.
pub async fn list(
    db: &DatabaseConnection,
    owner_id: &str,
    include_inactive: bool,
    page: &crate::db::Page,
) -> AppResult<Vec<access_token::Model>> {
    use sea_orm::QuerySelect;
    let mut q = access_token::Entity::find().filter(access_token::Column::UserId.eq(owner_id));
    if !include_inactive {
        q = q
            .filter(
                Condition::any()
                    .add(access_token::Column::RevokedAt.is_null())
                    .add(access_token::Column::RevokedAt.gt(Utc::now())),
            )
            .filter(
                Condition::any()
                    .add(access_token::Column::ExpiresAt.is_null())
                    .add(access_token::Column::ExpiresAt.gt(Utc::now())),
            );
    }
    if let Some(after) = &page.after {
        let last = access_token::Entity::find_by_id(after.as_str())
            .filter(access_token::Column::UserId.eq(owner_id))
            .one(db)
            .await?
            .ok_or_else(|| {
                crate::AppError::BadInput(format!(
                    "after: `{after}` is not the id of a token in this listing"
                ))
            })?;
        q = q.filter(
            Condition::any()
                .add(access_token::Column::CreatedAt.lt(last.created_at))
                .add(
                    Condition::all()
                        .add(access_token::Column::CreatedAt.eq(last.created_at))
                        .add(access_token::Column::Id.lt(last.id)),
                ),
        );
    }
    let mut q = q
        .order_by_desc(access_token::Column::CreatedAt)
        .order_by_desc(access_token::Column::Id);
    if let Some(first) = page.first {
        q = q.limit(first);
    }
    Ok(q.all(db).await?)
}

/// Active tokens (not revoked) expiring after `from` and at or before `to`
/// that were issued for longer than `to - from` (a token that lives less is
/// "expiring" from birth): their ids and owners.
pub async fn expiring_between(
    db: &DatabaseConnection,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(String, String)>, sea_orm::DbErr> {
    use sea_orm::QuerySelect;
    type Row = (
        String,
        String,
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
    );
    let rows: Vec<Row> = access_token::Entity::find()
        .select_only()
        .column(access_token::Column::Id)
        .column(access_token::Column::UserId)
        .column(access_token::Column::CreatedAt)
        .column(access_token::Column::ExpiresAt)
        .filter(access_token::Column::RevokedAt.is_null())
        .filter(access_token::Column::ExpiresAt.gt(from))
        .filter(access_token::Column::ExpiresAt.lte(to))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, _, created, expires)| expires.is_some_and(|e| e - *created > to - from))
        .map(|(id, user, _, _)| (id, user))
        .collect())
}
