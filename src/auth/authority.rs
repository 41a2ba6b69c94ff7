//! The one rule for acting on tokens that belong to someone else. Every path
//! that reads, revokes or issues tokens for another owner — GraphQL, the OAuth
//! endpoints — asks [`may_act_on_tokens`]; nothing else decides it.

use super::principal::Principal;
use super::scopes::Scope;
use crate::error::AppError;

/// What a caller wants to do with tokens owned by someone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenAccess {
    /// List or read them.
    Read,
    /// Revoke them, or issue one for a service account.
    Write,
    /// RFC 7662 introspection by an authenticated client: a resource server
    /// must be able to check any token presented to it, so any authenticated
    /// client may; it learns only what the token's bearer could tell it.
    Introspect,
}

/// Decides whether `principal` may act on tokens owned by `owner_id`.
///
/// - Your own tokens: yes (the field's own `tokens:read` / `tokens:write` guard
///   has already checked the credential's scopes).
/// - Another user's or a service account's: only with the admin role *and*
///   the scope for it in the credential in use — `users:read` to read,
///   `users:write` to write. A token never carries more than its scopes, so an
///   administrator's token narrowed to `tokens:*` acts only on its own tokens.
///
/// The refusal is `FORBIDDEN` naming the missing scope; callers that address a
/// token by id turn a refused [`TokenAccess::Read`] into `NOT_FOUND` so that
/// nobody learns whether someone else's token exists.
pub fn may_act_on_tokens(
    principal: &Principal,
    owner_id: &str,
    access: TokenAccess,
) -> Result<(), AppError> {
    if principal.user_id == owner_id || access == TokenAccess::Introspect {
        return Ok(());
    }
    may_act_on_others_tokens(principal, access)
}

/// [`may_act_on_tokens`] for an owner known not to be the caller (checked
/// before looking the owner up, so a refusal says nothing about whether it exists).
pub fn may_act_on_others_tokens(
    principal: &Principal,
    access: TokenAccess,
) -> Result<(), AppError> {
    let scope = match access {
        TokenAccess::Read | TokenAccess::Introspect => Scope::USERS_READ,
        TokenAccess::Write => Scope::USERS_WRITE,
    };
    if principal.is_admin() && principal.scopes.contains(scope) {
        Ok(())
    } else {
        Err(AppError::Forbidden {
            scope: scope.as_str(),
        })
    }
}
