//! The one error type. Each variant knows its HTTP status and its GraphQL
//! `extensions.code`; internal detail is logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why a request could not be authenticated (SPEC §3 `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthReason {
    /// No session cookie and no `Authorization` header.
    Missing,
    /// A credential that cannot be read: an `Authorization` header that is not
    /// `Bearer <token>`, a token that is not an access-token JWT, a cookie of the
    /// wrong shape.
    Malformed,
    /// A token not signed with EdDSA, or whose signature does not verify.
    BadSignature,
    /// A token past its `exp`.
    Expired,
    /// A revoked token, or the credential of a disabled user.
    Revoked,
    /// A well-formed credential this deployment does not know: an unknown
    /// session, token id, signing key or issuer.
    Unknown,
    /// A session past its lifetime.
    SessionExpired,
}

impl AuthReason {
    /// The SPEC §3 `reason` string, such as `bad_signature`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthReason::Missing => "missing",
            AuthReason::Malformed => "malformed",
            AuthReason::BadSignature => "bad_signature",
            AuthReason::Expired => "expired",
            AuthReason::Revoked => "revoked",
            AuthReason::Unknown => "unknown",
            AuthReason::SessionExpired => "session_expired",
        }
    }
}

/// Every failure tokengate reports.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No usable credential. `bearer` says whether a Bearer token was presented,
    /// which decides the `WWW-Authenticate` parameters (RFC 6750 §3).
    #[error("{description}")]
    Unauthenticated {
        /// Why, as `extensions.reason`.
        reason: AuthReason,
        /// The message sent (and the `error_description` for a Bearer token).
        description: &'static str,
        /// Whether a Bearer token was presented.
        bearer: bool,
    },
    /// Authenticated, but the credential lacks `scope` (HTTP 403, `FORBIDDEN`,
    /// `extensions.requiredScope`).
    #[error("this field needs the `{scope}` scope")]
    Forbidden {
        /// The scope's name.
        scope: &'static str,
    },
    /// Input refused by validation; the message says what to change (HTTP 400,
    /// `BAD_USER_INPUT`).
    #[error("{0}")]
    BadInput(String),
    /// The thing asked for does not exist or is not the caller's to see (HTTP
    /// 404, `NOT_FOUND`).
    #[error("{0}")]
    NotFound(String),
    /// A sign-in with a wrong email or password, or a disabled account; which
    /// one is never said (HTTP 401).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Too many failed sign-ins or client authentications (HTTP 429 with
    /// `Retry-After`).
    #[error("too many attempts; try again in {retry_after} seconds")]
    Throttled {
        /// Seconds until another attempt is counted.
        retry_after: u64,
    },
    /// `POST /api` with a body that is not JSON (HTTP 415, `BAD_USER_INPUT`).
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// A mutation over `GET` (HTTP 405, `BAD_USER_INPUT`).
    #[error("{0}")]
    MethodNotAllowed(&'static str),
    /// A failure that is not the caller's: the detail is logged, and clients
    /// see only "internal error" (HTTP 500, `INTERNAL`).
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    /// An [`AppError::Unauthenticated`].
    pub fn unauthenticated(reason: AuthReason, description: &'static str, bearer: bool) -> Self {
        AppError::Unauthenticated {
            reason,
            description,
            bearer,
        }
    }

    /// Wraps any internal failure; the detail goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        AppError::Internal(detail.to_string())
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated { .. } | AppError::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AppError::BadInput(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The GraphQL `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated { .. } | AppError::InvalidCredentials => "UNAUTHENTICATED",
            AppError::Forbidden { .. } => "FORBIDDEN",
            AppError::BadInput(_)
            | AppError::UnsupportedMediaType(_)
            | AppError::MethodNotAllowed(_) => "BAD_USER_INPUT",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::Throttled { .. } => "TOO_MANY_REQUESTS",
            AppError::Internal(_) => "INTERNAL",
        }
    }

    /// Logs the detail of an internal error (clients only ever see "internal error").
    pub fn log_if_internal(&self) {
        if let AppError::Internal(detail) = self {
            tracing::error!(error = %detail, "internal error");
        }
    }

    /// The message a client may see; logs internal detail on the way out.
    fn public_message(&self) -> String {
        self.log_if_internal();
        self.to_string()
    }

    /// The SPEC §3 error body.
    pub fn graphql_body(&self) -> serde_json::Value {
        let mut ext = json!({ "code": self.code() });
        match self {
            AppError::Unauthenticated { reason, .. } => ext["reason"] = json!(reason.as_str()),
            AppError::Forbidden { scope } => ext["requiredScope"] = json!(scope),
            _ => {}
        }
        json!({ "errors": [{ "message": self.public_message(), "extensions": ext }] })
    }

    /// `WWW-Authenticate` for a 401 (RFC 6750 §3).
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        match self {
            AppError::Unauthenticated { bearer: true, description, .. } => HeaderValue::from_str(&format!(
                "Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"{description}\""
            ))
            .ok(),
            AppError::Unauthenticated { .. } => Some(HeaderValue::from_static("Bearer realm=\"tokengate\"")),
            _ => None,
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        AppError::internal(format!("database: {e}"))
    }
}

impl From<sea_orm::TransactionError<AppError>> for AppError {
    fn from(e: sea_orm::TransactionError<AppError>) -> Self {
        match e {
            sea_orm::TransactionError::Connection(e) => e.into(),
            sea_orm::TransactionError::Transaction(e) => e,
        }
    }
}

impl async_graphql::ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.public_message()).extend_with(|_, e| {
            e.set("code", self.code());
            if let AppError::Forbidden { scope } = self {
                e.set("requiredScope", *scope);
            }
            if let AppError::Unauthenticated { reason, .. } = self {
                e.set("reason", reason.as_str());
            }
        })
    }
}

/// Converts a service result for a resolver, keeping `extensions.code`.
///
/// async-graphql converts any `Display` error with `?`, which would drop the
/// extensions; resolvers call `.gql()` instead.
pub trait GqlResult<T> {
    /// The result with any [`AppError`] turned into a GraphQL error carrying its
    /// extensions.
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResult<T> for Result<T, AppError> {
    fn gql(self) -> async_graphql::Result<T> {
        use async_graphql::ErrorExtensions;
        self.map_err(|e| e.extend())
    }
}

/// HTTP answer in the GraphQL error shape (used by `/api` and its guard).
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let www = self.www_authenticate();
        let retry = match &self {
            AppError::Throttled { retry_after } => Some(*retry_after),
            _ => None,
        };
        let mut resp = (status, axum::Json(self.graphql_body())).into_response();
        if let Some(v) = www {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(secs) = retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// A result whose error is an [`AppError`].
pub type AppResult<T> = Result<T, AppError>;

/// An error and its causes on one line, at most 500 characters (an HTTP
/// client's own message is often only the outermost, "error sending request").
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s.chars().take(500).collect()
}
