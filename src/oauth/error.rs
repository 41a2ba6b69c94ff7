//! The RFC 6749 §5.2 error every OAuth endpoint answers with.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::AppError;

/// An RFC 6749 §5.2 error.
pub(super) struct OAuthError {
    pub(super) status: StatusCode,
    pub(super) error: &'static str,
    description: String,
    retry_after: Option<u64>,
}

impl OAuthError {
    pub(super) fn new(error: &'static str, description: impl Into<String>) -> Self {
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

pub(super) fn no_store(mut resp: Response) -> Response {
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
