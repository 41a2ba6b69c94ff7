//! GraphQL over HTTP at `/api`: the guard runs first, then the content-type and
//! method rules, then execution.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use async_graphql::parser::types::OperationType;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::RequestMeta;
use crate::app::AppState;
use crate::auth::{guard, Principal};
use crate::error::AppError;
use crate::request::{self, content_type_is};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

fn wants_graphql_response(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(GRAPHQL_RESPONSE))
}

/// A request error (unparseable body, missing query) in the GraphQL error shape.
fn bad_request(message: String) -> Response {
    AppError::BadInput(message).into_response()
}

/// Runs an authenticated request and writes the response (GraphQL over HTTP:
/// 200 with `application/json`; with `application/graphql-response+json`, 400
/// when the request failed before execution). The principal must already be in
/// the request's data.
pub async fn execute(
    app: &AppState,
    headers: &HeaderMap,
    request: async_graphql::Request,
) -> Response {
    app.metrics.graphql_requests.fetch_add(1, Ordering::Relaxed);
    let mut response = app.schema.execute(request).await;
    null_failed_fields(&mut response);
    let modern = wants_graphql_response(headers);
    let status = if modern && response.data == async_graphql::Value::Null && response.is_err() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = match serde_json::to_vec(&response) {
        Ok(b) => b,
        Err(e) => return AppError::internal(e).into_response(),
    };
    let content_type = if modern {
        GRAPHQL_RESPONSE
    } else {
        "application/json"
    };
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// `POST /api`: JSON only, so a cross-site form can never carry the cookie here.
pub async fn post(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let principal = match guard::authenticate(&app, &headers).await {
        Ok((p, _via)) => p,
        Err(e) => return e.into_response(),
    };
    post_as(&app, principal, peer, &headers, &body).await
}

/// Everything `POST /api` does after the guard: the JSON-only rule, parsing and
/// execution as `principal`. (The benchmark baseline calls this directly.)
pub async fn post_as(
    app: &AppState,
    principal: Principal,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if !content_type_is(headers, request::JSON) {
        return AppError::UnsupportedMediaType("POST /api takes Content-Type: application/json")
            .into_response();
    }
    let request: async_graphql::Request = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return bad_request(format!("the body is not a GraphQL request: {e}")),
    };
    let request = request.data(app.clone()).data(principal).data(RequestMeta {
        ip: peer.ip().to_string(),
    });
    execute(app, headers, request).await
}

/// `GET /api?query=…`: queries only; a mutation is refused with 405.
pub async fn get(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let principal = match guard::authenticate(&app, &headers).await {
        Ok((p, _via)) => p,
        Err(e) => return e.into_response(),
    };
    let request = match async_graphql::http::parse_query_string(raw.as_deref().unwrap_or("")) {
        Ok(r) => r,
        Err(e) => return bad_request(format!("the query string is not a GraphQL request: {e}")),
    };
    if request.query.is_empty() {
        return bad_request("give a query: GET /api?query={me{email}}".into());
    }
    if is_mutation(&request) {
        let mut resp = AppError::MethodNotAllowed("mutations are not allowed over GET; use POST")
            .into_response();
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let request = request.data(app.clone()).data(principal).data(RequestMeta {
        ip: peer.ip().to_string(),
    });
    execute(&app, &headers, request).await
}

/// Whether the operation the request would run is a mutation or subscription.
/// Unparseable documents are left to execution to report.
fn is_mutation(request: &async_graphql::Request) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let wanted = request.operation_name.as_deref();
    doc.operations
        .iter()
        .filter(|(name, _)| wanted.is_none() || name.map(|n| n.as_str()) == wanted)
        .any(|(_, op)| op.node.ty != OperationType::Query)
}

/// async-graphql leaves a field that failed (a scope guard, a bad input) out of
/// `data`; SPEC §3 wants it present as `null` beside the fields that resolved.
fn null_failed_fields(response: &mut async_graphql::Response) {
    use async_graphql::{PathSegment, Value};
    for error in &response.errors {
        let Some((PathSegment::Field(last), parents)) = error.path.split_last() else {
            continue;
        };
        if parents.is_empty() && matches!(response.data, Value::Null) {
            response.data = Value::Object(Default::default());
        }
        insert_null(&mut response.data, parents, last);
    }
}

fn insert_null(
    node: &mut async_graphql::Value,
    parents: &[async_graphql::PathSegment],
    last: &str,
) {
    use async_graphql::{Name, PathSegment, Value};
    match (parents.split_first(), node) {
        (None, Value::Object(map)) => {
            map.entry(Name::new(last)).or_insert(Value::Null);
        }
        (Some((PathSegment::Field(f), rest)), Value::Object(map)) => {
            if let Some(child) = map.get_mut(f.as_str()) {
                insert_null(child, rest, last);
            }
        }
        (Some((PathSegment::Index(i), rest)), Value::List(items)) => {
            if let Some(child) = items.get_mut(*i) {
                insert_null(child, rest, last);
            }
        }
        _ => {}
    }
}
