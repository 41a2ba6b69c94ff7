//! The token service: every rule for issuing, verifying, listing and revoking
//! access tokens. GraphQL, the CLI and (later) OAuth handlers are thin callers.

pub mod jwt;
pub mod last_used;

use chrono::{DateTime, TimeZone, Utc};
use entity::{access_token, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};

use crate::audit::{self, Event};
use crate::auth::secret::{ct_eq, Secret};
use crate::auth::{
    may_act_on_others_tokens, may_act_on_tokens, Credential, Principal, Role, ScopeSet, TokenAccess,
};
use crate::core::Core;
use crate::error::{AppError, AppResult, AuthReason};

/// Longest token name accepted.
pub const MAX_NAME_LEN: usize = 100;

/// Whether a token can still be used, derived from its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Active,
    Expired,
    Revoked,
}

pub fn status(t: &access_token::Model, now: DateTime<Utc>) -> Status {
    if t.revoked_at.is_some() {
        Status::Revoked
    } else if t.expires_at.is_some_and(|e| e <= now) {
        Status::Expired
    } else {
        Status::Active
    }
}

/// What a caller asks for when issuing a token.
#[derive(Debug, Default)]
pub struct IssueRequest {
    pub name: String,
    /// Unix seconds; `None` asks for a non-expiring token.
    pub expiration_time: Option<i64>,
    /// `None`: all of the caller's scopes.
    pub scopes: Option<Vec<String>>,
    /// Administrators: issue for this service account instead of themselves.
    pub service_account_id: Option<String>,
}

/// A freshly issued token: the only value that ever holds its plaintext.
#[derive(Debug)]
pub struct Issued {
    pub token: Secret,
    pub record: access_token::Model,
}

fn validate_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AppError::BadInput(
            "the token name is empty; give a name such as \"ci-deploy\"".into(),
        ));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(AppError::BadInput(format!(
            "the token name is too long; use at most {MAX_NAME_LEN} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::BadInput(
            "the token name has control characters; use printable text".into(),
        ));
    }
    Ok(name.to_owned())
}

/// Works out the scopes of a new token: those asked for, each known and held by
/// the caller; all of the caller's when none are asked for.
pub fn resolve_scopes(asked: Option<&[String]>, held: ScopeSet) -> AppResult<ScopeSet> {
    let Some(asked) = asked else { return Ok(held) };
    let set = ScopeSet::parse_names(asked.iter().map(String::as_str)).map_err(|unknown| {
        AppError::BadInput(format!(
            "unknown scope `{unknown}`; valid scopes are: {}",
            ScopeSet::all().to_space_separated()
        ))
    })?;
    if set.is_empty() {
        return Err(AppError::BadInput(
            "give at least one scope, or leave scopes out to get all of yours".into(),
        ));
    }
    if let Some(excess) = set.iter().find(|s| !held.contains(*s)) {
        return Err(AppError::BadInput(format!(
            "you cannot grant `{}`: your credential does not hold it (you hold: {})",
            excess.as_str(),
            held.to_space_separated()
        )));
    }
    Ok(set)
}

/// Works out the expiry of a new token from the policy and the caller's own expiry.
fn resolve_expiry(
    core: &Core,
    principal: &Principal,
    asked: Option<i64>,
    now: DateTime<Utc>,
) -> AppResult<Option<DateTime<Utc>>> {
    let max = crate::config::checked_after(now, core.config.max_token_lifetime)
        .ok_or_else(|| AppError::internal("maximum token lifetime out of range"))?;
    let parent_expiry = match &principal.credential {
        Credential::Token { expires_at, .. } => *expires_at,
        Credential::Session { .. } | Credential::Client { .. } | Credential::Operator => None,
    };
    let Some(secs) = asked else {
        if !core.config.allow_non_expiring_tokens {
            return Err(AppError::BadInput(format!(
                "expirationTime is required: give a Unix time in seconds, at most {} ({})",
                max.timestamp(),
                max.to_rfc3339()
            )));
        }
        if let Some(parent) = parent_expiry {
            return Err(AppError::BadInput(format!(
                "a token created by a token cannot outlive it: give expirationTime at most {}",
                parent.timestamp()
            )));
        }
        return Ok(None);
    };
    let at = Utc
        .timestamp_opt(secs, 0)
        .single()
        .ok_or_else(|| AppError::BadInput("expirationTime is not a valid Unix time".into()))?;
    if at <= now {
        return Err(AppError::BadInput(format!(
            "expirationTime {secs} is in the past; give a Unix time after now ({})",
            now.timestamp()
        )));
    }
    if at > max {
        return Err(AppError::BadInput(format!(
            "expirationTime {secs} is beyond the maximum token lifetime of {}; give at most {}",
            format_days(core.config.max_token_lifetime),
            max.timestamp()
        )));
    }
    if let Some(parent) = parent_expiry {
        if at > parent {
            return Err(AppError::BadInput(format!(
                "a token created by a token cannot outlive it: give expirationTime at most {}",
                parent.timestamp()
            )));
        }
    }
    Ok(Some(at))
}

