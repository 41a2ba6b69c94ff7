//! Application state and the router: every route in one place.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sea_orm::DatabaseConnection;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::cache::{CredentialCache, Kind};
use crate::auth::keys::KeyRing;
use crate::auth::throttle::SignInThrottle;
use crate::config::Config;
use crate::graphql::{self, AppSchema};
use crate::metrics::Metrics;
use crate::tokens::last_used::LastUsed;
use crate::{db, oauth, users, web};

/// Largest request body accepted (SPEC §6).
pub const BODY_LIMIT: usize = 1 << 20;

/// Everything a request needs, built once at start.
pub struct App {
    pub db: DatabaseConnection,
    pub config: Config,
    pub secure_cookies: bool,
    pub keys: KeyRing,
    pub throttle: SignInThrottle,
    /// Failed client authentications at the OAuth endpoints.
    pub client_throttle: SignInThrottle,
    pub last_used: LastUsed,
    /// Verified credentials seen recently (digest → principal).
    pub credentials: CredentialCache,
    pub metrics: Metrics,
    pub schema: AppSchema,
}

impl App {
    /// Called after any revocation, so caches (and, later, other processes) learn of it.
    /// Called after a revocation commits: evicts the token here at once (other
    /// processes learn of it from `auth::revocations`).
    pub fn on_token_revoked(&self, digest: &[u8]) {
        self.metrics.tokens_revoked.fetch_add(1, Ordering::Relaxed);
        self.credentials.evict(Kind::Token, digest);
    }

    /// Called after a user (or service account) is disabled.
    pub fn on_user_disabled(&self, user_id: &str) {
        self.credentials.evict_user(user_id);
    }

    /// Called after a sign-out commits.
    pub fn on_session_ended(&self, digest: &[u8]) {
        self.credentials.evict(Kind::Session, digest);
    }
}

/// Cheaply clonable handle to the [`App`].
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// Opens the database, applies migrations, creates the first administrator on an
/// empty database (when `bootstrap`, as `serve` does), and loads the signing keys.
pub async fn build(
    config: Config,
    bound: SocketAddr,
    bootstrap: bool,
) -> anyhow_like::Result<AppState> {
    let db = db::connect(&config.database_url).await?;
    db::migrate(&db).await?;
    if bootstrap {
        users::bootstrap_admin(
            &db,
            config.admin_email.as_deref(),
            config.admin_password.as_ref(),
        )
        .await?;
    }
    // The issuer belongs to the deployment: chosen on the first start, kept in
    // the database, changed only by a configured `--issuer` that differs.
    crate::auth::keys::choose_issuer(&db, config.issuer.as_deref(), &format!("http://{bound}"))
        .await?;
    let verify_window = (!config.allow_non_expiring_tokens).then_some(config.max_token_lifetime);
    let keys = KeyRing::load(&db, verify_window).await?;
    let secure_cookies = config.secure_cookies.unwrap_or(!bound.ip().is_loopback());
    crate::auth::password::warm_up().await;
    Ok(AppState(Arc::new(App {
        db,
        secure_cookies,
        keys,
        throttle: SignInThrottle::default(),
        client_throttle: SignInThrottle::default(),
        last_used: LastUsed::default(),
        credentials: CredentialCache::default(),
        metrics: Metrics::default(),
        schema: graphql::build_schema(),
        config,
    })))
}

/// Minimal error plumbing for start-up, where any failure ends the process.
pub mod anyhow_like {
    /// A start-up error with its message.
    pub type Error = Box<dyn std::error::Error + Send + Sync>;
    pub type Result<T> = std::result::Result<T, Error>;
}

/// Every route.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route(
            "/api",
            get(web::playground::api_get).post(graphql::http::post),
        )
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
    with_layers(routes).with_state(state)
}

/// The layers every route runs under: body limit, request id, trace span.
/// Public so the benchmark baseline runs under exactly the same plumbing.
pub fn with_layers<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    let request_id = HeaderName::from_static("x-request-id");
    let trace = TraceLayer::new_for_http()
        .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO))
        .make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            // The path only: query strings and headers may carry secrets.
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
        });
    routes
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(app): State<AppState>) -> Response {
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

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds, builds the state and serves until `shutdown` resolves; in-flight
/// requests finish, then last-used times are flushed.
pub async fn start(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow_like::Result<Running> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let state = build(config, addr, true).await?;
    let flusher = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(
                state
                    .config
                    .last_used_flush_interval
                    .max(Duration::from_millis(10)),
            );
            tick.tick().await;
            loop {
                tick.tick().await;
                state.last_used.flush(&state.db, false).await;
            }
        })
    };
    let revocations = tokio::spawn(crate::auth::revocations::run(state.clone()));
    let key_reload = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.config.key_reload_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = state.keys.reload(&state.db).await {
                    tracing::warn!(error = %e, "could not re-read the signing keys");
                }
            }
        })
    };
    let app = router(state.clone());
    let final_state = state.clone();
    let handle = tokio::spawn(async move {
        let result = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        flusher.abort();
        revocations.abort();
        key_reload.abort();
        final_state.last_used.flush(&final_state.db, true).await;
        result
    });
    Ok(Running {
        addr,
        state,
        handle,
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
