//! The framework floor for scripts/bench.sh (issue 14): a bare axum +
//! async-graphql server answering `{ me { id email role } }` for a Bearer token
//! or a session cookie found by SHA-256 in an in-memory map. No tokengate code,
//! no logging, no database: what the same query costs on the same stack with
//! nothing of the product around it. Built only as a benchmark binary.
//!
//! Usage: `cargo bench --bench floor_server -- ADDR TOKENS_FILE COOKIE USER_ID EMAIL`
//! (`TOKENS_FILE`: lines of `token` or `id token`; every token and the cookie
//! belong to the one user given, so the answers are byte for byte tokengate's).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::{Context, EmptyMutation, EmptySubscription, Object, Schema, SimpleObject, ID};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use sha2::{Digest, Sha256};

#[derive(SimpleObject, Clone)]
struct User {
    id: ID,
    email: String,
    role: String,
}

struct Query;

#[Object]
impl Query {
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        Ok(ctx.data::<Arc<User>>()?.as_ref().clone())
    }
}

type FloorSchema = Schema<Query, EmptyMutation, EmptySubscription>;

#[derive(Clone)]
struct Floor {
    schema: FloorSchema,
    credentials: Arc<HashMap<[u8; 32], Arc<User>>>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        return v.to_str().ok()?.strip_prefix("Bearer ");
    }
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies
        .split(';')
        .find_map(|c| c.trim().strip_prefix("tokengate_session="))
}

async fn api(State(f): State<Floor>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(user) = credential(&headers).and_then(|c| f.credentials.get(&digest(c))) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let response = f.schema.execute(request.data(user.clone())).await;
    let body = serde_json::to_vec(&response).expect("serializable");
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let [addr, tokens, cookie, id, email] = <[String; 5]>::try_from(args)
        .expect("usage: floor_server ADDR TOKENS_FILE COOKIE USER_ID EMAIL");
    let addr: SocketAddr = addr.parse().expect("ADDR");
    let user = Arc::new(User {
        id: ID(id),
        email,
        role: "admin".into(),
    });
    let mut credentials: HashMap<[u8; 32], Arc<User>> = std::fs::read_to_string(&tokens)
        .expect("TOKENS_FILE")
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|t| (digest(t), user.clone()))
        .collect();
    credentials.insert(digest(&cookie), user);
    let floor = Floor {
        schema: Schema::new(Query, EmptyMutation, EmptySubscription),
        credentials: Arc::new(credentials),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let router = Router::new().route("/api", post(api)).with_state(floor);
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        println!(
            "floor listening on http://{}",
            listener.local_addr().unwrap()
        );
        axum::serve(listener, router).await.unwrap();
    });
}