/// Issues a token for the principal's own user, or, for an administrator giving
/// `service_account`, a named API token for that service account (within its
/// scopes). Issuing under a name that has an active token revokes that token
/// (rotation). Bad input changes nothing.
pub async fn issue(
    core: &Core,
    principal: &Principal,
    req: IssueRequest,
    ip: Option<&str>,
) -> AppResult<Issued> {
    let now = Utc::now();
    let name = validate_name(&req.name)?;
    let (owner_id, held, client_id) = match &req.service_account_id {
        None => (principal.user_id.clone(), principal.scopes, None),
        Some(id) => {
            // Decided before the account is looked up: no existence leak.
            may_act_on_others_tokens(principal, TokenAccess::Write)?;
            let account = crate::service_accounts::get(&core.db, id).await?;
            if account.disabled_at.is_some() {
                return Err(AppError::BadInput(format!(
                    "service account `{id}` is disabled"
                )));
            }
            let allowed =
                ScopeSet::parse_space_separated(&account.scopes).map_err(AppError::internal)?;
            let held: ScopeSet = allowed
                .iter()
                .filter(|s| principal.scopes.contains(*s))
                .collect();
            (account.user_id, held, Some(account.client_id))
        }
    };
    let scopes = resolve_scopes(req.scopes.as_deref(), held)?;
    let expires_at = resolve_expiry(core, principal, req.expiration_time, now)?;
    mint(
        core,
        Mint {
            issued_at: now,
            owner_id: &owner_id,
            name: &name,
            scopes,
            expires_at,
            parent_id: principal.token_id(),
            client_id: client_id.as_deref(),
            grant: Grant::Api,
            replace_same_name: true,
            actor_id: Some(&principal.user_id),
            ip,
        },
    )
    .await
}

/// How a token was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// `updateAccessToken` or the CLI.
    Api,
    ClientCredentials,
    /// RFC 8693: revoked with its parent.
    TokenExchange,
}

impl Grant {
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Api => "api",
            Grant::ClientCredentials => "client_credentials",
            Grant::TokenExchange => "token_exchange",
        }
    }
}

