//! Browser sessions: a 256-bit random id in the `tokengate_session` cookie; the
//! database keeps only its SHA-256 digest. Lifetime is absolute.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{session, session_end, user};
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, EntityTrait, ModelTrait, Set, TransactionTrait,
};

use crate::auth::scopes::Scopes;
use crate::auth::secret::Secret;
use crate::auth::{Credential, Principal};
use crate::error::{AppError, AuthReason};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "tokengate_session";

/// Starts a session for `user_id`; returns the cookie value.
pub async fn create(
    db: &DatabaseConnection,
    user_id: &str,
    lifetime: Duration,
    ip: &str,
) -> Result<Secret, AppError> {
    let id = Secret::random();
    let now = Utc::now();
    session::ActiveModel {
        digest: Set(id.digest().to_vec()),
        user_id: Set(user_id.to_owned()),
        created_at: Set(now),
        expires_at: Set(crate::clock::checked_after(now, lifetime)
            .ok_or_else(|| AppError::internal("session lifetime out of range"))?),
        ip: Set(Some(ip.to_owned())),
    }
    .insert(db)
    .await?;
    Ok(id)
}

/// A well-formed cookie value: 43 base64url characters.
pub fn is_well_formed(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Resolves a cookie value to its principal and the session's expiry.
pub async fn authenticate(
    db: &DatabaseConnection,
    scopes: &Scopes,
    value: &str,
) -> Result<(Principal, DateTime<Utc>), AppError> {
    if !is_well_formed(value) {
        return Err(AppError::unauthenticated(
            AuthReason::Malformed,
            "the session cookie is malformed",
            false,
        ));
    }
    let digest = Secret::new(value).digest();
    let found = session::Entity::find_by_id(digest.to_vec())
        .find_also_related(user::Entity)
        .one(db)
        .await?;
    let Some((row, Some(owner))) = found else {
        return Err(AppError::unauthenticated(
            AuthReason::Unknown,
            "the session is not known; sign in again",
            false,
        ));
    };
    if row.expires_at <= Utc::now() {
        let _ = row.delete(db).await;
        return Err(AppError::unauthenticated(
            AuthReason::SessionExpired,
            "the session has expired; sign in again",
            false,
        ));
    }
    if owner.disabled_at.is_some() {
        return Err(AppError::unauthenticated(
            AuthReason::Revoked,
            "the account is disabled",
            false,
        ));
    }
    let principal = Principal::of_user(
        &owner,
        scopes.of_role(owner.role),
        Credential::Session { digest },
    );
    Ok((principal, row.expires_at))
}

/// Ends a session (sign-out): deletes its row and leaves a marker other
/// processes poll to evict it. Returns the user it belonged to and its digest.
pub async fn delete(
    db: &DatabaseConnection,
    value: &str,
) -> Result<Option<(String, Vec<u8>)>, AppError> {
    if !is_well_formed(value) {
        return Ok(None);
    }
    let digest = Secret::new(value).digest().to_vec();
    let Some(row) = session::Entity::find_by_id(digest.clone()).one(db).await? else {
        return Ok(None);
    };
    let user_id = row.user_id.clone();
    let marker = session_end::ActiveModel {
        digest: Set(digest.clone()),
        ended_at: Set(Utc::now()),
    };
    db.transaction::<_, _, AppError>(move |txn| {
        Box::pin(async move {
            row.delete(txn).await?;
            marker.insert(txn).await?;
            crate::core::revocations::notify(txn).await?;
            Ok(())
        })
    })
    .await?;
    Ok(Some((user_id, digest)))
}
