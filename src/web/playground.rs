//! `GET /api` for a browser: the offline GraphQL playground (GraphiQL, bundled
//! from pinned npm packages in `playground/`), or a sign-in prompt. Requests
//! with a `query` parameter, or that do not ask for HTML, are GraphQL requests
//! and go to [`graphql::http::get`] unchanged.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use super::{assets, page_with_csp, session_principal};
use crate::app::AppState;
use crate::graphql;

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
    State(app): State<AppState>,
    connect: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if wants_html(&headers) && !has_query_param(raw.as_deref()) {
        return playground(&app, &headers).await;
    }
    let mut resp = graphql::http::get(State(app), connect, headers, RawQuery(raw)).await;
    // The same URL answers HTML or JSON depending on Accept.
    resp.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

async fn playground(app: &AppState, headers: &HeaderMap) -> Response {
    let mut resp = match session_principal(app, headers).await {
        Ok(Some(_)) => page_with_csp(StatusCode::OK, playground_html(), PLAYGROUND_CSP),
        // Not signed in: a prompt, with the status (and challenge) the API would give.
        Ok(None) => {
            let mut resp = super::page(StatusCode::UNAUTHORIZED, signed_out_html());
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="tokengate""#),
            );
            resp
        }
        Err(resp) => return resp,
    };
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept, Cookie"));
    resp
}

fn playground_html() -> String {
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
<nav aria-label="Site"><a href="/api" aria-current="page">API playground</a> <a href="/console">Tokens</a>
<form method="post" action="/auth/logout"><button type="submit">Sign out</button></form></nav>
</header>
<main id="graphiql" aria-label="GraphQL playground"><p class="tg-loading">Loading the playground…</p></main>
<script src="{graphiql_js}" defer></script>
</body></html>"#,
        graphiql_css = assets::url("playground.css"),
        page_css = assets::head_links("playground-page.css"),
        graphiql_js = assets::url("playground.js"),
    )
}

fn signed_out_html() -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in to use the API playground · tokengate</title>{head}</head>
<body><main class="narrow" id="signed-out">
<h1>Sign in to use the API playground</h1>
<p>The GraphQL playground runs queries as you, so it needs you signed in.</p>
<p><a class="button" id="sign-in-link" href="/login?next=/api">Sign in</a></p>
<p class="hint">Scripts do not need this page: send <code>POST /api</code> with
<code>Authorization: Bearer &lt;token&gt;</code>.</p>
</main></body></html>"#,
        head = assets::head_links("style.css"),
    )
}

#[cfg(test)]
mod tests {
    use super::super::PAGE_CSP;
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
}
