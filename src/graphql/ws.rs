//! GraphQL over WebSocket at `GET /api` (SPEC §9), speaking
//! `graphql-transport-ws`, the protocol of the `graphql-ws` library.
//!
//! A connection is authenticated once, before any operation: by an
//! `authorization` entry in `connection_init`'s payload, else the upgrade's
//! `Authorization: Bearer` header, else its session cookie (a cookie upgrade
//! from another site is refused with 403 before upgrading). It registers its
//! credential with [`crate::core::live`], so the revocation machinery that
//! evicts cached credentials also ends it: every running operation gets an
//! `UNAUTHENTICATED` error with the reason and the socket closes with 4403.
//! The credential's own expiry does the same.
//!
//! Close codes: 4400 invalid message, 4401 no or a bad credential (or an
//! operation before `connection_ack`), 4403 the credential ended, 4408 no
//! `connection_init` in time, 4409 an operation id in use, 4413 too many
//! operations on one connection, 4420 too many connections for one user, 4429 a
//! second `connection_init`, 1009 a message over the size limit, 4000 silent for
//! two keep-alive intervals.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::futures_util::StreamExt;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{AppSchema, RequestMeta};
use crate::auth::{Credential, Principal};
use crate::core::live::{Ended, Held, Registration};
use crate::core::Core;
use crate::error::{AppError, AuthReason};
use crate::guard;

/// The subprotocol spoken.
pub const PROTOCOL: &str = "graphql-transport-ws";
/// Largest message accepted from a client.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Most operations running at once on one connection.
pub const MAX_OPERATIONS: usize = 100;
/// Most connections open at once for one user or service account (per process).
pub const MAX_CONNECTIONS_PER_USER: usize = 50;
/// How long a client has to send `connection_init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a connection's credential is checked against the database again,
/// as a backstop for a revocation signal that never arrived (clock skew beyond
/// the poll's overlap, a change made by hand): the credential cache's lifetime.
pub const RECHECK_EVERY: Duration = Duration::from_secs(600);
/// How long one message may take to write before the client is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The credential as presented, for checking it again.
#[derive(Clone)]
enum Raw {
    Token(String),
    Session(String),
}

/// A settled credential: the principal, what the registry keys it by, its
/// expiry, and the credential itself.
type Authenticated = (Arc<Principal>, Held, Option<DateTime<Utc>>, Raw);

/// What the upgrade request's headers proved, before the socket exists.
enum Upfront {
    Nothing,
    Principal(Box<Authenticated>),
    Refused(AppError),
}

