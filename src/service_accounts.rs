//! The service-account service: machine clients with a client id and secret.
//!
//! Each account is backed by a `users` row with role `service` and the same id,
//! so its tokens are ordinary tokens (same table, guard, revocation), and
//! disabling the backing user refuses all of them at once.

use chrono::Utc;
use entity::{service_account, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};

use crate::audit::{self, Event};
use crate::auth::scopes::Scopes;
use crate::auth::secret::{ct_eq, sha256, Secret};
use crate::auth::{may_act_on_others_tokens, Credential, Principal, Role, ScopeSet, TokenAccess};
use crate::core::Core;
use crate::error::{AppError, AppResult};
use crate::tokens::policy::{self, MAX_NAME_LEN};
use crate::tokens::{self, IssueRequest, Issued, Owner};

/// Default lifetime of a client-credentials token: 8 hours.
pub const DEFAULT_LIFETIME_SECS: i64 = 28_800;
/// Shortest lifetime accepted.
pub const MIN_LIFETIME_SECS: i64 = 60;

/// What `createServiceAccount` asks for.
#[derive(Debug)]
pub struct NewServiceAccount {
    /// A label for people; trimmed, 1 to [`MAX_NAME_LEN`] characters.
    pub name: String,
    /// Scope names the client may be granted: each held by the creator and open
    /// to service accounts (never `users:*`).
    pub scopes: Vec<String>,
    /// Seconds a client-credentials token lives: at least
    /// [`MIN_LIFETIME_SECS`], at most the configured maximum token lifetime.
    pub access_token_lifetime: i64,
    /// Whether issuing a client-credentials token revokes the client's earlier ones.
    pub single_active_token: bool,
}

fn new_client_id() -> String {
    format!("tgc_{}", &Secret::random().expose()[..22])
}

/// Creates an account and returns it with its secret, shown this once.
pub async fn create(
    core: &Core,
    principal: &Principal,
    req: NewServiceAccount,
    ip: Option<&str>,
) -> AppResult<(service_account::Model, Secret)> {
    let name = policy::check_name(&req.name).map_err(|_| {
        AppError::BadInput(format!(
            "give the service account a name of 1 to {MAX_NAME_LEN} printable characters"
        ))
    })?;
    let scopes = policy::resolve_scopes(&core.scopes, Some(&req.scopes), principal.scopes)?;
    if let Some(admin_only) = core
        .scopes
        .iter(scopes)
        .find(|s| !core.scopes.of_role(Role::Service).contains(*s))
    {
        return Err(AppError::BadInput(format!(
            "a service account cannot hold `{}`: managing users and service accounts takes an administrator",
            admin_only.as_str()
        )));
    }
    let max = core.config.max_token_lifetime.as_secs() as i64;
    if req.access_token_lifetime < MIN_LIFETIME_SECS || req.access_token_lifetime > max {
        return Err(AppError::BadInput(format!(
            "accessTokenLifetime must be between {MIN_LIFETIME_SECS} and {max} seconds"
        )));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let client_id = new_client_id();
    let secret = Secret::random();
    let now = Utc::now();
    let backing = user::ActiveModel {
        id: Set(id.clone()),
        email: Set(format!("{client_id}@clients.tokengate.invalid")),
        // Not a PHC string: no password can ever match.
        password_hash: Set("!".into()),
        role: Set(Role::Service),
        created_at: Set(now),
        disabled_at: Set(None),
    };
    let account = service_account::ActiveModel {
        user_id: Set(id),
        name: Set(name),
        client_id: Set(client_id),
        secret_digest: Set(secret.digest().to_vec()),
        scopes: Set(core.scopes.to_space_separated(scopes)),
        access_token_lifetime: Set(req.access_token_lifetime),
        single_active_token: Set(req.single_active_token),
        created_at: Set(now),
        created_by: Set(Some(principal.user_id.clone())),
        disabled_at: Set(None),
    };
    let account = core
        .db
        .transaction::<_, _, AppError>(|txn| {
            Box::pin(async move {
                backing.insert(txn).await?;
                Ok(account.insert(txn).await?)
            })
        })
        .await?;
    audit::record(
        &core.db,
        Event {
            actor_id: Some(&principal.user_id),
            action: "service_account_created",
            subject: Some(&account.user_id),
            ip,
            detail: Some(serde_json::json!({ "name": account.name, "client_id": account.client_id, "scopes": account.scopes })),
            owner_id: None,
        },
    )
    .await;
    Ok((account, secret))
}

/// Every service account, disabled ones included, oldest first (by
/// creation, then id); one [`Page`](crate::db::Page) of them.
pub async fn list(
    db: &DatabaseConnection,
    page: &crate::db::Page,
) -> AppResult<Vec<service_account::Model>> {
    use sea_orm::{Condition, QuerySelect};
    let mut q = service_account::Entity::find();
    if let Some(after) = &page.after {
        let last = service_account::Entity::find_by_id(after.as_str())
            .one(db)
            .await?
            .ok_or_else(|| {
                AppError::BadInput(format!(
                    "after: `{after}` is not the id of a service account"
                ))
            })?;
        q = q.filter(
            Condition::any()
                .add(service_account::Column::CreatedAt.gt(last.created_at))
                .add(
                    Condition::all()
                        .add(service_account::Column::CreatedAt.eq(last.created_at))
                        .add(service_account::Column::UserId.gt(last.user_id)),
                ),
        );
    }
    let mut q = q
        .order_by_asc(service_account::Column::CreatedAt)
        .order_by_asc(service_account::Column::UserId);
    if let Some(first) = page.first {
        q = q.limit(first);
    }
    Ok(q.all(db).await?)
}

/// The service account whose backing user is `id`; `NotFound` if none.
pub async fn get(db: &DatabaseConnection, id: &str) -> AppResult<service_account::Model> {
    service_account::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "no service account with id `{id}`; list them with serviceAccounts"
            ))
        })
}

