//! `POST /oauth2/token`: client credentials (RFC 6749 §4.4) and token exchange
//! (RFC 8693).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::client::{authenticate_client, client_credentials, parse_form, Form};
use super::error::{no_store, OAuthError};
use super::{
    EXCHANGE_LIFETIME_SECS, GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS_TOKEN,
};
use crate::auth::scopes::Scopes;
use crate::auth::{Credential, ScopeSet};
use crate::core::Core;
use crate::service_accounts;
use crate::tokens::{self, Grant, Mint};

/// Parses `scope` against what may be granted; absent means all of it.
fn requested_scopes(
    scopes: &Scopes,
    form: &Form,
    allowed: ScopeSet,
) -> Result<ScopeSet, OAuthError> {
    let Some(raw) = form
        .get("scope")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    else {
        return Ok(allowed);
    };
    let asked = scopes.parse_space_separated(raw).map_err(|unknown| {
        OAuthError::new("invalid_scope", format!("unknown scope `{unknown}`"))
    })?;
    if !asked.is_subset_of(allowed) {
        return Err(OAuthError::new(
            "invalid_scope",
            format!(
                "the scope may only include: {}",
                scopes.to_space_separated(allowed)
            ),
        ));
    }
    Ok(asked)
}

fn token_response(issued: &tokens::Issued, exchange: bool) -> Response {
    let mut body = json!({
        "access_token": issued.token.expose(),
        "token_type": "Bearer",
        "scope": issued.record.scopes,
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
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = peer.ip().to_string();
    let result = async {
        let form = parse_form(&headers, &body)?;
        match form.get("grant_type").map(String::as_str) {
            Some(GRANT_CLIENT_CREDENTIALS) => {
                client_credentials_grant(&core, &headers, &form, &ip).await
            }
            Some(GRANT_TOKEN_EXCHANGE) => token_exchange_grant(&core, &form, &ip).await,
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
    core: &Core,
    headers: &HeaderMap,
    form: &Form,
    ip: &str,
) -> Result<Response, OAuthError> {
    let account = authenticate_client(core, client_credentials(headers, form)?, ip).await?;
    let scopes = requested_scopes(
        &core.scopes,
        form,
        service_accounts::allowed_scopes(&core.scopes, &account),
    )?;
    let now = Utc::now();
    let expires_at = now + chrono::Duration::seconds(account.access_token_lifetime);
    // One shared name rotates (single active token); a unique one accumulates.
    let name = if account.single_active_token {
        "client_credentials".to_owned()
    } else {
        format!("client_credentials {}", uuid::Uuid::now_v7())
    };
    let issued = tokens::mint(
        core,
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
            // Short-lived grant tokens are not capped (named tokens are).
            cap: None,
            retire: None,
            actor_id: Some(&account.user_id),
            ip: Some(ip),
        },
    )
    .await?;
    Ok(token_response(&issued, false))
}

async fn token_exchange_grant(core: &Core, form: &Form, ip: &str) -> Result<Response, OAuthError> {
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
    let (parent, record) = tokens::check(core, subject).await?;
    let scopes = requested_scopes(&core.scopes, form, parent.scopes)?;
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
        core,
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
            cap: None,
            retire: None,
            actor_id: Some(&parent.user_id),
            ip: Some(ip),
        },
    )
    .await?;
    Ok(token_response(&issued, true))
}
