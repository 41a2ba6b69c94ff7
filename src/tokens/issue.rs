//! Issuing: the policy checks, then minting (sign, store, rotate by name,
//! audit). OAuth grants and service accounts call [`mint`] after their own checks.

use chrono::{DateTime, Utc};
use entity::access_token::{self, Grant};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    QueryFilter, Set,
};

use super::jwt;
use super::policy::{resolve_expiry, resolve_scopes, validate_name};
use super::revoke::revoke_where;
use crate::audit::{self, Event};
use crate::auth::secret::Secret;
use crate::auth::{Principal, ScopeSet};
use crate::core::live::TokenChange;
use crate::core::Core;
use crate::error::{AppError, AppResult};
use crate::webhooks;

/// What a caller asks for when issuing a token.
#[derive(Debug, Default)]
pub struct IssueRequest {
    /// The token's name, trimmed and checked by
    /// [`validate_name`](super::policy::validate_name).
    pub name: String,
    /// Unix seconds; `None` asks for a non-expiring token.
    pub expiration_time: Option<i64>,
    /// `None`: all of the caller's scopes.
    pub scopes: Option<Vec<String>>,
}

/// A freshly issued token: the only value that ever holds its plaintext.
#[derive(Debug)]
pub struct Issued {
    /// The compact JWT: give it to its owner once; only its digest is stored.
    pub token: Secret,
    /// The stored row.
    pub record: access_token::Model,
}

/// Issues a token for the principal's own user. Issuing under a name that has
/// an active token revokes that token (rotation). Bad input changes nothing.
pub async fn issue(
    core: &Core,
    principal: &Principal,
    req: IssueRequest,
    ip: Option<&str>,
) -> AppResult<Issued> {
    let own = Owner {
        id: &principal.user_id,
        held: principal.scopes,
        client_id: None,
    };
    issue_for(core, principal, own, req, ip).await
}

/// Whose a named API token is, and what it may be given.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    /// The owning user's id (a person or a service account's identity).
    pub id: &'a str,
    /// The scopes the new token may carry (a subset is asked for, or all).
    pub held: ScopeSet,
    /// Set for a service account's token.
    pub client_id: Option<&'a str>,
}

/// The policy of every named API token, for any owner the caller may issue
/// for (its own user: [`issue`]; a service account:
/// `service_accounts::issue_api_token`): name, scopes within `owner.held`,
/// lifetime, never outliving the caller's token; then mint, rotating by name.
pub async fn issue_for(
    core: &Core,
    principal: &Principal,
    owner: Owner<'_>,
    req: IssueRequest,
    ip: Option<&str>,
) -> AppResult<Issued> {
    let now = Utc::now();
    let name = validate_name(&req.name)?;
    let scopes = resolve_scopes(&core.scopes, req.scopes.as_deref(), owner.held)?;
    let expires_at = resolve_expiry(core, principal, req.expiration_time, now)?;
    mint(
        core,
        Mint {
            issued_at: now,
            owner_id: owner.id,
            name: &name,
            scopes,
            expires_at,
            parent_id: principal.token_id(),
            client_id: owner.client_id,
            grant: Grant::Api,
            replace_same_name: true,
            cap: Some(core.config.max_tokens_per_user),
            retire: None,
            actor_id: Some(&principal.user_id),
            ip,
        },
    )
    .await
}

