//! Signing in and out: the sign-in page (`GET /login`), `POST /auth/login`,
//! `POST /auth/logout`, the `next` redirect (same-site paths only) and the
//! `Origin` check that keeps other sites from signing a browser in or out; and
//! `signed_in`, the one way a page asks who the browser is signed in as.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, CookieBuilder, SameSite};
use serde::Deserialize;
use serde_json::json;

use super::assets;
use super::page::{escape, page};
use std::sync::Arc;

use super::CookiePolicy;
use crate::audit::{self, Event};
use crate::auth::principal::Principal;
use crate::auth::secret::Secret;
use crate::core::Core;
use crate::error::AppError;
use crate::guard::{self, session_cookie};
use crate::request::{self, content_type_is};
use crate::sessions::{self, COOKIE_NAME};
use crate::users;

/// `next` is honoured only for a same-site path: no scheme, no host, no `//`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

fn login_html(next: &str, error: Option<&str>, email: &str) -> String {
    let error = error
        .map(|e| {
            format!(
                r#"<p class="error" role="alert" id="login-error">{}</p>"#,
                escape(e)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · tokengate</title>{head}</head>
<body><main class="narrow">
<h1>Sign in to tokengate</h1>
{error}
<form method="post" action="/auth/login">
<input type="hidden" name="next" value="{next}">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required value="{email}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</main></body></html>"#,
        next = escape(next),
        email = escape(email),
        head = assets::head_links("style.css"),
    )
}

/// The query string of `GET /login`.
#[derive(Deserialize)]
pub struct LoginPageQuery {
    next: Option<String>,
}

/// `GET /login`.
pub async fn login_page(Query(q): Query<LoginPageQuery>) -> Response {
    page(
        StatusCode::OK,
        login_html(&safe_next(q.next.as_deref()), None, ""),
    )
}

/// The sign-in body, as JSON or as a form (`application/x-www-form-urlencoded`,
/// what the sign-in page posts). Unknown fields are ignored.
#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// Refuses a browser request whose `Origin` is another site (login CSRF).
fn cross_site(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    origin != "null" && origin_host != host
}

/// The session cookie as the browser is to keep it: `HttpOnly` (no script
/// reads it), `SameSite=Lax` (not sent on cross-site posts), `Path=/`, and
/// `Secure` when configured (on by default off loopback).
fn session_cookie_builder(value: String, secure: bool) -> CookieBuilder<'static> {
    Cookie::build((COOKIE_NAME, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
}

/// `Set-Cookie` that starts a session: the cookie lives as long as the session.
fn start_session_cookie(value: &str, lifetime: Duration, secure: bool) -> HeaderValue {
    let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    set_cookie_header(
        session_cookie_builder(value.to_owned(), secure)
            .max_age(cookie::time::Duration::seconds(lifetime))
            .build(),
    )
}

/// `Set-Cookie` that makes the browser drop the session cookie (`Max-Age=0`
/// and an `Expires` in the past), with the attributes it was set with.
fn end_session_cookie(secure: bool) -> HeaderValue {
    set_cookie_header(
        session_cookie_builder(String::new(), secure)
            .removal()
            .build(),
    )
}

fn set_cookie_header(cookie: Cookie<'_>) -> HeaderValue {
    // Cannot fail: the name is ours and the value base64url; should it ever,
    // a removal is the safe answer.
    HeaderValue::try_from(cookie.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("tokengate_session=; Path=/; Max-Age=0"))
}

fn json_error(status: StatusCode, error: &str, retry_after: Option<u64>) -> Response {
    let mut resp = (status, axum::Json(json!({ "error": error }))).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// `POST /auth/login`: JSON `{"email","password"}` answers 200 `{"ok":true}`;
/// a form post answers 303 to `next`. Both set the session cookie.
pub async fn login(
    State(app): State<Arc<Core>>,
    State(cookies): State<CookiePolicy>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_form = content_type_is(&headers, request::FORM);
    if cross_site(&headers) {
        return json_error(StatusCode::FORBIDDEN, "cross_site_request", None);
    }
    let parsed = if is_form {
        serde_urlencoded::from_bytes::<LoginForm>(&body).ok()
    } else if content_type_is(&headers, request::JSON) {
        serde_json::from_slice::<LoginForm>(&body).ok()
    } else {
        return json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        );
    };
    // A body that does not parse, or names a field twice, is refused rather
    // than guessed at. The parser's message is not echoed: it may quote the body.
    let Some(form) = parsed else {
        return json_error(StatusCode::BAD_REQUEST, "invalid_request", None);
    };
    let ip = peer.ip().to_string();
    let password = Secret::new(form.password);
    let next = safe_next(form.next.as_deref());
    let user = match users::sign_in(&app.db, &app.throttle, &form.email, &password, &ip).await {
        Ok(u) => u,
        Err(e) => {
            app.metrics.sign_in_failures.fetch_add(1, Ordering::Relaxed);
            let (status, code, retry, message) = match &e {
                AppError::Throttled { retry_after } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    Some(*retry_after),
                    format!("Too many failed attempts. Try again in {retry_after} seconds."),
                ),
                AppError::InvalidCredentials => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_credentials",
                    None,
                    "Wrong email or password.".to_owned(),
                ),
                other => return other_error(other),
            };
            if is_form {
                let mut resp = page(status, login_html(&next, Some(&message), &form.email));
                if let Some(secs) = retry {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                return resp;
            }
            return json_error(status, code, retry);
        }
    };
    let session = match sessions::create(&app.db, &user.id, app.config.session_lifetime, &ip).await
    {
        Ok(s) => s,
        Err(e) => return other_error(&e),
    };
    app.metrics.sign_ins.fetch_add(1, Ordering::Relaxed);
    let cookie = start_session_cookie(
        session.expose(),
        app.config.session_lifetime,
        cookies.secure,
    );
    if is_form {
        (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (
                    header::LOCATION,
                    HeaderValue::from_str(&next).unwrap_or(HeaderValue::from_static("/console")),
                ),
            ],
        )
            .into_response()
    } else {
        (
            StatusCode::OK,
            [(header::SET_COOKIE, cookie)],
            axum::Json(json!({ "ok": true })),
        )
            .into_response()
    }
}

fn other_error(e: &AppError) -> Response {
    e.log_if_internal();
    json_error(e.status(), "server_error", None)
}

/// `POST /auth/logout`: deletes the session row and clears the cookie.
pub async fn logout(
    State(app): State<Arc<Core>>,
    State(cookies): State<CookiePolicy>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if cross_site(&headers) {
        return json_error(StatusCode::FORBIDDEN, "cross_site_request", None);
    }
    if let Some(value) = session_cookie(&headers) {
        match sessions::delete(&app.db, value).await {
            Ok(Some((user_id, digest))) => {
                app.on_session_ended(&digest);
                let ip = peer.ip().to_string();
                audit::record(
                    &app.db,
                    Event {
                        actor_id: Some(&user_id),
                        action: "sign_out",
                        subject: Some(&user_id),
                        ip: Some(&ip),
                        detail: None,
                        owner_id: None,
                    },
                )
                .await;
            }
            Ok(None) => {}
            Err(e) => return other_error(&e),
        }
    }
    let clear = end_session_cookie(cookies.secure);
    if content_type_is(&headers, request::FORM) {
        (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, clear),
                (header::LOCATION, HeaderValue::from_static("/login")),
            ],
        )
            .into_response()
    } else {
        (
            StatusCode::OK,
            [(header::SET_COOKIE, clear)],
            axum::Json(json!({ "ok": true })),
        )
            .into_response()
    }
}

