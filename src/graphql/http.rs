//! GraphQL over HTTP at `/api`: the guard runs first, then the content-type and
//! method rules, then execution.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use async_graphql::parser::types::OperationType;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::RequestMeta;
use std::sync::Arc;

use super::AppSchema;
use crate::auth::Principal;
use crate::core::Core;
use crate::error::AppError;
use crate::guard;
use crate::request::{self, content_type_is};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

fn wants_graphql_response(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(GRAPHQL_RESPONSE))
}

/// The request id the request-id layer set (or kept).
fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A request error (unparseable body, missing query) in the GraphQL error shape.
fn bad_request(message: String) -> Response {
    AppError::BadInput(message).into_response()
}

/// Runs an authenticated request and writes the response (GraphQL over HTTP).
/// With `application/json`: always 200 and the whole GraphQL response. With
/// `application/graphql-response+json`: a request that failed before execution
/// (see `is_request_error`) answers 400 with `errors` and no `data` entry; one
/// whose execution started answers 200 and keeps `data`, even when it is `null`
/// because a non-null field failed. The principal must already be in the
/// request's data.
pub async fn execute(
    core: &Core,
    schema: &AppSchema,
    headers: &HeaderMap,
    request: async_graphql::Request,
) -> Response {
    core.metrics
        .graphql_requests
        .fetch_add(1, Ordering::Relaxed);
    let modern = wants_graphql_response(headers);
    let content_type = HeaderValue::from_static(if modern {
        GRAPHQL_RESPONSE
    } else {
        "application/json"
    });
    let mut response = match schema.answer(request).await {
        super::Answer::Response(r) => r,
        // Data and no errors: 200 with either media type.
        super::Answer::Json(body) => {
            return (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
    };
    let request_error = is_request_error(&response);
    null_failed_fields(&mut response);
    let (status, body) = if modern && request_error {
        (
            StatusCode::BAD_REQUEST,
            serde_json::to_vec(&RequestErrorBody {
                errors: &response.errors,
                extensions: &response.extensions,
            }),
        )
    } else {
        (StatusCode::OK, serde_json::to_vec(&response))
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return AppError::internal(e).into_response(),
    };
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Whether the request failed before execution began (a GraphQL "request
/// error": the document did not parse, did not validate, its variables did not
/// coerce, a limit refused it, or no operation could be selected). async-graphql
/// answers those with `data: null` and errors that carry no `path`; an error
/// raised while executing always carries the path of its field, so a response
/// whose `data` is `null` because a non-null field failed is not one.
fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// The `application/graphql-response+json` body of a request error: GraphQL
/// over HTTP says it must not contain a `data` entry.
#[derive(serde::Serialize)]
struct RequestErrorBody<'a> {
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, async_graphql::Value>,
}

/// `POST /api`: JSON only, so a cross-site form can never carry the cookie here.
pub async fn post(
    State(core): State<Arc<Core>>,
    State(schema): State<AppSchema>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let principal = match guard::authenticate_from(&core, &headers, Some(peer.ip())).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    post_as(&core, &schema, principal, peer, &headers, &body).await
}

/// Everything `POST /api` does after the guard: the JSON-only rule, parsing and
/// execution as `principal`. (The benchmark baseline calls this directly.)
pub async fn post_as(
    core: &Arc<Core>,
    schema: &AppSchema,
    principal: Arc<Principal>,
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
    let request = request
        .data(core.clone())
        .data(principal)
        .data(RequestMeta::new(peer.ip(), request_id(headers)));
    execute(core, schema, headers, request).await
}

/// `GET /api?query=…`: queries only; a mutation is refused with 405.
pub async fn get(
    State(core): State<Arc<Core>>,
    State(schema): State<AppSchema>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let principal = match guard::authenticate_from(&core, &headers, Some(peer.ip())).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let mut request = match async_graphql::http::parse_query_string(raw.as_deref().unwrap_or("")) {
        Ok(r) => r,
        Err(e) => return bad_request(format!("the query string is not a GraphQL request: {e}")),
    };
    if request.query.is_empty() {
        return bad_request("give a query: GET /api?query={me{email}}".into());
    }
    if is_mutation(&mut request) {
        let mut resp = AppError::MethodNotAllowed("mutations are not allowed over GET; use POST")
            .into_response();
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let request = request
        .data(core.clone())
        .data(principal)
        .data(RequestMeta::new(peer.ip(), request_id(&headers)));
    execute(&core, &schema, &headers, request).await
}

/// Whether the operation the request would run is a mutation or subscription.
/// The document parsed here is kept in the request, so execution does not parse
/// it again; unparseable documents are left to execution to report.
fn is_mutation(request: &mut async_graphql::Request) -> bool {
    let wanted = request.operation_name.clone();
    let wanted = wanted.as_deref();
    let Ok(doc) = request.parsed_query() else {
        return false;
    };
    doc.operations
        .iter()
        .filter(|(name, _)| wanted.is_none() || name.map(|n| n.as_str()) == wanted)
        .any(|(_, op)| op.node.ty != OperationType::Query)
}

/// async-graphql leaves a field that failed (a scope guard, a bad input) out of
/// `data`; SPEC §3 wants it present as `null` beside the fields that resolved.
pub(crate) fn null_failed_fields(response: &mut async_graphql::Response) {
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

/// `GET /api/schema.graphql`: the SDL with `@requiresScopes` on every guarded
/// field, for any authenticated caller (like introspection). Standard
/// introspection has no place for applied directives, so this is where tools
/// read the access policy from a running server.
pub async fn sdl(
    State(core): State<Arc<Core>>,
    State(schema): State<AppSchema>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = guard::authenticate(&core, &headers).await {
        return e.into_response();
    }
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            ),
        ],
        schema.sdl(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use async_graphql::{PathSegment, Response, ServerError, Value};

    use super::is_request_error;

    fn error(path: &[&str]) -> ServerError {
        let mut e = ServerError::new("failed", None);
        e.path = path
            .iter()
            .map(|f| PathSegment::Field((*f).to_owned()))
            .collect();
        e
    }

    #[test]
    fn only_pathless_errors_without_data_are_request_errors() {
        // Parse, validation, variable coercion: data null, no path.
        assert!(is_request_error(&Response::from_errors(vec![error(&[])])));
        // A non-null field failed during execution and nulled all of data.
        assert!(!is_request_error(&Response::from_errors(vec![error(&[
            "me", "email"
        ])])));
        // Data with a field error beside it.
        let mut partial =
            Response::new(Value::from_json(serde_json::json!({ "me": null })).unwrap());
        partial.errors.push(error(&["me"]));
        assert!(!is_request_error(&partial));
        // Success.
        assert!(!is_request_error(&Response::new(Value::Null)));
    }
}
