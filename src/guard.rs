//! The guard: turns a request's Bearer header or session cookie into a
//! [`Principal`], or a 401, before any GraphQL field runs.
//!
//! A Bearer header, when present, is the credential: a bad one is refused even
//! when a valid cookie comes with it.

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use cookie::Cookie;

use crate::auth::secret::sha256;
use crate::auth::{Credential, Principal};
use crate::core::cache::Kind;
use crate::core::Core;
use crate::error::{AppError, AuthReason};
use crate::sessions::{self, COOKIE_NAME};
use crate::tokens;

/// Reads the value of the session cookie, if sent: the `Cookie` header(s)
/// parsed as RFC 6265 `name=value` pairs by the `cookie` crate (a malformed
/// pair is skipped, not fatal), the first `tokengate_session` taken, a
/// surrounding pair of double quotes (allowed by RFC 6265) removed.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE_NAME)?
        // Borrowed from the header, unlike `value_trimmed`, which borrows the `Cookie`.
        .value_raw()?;
    Some(
        value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value),
    )
}

/// Extracts the token from `Authorization: Bearer <token>` (RFC 6750 §2.1).
pub fn bearer_token(headers: &HeaderMap) -> Option<Result<&str, AppError>> {
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

/// A Bearer token's principal: from the cache when seen before (one SHA-256,
/// one lookup, no JWT decoding, no database), else fully verified and cached.
/// Either way the use is noted once, with `ip` when known.
pub async fn token_principal(
    core: &Core,
    token: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<Arc<Principal>, AppError> {
    let digest = sha256(token.as_bytes());
    // One reading of the clock for the expiry check and the use noted.
    let now = chrono::Utc::now();
    let p = match core.credentials.get(Kind::Token, &digest, now) {
        Some(p) => p,
        None => {
            // Boxed: the cold path's database futures would otherwise make
            // every request's handler future kilobytes larger (see
            // `graphql::boxed`).
            let (p, _) = Box::pin(tokens::check(core, token)).await?;
            let p = Arc::new(p);
            if let Credential::Token { expires_at, .. } = &p.credential {
                core.credentials
                    .insert(Kind::Token, digest, p.clone(), *expires_at);
            }
            p
        }
    };
    if let Some(id) = p.token_id() {
        core.last_used.touch(id, now, ip);
    }
    Ok(p)
}

/// A session cookie's principal, cached like tokens until the session expires.
pub async fn session_principal(core: &Core, value: &str) -> Result<Arc<Principal>, AppError> {
    let digest = sha256(value.as_bytes());
    if let Some(p) = core
        .credentials
        .get(Kind::Session, &digest, chrono::Utc::now())
    {
        return Ok(p);
    }
    let (p, expires_at) = Box::pin(sessions::authenticate(&core.db, &core.scopes, value)).await?;
    let p = Arc::new(p);
    core.credentials
        .insert(Kind::Session, digest, p.clone(), Some(expires_at));
    Ok(p)
}

/// Authenticates a request, counting refusals by reason.
pub async fn authenticate(core: &Core, headers: &HeaderMap) -> Result<Arc<Principal>, AppError> {
    authenticate_from(core, headers, None).await
}

/// [`authenticate`], noting `ip` as the token's last-used address.
pub async fn authenticate_from(
    core: &Core,
    headers: &HeaderMap,
    ip: Option<std::net::IpAddr>,
) -> Result<Arc<Principal>, AppError> {
    let result = match bearer_token(headers) {
        Some(Ok(token)) => token_principal(core, token, ip).await,
        Some(Err(e)) => Err(e),
        None => match session_cookie(headers) {
            Some(value) => session_principal(core, value).await,
            None => Err(AppError::unauthenticated(
                AuthReason::Missing,
                "sign in, or send Authorization: Bearer <token>",
                false,
            )),
        },
    };
    if let Err(AppError::Unauthenticated { reason, .. }) = &result {
        core.metrics.auth_failure(*reason);
    }
    result
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn cookies(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn session_cookie_is_found_among_others() {
        let found = |v: &[&'static str]| session_cookie(&cookies(v)).map(str::to_owned);
        assert_eq!(found(&[]), None);
        assert_eq!(found(&["theme=dark"]), None);
        assert_eq!(found(&["xtokengate_session=a"]), None);
        assert_eq!(found(&["tokengate_session=abc"]), Some("abc".into()));
        assert_eq!(
            found(&["theme=dark; tokengate_session=abc; lang=en"]),
            Some("abc".into())
        );
        assert_eq!(found(&["junk; tokengate_session=abc"]), Some("abc".into()));
        assert_eq!(found(&["tokengate_session=\"abc\""]), Some("abc".into()));
        // HTTP/2 may split cookies over several headers.
        assert_eq!(
            found(&["theme=dark", "tokengate_session=abc"]),
            Some("abc".into())
        );
        // The first of two wins (the browser sends the most specific first).
        assert_eq!(
            found(&["tokengate_session=abc; tokengate_session=def"]),
            Some("abc".into())
        );
    }
}