/// Checks the credential against the database (never the cache).
async fn recheck(core: &Core, raw: &Raw) -> Result<(), AppError> {
    match raw {
        Raw::Token(token) => crate::tokens::authenticate(core, token).await.map(|_| ()),
        Raw::Session(value) => crate::sessions::authenticate(&core.db, &core.scopes, value)
            .await
            .map(|_| ()),
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A cookie-authenticated upgrade must come from this server's own pages:
/// `Origin` absent (not a browser) or naming the `Host` it was sent to.
fn cross_site(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    host.is_empty() || !origin_host.eq_ignore_ascii_case(host)
}

async fn by_token(
    core: &Core,
    token: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<Authenticated, AppError> {
    let principal = guard::token_principal(core, token, ip).await?;
    let expires_at = match &principal.credential {
        Credential::Token { expires_at, .. } => *expires_at,
        _ => None,
    };
    let held = Held {
        token: Some(sha256(token.as_bytes())),
        session: None,
        user_id: principal.user_id.clone(),
    };
    Ok((principal, held, expires_at, Raw::Token(token.to_owned())))
}

async fn by_cookie(core: &Core, value: &str) -> Result<Authenticated, AppError> {
    // Once per connection: the session's expiry is needed for the timer.
    let (principal, expires_at) =
        crate::sessions::authenticate(&core.db, &core.scopes, value).await?;
    let held = Held {
        token: None,
        session: Some(sha256(value.as_bytes())),
        user_id: principal.user_id.clone(),
    };
    Ok((
        Arc::new(principal),
        held,
        Some(expires_at),
        Raw::Session(value.to_owned()),
    ))
}

/// `GET /api` with `Upgrade: websocket`.
pub async fn upgrade(
    core: Arc<Core>,
    schema: AppSchema,
    ws: WebSocketUpgrade,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
) -> Response {
    let upfront = match guard::bearer_token(headers) {
        Some(Ok(token)) => match by_token(&core, token, Some(ip)).await {
            Ok(a) => Upfront::Principal(Box::new(a)),
            Err(e) => Upfront::Refused(e),
        },
        Some(Err(e)) => Upfront::Refused(e),
        None => match guard::session_cookie(headers) {
            Some(_) if cross_site(headers) => {
                return (
                    StatusCode::FORBIDDEN,
                    "a cookie-authenticated WebSocket must come from this server's own pages",
                )
                    .into_response();
            }
            Some(value) => match by_cookie(&core, value).await {
                Ok(a) => Upfront::Principal(Box::new(a)),
                Err(e) => Upfront::Refused(e),
            },
            None => Upfront::Nothing,
        },
    };
    ws.protocols([PROTOCOL])
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            Connection {
                core,
                schema,
                socket,
                ip,
                ops: HashMap::new(),
            }
            .run(upfront)
            .await
        })
}

/// An outgoing protocol message from an operation's task.
enum Out {
    Send(Value),
    /// The operation `id` (started as number `seq`) finished.
    Done(String, u64),
}

struct Connection {
    core: Arc<Core>,
    schema: AppSchema,
    socket: WebSocket,
    ip: std::net::IpAddr,
    /// Running operations by id, with the sequence number of their start.
    ops: HashMap<String, (u64, JoinHandle<()>)>,
}

impl Connection {
    /// Writes one message; false when the client is gone or stopped reading.
    async fn send(&mut self, v: Value) -> bool {
        let write = self.socket.send(Message::Text(v.to_string().into()));
        matches!(tokio::time::timeout(SEND_TIMEOUT, write).await, Ok(Ok(())))
    }

    async fn close(&mut self, code: u16, reason: &str, metric: &str) {
        self.core.metrics.ws_closed(metric);
        // Close reasons are at most 123 bytes.
        let mut reason = reason.to_owned();
        while reason.len() > 123 {
            reason.pop();
        }
        let close = self.socket.send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })));
        let _ = tokio::time::timeout(SEND_TIMEOUT, close).await;
    }

    async fn run(mut self, upfront: Upfront) {
        let (principal, held, expires_at, raw) = match self.authenticate(upfront).await {
            Some(authenticated) => authenticated,
            None => return,
        };
        let Some(mut registration) = self.core.live.register(held, MAX_CONNECTIONS_PER_USER) else {
            let reason = format!("at most {MAX_CONNECTIONS_PER_USER} connections per user");
            self.close(4420, &reason, "too_many_connections").await;
            return;
        };
        // Registered first, then checked against the database: a revocation
        // before this check is seen by it, one after it signals the registration
        // (the upgrade's credential may have been checked seconds ago, before
        // a late connection_init).
        if let Err(e) = recheck(&self.core, &raw).await {
            self.close(4401, &close_reason(&e), "unauthenticated").await;
            return;
        }
        if !self.send(json!({ "type": "connection_ack" })).await {
            return;
        }
        self.serve(principal, &mut registration, expires_at, raw)
            .await;
    }

    /// Waits for `connection_init` and settles the credential; closes on failure.
    async fn authenticate(&mut self, upfront: Upfront) -> Option<Authenticated> {
        if let Upfront::Refused(e) = &upfront {
            if let AppError::Unauthenticated { reason, .. } = e {
                self.core.metrics.auth_failure(*reason);
            }
            if matches!(e, AppError::Internal(_)) {
                e.log_if_internal();
                self.close(1011, "internal error", "unauthenticated").await;
                return None;
            }
            let reason = close_reason(e);
            self.close(4401, &reason, "unauthenticated").await;
            return None;
        }
        let deadline = tokio::time::sleep(INIT_TIMEOUT);
        tokio::pin!(deadline);
        let payload = loop {
            tokio::select! {
                _ = &mut deadline => {
                    self.close(4408, "Connection initialisation timeout", "init_timeout").await;
                    return None;
                }
                msg = self.socket.recv() => {
                    let Some(Ok(msg)) = msg else { return None };
                    match parse(msg) {
                        Parsed::Message(m) if m["type"] == "connection_init" => {
                            break m.get("payload").cloned().unwrap_or(Value::Null);
                        }
                        Parsed::Message(m) if m["type"] == "subscribe" => {
                            self.close(4401, "Unauthorized", "unauthenticated").await;
                            return None;
                        }
                        Parsed::Message(m) if m["type"] == "ping" => {
                            if !self.send(json!({ "type": "pong" })).await {
                                return None;
                            }
                        }
                        Parsed::Message(_) | Parsed::Ignore => {}
                        Parsed::Invalid(why) => {
                            self.close(4400, &why, "invalid_message").await;
                            return None;
                        }
                        Parsed::Closed => return None,
                    }
                }
            }
        };
        let from_init = payload.as_object().and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                .map(|(_, v)| v.clone())
        });
        let result = match (from_init, upfront) {
            (Some(Value::String(auth)), _) => match auth.split_once(' ') {
                Some((scheme, token))
                    if scheme.eq_ignore_ascii_case("bearer")
                        && !token.is_empty()
                        && !token.contains(char::is_whitespace) =>
                {
                    by_token(&self.core, token, Some(self.ip)).await
                }
                _ => Err(AppError::unauthenticated(
                    AuthReason::Malformed,
                    "the authorization entry must be `Bearer <token>`",
                    true,
                )),
            },
            (Some(_), _) => Err(AppError::unauthenticated(
                AuthReason::Malformed,
                "the authorization entry must be a string `Bearer <token>`",
                true,
            )),
            (None, Upfront::Principal(a)) => Ok(*a),
            (None, _) => Err(AppError::unauthenticated(
                AuthReason::Missing,
                "sign in, or send {\"authorization\": \"Bearer <token>\"} in connection_init",
                false,
            )),
        };
        match result {
            Ok(authenticated) => Some(authenticated),
            Err(e) => {
                if let AppError::Unauthenticated { reason, .. } = &e {
                    self.core.metrics.auth_failure(*reason);
                }
                if matches!(e, AppError::Internal(_)) {
                    e.log_if_internal();
                    self.close(1011, "internal error", "unauthenticated").await;
                    return None;
                }
                self.close(4401, &close_reason(&e), "unauthenticated").await;
                None
            }
        }
    }

    async fn serve(
        &mut self,
        principal: Arc<Principal>,
        registration: &mut Registration,
        expires_at: Option<DateTime<Utc>>,
        raw: Raw,
    ) {
        let mut seq: u64 = 0;
        let mut recheck_tick = tokio::time::interval(RECHECK_EVERY);
        recheck_tick.tick().await;
        let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
        let session = matches!(principal.credential, Credential::Session { .. });
        let until_expiry =
            expires_at.map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        let expiry = tokio::time::sleep(until_expiry.unwrap_or(Duration::from_secs(86_400 * 365)));
        tokio::pin!(expiry);
        let interval = self.core.config.ws_keepalive_interval;
        let mut keepalive = tokio::time::interval(interval);
        keepalive.tick().await;
        let mut heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                // The credential's end wins over anything else ready.
                biased;
                _ = registration.ended.changed() => {
                    let why = (*registration.ended.borrow()).unwrap_or(Ended::TokenRevoked);
                    let e = match why {
                        Ended::TokenRevoked => AppError::unauthenticated(AuthReason::Revoked, "the token was revoked", true),
                        Ended::SessionEnded => AppError::unauthenticated(AuthReason::Revoked, "the session ended", false),
                        Ended::OwnerDisabled => AppError::unauthenticated(AuthReason::Revoked, "the account is disabled", false),
                    };
                    self.end_all(&e).await;
                    return;
                }
                _ = &mut expiry, if until_expiry.is_some() => {
                    let e = if session {
                        AppError::unauthenticated(AuthReason::SessionExpired, "the session expired", false)
                    } else {
                        AppError::unauthenticated(AuthReason::Expired, "the token expired", true)
                    };
                    self.end_all(&e).await;
                    return;
                }
                _ = recheck_tick.tick() => {
                    if let Err(e) = recheck(&self.core, &raw).await {
                        self.end_all(&e).await;
                        return;
                    }
                }
                _ = keepalive.tick() => {
                    if heard.elapsed() > interval * 2 {
                        self.close(4000, "no answer to keep-alive pings", "keepalive_timeout").await;
                        return;
                    }
                    if !self.send(json!({ "type": "ping" })).await {
                        return;
                    }
                }
                out = out_rx.recv() => {
                    match out {
                        Some(Out::Send(v)) => if !self.send(v).await { return },
                        Some(Out::Done(id, done_seq)) => {
                            // Only the operation that finished: the id may have
                            // been reused since.
                            if self.ops.get(&id).is_some_and(|(s, _)| *s == done_seq) {
                                self.ops.remove(&id);
                                self.core.metrics.ws_operations.fetch_sub(1, Ordering::Relaxed);
                            }
                        }
                        None => return,
                    }
                }
                msg = self.socket.recv() => {
                    let msg = match msg {
                        Some(Ok(msg)) => msg,
                        Some(Err(e)) => {
                            if is_capacity(&e) {
                                let reason = format!("messages are at most {MAX_MESSAGE_BYTES} bytes");
                                self.close(1009, &reason, "message_too_big").await;
                            } else {
                                self.core.metrics.ws_closed("client");
                            }
                            return;
                        }
                        None => {
                            self.core.metrics.ws_closed("client");
                            return;
                        }
                    };
                    heard = tokio::time::Instant::now();
                    match parse(msg) {
                        Parsed::Closed => {
                            self.core.metrics.ws_closed("client");
                            // The close reply is queued by the WebSocket layer and
                            // written on the next read: finish the handshake so
                            // the client sees its own code, not 1006.
                            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                                while let Some(Ok(_)) = self.socket.recv().await {}
                            })
                            .await;
                            return;
                        }
                        Parsed::Ignore => {}
                        Parsed::Invalid(why) => {
                            self.close(4400, &why, "invalid_message").await;
                            return;
                        }
                        Parsed::Message(m) => match m["type"].as_str().unwrap_or_default() {
                            "ping" => if !self.send(json!({ "type": "pong" })).await { return },
                            "pong" => {}
                            "connection_init" => {
                                self.close(4429, "Too many initialisation requests", "invalid_message").await;
                                return;
                            }
                            "subscribe" => {
                                let Some(id) = m["id"].as_str().map(str::to_owned) else {
                                    self.close(4400, "subscribe needs an id", "invalid_message").await;
                                    return;
                                };
                                if self.ops.contains_key(&id) {
                                    let reason = format!("Subscriber for {id} already exists");
                                    self.close(4409, &reason, "invalid_message").await;
                                    return;
                                }
                                if self.ops.len() >= MAX_OPERATIONS {
                                    let reason = format!("at most {MAX_OPERATIONS} operations per connection");
                                    self.close(4413, &reason, "too_many_operations").await;
                                    return;
                                }
                                let request = match request_of(&m["payload"]) {
                                    Ok(r) => r,
                                    Err(why) => {
                                        self.close(4400, &why, "invalid_message").await;
                                        return;
                                    }
                                };
                                let request = request
                                    .data(self.core.clone())
                                    .data(principal.clone())
                                    .data(RequestMeta::new(self.ip, None));
                                if registration.ended.borrow().is_some() {
                                    continue; // the next turn ends the connection
                                }
                                if expires_at.is_some_and(|at| at <= Utc::now()) {
                                    continue; // the expiry arm ends it
                                }
                                self.core.metrics.ws_operations.fetch_add(1, Ordering::Relaxed);
                                self.core.metrics.graphql_requests.fetch_add(1, Ordering::Relaxed);
                                seq += 1;
                                let task = tokio::spawn(run_operation(
                                    self.schema.clone(),
                                    request,
                                    id.clone(),
                                    seq,
                                    out_tx.clone(),
                                ));
                                self.ops.insert(id, (seq, task));
                            }
                            "complete" => {
                                if let Some(id) = m["id"].as_str() {
                                    if let Some((_, task)) = self.ops.remove(id) {
                                        task.abort();
                                        self.core.metrics.ws_operations.fetch_sub(1, Ordering::Relaxed);
                                    }
                                }
                            }
                            other => {
                                let reason = format!("unknown message type `{other}`");
                                self.close(4400, &reason, "invalid_message").await;
                                return;
                            }
                        },
                    }
                }
            }
        }
    }

    /// The credential ended: every running operation gets the error, then 4403.
    async fn end_all(&mut self, e: &AppError) {
        let body = e.graphql_body();
        let ids: Vec<String> = self.ops.keys().cloned().collect();
        // Stop every operation before writing anything.
        for (_, (_, task)) in self.ops.drain() {
            task.abort();
            self.core
                .metrics
                .ws_operations
                .fetch_sub(1, Ordering::Relaxed);
        }
        for id in ids {
            let payload = body["errors"].clone();
            if !self
                .send(json!({ "type": "error", "id": id, "payload": payload }))
                .await
            {
                return;
            }
        }
        self.close(4403, &e.to_string(), "credential_ended").await;
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for (_, (_, op)) in self.ops.drain() {
            op.abort();
            self.core
                .metrics
                .ws_operations
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What a close frame may say about an error: never an internal detail.
fn close_reason(e: &AppError) -> String {
    match e {
        AppError::Unauthenticated { .. } | AppError::InvalidCredentials => e.to_string(),
        _ => "internal error".to_owned(),
    }
}

fn is_capacity(e: &axum::Error) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("capacity") || text.contains("too long") || text.contains("too big")
}

enum Parsed {
    Message(Value),
    Invalid(String),
    Ignore,
    Closed,
}

fn parse(msg: Message) -> Parsed {
    match msg {
        Message::Text(text) => match serde_json::from_str::<Value>(text.as_str()) {
            Ok(v) if v["type"].is_string() => Parsed::Message(v),
            Ok(_) => Parsed::Invalid("a message is a JSON object with a `type`".into()),
            Err(_) => Parsed::Invalid("a message is a JSON object with a `type`".into()),
        },
        Message::Binary(_) => {
            Parsed::Invalid("binary messages are not part of the protocol".into())
        }
        Message::Ping(_) | Message::Pong(_) => Parsed::Ignore,
        Message::Close(_) => Parsed::Closed,
    }
}

fn request_of(payload: &Value) -> Result<async_graphql::Request, String> {
    let query = payload["query"]
        .as_str()
        .ok_or("subscribe needs payload.query")?;
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = payload["operationName"].as_str() {
        request = request.operation_name(name);
    }
    match &payload["variables"] {
        Value::Null => {}
        v @ Value::Object(_) => {
            request = request.variables(async_graphql::Variables::from_json(v.clone()));
        }
        _ => return Err("payload.variables must be an object".into()),
    }
    Ok(request)
}

/// Runs one operation, forwarding its results; a request error (the document
/// never ran) is an `error` message, anything else `next` then `complete`.
async fn run_operation(
    schema: AppSchema,
    request: async_graphql::Request,
    id: String,
    seq: u64,
    out: mpsc::Sender<Out>,
) {
    let mut stream = schema.execute_stream(request);
    let mut first = true;
    while let Some(response) = stream.next().await {
        let request_error = first
            && response.data == async_graphql::Value::Null
            && !response.errors.is_empty()
            && response.errors.iter().all(|e| e.path.is_empty());
        first = false;
        let message = if request_error {
            json!({ "type": "error", "id": id, "payload": response.errors })
        } else {
            // As over HTTP (SPEC §3): a failed field is present as null
            // beside those that resolved (a refused subscription keeps `data: null`).
            let mut response = response;
            if matches!(response.data, async_graphql::Value::Object(_)) {
                super::http::null_failed_fields(&mut response);
            }
            json!({ "type": "next", "id": id, "payload": response })
        };
        if out.send(Out::Send(message)).await.is_err() {
            return;
        }
        if request_error {
            let _ = out.send(Out::Done(id, seq)).await;
            return;
        }
    }
    let _ = out
        .send(Out::Send(json!({ "type": "complete", "id": id })))
        .await;
    let _ = out.send(Out::Done(id, seq)).await;
}