/// A token whose policy checks have passed, ready to sign and store.
#[derive(Debug)]
pub struct Mint<'a> {
    /// `iat`, and the moment `expires_at` was worked out from.
    pub issued_at: DateTime<Utc>,
    /// The owning user's id: the token's `sub`.
    pub owner_id: &'a str,
    /// The token's name, already validated.
    pub name: &'a str,
    /// The scopes it carries, already within what the owner holds.
    pub scopes: ScopeSet,
    /// `exp`; `None` for a non-expiring token.
    pub expires_at: Option<DateTime<Utc>>,
    /// The id of the token that created it, when one did (exchanged tokens die
    /// with it).
    pub parent_id: Option<&'a str>,
    /// The `client_id` claim, for a service account's token.
    pub client_id: Option<&'a str>,
    /// How it is being issued.
    pub grant: Grant,
    /// Revoke the owner's active tokens of the same name (rotation).
    pub replace_same_name: bool,
    /// Refuse when the owner would hold more active tokens than this.
    pub cap: Option<u32>,
    /// Rotation: this token (by id) is revoked at the given time, in the same
    /// transaction; refused when it is already revoked or rotated.
    pub retire: Option<(&'a str, DateTime<Utc>)>,
    /// Who is issuing it, for the audit event and `revoked_by` of replaced tokens.
    pub actor_id: Option<&'a str>,
    /// The client address, for the audit event.
    pub ip: Option<&'a str>,
}

