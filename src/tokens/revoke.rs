//! Revoking: one token, or every active token matching a filter, and with each
//! the tokens exchanged from it, in one transaction; then the caches and other
//! processes are told.

use chrono::{DateTime, Utc};
use entity::access_token;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, TransactionTrait};

use super::lookup::get_visible;
use super::Grant;
use crate::audit::{self, Event};
use crate::auth::{Principal, TokenAccess};
use crate::core::live::TokenChange;
use crate::core::Core;
use crate::error::{AppError, AppResult};
use crate::webhooks;

/// Revokes the active tokens matching `filter` and, transitively, the tokens
/// exchanged from them. Returns every row revoked, as revoked.
pub(super) async fn revoke_where(
    txn: &impl sea_orm::ConnectionTrait,
    filter: Condition,
    now: DateTime<Utc>,
    by: Option<String>,
) -> Result<Vec<access_token::Model>, sea_orm::DbErr> {
    use chrono::SubsecRound;
    // Stored times have microsecond precision; match them exactly below.
    let now = now.trunc_subsecs(6);
    let revoke = |filter: Condition| {
        access_token::Entity::update_many()
            .col_expr(access_token::Column::RevokedAt, Expr::value(now))
            .col_expr(access_token::Column::RevokedBy, Expr::value(by.clone()))
            // Not revoked yet, or revoked only at the end of a grace period.
            .filter(
                filter.add(
                    Condition::any()
                        .add(access_token::Column::RevokedAt.is_null())
                        .add(access_token::Column::RevokedAt.gt(now)),
                ),
            )
    };
    // One statement per level, returning the rows it revoked (`UPDATE …
    // RETURNING`, on SQLite too): a write first, so SQLite takes its write lock
    // at the first statement instead of failing a read-to-write upgrade, and
    // one round trip fewer per level inside the issuing transaction's lock.
    let mut revoked: Vec<access_token::Model> = revoke(filter).exec_with_returning(txn).await?;
    let mut frontier: Vec<String> = revoked.iter().map(|t| t.id.clone()).collect();
    while !frontier.is_empty() {
        let children = Condition::all()
            .add(access_token::Column::ParentId.is_in(frontier))
            .add(access_token::Column::Grant.eq(Grant::TokenExchange));
        let found: Vec<access_token::Model> = revoke(children)
            .exec_with_returning(txn)
            .await?
            .into_iter()
            .filter(|t| !revoked.iter().any(|r| r.id == t.id))
            .collect();
        frontier = found.iter().map(|t| t.id.clone()).collect();
        revoked.extend(found);
    }
    if !revoked.is_empty() {
        if now <= Utc::now() {
            crate::core::revocations::notify_revoked(
                txn,
                revoked.iter().map(|t| t.digest.as_slice()),
            )
            .await?;
        } else {
            // Ending at a grace period's cutoff: nothing to evict yet; the
            // poll evicts them once the cutoff has passed.
            crate::core::revocations::notify(txn).await?;
        }
    }
    Ok(revoked)
}

/// Revokes a token the principal may see. Revoking a revoked token is a no-op
/// that returns it as it is.
pub async fn revoke(
    core: &Core,
    principal: &Principal,
    id: &str,
    ip: Option<&str>,
) -> AppResult<access_token::Model> {
    let token = get_visible(&core.db, principal, id, TokenAccess::Write).await?;
    revoke_record(core, token, Some(&principal.user_id), ip).await
}

/// Revokes a token by id with no ownership check (the CLI, run by an operator).
pub async fn revoke_by_id(core: &Core, id: &str) -> AppResult<access_token::Model> {
    let token = access_token::Entity::find_by_id(id)
        .one(&core.db)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no access token with id `{id}`")))?;
    revoke_record(core, token, None, None).await
}

/// Revokes a token already found and authorised by the caller (the OAuth
/// revocation endpoint, after its own checks), on behalf of `actor_id`.
pub async fn revoke_record(
    core: &Core,
    token: access_token::Model,
    actor_id: Option<&str>,
    ip: Option<&str>,
) -> AppResult<access_token::Model> {
    if super::status(&token, Utc::now()) == super::Status::Revoked {
        return Ok(token);
    }
    let id = token.id.clone();
    let by = actor_id.map(str::to_owned);
    let now = Utc::now();
    let audit_actor = actor_id.map(str::to_owned);
    let audit_ip = ip.map(str::to_owned);
    let (name, owner) = (token.name.clone(), token.user_id.clone());
    let turn = core.write_turn().await;
    // Opens with a write (see `mint`): the row itself, then its exchanged descendants.
    let revoked = turn
        .db()
        .transaction::<_, _, AppError>(move |txn| {
            Box::pin(async move {
                let revoked = revoke_where(
                    txn,
                    Condition::all().add(access_token::Column::Id.eq(id.as_str())),
                    now,
                    by,
                )
                .await?;
                // The outbox, in the same transaction: one event per token.
                let outbox = webhooks::outbox::Outbox::open(txn).await?;
                for t in &revoked {
                    outbox
                        .token_event(txn, "token.revoked", t, |_| {}, now)
                        .await?;
                }
                // The audit event commits with the revocation.
                let ids: Vec<&str> = revoked.iter().map(|t| t.id.as_str()).collect();
                audit::record_in(
                    txn,
                    Event {
                        actor_id: audit_actor.as_deref(),
                        action: "token_revoked",
                        subject: Some(&id),
                        ip: audit_ip.as_deref(),
                        detail: Some(
                            serde_json::json!({ "name": name, "owner": owner, "revoked": ids }),
                        ),
                        owner_id: Some(&owner),
                    },
                )
                .await?;
                Ok(revoked)
            })
        })
        .await?;
    drop(turn);
    webhooks::outbox::wake(core);
    for t in &revoked {
        core.on_token_revoked(&t.digest);
        core.token_events
            .publish(TokenChange::Revoked, &t.id, &token.user_id);
    }
    let token = access_token::Entity::find_by_id(token.id.as_str())
        .one(&core.db)
        .await?
        .ok_or_else(|| AppError::internal("revoked token vanished"))?;
    Ok(token)
}