/// A token whose policy checks have passed, ready to sign and store.
#[derive(Debug)]
pub struct Mint<'a> {
    /// `iat`, and the moment `expires_at` was worked out from.
    pub issued_at: DateTime<Utc>,
    pub owner_id: &'a str,
    pub name: &'a str,
    pub scopes: ScopeSet,
    pub expires_at: Option<DateTime<Utc>>,
    pub parent_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub grant: Grant,
    /// Revoke the owner's active tokens of the same name (rotation).
    pub replace_same_name: bool,
    pub actor_id: Option<&'a str>,
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
        m.scopes,
        m.client_id,
    );
    let token = jwt::sign(core, &claims)?;
    let record = access_token::ActiveModel {
        id: Set(id.clone()),
        user_id: Set(m.owner_id.to_owned()),
        name: Set(m.name.to_owned()),
        digest: Set(token.digest().to_vec()),
        scopes: Set(m.scopes.to_space_separated()),
        created_at: Set(now),
        expires_at: Set(m.expires_at),
        last_used_at: Set(None),
        revoked_at: Set(None),
        revoked_by: Set(None),
        parent_id: Set(m.parent_id.map(str::to_owned)),
        client_id: Set(m.client_id.map(str::to_owned)),
        grant: Set(m.grant.as_str().to_owned()),
    };
    let owner = m.owner_id.to_owned();
    let by = m.actor_id.map(str::to_owned);
    let name = m.name.to_owned();
    let replace = m.replace_same_name;
    // The transaction opens with a write, so SQLite takes its write lock at once
    // instead of failing a read-to-write upgrade under concurrency.
    let (record, replaced) = core
        .db
        .transaction::<_, _, AppError>(move |txn| {
            Box::pin(async move {
                let replaced = if replace {
                    let same_name = Condition::all()
                        .add(access_token::Column::UserId.eq(owner))
                        .add(access_token::Column::Name.eq(name));
                    revoke_where(txn, same_name, now, by).await?
                } else {
                    Vec::new()
                };
                let record = record.insert(txn).await?;
                Ok((record, replaced))
            })
        })
        .await?;
    for (_, digest) in &replaced {
        core.on_token_revoked(digest);
    }
    let replaced: Vec<&str> = replaced.iter().map(|(id, _)| id.as_str()).collect();
    audit::record(
        &core.db,
        Event {
            actor_id: m.actor_id,
            action: if replaced.is_empty() {
                "token_issued"
            } else {
                "token_rotated"
            },
            subject: Some(&record.id),
            ip: m.ip,
            detail: Some(serde_json::json!({
                "name": record.name,
                "owner": record.user_id,
                "scopes": record.scopes,
                "expires_at": record.expires_at,
                "grant": record.grant,
                "client_id": record.client_id,
                "replaced": replaced,
            })),
        },
    )
    .await;
    Ok(Issued { token, record })
}

/// Revokes the active tokens matching `filter` and, transitively, the tokens
/// exchanged from them. Returns every id revoked.
async fn revoke_where(
    txn: &impl sea_orm::ConnectionTrait,
    filter: Condition,
    now: DateTime<Utc>,
    by: Option<String>,
) -> Result<Vec<(String, Vec<u8>)>, sea_orm::DbErr> {
    use chrono::SubsecRound;
    // Stored times have microsecond precision; match them exactly below.
    let now = now.trunc_subsecs(6);
    let revoke = |filter: Condition| {
        access_token::Entity::update_many()
            .col_expr(access_token::Column::RevokedAt, Expr::value(now))
            .col_expr(access_token::Column::RevokedBy, Expr::value(by.clone()))
            .filter(filter.add(access_token::Column::RevokedAt.is_null()))
    };
    let just_revoked = |filter: Condition| {
        access_token::Entity::find().filter(filter.add(access_token::Column::RevokedAt.eq(now)))
    };
    // Write first, then read what was written: SQLite takes its write lock at the
    // first statement instead of failing a read-to-write upgrade under load.
    revoke(filter.clone()).exec(txn).await?;
    let mut revoked: Vec<(String, Vec<u8>)> = just_revoked(filter)
        .all(txn)
        .await?
        .into_iter()
        .map(|t| (t.id, t.digest))
        .collect();
    let mut frontier: Vec<String> = revoked.iter().map(|(id, _)| id.clone()).collect();
    while !frontier.is_empty() {
        let children = Condition::all()
            .add(access_token::Column::ParentId.is_in(frontier))
            .add(access_token::Column::Grant.eq(Grant::TokenExchange.as_str()));
        revoke(children.clone()).exec(txn).await?;
        let found: Vec<(String, Vec<u8>)> = just_revoked(children)
            .all(txn)
            .await?
            .into_iter()
            .filter(|t| !revoked.iter().any(|(id, _)| *id == t.id))
            .map(|t| (t.id, t.digest))
            .collect();
        frontier = found.iter().map(|(id, _)| id.clone()).collect();
        revoked.extend(found);
    }
    if !revoked.is_empty() {
        crate::auth::revocations::notify(txn).await?;
    }
    Ok(revoked)
}

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

