//! Revoking: one token, or every active token matching a filter, and with each
//! the tokens exchanged from it, in one transaction; then the caches and other
//! processes are told.

use chrono::{DateTime, Utc};
use entity::access_token;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait};

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
    use access_token::Column as C;
    use chrono::SubsecRound;
    use sea_orm::sea_query::{Alias, Query};
    use sea_orm::{ActiveEnum, FromQueryResult, Iterable};
    // Stored times have microsecond precision; match them exactly below.
    let now = now.trunc_subsecs(6);
    // Not revoked yet, or revoked only at the end of a grace period.
    let active = |t: Alias| {
        Condition::any()
            .add(Expr::col((t.clone(), C::RevokedAt)).is_null())
            .add(Expr::col((t, C::RevokedAt)).gt(now))
    };
    let (table, child) = (Alias::new("access_tokens"), Alias::new("child"));
    // Whether a revoked row has active exchanged children, returned with it.
    let has_children = Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from_as(access_token::Entity, child.clone())
            .and_where(Expr::col((child.clone(), C::ParentId)).equals((table.clone(), C::Id)))
            .and_where(Expr::col((child.clone(), C::Grant)).eq(Grant::TokenExchange.to_value()))
            .cond_where(active(child))
            .to_owned(),
    );
    // The entity's columns by name, then the flag: `RETURNING *` would put
    // the flag after whatever columns the table has, and an application's
    // migration (or a newer release's, during a rolling upgrade) may add one.
    let returned: Vec<sea_orm::sea_query::SimpleExpr> = C::iter()
        .map(|c| Expr::col(c).into())
        .chain([has_children])
        .collect();
    let flag = returned.len() - 1;
    // One statement per level that has children, returning the rows it
    // revoked and which of them have active exchanged children (`UPDATE …
    // RETURNING *, EXISTS(…)`, on SQLite too): a write first, so SQLite takes
    // its write lock at the first statement instead of failing a
    // read-to-write upgrade; and no statement for a level that cannot have
    // any row, which for most revocations and rotations (tokens nothing was
    // exchanged from) means one statement instead of two. (A recursive CTE
    // would be one statement for any depth, but PostgreSQL's generic plan for
    // it scanned every token exchanged: 2–3× slower rotations.)
    let mut revoked: Vec<access_token::Model> = Vec::new();
    let mut level = filter;
    loop {
        let update = Query::update()
            .table(access_token::Entity)
            .value(C::RevokedAt, now)
            .value(C::RevokedBy, by.clone())
            .cond_where(level.add(active(table.clone())))
            .returning(Query::returning().exprs(returned.clone()))
            .to_owned();
        let mut parents: Vec<String> = Vec::new();
        for row in txn
            .query_all(txn.get_database_backend().build(&update))
            .await?
        {
            let token = access_token::Model::from_query_result(&row, "")?;
            if revoked.iter().any(|r| r.id == token.id) {
                continue;
            }
            if row.try_get_by_index::<bool>(flag)? {
                parents.push(token.id.clone());
            }
            revoked.push(token);
        }
        if parents.is_empty() {
            break;
        }
        level = Condition::all()
            .add(C::ParentId.is_in(parents))
            .add(C::Grant.eq(Grant::TokenExchange));
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
    // Opens with a write (see `mint`): the row itself, then its exchanged descendants.
    let revoked = core
        .write::<_, _, AppError>(move |txn| {
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
