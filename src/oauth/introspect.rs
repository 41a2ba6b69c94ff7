//! `POST /oauth2/introspect` (RFC 7662).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::client::{authenticate_client, client_credentials, parse_form};
use super::error::{no_store, OAuthError};
use crate::auth::{may_act_on_tokens, TokenAccess};
use crate::core::Core;
use crate::error::AppError;
use crate::service_accounts;
use crate::tokens;

/// `POST /oauth2/introspect` (RFC 7662), for authenticated clients only.
pub async fn introspect(
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = peer.ip().to_string();
    let result = async {
        let form = parse_form(&headers, &body)?;
        let client = authenticate_client(&core, client_credentials(&headers, &form)?, &ip).await?;
        let client = service_accounts::client_principal(&core, &client).await?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::new("invalid_request", "token is required"))?;
        let body = match tokens::check(&core, token).await {
            Ok((principal, record))
                if may_act_on_tokens(&client, &record.user_id, TokenAccess::Introspect).is_ok() =>
            {
                let mut v = json!({
                    "active": true,
                    "sub": principal.user_id,
                    "scope": core.scopes.to_space_separated(principal.scopes),
                    "iat": record.created_at.timestamp(),
                    "jti": record.id,
                    "iss": core.keys.issuer(),
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
