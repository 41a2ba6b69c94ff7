//! Verifying a presented token: the JWT first (structure, algorithm, key,
//! signature, expiry, issuer), then its stored record and owner.

use chrono::Utc;
use entity::{access_token, user};
use sea_orm::EntityTrait;

use super::{jwt, status, Status};
use crate::auth::secret::{ct_eq, Secret};
use crate::auth::{Credential, Principal};
use crate::core::Core;
use crate::error::{AppError, AppResult, AuthReason};

/// Turns a presented Bearer token into a principal, or says why not: signature,
/// expiry and issuer first, then the stored record (present, digest equal, not
/// revoked, owner active).
pub async fn authenticate(core: &Core, presented: &str) -> AppResult<Principal> {
    let (principal, _) = check(core, presented).await?;
    if let Some(id) = principal.token_id() {
        core.last_used.touch(id, Utc::now(), None);
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
    let role = owner.role;
    // A user demoted after issuing keeps only what the role still allows; a
    // scope no longer declared grants nothing.
    let scopes = core
        .scopes
        .parse_stored(&record.scopes)
        .intersection(core.scopes.of_role(role));
    let mut principal = Principal::of_user(
        &owner,
        scopes,
        Credential::Token {
            id: record.id.clone(),
            expires_at: record.expires_at,
        },
    );
    principal.client_id = match (&record.client_id, role) {
        (Some(c), _) => Some(c.clone()),
        // A service account's token issued without one (by the account
        // itself, or the CLI): its account's, read once per cache lifetime.
        // (A service account's id is its user's.)
        (None, crate::auth::Role::Service) => {
            entity::service_account::Entity::find_by_id(principal.user_id.as_str())
                .one(&core.db)
                .await?
                .map(|a| a.client_id)
        }
        (None, _) => None,
    };
    Ok((principal, record))
}
