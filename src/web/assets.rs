//! Static assets embedded in the binary and served under `/assets/`: the shared
//! stylesheet, the console script, and the GraphiQL bundle built from pinned npm
//! packages by `playground/build.mjs` (committed in `playground/dist/`, so
//! building tokengate needs no Node).
//!
//! Pages link to `/assets/<name>?v=<content hash>`; a request carrying the
//! current hash is cached for a year (`immutable`), anything else revalidates.

use std::sync::OnceLock;

use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::secret::sha256;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../playground/style.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../playground/favicon.svg"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../playground/console.js"),
    },
    Asset {
        name: "playground-page.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../playground/playground-page.css"),
    },
    Asset {
        name: "playground.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../playground/dist/playground.js"),
    },
    Asset {
        name: "playground.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../playground/dist/playground.css"),
    },
];

/// Short content hashes, computed once.
fn versions() -> &'static [String] {
    static VERSIONS: OnceLock<Vec<String>> = OnceLock::new();
    VERSIONS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                sha256(a.body)[..6]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect()
    })
}

/// The URL of an embedded asset, with its content hash; `name` must be one of
/// `ASSETS` (a typo panics in the first test that renders the page).
pub fn url(name: &str) -> String {
    let i = ASSETS
        .iter()
        .position(|a| a.name == name)
        .unwrap_or_else(|| panic!("no embedded asset named {name}"));
    format!("/assets/{name}?v={}", versions()[i])
}

/// The `<link>`s every page puts in its head: the stylesheet and the icon (so
/// the browser does not go looking for `/favicon.ico`).
pub fn head_links(stylesheet: &str) -> String {
    format!(
        r#"<link rel="icon" href="{}" type="image/svg+xml"><link rel="stylesheet" href="{}">"#,
        url("favicon.svg"),
        url(stylesheet)
    )
}

/// `GET /assets/{name}`.
pub async fn asset(Path(name): Path<String>, RawQuery(query): RawQuery) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let asset = &ASSETS[i];
    let current = query
        .as_deref()
        .and_then(|q| q.strip_prefix("v="))
        .is_some_and(|v| v == versions()[i]);
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=0, must-revalidate"
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_versioned_url() {
        for a in ASSETS {
            let u = url(a.name);
            assert!(u.starts_with(&format!("/assets/{}?v=", a.name)), "{u}");
            assert_eq!(u.len(), format!("/assets/{}?v=", a.name).len() + 12);
        }
    }
}