/// Signs and stores a token.
pub async fn mint(core: &Core, m: Mint<'_>) -> AppResult<Issued> {
    let now = m.issued_at;
    let id = uuid::Uuid::now_v7().to_string();
    let claims = jwt::Claims::new(
        &core.keys.issuer(),
        m.owner_id,
        &id,
        now,
        m.expires_at,
        core.scopes.to_space_separated(m.scopes),
        m.client_id,
    );
    let token = jwt::sign(core, &claims)?;
    let record = access_token::ActiveModel {
        id: Set(id.clone()),
        user_id: Set(m.owner_id.to_owned()),
        name: Set(m.name.to_owned()),
        digest: Set(token.digest().to_vec()),
        scopes: Set(claims.scope.clone()),
        created_at: Set(now),
        expires_at: Set(m.expires_at),
        last_used_at: Set(None),
        last_used_ip: Set(None),
        revoked_at: Set(None),
        revoked_by: Set(None),
        parent_id: Set(m.parent_id.map(str::to_owned)),
        client_id: Set(m.client_id.map(str::to_owned)),
        grant: Set(m.grant),
        expiry_notice: Set(None),
    };
    let owner = m.owner_id.to_owned();
    let by = m.actor_id.map(str::to_owned);
    let name = m.name.to_owned();
    let replace = m.replace_same_name;
    let cap = m.cap;
    let retire = m.retire.map(|(id, at)| (id.to_owned(), at));
    let retire_id = retire.as_ref().map(|(id, _)| id.clone());
    let retire_at = retire.clone();
    let rotating = retire.is_some();
    let retired_by = m.actor_id.map(str::to_owned);
    let retired_by_again = retired_by.clone();
    let owner_id = m.owner_id.to_owned();
    let audit_actor = m.actor_id.map(str::to_owned);
    let audit_ip = m.ip.map(str::to_owned);
    // The transaction opens with a write, so SQLite takes its write lock at once
    // instead of failing a read-to-write upgrade under concurrency.
    let (record, replaced) = core
        .write::<_, _, AppError>(move |txn| {
            Box::pin(async move {
                // The outbox (the webhooks to tell), opened once. PostgreSQL:
                // here, share-locking the webhooks before the owner's lock, so
                // the owner's other issues do not wait for this read too (no
                // deadlock: nothing that locks a user's row goes on to update
                // or delete webhooks; keep it so). SQLite: after the first
                // write (below), since its transaction must open with one.
                let mut outbox = if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
                    Some(webhooks::outbox::Outbox::open(txn).await?)
                } else {
                    None
                };
                // Wakes other processes' `accessTokenEvents` (PostgreSQL); a
                // rotation also ends the retired token now or at its cutoff
                // (rotation by name notified in `revoke_where`). Sent before
                // the owner's lock, for the same reason: PostgreSQL delivers a
                // notification at commit wherever the transaction issued it,
                // and drops it on rollback.
                if rotating {
                    crate::core::revocations::notify(txn).await?;
                } else {
                    crate::core::revocations::notify_created(txn).await?;
                }
                if replace || cap.is_some() || rotating {
                    lock_owner(txn, &owner_id).await?;
                }
                let replaced = if replace {
                    revoke_where(txn, same_name(&owner, &name, now), now, by).await?
                } else {
                    Vec::new()
                };
                if let Some((old, at)) = retire {
                    use chrono::SubsecRound;
                    // Only a token not revoked and not already rotated: a second
                    // rotation is refused and never touches the first's successor.
                    let done = access_token::Entity::update_many()
                        .col_expr(access_token::Column::RevokedAt, Expr::value(at.trunc_subsecs(6)))
                        .col_expr(access_token::Column::RevokedBy, Expr::value(retired_by))
                        .filter(access_token::Column::Id.eq(old.as_str()))
                        .filter(access_token::Column::RevokedAt.is_null())
                        .exec(txn)
                        .await?;
                    if done.rows_affected == 0 {
                        return Err(AppError::BadInput(format!(
                            "token {old} is already revoked or rotated; rotate its successor instead"
                        )));
                    }
                    // Tokens exchanged from it end with it, at the same moment.
                    let children = Condition::all()
                        .add(access_token::Column::ParentId.eq(old.as_str()))
                        .add(access_token::Column::Grant.eq(Grant::TokenExchange));
                    let outbox = webhooks::outbox::Outbox::open_once(&mut outbox, txn).await?;
                    for child in revoke_where(txn, children, at, retired_by_again).await? {
                        outbox
                            .token_event(txn, "token.revoked", &child, |_| {}, now)
                            .await?;
                    }
                }
                // The cap's count in the insert itself (`INSERT … SELECT …
                // WHERE (SELECT COUNT(*) …) < cap`): one round trip fewer
                // inside the owner's lock.
                let record = match cap {
                    Some(cap) => insert_within_cap(txn, record, &owner_id, cap, now).await?,
                    None => record.insert(txn).await?,
                };
                // The outbox, in the same transaction (SPEC §10); on SQLite
                // read after the insert, as a transaction with nothing to
                // rotate must open with its write (a read first can fail to
                // upgrade when another connection wrote).
                let outbox = webhooks::outbox::Outbox::open_once(&mut outbox, txn).await?;
                let previous: Vec<String> = retire_id
                    .iter()
                    .cloned()
                    .chain(replaced.iter().map(|t| t.id.clone()))
                    .collect();
                if !previous.is_empty() {
                    outbox
                        .token_event(
                            txn,
                            "token.rotated",
                            &record,
                            |data| {
                                data["previousIds"] = serde_json::json!(previous);
                                if let Some((_, at)) = retire_at {
                                    data["previousRevokedAt"] =
                                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into();
                                }
                            },
                            now,
                        )
                        .await?;
                } else if record.grant == Grant::Api {
                    // Client-credentials and exchanged tokens are short-lived
                    // and renewed by their clients: no token.created for each.
                    outbox
                        .token_event(txn, "token.created", &record, |_| {}, now)
                        .await?;
                }
                // The audit event commits with the token (one commit, and no
                // token without its event).
                let replaced_ids: Vec<&str> = replaced.iter().map(|t| t.id.as_str()).collect();
                audit::record_in(
                    txn,
                    Event {
                        actor_id: audit_actor.as_deref(),
                        action: if replaced_ids.is_empty() && !rotating {
                            "token_issued"
                        } else {
                            "token_rotated"
                        },
                        subject: Some(&record.id),
                        ip: audit_ip.as_deref(),
                        detail: Some(serde_json::json!({
                            "name": record.name,
                            "owner": record.user_id,
                            "scopes": record.scopes,
                            "expires_at": record.expires_at,
                            "grant": record.grant.to_value(),
                            "client_id": record.client_id,
                            "replaced": replaced_ids,
                        })),
                        owner_id: Some(&record.user_id),
                    },
                )
                .await?;
                Ok((record, replaced))
            })
        })
        .await?;
    webhooks::outbox::wake(core);
    for t in &replaced {
        core.on_token_revoked(&t.digest);
        core.token_events
            .publish(TokenChange::Rotated, &t.id, &record.user_id);
    }
    core.token_events
        .publish(TokenChange::Created, &record.id, &record.user_id);
    Ok(Issued { token, record })
}

