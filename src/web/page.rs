//! Page chrome shared by every HTML page: the security headers (CSP, no framing,
//! no referrer, never cached), HTML escaping, and the error page.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// The policy of every page: own-origin resources only, no inline script, no framing.
pub(crate) const PAGE_CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Headers every page carries: no framing, no inline script, no referrer leaks,
/// never cached (the console can show a token).
pub(crate) fn page(status: StatusCode, html: String) -> Response {
    page_with_csp(status, html, PAGE_CSP)
}

/// [`page`] with another Content-Security-Policy (the playground's).
pub(crate) fn page_with_csp(status: StatusCode, html: String, csp: &'static str) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(csp),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html,
    )
        .into_response()
}

/// Escapes text for HTML content and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The 500 page, for when a page cannot be built (the database is unreachable);
/// it says nothing of the cause, which is logged here.
pub(crate) fn error_page(e: &AppError) -> Response {
    e.log_if_internal();
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error · tokengate</title></head>\
         <body><main><h1>Something went wrong</h1><p>Try again in a moment.</p></main></body></html>"
            .to_owned(),
    )
}
