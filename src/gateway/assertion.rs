//! The assertion an upstream receives in place of the caller's credential: a
//! JWT signed with the deployment's keys (verifiable with
//! `/.well-known/jwks.json`), `typ: JWT` — never `at+jwt`, so it is not
//! accepted by tokengate as an access token — with `aud` the upstream's
//! audience and a lifetime of 60 seconds.

use chrono::Utc;
use serde::Serialize;

use crate::auth::secret::Secret;
use crate::core::Core;
use crate::error::AppResult;

/// How long an assertion is valid.
pub const LIFETIME_SECS: i64 = 60;

#[derive(Serialize)]
struct Claims<'a> {
    iss: String,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// Signs an assertion for `sub` with `scope` (space-separated) for `aud`.
pub fn sign(
    core: &Core,
    aud: &str,
    sub: &str,
    scope: &str,
    client_id: Option<&str>,
    request_id: Option<&str>,
) -> AppResult<Secret> {
    let now = Utc::now().timestamp();
    let claims = Claims {
        iss: core.keys.issuer(),
        sub,
        aud,
        iat: now,
        exp: now + LIFETIME_SECS,
        jti: uuid::Uuid::now_v7().to_string(),
        scope,
        client_id,
        request_id,
    };
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), "JWT".into());
    core.keys.sign_compact(header, &claims).map(Secret::new)
}