/// The owner's tokens of this name still active: not revoked, or revoked
/// only at the end of a grace period. Written as two lookups joined by
/// `UNION ALL` rather than one `OR`: each is then a search of the index on
/// `(user_id, name, revoked_at)` (a point for `IS NULL`, a range for
/// `> now`), where the `OR` made both SQLite and PostgreSQL walk every token
/// the name ever had.
fn same_name(owner: &str, name: &str, now: DateTime<Utc>) -> Condition {
    use chrono::SubsecRound;
    use sea_orm::sea_query::{Query, UnionType};
    let now = now.trunc_subsecs(6);
    let live = |revoked: sea_orm::sea_query::SimpleExpr| {
        Query::select()
            .column(access_token::Column::Id)
            .from(access_token::Entity)
            .and_where(access_token::Column::UserId.eq(owner))
            .and_where(access_token::Column::Name.eq(name))
            .and_where(revoked)
            .to_owned()
    };
    let mut ids = live(access_token::Column::RevokedAt.is_null());
    ids.union(
        UnionType::All,
        live(access_token::Column::RevokedAt.gt(now)),
    );
    Condition::all().add(access_token::Column::Id.in_subquery(ids))
}

/// On PostgreSQL, locks the owner's row for the rest of the transaction, before
/// anything else: one owner's issues then rotate by name and count against the
/// cap one after another. Taken first, it is the only lock they wait on; taken
/// after the rotation (as before), an issue could wait on a same-name token's
/// row while holding nothing, then miss the token the other issue had just
/// committed under that name (two active tokens of one name), and queues formed
/// behind row locks as well as the owner's. SQLite transactions already write
/// one at a time.
async fn lock_owner(txn: &sea_orm::DatabaseTransaction, owner_id: &str) -> AppResult<()> {
    use sea_orm::{ConnectionTrait, EntityTrait, QuerySelect};
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        // NO KEY UPDATE: issues for one owner still queue on it, but inserting a
        // row that references the owner (its KEY SHARE lock) does not wait on
        // it, so a concurrent insert cannot deadlock with this lock.
        entity::user::Entity::find_by_id(owner_id)
            .lock(sea_orm::sea_query::LockType::NoKeyUpdate)
            .one(txn)
            .await?;
    }
    Ok(())
}

/// The owner's active tokens, counted (for the cap).
fn active_tokens(owner_id: &str, now: DateTime<Utc>) -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::{Asterisk, Func, Query};
    Query::select()
        .expr(Func::count(Expr::col(Asterisk)))
        .from(access_token::Entity)
        .and_where(access_token::Column::UserId.eq(owner_id))
        .and_where(access_token::Column::RevokedAt.is_null())
        .cond_where(
            Condition::any()
                .add(access_token::Column::ExpiresAt.is_null())
                .add(access_token::Column::ExpiresAt.gt(now)),
        )
        .to_owned()
}

