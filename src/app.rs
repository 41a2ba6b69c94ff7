//! The HTTP application: its state above the core and the router, every route
//! in one place. The server's lifecycle and background tasks are in `server`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

use crate::core::Core;
use crate::graphql::{self, AppSchema};
use crate::{oauth, web};

/// Largest request body accepted (SPEC §6).
pub const BODY_LIMIT: usize = 1 << 20;

/// What the HTTP server adds above the [`Core`]: the GraphQL schema (built once)
/// and the cookie policy, which depends on the address it listens on.
pub struct App {
    /// Everything below HTTP; `App` derefs to it.
    pub core: Arc<Core>,
    /// Whether cookies are marked `Secure` (`--secure-cookies`, else not on loopback).
    pub secure_cookies: bool,
    /// The executable GraphQL schema: tokengate's roots and the application's.
    pub schema: AppSchema,
}

impl std::ops::Deref for App {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

/// Cheaply clonable handle to the [`App`], the router's state.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The core, for handlers that need nothing of the HTTP layer.
impl axum::extract::FromRef<AppState> for Arc<Core> {
    fn from_ref(state: &AppState) -> Arc<Core> {
        state.core.clone()
    }
}

/// The schema, for the GraphQL handlers.
impl axum::extract::FromRef<AppState> for AppSchema {
    fn from_ref(state: &AppState) -> AppSchema {
        state.schema.clone()
    }
}

/// The cookie policy, for the sign-in handlers.
impl axum::extract::FromRef<AppState> for web::CookiePolicy {
    fn from_ref(state: &AppState) -> web::CookiePolicy {
        web::CookiePolicy {
            secure: state.secure_cookies,
        }
    }
}

impl AppState {
    /// The state of a server listening on `bound` and serving `schema`.
    pub fn new(core: Arc<Core>, bound: SocketAddr, schema: AppSchema) -> AppState {
        let secure_cookies = core
            .config
            .secure_cookies
            .unwrap_or(!bound.ip().is_loopback());
        AppState(Arc::new(App {
            core,
            secure_cookies,
            schema,
        }))
    }
}

/// Every route, under [`with_layers`] (finished: add no routes to it).
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route(
            "/api",
            get(web::playground::api_get).post(graphql::http::post),
        )
        .route("/api/schema.graphql", get(graphql::http::sdl))
        .route("/login", get(web::login_page))
        .route("/auth/login", post(web::login))
        .route("/auth/logout", post(web::logout))
        .route("/console", get(web::console::console))
        .route("/assets/{name}", get(web::assets::asset))
        .route("/.well-known/jwks.json", get(jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route("/oauth2/token", post(oauth::token))
        .route("/oauth2/revoke", post(oauth::revoke))
        .route("/oauth2/introspect", post(oauth::introspect))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    with_layers(routes.with_state(state))
}

/// The layers every request runs under: request id, access log, body limit,
/// from the outside in. Public so the benchmark baseline runs under exactly
/// the same plumbing.
///
/// They wrap the router once, as one service, rather than each route through
/// `Router::layer`, which boxes every layer around every route: a request then
/// cloned and called four boxed services more (BENCHMARKS.md, "Small futures").
/// Requests that match no route (404, 405) run under them all the same.
///
/// The router returned is finished: its one service is the layered router
/// given, so routes or a fallback added to it afterwards would run outside
/// the layers (or replace the application). Add routes before.
pub fn with_layers(router: Router) -> Router {
    use tower_layer::Layer;
    let request_id = HeaderName::from_static("x-request-id");
    let service = SetRequestIdLayer::new(request_id.clone(), RandomRequestId).layer(
        PropagateRequestIdLayer::new(request_id).layer(
            crate::telemetry::access::AccessLogLayer
                .layer(DefaultBodyLimit::max(BODY_LIMIT).layer(router)),
        ),
    );
    Router::new().fallback_service(service)
}

/// Request ids for requests that come without one: random (version 4) UUIDs
/// from the thread's random generator. tower-http's `MakeRequestUuid` asks the
/// kernel for every id (a system call per request); these come from a
/// generator the kernel seeded once per thread.
#[derive(Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = uuid::Uuid::encode_buffer();
        let text = id.hyphenated().encode_lower(&mut text);
        HeaderValue::from_str(text).ok().map(RequestId::new)
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(app): State<AppState>) -> Response {
    if let Some(problem) = app.schema.forwarding_problem() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {problem}"),
        )
            .into_response();
    }
    match app.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    let body = app.metrics.render(
        app.last_used.writes(),
        (app.credentials.hits(), app.credentials.misses()),
        app.live.open(),
        app.write_counts().map(|c| {
            (
                c.writes.load(std::sync::atomic::Ordering::Relaxed),
                c.commits.load(std::sync::atomic::Ordering::Relaxed),
            )
        }),
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        body,
    )
        .into_response()
}

async fn jwks(State(app): State<AppState>) -> Response {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        axum::Json(app.keys.jwks()),
    )
        .into_response()
}
