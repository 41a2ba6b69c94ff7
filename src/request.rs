//! Small helpers for reading HTTP requests, shared by every handler.

use axum::http::{header, HeaderMap};

/// Whether the request's `Content-Type` is `mime` (parameters such as
/// `charset` ignored, case-insensitive).
pub fn content_type_is(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(mime))
}

/// The media type of an HTML form body.
pub const FORM: &str = "application/x-www-form-urlencoded";
/// The media type of a JSON body.
pub const JSON: &str = "application/json";