/// Inserts the token unless its owner already holds `cap` active ones (after
/// any rotation in the same transaction; the owner is locked by
/// [`lock_owner`]), in one statement: `INSERT … SELECT <the values> WHERE
/// (SELECT COUNT(*) <active tokens>) < cap RETURNING *`. Refused, it counts
/// again to say how many. Built from the active model's set values, so it
/// bypasses `ActiveModelBehavior` (access tokens have none; give them one
/// and it must be called here).
async fn insert_within_cap(
    txn: &sea_orm::DatabaseTransaction,
    record: access_token::ActiveModel,
    owner_id: &str,
    cap: u32,
    now: DateTime<Utc>,
) -> AppResult<access_token::Model> {
    use sea_orm::sea_query::{Query, SimpleExpr};
    use sea_orm::{FromQueryResult, Iterable};
    let (mut columns, mut values) = (Vec::new(), Vec::new());
    for column in access_token::Column::iter() {
        if let sea_orm::ActiveValue::Set(v) = record.get(column) {
            columns.push(column);
            values.push(SimpleExpr::Value(v));
        }
    }
    let count = SimpleExpr::SubQuery(
        None,
        Box::new(active_tokens(owner_id, now).into_sub_query_statement()),
    );
    let row = Query::select()
        .exprs(values)
        .and_where(Expr::expr(count).lt(i64::from(cap)))
        .to_owned();
    let insert = Query::insert()
        .into_table(access_token::Entity)
        .columns(columns)
        .select_from(row)
        .map_err(|e| AppError::Internal(e.to_string()))?
        .returning_all()
        .to_owned();
    let backend = txn.get_database_backend();
    match txn.query_one(backend.build(&insert)).await? {
        Some(row) => Ok(access_token::Model::from_query_result(&row, "")?),
        None => {
            let active = crate::db::count(txn, &active_tokens(owner_id, now)).await?;
            Err(AppError::BadInput(format!(
                "this account already holds {active} active tokens, the most allowed is {cap} \
                 (--max-tokens-per-user): revoke one it no longer uses, or reuse a name to rotate"
            )))
        }
    }
}

/// The longest grace period a rotation may give the old token (SPEC §10).
pub const MAX_GRACE_SECS: i64 = 86_400;

/// `rotateAccessToken`: a new token with the rotated one's name, scopes and
/// lifetime length; the old one keeps working for `grace_secs` and is then
/// revoked (on every process: the revocation poll acts when that time comes).
/// With no `id`, the token in use rotates itself.
pub async fn rotate(
    core: &Core,
    principal: &Principal,
    id: Option<&str>,
    grace_secs: i64,
    ip: Option<&str>,
) -> AppResult<Issued> {
    if !(0..=MAX_GRACE_SECS).contains(&grace_secs) {
        return Err(AppError::BadInput(format!(
            "gracePeriod must be between 0 and {MAX_GRACE_SECS} seconds"
        )));
    }
    let id = match (id, principal.token_id()) {
        (Some(id), _) => id.to_owned(),
        (None, Some(own)) => own.to_owned(),
        (None, None) => {
            return Err(AppError::BadInput(
                "give the id of the token to rotate (a session has no token of its own)".into(),
            ))
        }
    };
    let old = super::get_visible(&core.db, principal, &id, crate::auth::TokenAccess::Write).await?;
    let now = Utc::now();
    if super::status(&old, now) != super::Status::Active || old.revoked_at.is_some() {
        return Err(AppError::BadInput(format!(
            "token {id} is already revoked, rotated or expired; rotate its successor instead"
        )));
    }
    let scopes = core.scopes.parse_stored(&old.scopes);
    // The same length of life, from now.
    let expires_at = match old.expires_at {
        Some(exp) => Some(now + (exp - old.created_at)),
        None => None,
    };
    let grace = chrono::Duration::seconds(grace_secs);
    let issued = mint(
        core,
        Mint {
            issued_at: now,
            owner_id: &old.user_id,
            name: &old.name,
            scopes,
            expires_at,
            parent_id: old.parent_id.as_deref(),
            client_id: old.client_id.as_deref(),
            grant: old.grant,
            replace_same_name: false,
            cap: None,
            retire: Some((&old.id, now + grace)),
            actor_id: Some(&principal.user_id),
            ip,
        },
    )
    .await?;
    if grace_secs == 0 {
        core.on_token_revoked(&old.digest);
    }
    core.token_events
        .publish(TokenChange::Rotated, &old.id, &old.user_id);
    Ok(issued)
}
