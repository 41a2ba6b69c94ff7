//! `POST /oauth2/revoke` (RFC 7009).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::client::{authenticate_client, client_credentials, parse_form};
use super::error::{no_store, OAuthError};
use crate::auth::{may_act_on_tokens, TokenAccess};
use crate::core::Core;
use crate::service_accounts;
use crate::tokens;

/// `POST /oauth2/revoke` (RFC 7009). With client authentication, a client may
/// revoke the tokens issued to it; without, a token may revoke itself (holding
/// it is the authority). Unknown or foreign tokens answer 200 all the same.
pub async fn revoke(
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = peer.ip().to_string();
    let result = async {
        let form = parse_form(&headers, &body)?;
        let creds = client_credentials(&headers, &form)?;
        let client = match creds {
            Some(c) => Some(authenticate_client(&core, Some(c), &ip).await?),
            None => None,
        };
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::new("invalid_request", "token is required"))?;
        if let Ok((holder, record)) = tokens::check(&core, token).await {
            // An authenticated client acts as itself; without one, the token's
            // holder does (holding it is the authority to end it).
            let actor = match &client {
                Some(c) => service_accounts::client_principal(&core, c).await?,
                None => holder,
            };
            // A token the actor may not revoke answers 200 all the same (RFC 7009 §2.2).
            if may_act_on_tokens(&actor, &record.user_id, TokenAccess::Write).is_ok() {
                tokens::revoke_record(&core, record, Some(&actor.user_id), Some(&ip)).await?;
            }
        }
        Ok::<_, OAuthError>(no_store(StatusCode::OK.into_response()))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
