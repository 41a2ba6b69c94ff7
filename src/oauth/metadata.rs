//! `GET /.well-known/oauth-authorization-server` (RFC 8414).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE};
use crate::core::Core;

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub async fn metadata(State(core): State<Arc<Core>>) -> Response {
    let issuer = core.keys.issuer();
    // Endpoints where this process is reached; the issuer stays the deployment's.
    let base = core.base_url();
    let base = base.trim_end_matches('/');
    let auth_methods = json!(["client_secret_basic", "client_secret_post"]);
    let body: Value = json!({
        "issuer": issuer.trim_end_matches('/'),
        "token_endpoint": format!("{base}/oauth2/token"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "grant_types_supported": [GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": core.scopes.names(core.scopes.all()),
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