/// Replaces the secret; the old one stops working at once.
pub async fn rotate_secret(
    core: &Core,
    principal: &Principal,
    id: &str,
    ip: Option<&str>,
) -> AppResult<(service_account::Model, Secret)> {
    let account = get(&core.db, id).await?;
    let secret = Secret::random();
    let mut active: service_account::ActiveModel = account.into();
    active.secret_digest = Set(secret.digest().to_vec());
    let account = active.update(&core.db).await?;
    audit::record(
        &core.db,
        Event {
            actor_id: Some(&principal.user_id),
            action: "service_account_secret_rotated",
            subject: Some(&account.user_id),
            ip,
            detail: None,
            owner_id: None,
        },
    )
    .await;
    Ok((account, secret))
}

/// Disables the account: its secret stops working and all its tokens are refused.
pub async fn disable(
    core: &Core,
    principal: &Principal,
    id: &str,
    ip: Option<&str>,
) -> AppResult<service_account::Model> {
    let account = get(&core.db, id).await?;
    if account.disabled_at.is_some() {
        return Ok(account);
    }
    let now = Utc::now();
    let user_id = account.user_id.clone();
    let mut active: service_account::ActiveModel = account.into();
    active.disabled_at = Set(Some(now));
    let account = core
        .db
        .transaction::<_, _, AppError>(move |txn| {
            Box::pin(async move {
                let account = active.update(txn).await?;
                let owner = user::Entity::find_by_id(user_id).one(txn).await?;
                if let Some(owner) = owner {
                    let mut owner: user::ActiveModel = owner.into();
                    owner.disabled_at = Set(Some(now));
                    owner.update(txn).await?;
                }
                crate::core::revocations::notify(txn).await?;
                Ok(account)
            })
        })
        .await?;
    core.on_user_disabled(&account.user_id);
    audit::record(
        &core.db,
        Event {
            actor_id: Some(&principal.user_id),
            action: "service_account_disabled",
            subject: Some(&account.user_id),
            ip,
            detail: None,
            owner_id: None,
        },
    )
    .await;
    Ok(account)
}

/// Authenticates a client by id and secret. Unknown ids, wrong secrets and
/// disabled accounts fail alike; failures are throttled and audited.
pub async fn authenticate_client(
    core: &Core,
    client_id: &str,
    secret: &Secret,
    ip: &str,
) -> AppResult<service_account::Model> {
    // Counted before the secret is checked (see `users::sign_in`).
    if let Err(retry_after) = core.client_throttle.begin(client_id, ip) {
        return Err(AppError::Throttled { retry_after });
    }
    let account = service_account::Entity::find()
        .filter(service_account::Column::ClientId.eq(client_id))
        .one(&core.db)
        .await?;
    let presented = secret.digest();
    // Compare against something even for an unknown id, so timing says nothing.
    let stored = account
        .as_ref()
        .map(|a| a.secret_digest.clone())
        .unwrap_or_else(|| sha256(b"").to_vec());
    let ok = ct_eq(&presented, &stored);
    match account {
        Some(a) if ok && a.disabled_at.is_none() => {
            core.client_throttle.succeeded(client_id, ip);
            Ok(a)
        }
        a => {
            // Already counted by `begin`.
            audit::record(
                &core.db,
                Event {
                    action: "client_auth_failed",
                    subject: a.as_ref().map(|a| a.user_id.as_str()),
                    ip: Some(ip),
                    detail: Some(serde_json::json!({ "client_id": client_id })),
                    ..Default::default()
                },
            )
            .await;
            Err(AppError::InvalidCredentials)
        }
    }
}

/// The scopes an account may be granted.
/// A scope no longer declared grants nothing.
pub fn allowed_scopes(scopes: &Scopes, account: &service_account::Model) -> ScopeSet {
    scopes.parse_stored(&account.scopes)
}

/// The principal of a client that authenticated with its id and secret (its
/// backing user read once, for the principal's account fields).
pub async fn client_principal(
    core: &Core,
    account: &service_account::Model,
) -> AppResult<Principal> {
    let user = crate::users::find(&core.db, &account.user_id)
        .await?
        .filter(|u| u.role == Role::Service)
        .ok_or(AppError::InvalidCredentials)?;
    let mut principal = Principal::of_user(
        &user,
        allowed_scopes(&core.scopes, account),
        Credential::Client {
            client_id: account.client_id.clone(),
        },
    );
    principal.client_id = Some(account.client_id.clone());
    Ok(principal)
}

/// Issues a named, long-lived API token for a service account (an
/// administrator with `users:write`, by [`may_act_on_others_tokens`]), within
/// the account's scopes and the caller's. The same policy as a user's own token;
/// issuing under a taken name rotates.
pub async fn issue_api_token(
    core: &Core,
    principal: &Principal,
    account_id: &str,
    req: IssueRequest,
    ip: Option<&str>,
) -> AppResult<Issued> {
    // Decided before the account is looked up: no existence leak.
    may_act_on_others_tokens(principal, TokenAccess::Write)?;
    let account = get(&core.db, account_id).await?;
    if account.disabled_at.is_some() {
        return Err(AppError::BadInput(format!(
            "service account `{account_id}` is disabled"
        )));
    }
    let held = allowed_scopes(&core.scopes, &account).intersection(principal.scopes);
    let owner = Owner {
        id: &account.user_id,
        held,
        client_id: Some(&account.client_id),
    };
    tokens::issue_for(core, principal, owner, req, ip).await
}
