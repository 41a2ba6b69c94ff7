//! `GET /console`: the token page of the signed-in user. The server renders the
//! frame and what only it knows (the user's scopes, the lifetime cap); the
//! script (`playground/console.js`) lists, issues and revokes tokens through the
//! GraphQL API at `/api` with the session cookie, like any other client.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::assets;
use super::page::{error_page, escape, page};
use super::sign_in::signed_in;
use std::sync::Arc;

use crate::auth::principal::Principal;
use crate::core::Core;
use crate::tokens::policy::MAX_NAME_LEN;

/// `GET /console`: the page, or 303 to the sign-in page.
pub async fn console(State(app): State<Arc<Core>>, headers: HeaderMap) -> Response {
    match signed_in(&app, &headers).await {
        Ok(Some(principal)) => page(StatusCode::OK, console_html(&app, &principal)),
        Ok(None) => (
            StatusCode::SEE_OTHER,
            [
                (
                    header::LOCATION,
                    HeaderValue::from_static("/login?next=/console"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(e) => error_page(&e),
    }
}

fn console_html(app: &Core, principal: &Principal) -> String {
    let scopes: Vec<&str> = app
        .scopes
        .iter(principal.scopes)
        .map(|s| s.as_str())
        .collect();
    let checkboxes: String = app
        .scopes
        .iter(principal.scopes)
        .map(|scope| {
            let s = scope.as_str();
            let id = format!("scope-{}", s.replace([':', '.'], "-"));
            let checked = if s == "me:read" { " checked" } else { "" };
            format!(
                r#"<div class="check"><input type="checkbox" name="scope" id="{id}" value="{s}"{checked} aria-describedby="{id}-desc"><label for="{id}">{s}</label> <span class="scope-desc" id="{id}-desc">{d}</span></div>"#,
                s = escape(s),
                d = escape(app.scopes.description(scope)),
            )
        })
        .collect();
    let never = if app.config.allow_non_expiring_tokens {
        r#"<div class="check"><input type="checkbox" id="token-never" name="never"><label for="token-never">Never expires</label></div>"#
    } else {
        ""
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Access tokens · tokengate</title>{head}</head>
<body>
<header class="tg-bar">
<a class="tg-brand" href="/console">tokengate</a>
<nav aria-label="Site"><a href="/console" aria-current="page">Tokens</a> <a href="/api">API playground</a>
<span id="whoami" class="whoami"></span>
<form method="post" action="/auth/logout"><button type="submit" id="sign-out">Sign out</button></form></nav>
</header>
<main class="wide" id="console" data-max-lifetime-seconds="{max}" data-allow-non-expiring="{allow}" data-scopes="{scopes}" data-max-name-length="{max_name}">
<h1>Access tokens</h1>
<p>Tokens let scripts and services call the GraphQL API at <code>/api</code> as you, with
<code>Authorization: Bearer &lt;token&gt;</code>.</p>
<div id="status" role="status" aria-live="polite"></div>

<section id="new-token" class="new-token" hidden aria-labelledby="new-token-title">
<h2 id="new-token-title" tabindex="-1">Your new token</h2>
<p class="warning" id="new-token-warning"><strong>Copy it now. It will not be shown again</strong>: tokengate keeps only a digest of it.</p>
<label for="new-token-value">Token <span id="new-token-name"></span></label>
<textarea id="new-token-value" readonly rows="4" spellcheck="false" autocomplete="off" aria-describedby="new-token-warning"></textarea>
<div class="actions">
<button type="button" id="copy-token">Copy token</button>
<button type="button" id="dismiss-token" class="secondary">I have copied it</button>
<span id="copy-status" role="status" aria-live="polite"></span>
</div>
</section>

<section aria-labelledby="generate-title">
<h2 id="generate-title">Generate new token</h2>
<form id="generate-form" novalidate>
<label for="token-name">Name</label>
<input id="token-name" name="name" type="text" required maxlength="{max_name}" autocomplete="off" aria-describedby="token-name-hint" placeholder="ci-deploy">
<p class="hint" id="token-name-hint">Generating a token under the name of an active token replaces (revokes) that token.</p>
<label for="token-expiry">Expires on</label>
<input id="token-expiry" name="expiry" type="date" required aria-describedby="token-expiry-hint">
<p class="hint" id="token-expiry-hint"></p>
{never}
<fieldset>
<legend>Scopes</legend>
<div class="scope-list">{checkboxes}</div>
<div class="scopes-for-operation">
<label for="scopes-operation">Operation</label>
<textarea id="scopes-operation" rows="5" spellcheck="false" autocomplete="off" autocapitalize="off" aria-describedby="scopes-operation-hint" placeholder="{{ me {{ email }} }}"></textarea>
<p class="hint" id="scopes-operation-hint">Paste the GraphQL query or mutation the token is for: the button ticks exactly the scopes running it needs.</p>
<button type="button" id="scopes-from-operation" class="secondary">Tick the scopes it needs</button>
</div>
</fieldset>
<p id="generate-error" class="error" role="alert" hidden></p>
<button type="submit" id="generate">Proceed</button>
</form>
</section>

<section aria-labelledby="list-title">
<h2 id="list-title">Your tokens</h2>
<div class="check"><input type="checkbox" id="show-inactive"><label for="show-inactive">Show revoked and expired tokens</label></div>
<table id="tokens" class="tokens">
<caption class="visually-hidden">Your access tokens</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Scopes</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Last used</th><th scope="col">Status</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
<tbody><tr><td colspan="7">Loading…</td></tr></tbody>
</table>
</section>
</main>

<dialog id="revoke-dialog" aria-labelledby="revoke-title" aria-describedby="revoke-text">
<form method="dialog">
<h2 id="revoke-title">Revoke this token?</h2>
<p id="revoke-text"></p>
<div class="actions">
<button type="submit" value="cancel" class="secondary" id="revoke-cancel" autofocus>Cancel</button>
<button type="submit" value="revoke" class="danger" id="revoke-confirm">Revoke</button>
</div>
</form>
</dialog>
<dialog id="rotate-dialog" aria-labelledby="rotate-title" aria-describedby="rotate-text">
<form method="dialog">
<h2 id="rotate-title">Rotate this token?</h2>
<p id="rotate-text"></p>
<label for="rotate-grace">The old token keeps working for</label>
<select id="rotate-grace" name="grace">
<option value="0">no time: refuse it at once</option>
<option value="300">5 minutes</option>
<option value="3600" selected>1 hour</option>
<option value="86400">1 day</option>
</select>
<div class="actions">
<button type="submit" value="cancel" class="secondary" id="rotate-cancel" autofocus>Cancel</button>
<button type="submit" value="rotate" id="rotate-confirm">Rotate</button>
</div>
</form>
</dialog>
<script src="{script}" defer></script>
</body></html>"#,
        head = assets::head_links("style.css"),
        script = assets::url("console.js"),
        max = app.config.max_token_lifetime.as_secs(),
        allow = app.config.allow_non_expiring_tokens,
        scopes = escape(&scopes.join(" ")),
        max_name = MAX_NAME_LEN,
    )
}