/// Lists a user's tokens, newest first; only active ones unless asked.
pub async fn list(
    db: &DatabaseConnection,
    owner_id: &str,
    include_inactive: bool,
) -> AppResult<Vec<access_token::Model>> {
    let mut q = access_token::Entity::find().filter(access_token::Column::UserId.eq(owner_id));
    if !include_inactive {
        q = q.filter(access_token::Column::RevokedAt.is_null()).filter(
            Condition::any()
                .add(access_token::Column::ExpiresAt.is_null())
                .add(access_token::Column::ExpiresAt.gt(Utc::now())),
        );
    }
    Ok(q.order_by_desc(access_token::Column::CreatedAt)
        .all(db)
        .await?)
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
    if token.revoked_at.is_some() {
        return Ok(token);
    }
    let id = token.id.clone();
    let by = actor_id.map(str::to_owned);
    let now = Utc::now();
    // Opens with a write (see `mint`): the row itself, then its exchanged descendants.
    let revoked = core
        .db
        .transaction::<_, _, AppError>(move |txn| {
            Box::pin(async move {
                Ok(revoke_where(
                    txn,
                    Condition::all().add(access_token::Column::Id.eq(id)),
                    now,
                    by,
                )
                .await?)
            })
        })
        .await?;
    for (_, digest) in &revoked {
        core.on_token_revoked(digest);
    }
    let revoked: Vec<&str> = revoked.iter().map(|(id, _)| id.as_str()).collect();
    let token = access_token::Entity::find_by_id(token.id.as_str())
        .one(&core.db)
        .await?
        .ok_or_else(|| AppError::internal("revoked token vanished"))?;
    audit::record(
        &core.db,
        Event {
            actor_id,
            action: "token_revoked",
            subject: Some(&token.id),
            ip,
            detail: Some(serde_json::json!({ "name": token.name, "owner": token.user_id, "revoked": revoked })),
        },
    )
    .await;
    Ok(token)
}

/// Turns a presented Bearer token into a principal, or says why not: signature,
/// expiry and issuer first, then the stored record (present, digest equal, not
/// revoked, owner active).
pub async fn authenticate(core: &Core, presented: &str) -> AppResult<Principal> {
    let (principal, _) = check(core, presented).await?;
    if let Some(id) = principal.token_id() {
        core.last_used.touch(id, Utc::now());
    }
    Ok(principal)
}

/// Verifies a token like [`authenticate`] without counting it as used
/// (introspection, exchange); also returns its record.
pub async fn check(core: &Core, presented: &str) -> AppResult<(Principal, access_token::Model)> {
    let claims = jwt::verify(core, presented).await?;
    let unknown = || {
        AppError::unauthenticated(
            AuthReason::Unknown,
            "the token is not known to this server",
            true,
        )
    };
    let (record, owner) = access_token::Entity::find_by_id(claims.jti.as_str())
        .find_also_related(user::Entity)
        .one(&core.db)
        .await?
        .ok_or_else(unknown)?;
    let owner = owner.ok_or_else(unknown)?;
    let digest = Secret::new(presented).digest();
    if !ct_eq(&digest, &record.digest) || record.user_id != claims.sub {
        return Err(unknown());
    }
    let now = Utc::now();
    match status(&record, now) {
        Status::Revoked => {
            return Err(AppError::unauthenticated(
                AuthReason::Revoked,
                "the token has been revoked",
                true,
            ))
        }
        Status::Expired => {
            return Err(AppError::unauthenticated(
                AuthReason::Expired,
                "the token has expired",
                true,
            ))
        }
        Status::Active => {}
    }
    if owner.disabled_at.is_some() {
        return Err(AppError::unauthenticated(
            AuthReason::Revoked,
            "the token's owner is disabled",
            true,
        ));
    }
    let role = Role::parse(&owner.role);
    let granted = ScopeSet::parse_space_separated(&record.scopes).map_err(AppError::internal)?;
    // A user demoted after issuing keeps only what the role still allows.
    let scopes: ScopeSet = granted
        .iter()
        .filter(|s| role.scopes().contains(*s))
        .collect();
    let principal = Principal {
        user_id: owner.id,
        role,
        scopes,
        credential: Credential::Token {
            id: record.id.clone(),
            expires_at: record.expires_at,
        },
    };
    Ok((principal, record))
}

/// "180 days", "12 hours": lifetimes as people say them.
pub fn format_days(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s % 86400 == 0 => format!("{} days", s / 86400),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} seconds"),
    }
}
