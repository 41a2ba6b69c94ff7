//! The rules a new token must pass before it is minted: its name, its scopes (a
//! subset of the caller's) and its lifetime (the configured maximum, never past
//! the token that creates it). Shared by tokens and service accounts.

use chrono::{DateTime, TimeZone, Utc};

use crate::auth::scopes::Scopes;
use crate::auth::{Credential, Principal, ScopeSet};
use crate::core::Core;
use crate::error::{AppError, AppResult};

/// Longest token (or service account) name accepted.
pub const MAX_NAME_LEN: usize = 100;

/// What is wrong with a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    /// Nothing but whitespace.
    Empty,
    /// More than [`MAX_NAME_LEN`] characters after trimming.
    TooLong,
    /// Contains a control character, such as a newline.
    ControlCharacters,
}

/// Trims a name (of a token or a service account) and checks it: not empty,
/// at most [`MAX_NAME_LEN`] characters, no control characters.
pub fn check_name(name: &str) -> Result<String, NameProblem> {
    let name = name.trim();
    if name.is_empty() {
        Err(NameProblem::Empty)
    } else if name.chars().count() > MAX_NAME_LEN {
        Err(NameProblem::TooLong)
    } else if name.chars().any(char::is_control) {
        Err(NameProblem::ControlCharacters)
    } else {
        Ok(name.to_owned())
    }
}

/// [`check_name`] for a token, with a message saying what to fix.
pub fn validate_name(name: &str) -> AppResult<String> {
    check_name(name).map_err(|problem| {
        AppError::BadInput(match problem {
            NameProblem::Empty => {
                "the token name is empty; give a name such as \"ci-deploy\"".into()
            }
            NameProblem::TooLong => {
                format!("the token name is too long; use at most {MAX_NAME_LEN} characters")
            }
            NameProblem::ControlCharacters => {
                "the token name has control characters; use printable text".into()
            }
        })
    })
}

/// Works out the scopes of a new token: those asked for, each known and held by
/// the caller; all of the caller's when none are asked for.
pub fn resolve_scopes(
    scopes: &Scopes,
    asked: Option<&[String]>,
    held: ScopeSet,
) -> AppResult<ScopeSet> {
    let Some(asked) = asked else { return Ok(held) };
    let set = scopes
        .parse_names(asked.iter().map(String::as_str))
        .map_err(|unknown| {
            AppError::BadInput(format!(
                "unknown scope `{unknown}`; valid scopes are: {}",
                scopes.to_space_separated(scopes.all())
            ))
        })?;
    if set.is_empty() {
        return Err(AppError::BadInput(
            "give at least one scope, or leave scopes out to get all of yours".into(),
        ));
    }
    if let Some(excess) = scopes.iter(set).find(|s| !held.contains(*s)) {
        return Err(AppError::BadInput(format!(
            "you cannot grant `{}`: your credential does not hold it (you hold: {})",
            excess.as_str(),
            scopes.to_space_separated(held)
        )));
    }
    Ok(set)
}

/// Works out the expiry of a new token from the policy and the caller's own expiry.
pub fn resolve_expiry(
    core: &Core,
    principal: &Principal,
    asked: Option<i64>,
    now: DateTime<Utc>,
) -> AppResult<Option<DateTime<Utc>>> {
    let max = crate::clock::checked_after(now, core.config.max_token_lifetime)
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

/// "180 days", "12 hours": lifetimes as people say them.
pub fn format_days(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s % 86400 == 0 => format!("{} days", s / 86400),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} seconds"),
    }
}
