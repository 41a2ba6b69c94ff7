//! OAuth 2.0 endpoints for machine clients: the token endpoint (RFC 6749 §4.4
//! client credentials, RFC 8693 token exchange), revocation (RFC 7009),
//! introspection (RFC 7662) and server metadata (RFC 8414).
//!
//! Handlers parse and answer; the rules live in `tokens` and `service_accounts`.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Utc;
use entity::service_account;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::auth::secret::Secret;
use crate::auth::{may_act_on_tokens, Credential, ScopeSet, TokenAccess};
use crate::error::AppError;
use crate::request::{self, content_type_is};
use crate::service_accounts;
use crate::tokens::{self, Grant, Mint};

pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Lifetime of an exchanged token unless its parent ends sooner.
pub const EXCHANGE_LIFETIME_SECS: i64 = 15 * 60;

/// An RFC 6749 §5.2 error.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        OAuthError {
            status,
            error,
            description: description.into(),
            retry_after: None,
        }
    }
}

impl From<AppError> for OAuthError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::InvalidCredentials => {
                OAuthError::new("invalid_client", "client authentication failed")
            }
            AppError::Throttled { retry_after } => OAuthError {
                status: StatusCode::TOO_MANY_REQUESTS,
                error: "invalid_client",
                description: format!(
                    "too many failed attempts; try again in {retry_after} seconds"
                ),
                retry_after: Some(retry_after),
            },
            AppError::Unauthenticated { description, .. } => {
                OAuthError::new("invalid_grant", description)
            }
            AppError::BadInput(m) => OAuthError::new("invalid_request", m),
            other => {
                let status = other.status();
                other.log_if_internal();
                OAuthError {
                    status,
                    error: "server_error",
                    description: "internal error".into(),
                    retry_after: None,
                }
            }
        }
    }
}

fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            axum::Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tokengate\""),
            );
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        no_store(resp)
    }
}

type Form = HashMap<String, String>;

/// Parses a form body; a parameter given twice is an error (RFC 6749 §3.2).
fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
    let form_type = content_type_is(headers, request::FORM);
    if !form_type {
        return Err(OAuthError::new(
            "invalid_request",
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let mut form = Form::new();
    for (k, v) in form_urlencoded::parse(body) {
        if form.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                format!("parameter `{k}` is given more than once"),
            ));
        }
    }
    Ok(form)
}

/// The client credentials presented, by HTTP Basic (RFC 6749 §2.3.1, each part
/// form-urlencoded) or by `client_id`/`client_secret` form fields; not both.
fn client_credentials(
    headers: &HeaderMap,
    form: &Form,
) -> Result<Option<(String, Secret)>, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(v) => {
            let v = v.to_str().unwrap_or("");
            let encoded = match v.split_once(' ') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => rest.trim(),
                _ => {
                    return Err(OAuthError::new(
                        "invalid_client",
                        "client authentication must use HTTP Basic",
                    ))
                }
            };
            let decoded = STANDARD
                .decode(encoded)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    OAuthError::new("invalid_client", "the Basic credentials cannot be decoded")
                })?;
            let (id, secret) = decoded.split_once(':').ok_or_else(|| {
                OAuthError::new(
                    "invalid_client",
                    "the Basic credentials need client_id:client_secret",
                )
            })?;
            let unescape = |s: &str| -> String {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Some((unescape(id), Secret::new(unescape(secret))))
        }
        None => None,
    };
    let posted = match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => Some((id.clone(), Secret::new(secret.clone()))),
        (None, None) => None,
        (Some(_), None) if basic.is_some() => None,
        _ => {
            return Err(OAuthError::new(
                "invalid_request",
                "give both client_id and client_secret",
            ))
        }
    };
    match (basic, posted) {
        (Some(_), Some(_)) => Err(OAuthError::new(
            "invalid_request",
            "use one client authentication method, not two",
        )),
        (b, p) => Ok(b.or(p)),
    }
}

async fn authenticate_client(
    app: &AppState,
    creds: Option<(String, Secret)>,
    ip: &str,
) -> Result<service_account::Model, OAuthError> {
    let (id, secret) = creds
        .ok_or_else(|| OAuthError::new("invalid_client", "client authentication is required"))?;
    Ok(service_accounts::authenticate_client(app, &id, &secret, ip).await?)
}