/// The principal of the browser's signed-in session, or `None`: what a page
/// (the console, the playground) shows itself to.
///
/// This is the guard's session check ([`guard::session_principal`]: the same
/// cache, the same database lookup, the same expiry and disabled-owner rules)
/// applied to the `tokengate_session` cookie alone, with one difference of
/// meaning that suits a page: a cookie the guard would refuse (malformed,
/// unknown, expired, owner disabled) is the same as no cookie, so the page
/// renders signed out instead of answering 401. A Bearer header is ignored: a
/// page is for a browser, and a token is sent to `/api`, where the guard reads
/// it. A refused cookie is not counted among the guard's refusals either (a
/// stale cookie on a page view refuses nothing). Only a failure to check at
/// all (the database) is an error.
pub(crate) async fn signed_in(
    core: &Core,
    headers: &HeaderMap,
) -> Result<Option<std::sync::Arc<Principal>>, AppError> {
    let Some(value) = session_cookie(headers) else {
        return Ok(None);
    };
    match guard::session_principal(core, value).await {
        Ok(p) => Ok(Some(p)),
        Err(AppError::Unauthenticated { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_must_name_the_host_it_was_sent_to() {
        // No Origin (a non-browser client, or an old browser): allowed.
        assert!(!cross_site(&with(&[(header::HOST, "127.0.0.1:8080")])));
        assert!(!cross_site(&with(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "http://127.0.0.1:8080"),
        ])));
        for other in [
            "https://evil.example",
            "http://127.0.0.1:8081",
            "http://127.0.0.1:8080.evil.example",
        ] {
            assert!(
                cross_site(&with(&[
                    (header::HOST, "127.0.0.1:8080"),
                    (header::ORIGIN, other),
                ])),
                "{other}"
            );
        }
        // An Origin without a Host to compare it with is refused.
        assert!(cross_site(&with(&[(header::ORIGIN, "http://a.example")])));
    }

    #[test]
    fn session_cookie_attributes() {
        let set = start_session_cookie("abc", Duration::from_secs(2400), false);
        let set = set.to_str().unwrap();
        assert!(set.starts_with("tokengate_session=abc;"), "{set}");
        for attr in ["; HttpOnly", "; SameSite=Lax", "; Path=/", "; Max-Age=2400"] {
            assert!(set.contains(attr), "{set} lacks {attr}");
        }
        assert!(!set.contains("Secure"), "{set}");
        let set = start_session_cookie("abc", Duration::from_secs(300), true);
        assert!(set.to_str().unwrap().contains("; Secure"));

        let clear = end_session_cookie(true);
        let clear = clear.to_str().unwrap();
        assert!(clear.starts_with("tokengate_session=;"), "{clear}");
        for attr in [
            "; HttpOnly",
            "; SameSite=Lax",
            "; Path=/",
            "; Max-Age=0",
            "; Secure",
            "; Expires=",
        ] {
            assert!(clear.contains(attr), "{clear} lacks {attr}");
        }
    }

    #[test]
    fn form_bodies_parse_like_the_sign_in_page_posts_them() {
        let form: LoginForm = serde_urlencoded::from_bytes(
            b"email=ada%40example.com&password=a+b%26c%3D&next=%2Fapi&extra=1",
        )
        .unwrap();
        assert_eq!(form.email, "ada@example.com");
        assert_eq!(form.password, "a b&c=");
        assert_eq!(form.next.as_deref(), Some("/api"));

        let empty: LoginForm = serde_urlencoded::from_bytes(b"").unwrap();
        assert_eq!((empty.email.as_str(), empty.password.as_str()), ("", ""));
        assert_eq!(empty.next, None);

        // Which of two emails would be meant? Refused, not guessed.
        assert!(serde_urlencoded::from_bytes::<LoginForm>(b"email=a&email=b").is_err());
    }

    #[test]
    fn next_is_a_same_site_path_or_the_console() {
        for (next, expected) in [
            (None, "/console"),
            (Some("/api"), "/api"),
            (Some("/api?x=1#y"), "/api?x=1#y"),
            (Some("//evil.example/x"), "/console"),
            (Some("https://evil.example/"), "/console"),
            (Some("/\\evil.example"), "/console"),
            (Some("/a\r\nSet-Cookie: x=y"), "/console"),
            (Some("api"), "/console"),
            (Some(""), "/console"),
        ] {
            assert_eq!(safe_next(next), expected, "{next:?}");
        }
    }
}
