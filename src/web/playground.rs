//! `GET /api` for a browser: the offline GraphQL playground (GraphiQL, bundled
//! from pinned npm packages in `playground/`), served to everyone. Signed out,
//! the page says so, with a sign-in link, and works with an `Authorization:
//! Bearer` header from its headers editor. Requests with a `query` parameter, or
//! that do not ask for HTML, are GraphQL requests and go to
//! [`graphql::http::get`] unchanged.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use super::assets;
use super::page::{error_page, page_with_csp};
use super::sign_in::signed_in;
use std::sync::Arc;

use crate::core::Core;
use crate::graphql;
use crate::graphql::AppSchema;
use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};

/// The playground's policy. Scripts, connections and everything else stay
/// `'self'`; two relaxations, for this page only:
/// - `style-src 'unsafe-inline'`: GraphiQL (React, CodeMirror, its resizable
///   panes and popovers) sets `style` attributes at run time, which a strict
///   `style-src` would block and break its layout. Inline styles cannot run code.
/// - `font-src`/`img-src data:`: GraphiQL's stylesheet embeds its fonts and
///   icons as `data:` URLs, so they come from our own bundle, not the network.
const PLAYGROUND_CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; \
     font-src 'self' data:; img-src 'self' data:; frame-ancestors 'none'; \
     form-action 'self'; base-uri 'none'";

/// Whether a request is a browser navigation (Accept names `text/html`).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

fn has_query_param(raw: Option<&str>) -> bool {
    raw.is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "query"))
}

/// `GET /api`: the playground for a browser without `?query=`, else GraphQL.
pub async fn api_get(
    State(core): State<Arc<Core>>,
    State(schema): State<AppSchema>,
    connect: ConnectInfo<SocketAddr>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Ok(ws) = ws {
        return graphql::ws::upgrade(core, schema, ws, &headers, connect.0.ip()).await;
    }
    if wants_html(&headers) && !has_query_param(raw.as_deref()) {
        return playground(&core, &headers).await;
    }
    let mut resp =
        graphql::http::get(State(core), State(schema), connect, headers, RawQuery(raw)).await;
    // The same URL answers HTML or JSON depending on Accept.
    resp.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

async fn playground(core: &Core, headers: &HeaderMap) -> Response {
    let has_session = match signed_in(core, headers).await {
        Ok(principal) => principal.is_some(),
        Err(e) => return error_page(&e),
    };
    // Served to everyone: a person holding only a token uses the headers
    // editor. The page differs with the cookie (notice, sign-out button).
    let mut resp = page_with_csp(StatusCode::OK, playground_html(has_session), PLAYGROUND_CSP);
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept, Cookie"));
    resp
}

/// The page around the bundle. `data-signed-in` on `#graphiql` tells the
/// bundle whether requests carry a session (no inline script: the CSP has
/// none). Signed out, a notice above the editor, rendered here so it shows
/// without JavaScript, says how to go on: sign in, or send a token.
fn playground_html(signed_in: bool) -> String {
    let (account, notice) = if signed_in {
        (
            r#"
<form method="post" action="/auth/logout"><button type="submit">Sign out</button></form>"#,
            "",
        )
    } else {
        (
            "",
            r#"
<div class="tg-notice" id="signed-out-notice" role="status"><strong>Not signed in:</strong> <a id="sign-in-link" href="/login?next=/api">sign in</a>, or add an Authorization header to run queries as a token: under <em>Headers</em> below, <code>{"Authorization": "Bearer &lt;token&gt;"}</code>.</div>"#,
        )
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>API playground · tokengate</title>
<link rel="stylesheet" href="{graphiql_css}">
{page_css}
</head>
<body class="playground">
<header class="tg-bar">
<a class="tg-brand" href="/console">tokengate</a>
<nav aria-label="Site"><a href="/api" aria-current="page">API playground</a> <a href="/console">Tokens</a>{account}</nav>
</header>{notice}
<main id="graphiql" aria-label="GraphQL playground" data-signed-in="{signed_in}"><p class="tg-loading">Loading the playground…</p></main>
<script src="{graphiql_js}" defer></script>
</body></html>"#,
        graphiql_css = assets::url("playground.css"),
        page_css = assets::head_links("playground-page.css"),
        graphiql_js = assets::url("playground.js"),
    )
}

#[cfg(test)]
mod tests {
    use super::super::page::PAGE_CSP;
    use super::*;

    #[test]
    fn html_only_without_a_query_parameter() {
        let mut h = HeaderMap::new();
        assert!(!wants_html(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert!(wants_html(&h));
        assert!(!has_query_param(None));
        assert!(!has_query_param(Some("x=1")));
        assert!(has_query_param(Some("query=%7Bme%7Bemail%7D%7D")));
        assert!(has_query_param(Some("a=b&query=")));
        assert_ne!(PLAYGROUND_CSP, PAGE_CSP);
        assert!(PLAYGROUND_CSP.contains("frame-ancestors 'none'"));
        assert!(!PLAYGROUND_CSP.contains("script-src"));
    }

    #[test]
    fn signed_out_page_has_the_notice_and_a_sign_in_link() {
        let out = playground_html(false);
        assert!(out.contains(r#"role="status""#));
        assert!(out.contains("Not signed in:"));
        assert!(out.contains(r#"href="/login?next=/api""#));
        assert!(out.contains(r#"data-signed-in="false""#));
        assert!(!out.contains("/auth/logout"));

        let signed_in = playground_html(true);
        assert!(!signed_in.contains("Not signed in"));
        assert!(!signed_in.contains(r#"role="status""#));
        assert!(signed_in.contains(r#"data-signed-in="true""#));
        assert!(signed_in.contains(r#"action="/auth/logout""#));

        // No inline script either way: the one script is the bundle.
        for html in [out, signed_in] {
            assert_eq!(html.matches("<script").count(), 1);
            assert!(html.contains(r#"<script src="/assets/playground.js"#));
        }
    }
}