/// Parses `scope` against what may be granted; absent means all of it.
fn requested_scopes(form: &Form, allowed: ScopeSet) -> Result<ScopeSet, OAuthError> {
    let Some(raw) = form
        .get("scope")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    else {
        return Ok(allowed);
    };
    let asked = ScopeSet::parse_space_separated(raw).map_err(|unknown| {
        OAuthError::new("invalid_scope", format!("unknown scope `{unknown}`"))
    })?;
    if !asked.is_subset_of(allowed) {
        return Err(OAuthError::new(
            "invalid_scope",
            format!(
                "the scope may only include: {}",
                allowed.to_space_separated()
            ),
        ));
    }
    Ok(asked)
}

fn token_response(issued: &tokens::Issued, scopes: ScopeSet, exchange: bool) -> Response {
    let mut body = json!({
        "access_token": issued.token.expose(),
        "token_type": "Bearer",
        "scope": scopes.to_space_separated(),
    });
    if let Some(exp) = issued.record.expires_at {
        // The token's lifetime exactly: `exp - iat` of its claims.
        body["expires_in"] = json!(exp.timestamp() - issued.record.created_at.timestamp());
    }
    if exchange {
        body["issued_token_type"] = json!(TOKEN_TYPE_ACCESS_TOKEN);
    }
    no_store((StatusCode::OK, axum::Json(body)).into_response())
}

