//! Access tokens as JWTs shaped after RFC 9068: header `typ: at+jwt`, `kid`,
//! EdDSA; claims `iss sub jti iat exp scope` (+ `client_id` for machine clients).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use crate::auth::secret::Secret;
use crate::core::Core;
use crate::error::{AppError, AppResult, AuthReason};

/// The JOSE header `typ` of an access token (RFC 9068 §2.1); tokens without
/// it are refused.
pub const TYP: &str = "at+jwt";

/// Clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 5;

/// The JOSE header fields the verifier reads.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
}

/// An access token's claims (RFC 9068 §2.2).
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The deployment's issuer when the token was signed.
    pub iss: String,
    /// The owning user's id.
    pub sub: String,
    /// The token's id (`access_tokens.id`).
    pub jti: String,
    /// Issued at, in Unix seconds.
    pub iat: i64,
    /// Expiry in Unix seconds; absent from a non-expiring token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Space-separated scope names.
    pub scope: String,
    /// The service account's client id, for a service account's token; absent
    /// otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl Claims {
    /// The claims of a new token; times are truncated to whole seconds.
    pub fn new(
        iss: &str,
        sub: &str,
        jti: &str,
        iat: DateTime<Utc>,
        exp: Option<DateTime<Utc>>,
        scope: String,
        client_id: Option<&str>,
    ) -> Claims {
        Claims {
            iss: iss.to_owned(),
            sub: sub.to_owned(),
            jti: jti.to_owned(),
            iat: iat.timestamp(),
            exp: exp.map(|e| e.timestamp()),
            scope,
            client_id: client_id.map(str::to_owned),
        }
    }
}

/// Signs `claims` with the active key.
pub fn sign(core: &Core, claims: &Claims) -> AppResult<Secret> {
    // The key parsed once per load (jsonwebtoken's `encode` parses the PKCS#8
    // document and derives the public key at every signature).
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), TYP.into());
    core.keys.sign_compact(header, claims).map(Secret::new)
}

fn refuse(reason: AuthReason, description: &'static str) -> AppError {
    AppError::unauthenticated(reason, description, true)
}

/// Checks structure, algorithm, key, signature, expiry and issuer. The algorithm
/// is pinned to EdDSA: whatever the header says, no other is tried.
pub async fn verify(core: &Core, token: &str) -> AppResult<Claims> {
    if token.split('.').count() != 3 {
        return Err(refuse(AuthReason::Malformed, "the token is not a JWT"));
    }
    // Read the header ourselves: jsonwebtoken's parser rejects algorithms it does
    // not know (`none`), which would hide a forgery behind "malformed".
    let header: JoseHeader = token
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| refuse(AuthReason::Malformed, "the token header cannot be read"))?;
    if header.alg != "EdDSA" {
        return Err(refuse(
            AuthReason::BadSignature,
            "the token is not signed with EdDSA",
        ));
    }
    if header.typ.as_deref() != Some(TYP) {
        return Err(refuse(
            AuthReason::Malformed,
            "the token is not an access token (typ must be at+jwt)",
        ));
    }
    let kid = header
        .kid
        .ok_or_else(|| refuse(AuthReason::Malformed, "the token header has no kid"))?;
    let key = match core.keys.verifier(&kid) {
        Some(k) => k,
        None => {
            // Another process may have rotated keys: look once more, at most once a second.
            core.keys
                .reload_if_older(&core.db, Duration::from_secs(1))
                .await?;
            core.keys.verifier(&kid).ok_or_else(|| {
                refuse(
                    AuthReason::Unknown,
                    "the token was signed by a key this server does not know",
                )
            })?
        }
    };
    let decode = |issuers: &[String]| {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(issuers);
        validation.set_required_spec_claims(&["iss", "sub"]);
        validation.validate_exp = true;
        validation.validate_aud = false;
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
    };
    let mut decoded = decode(&core.keys.issuers());
    if matches!(&decoded, Err(e) if *e.kind() == ErrorKind::InvalidIssuer) {
        // Another process may have recorded a new issuer for the deployment.
        core.keys
            .reload_if_older(&core.db, Duration::from_secs(1))
            .await?;
        decoded = decode(&core.keys.issuers());
    }
    let data = decoded.map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm | ErrorKind::InvalidEddsaKey => {
            refuse(
                AuthReason::BadSignature,
                "the token signature does not verify",
            )
        }
        ErrorKind::ExpiredSignature => refuse(AuthReason::Expired, "the token has expired"),
        ErrorKind::InvalidIssuer => refuse(
            AuthReason::Unknown,
            "the token was issued by another deployment",
        ),
        _ => refuse(AuthReason::Malformed, "the token claims cannot be read"),
    })?;
    Ok(data.claims)
}
