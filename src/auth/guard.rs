//! The guard: turns a request's Bearer header or session cookie into a
//! [`Principal`], or a 401, before any GraphQL field runs.
//!
//! A Bearer header, when present, is the credential: a bad one is refused even
//! when a valid cookie comes with it.

use axum::http::{header, HeaderMap};

use super::principal::Principal;
use super::sessions::{self, COOKIE_NAME};
use crate::app::App;
use crate::error::{AppError, AuthReason};
use crate::tokens;

/// Where the credential came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Bearer,
    Cookie,
}

/// Reads the value of the session cookie, if sent.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim_matches('"'))
}

/// Extracts the token from `Authorization: Bearer <token>` (RFC 6750 §2.1).
fn bearer_token(headers: &HeaderMap) -> Option<Result<&str, AppError>> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    let malformed = || {
        AppError::unauthenticated(
            AuthReason::Malformed,
            "the Authorization header must be `Bearer <token>`",
            true,
        )
    };
    if values.next().is_some() {
        return Some(Err(malformed()));
    }
    let parsed = value.to_str().ok().and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
            .then_some(token)
    });
    Some(parsed.ok_or_else(malformed))
}

/// Authenticates a request, counting refusals by reason.
pub async fn authenticate(app: &App, headers: &HeaderMap) -> Result<(Principal, Via), AppError> {
    let result = match bearer_token(headers) {
        Some(Ok(token)) => tokens::authenticate(app, token)
            .await
            .map(|p| (p, Via::Bearer)),
        Some(Err(e)) => Err(e),
        None => match session_cookie(headers) {
            Some(value) => sessions::authenticate(&app.db, value)
                .await
                .map(|p| (p, Via::Cookie)),
            None => Err(AppError::unauthenticated(
                AuthReason::Missing,
                "sign in, or send Authorization: Bearer <token>",
                false,
            )),
        },
    };
    if let Err(AppError::Unauthenticated { reason, .. }) = &result {
        app.metrics.auth_failure(*reason);
    }
    result
}
