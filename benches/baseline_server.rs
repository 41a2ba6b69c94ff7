//! The baseline for scripts/bench.sh: tokengate's own schema, layers and `/api`
//! response path with NO guard — every request runs as the first administrator
//! (an `Authorization` header, if sent, is ignored). Built only as a benchmark
//! binary; the server never contains this route.
//!
//! Usage: `cargo bench --bench baseline_server -- ADDR DATABASE_URL`

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use std::sync::Arc;
use tokengate::auth::{Credential, Principal, Role};

use tokengate::core::Core;
use tokengate::graphql::AppSchema;
use tokengate::Config;

#[derive(Clone)]
struct Baseline {
    core: Arc<Core>,
    schema: AppSchema,
    principal: Arc<Principal>,
}

/// The server's `POST /api` with the guard step replaced by a fixed principal.
async fn api(
    State(b): State<Baseline>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    tokengate::graphql::http::post_as(
        &b.core,
        &b.schema,
        b.principal.clone(),
        peer,
        &headers,
        &body,
    )
    .await
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let addr: SocketAddr = args
        .first()
        .map(|s| s.parse().expect("ADDR"))
        .unwrap_or(([127, 0, 0, 1], 18090).into());
    let database_url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "sqlite://tokengate.db?mode=rwc".into());
    // The same logging set-up as the server (TOKENGATE_LOG decides the level).
    let _logs = tokengate::telemetry::init(tokengate::config::LogFormat::Text);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let config = Config {
            database_url,
            ..Config::default()
        };
        let core = Arc::new(Core::open(config, addr).await.expect("core"));
        let admin = tokengate::users::list(&core.db, &Default::default())
            .await
            .unwrap()
            .into_iter()
            .find(|u| u.role == Role::Admin)
            .expect("an administrator exists (start tokengate once first)");
        let principal = Arc::new(Principal::of_user(
            &admin,
            core.scopes.all(),
            Credential::Operator,
        ));
        // The same layers and connection handling as the server; only the guard is missing.
        let routes = Router::new().route("/api", post(api));
        let schema = tokengate::graphql::build_schema(&core.scopes).expect("schema");
        let router = tokengate::app::with_layers(routes.with_state(Baseline {
            core,
            schema,
            principal,
        }));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        println!(
            "baseline listening on http://{}",
            listener.local_addr().unwrap()
        );
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
}
