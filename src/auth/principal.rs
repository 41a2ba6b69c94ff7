//! The one authentication value: who is calling and how they proved it.

use chrono::{DateTime, Utc};

use super::scopes::{Scope, ScopeSet};
use crate::error::AppError;

/// A user's role (stored in `users.role`). Which scopes each holds:
/// [`super::scopes::Scopes::of_role`].
pub use entity::user::Role;

/// How the caller proved who they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A browser session; the digest identifies its row.
    Session {
        /// SHA-256 of the cookie value (`sessions.digest`).
        digest: [u8; 32],
    },
    /// An access token: its id (`jti`) and expiry (None: never expires).
    Token {
        /// The token's `jti` (`access_tokens.id`).
        id: String,
        /// When the token stops verifying; `None` if it never expires.
        expires_at: Option<DateTime<Utc>>,
    },
    /// A service account's client id and secret, at the OAuth endpoints.
    Client {
        /// The OAuth `client_id` that authenticated.
        client_id: String,
    },
    /// The operator at the command line, acting for the principal's user (the
    /// shell already has the database, so no credential is asked for).
    Operator,
}

/// An authenticated caller, put into each GraphQL request's data by the guard
/// (as an `Arc<Principal>`: the credential cache hands out the same one to
/// every request until it is verified again).
///
/// It carries the user's public fields as read when the credential was
/// verified, so `me` needs no database read: a user's email, role and creation
/// time never change, and disabling a user evicts every principal of theirs.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The calling user (`users.id`): a person or a service account's identity.
    pub user_id: String,
    /// The user's email address (for a service account, its generated one).
    pub email: String,
    /// When the user was created.
    pub user_created_at: DateTime<Utc>,
    /// The user's role as of authentication.
    pub role: Role,
    /// What this request may do: the role's scopes for a session; for a token,
    /// its scopes still allowed by the owner's current role.
    pub scopes: ScopeSet,
    /// How the caller proved who they are.
    pub credential: Credential,
    /// For a service account: its OAuth `client_id` (from its client
    /// authentication, or the token's record); `None` for people.
    pub client_id: Option<String>,
}

impl Principal {
    /// The principal of `user` proving it with `credential`, holding `scopes`.
    pub fn of_user(user: &entity::user::Model, scopes: ScopeSet, credential: Credential) -> Self {
        Principal {
            user_id: user.id.clone(),
            email: user.email.clone(),
            user_created_at: user.created_at,
            role: user.role,
            scopes,
            credential,
            client_id: None,
        }
    }

    /// `Ok` when the credential carries `scope`, else `FORBIDDEN` naming it.
    pub fn require_scope(&self, scope: Scope) -> Result<(), AppError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(AppError::Forbidden {
                scope: scope.as_str(),
            })
        }
    }

    /// Whether the user's role is `Admin`.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The token id when authenticated by a token.
    pub fn token_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::Token { id, .. } => Some(id),
            Credential::Session { .. } | Credential::Client { .. } | Credential::Operator => None,
        }
    }
}