/// `POST /oauth2/token`.
pub async fn token(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = peer.ip().to_string();
    let result = async {
        let form = parse_form(&headers, &body)?;
        match form.get("grant_type").map(String::as_str) {
            Some(GRANT_CLIENT_CREDENTIALS) => {
                client_credentials_grant(&app, &headers, &form, &ip).await
            }
            Some(GRANT_TOKEN_EXCHANGE) => token_exchange_grant(&app, &form, &ip).await,
            Some(other) => Err(OAuthError::new(
                "unsupported_grant_type",
                format!("grant_type `{other}` is not supported"),
            )),
            None => Err(OAuthError::new("invalid_request", "grant_type is required")),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn client_credentials_grant(
    app: &AppState,
    headers: &HeaderMap,
    form: &Form,
    ip: &str,
) -> Result<Response, OAuthError> {
    let account = authenticate_client(app, client_credentials(headers, form)?, ip).await?;
    let scopes = requested_scopes(form, service_accounts::allowed_scopes(&account)?)?;
    let now = Utc::now();
    let expires_at = now + chrono::Duration::seconds(account.access_token_lifetime);
    // One shared name rotates (single active token); a unique one accumulates.
    let name = if account.single_active_token {
        "client_credentials".to_owned()
    } else {
        format!("client_credentials {}", uuid::Uuid::now_v7())
    };
    let issued = tokens::mint(
        app,
        Mint {
            issued_at: now,
            owner_id: &account.user_id,
            name: &name,
            scopes,
            expires_at: Some(expires_at),
            parent_id: None,
            client_id: Some(&account.client_id),
            grant: Grant::ClientCredentials,
            replace_same_name: account.single_active_token,
            actor_id: Some(&account.user_id),
            ip: Some(ip),
        },
    )
    .await?;
    Ok(token_response(&issued, scopes, false))
}

async fn token_exchange_grant(
    app: &AppState,
    form: &Form,
    ip: &str,
) -> Result<Response, OAuthError> {
    let subject = form
        .get("subject_token")
        .ok_or_else(|| OAuthError::new("invalid_request", "subject_token is required"))?;
    match form.get("subject_token_type").map(String::as_str) {
        Some(TOKEN_TYPE_ACCESS_TOKEN) => {}
        Some(other) => {
            return Err(OAuthError::new(
                "invalid_request",
                format!("subject_token_type `{other}` is not supported"),
            ))
        }
        None => {
            return Err(OAuthError::new(
                "invalid_request",
                "subject_token_type is required",
            ))
        }
    }
    if let Some(t) = form.get("requested_token_type") {
        if t != TOKEN_TYPE_ACCESS_TOKEN {
            return Err(OAuthError::new(
                "invalid_request",
                format!("requested_token_type `{t}` is not supported"),
            ));
        }
    }
    let (parent, record) = tokens::check(app, subject).await?;
    let scopes = requested_scopes(form, parent.scopes)?;
    let now = Utc::now();
    let mut expires_at = now + chrono::Duration::seconds(EXCHANGE_LIFETIME_SECS);
    if let Credential::Token {
        expires_at: Some(parent_exp),
        ..
    } = parent.credential
    {
        expires_at = expires_at.min(parent_exp);
    }
    let name = format!("exchanged from {}", record.name);
    let issued = tokens::mint(
        app,
        Mint {
            issued_at: now,
            owner_id: &parent.user_id,
            name: &name,
            scopes,
            expires_at: Some(expires_at),
            parent_id: Some(&record.id),
            client_id: record.client_id.as_deref(),
            grant: Grant::TokenExchange,
            replace_same_name: false,
            actor_id: Some(&parent.user_id),
            ip: Some(ip),
        },
    )
    .await?;
    Ok(token_response(&issued, scopes, true))
}

/// `POST /oauth2/revoke` (RFC 7009). With client authentication, a client may
/// revoke the tokens issued to it; without, a token may revoke itself (holding
/// it is the authority). Unknown or foreign tokens answer 200 all the same.
pub async fn revoke(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = peer.ip().to_string();
    let result = async {
        let form = parse_form(&headers, &body)?;
        let creds = client_credentials(&headers, &form)?;
        let client = match creds {
            Some(c) => Some(authenticate_client(&app, Some(c), &ip).await?),
            None => None,
        };
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::new("invalid_request", "token is required"))?;
        if let Ok((holder, record)) = tokens::check(&app, token).await {
            // An authenticated client acts as itself; without one, the token's
            // holder does (holding it is the authority to end it).
            let actor = match &client {
                Some(c) => service_accounts::client_principal(c)?,
                None => holder,
            };
            // A token the actor may not revoke answers 200 all the same (RFC 7009 §2.2).
            if may_act_on_tokens(&actor, &record.user_id, TokenAccess::Write).is_ok() {
                tokens::revoke_record(&app, record, Some(&actor.user_id), Some(&ip)).await?;
            }
        }
        Ok::<_, OAuthError>(no_store(StatusCode::OK.into_response()))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /oauth2/introspect` (RFC 7662), for authenticated clients only.
pub async fn introspect(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = peer.ip().to_string();
    let result = async {
        let form = parse_form(&headers, &body)?;
        let client = authenticate_client(&app, client_credentials(&headers, &form)?, &ip).await?;
        let client = service_accounts::client_principal(&client)?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::new("invalid_request", "token is required"))?;
        let body = match tokens::check(&app, token).await {
            Ok((principal, record))
                if may_act_on_tokens(&client, &record.user_id, TokenAccess::Introspect).is_ok() =>
            {
                let mut v = json!({
                    "active": true,
                    "sub": principal.user_id,
                    "scope": principal.scopes.to_space_separated(),
                    "iat": record.created_at.timestamp(),
                    "jti": record.id,
                    "iss": app.keys.issuer(),
                    "token_type": "Bearer",
                });
                if let Some(exp) = record.expires_at {
                    v["exp"] = json!(exp.timestamp());
                }
                if let Some(c) = record.client_id {
                    v["client_id"] = json!(c);
                }
                v
            }
            Ok(_) | Err(AppError::Unauthenticated { .. }) => json!({ "active": false }),
            Err(e) => return Err(e.into()),
        };
        Ok::<_, OAuthError>(no_store((StatusCode::OK, axum::Json(body)).into_response()))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub async fn metadata(State(app): State<AppState>) -> Response {
    let issuer = app.keys.issuer();
    let iss = issuer.trim_end_matches('/');
    let auth_methods = json!(["client_secret_basic", "client_secret_post"]);
    let body: Value = json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/oauth2/token"),
        "revocation_endpoint": format!("{iss}/oauth2/revoke"),
        "introspection_endpoint": format!("{iss}/oauth2/introspect"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "grant_types_supported": [GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": ScopeSet::all().names(),
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
    });
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        axum::Json(body),
    )
        .into_response()
}
