//! The access log: one line per response (target `tokengate::access`, INFO,
//! or ERROR for a 5xx) with the request's id, method and path (never headers,
//! query strings or bodies), its status and the time taken; and the same
//! context on every other line logged while the request is served (see
//! [`format`](super::format); other subscribers can read it with
//! [`with_current`]).
//!
//! The context is a Tokio task local set around the inner service's future,
//! not a `tracing` span: setting it is a swap on every poll, where a span
//! took the registry's and the filter's locks on every enter and exit.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{HeaderValue, Method, Request, Response, Uri};
use tokio::task::futures::TaskLocalFuture;

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// What a log line says of the request being served.
pub struct RequestContext {
    /// The `x-request-id` header (set by the layer outside this one), if any.
    id: Option<HeaderValue>,
    method: Method,
    /// Only its path is ever written, never the query string.
    uri: Uri,
}

/// Longest request id written as it came; longer ones are cut.
const MAX_ID: usize = 128;

impl RequestContext {
    /// The request id as text, `-` when it has none or it is not text.
    pub fn id(&self) -> &str {
        self.id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    }

    /// The request id, fit for a line of text: as it came when it is at most
    /// 128 characters of letters, digits and `._:-` (a generated id always
    /// is), else quoted with escapes and cut to 128, so that a client's id
    /// cannot forge fields or flood the log.
    pub fn id_for_text(&self) -> std::borrow::Cow<'_, str> {
        let plain = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
        let Some(bytes) = self.id.as_ref().map(HeaderValue::as_bytes) else {
            return "-".into();
        };
        // The usual case in one pass over the header's bytes: plain bytes are
        // ASCII, so they are text (`to_str` would check them again).
        if bytes.len() <= MAX_ID && bytes.iter().all(plain) {
            return std::str::from_utf8(bytes).unwrap_or("-").into();
        }
        // Not text: `-`, as `id` gives.
        let id = self.id();
        if id == "-" {
            return id.into();
        }
        // Header values are visible ASCII: cutting at a byte is at a char.
        format!("{:?}", &id[..id.len().min(MAX_ID)]).into()
    }

    /// The request method.
    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    /// The request path (without the query string, which may carry secrets).
    pub fn path(&self) -> &str {
        self.uri.path()
    }
}

/// Calls `f` with the context of the request the current task is serving,
/// `None` outside one — for an application's own log layout, as tokengate's
/// [`format`](super::format) uses it.
pub fn with_current<R>(f: impl FnOnce(Option<&RequestContext>) -> R) -> R {
    let mut f = Some(f);
    match REQUEST.try_with(|r| (f.take().expect("called once"))(Some(r))) {
        Ok(r) => r,
        Err(_) => (f.take().expect("not called"))(None),
    }
}

/// Logs every response and gives the request's context to the lines logged
/// while it is served. Put it inside the layer that sets `x-request-id`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessLogLayer;

impl<S> tower_layer::Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog { inner }
    }
}

/// The service of [`AccessLogLayer`].
#[derive(Clone, Debug)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S, B, RB> tower_service::Service<Request<B>> for AccessLog<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = TaskLocalFuture<RequestContext, Logged<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let context = RequestContext {
            id: req.headers().get("x-request-id").cloned(),
            method: req.method().clone(),
            uri: req.uri().clone(),
        };
        let start = Instant::now();
        REQUEST.scope(
            context,
            Logged {
                inner: self.inner.call(req),
                start,
            },
        )
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future; writes the access line when it is ready.
    pub struct Logged<F> {
        #[pin]
        inner: F,
        start: Instant,
    }
}

impl<F, RB, E> Future for Logged<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        let latency_us = u64::try_from(this.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        // The request's context as fields too, for any subscriber (an
        // embedding application's); tokengate's layouts write them once.
        with_current(|r| {
            let (id, method, path) = r.map_or(("-".into(), "-", "-"), |r| {
                (r.id_for_text(), r.method(), r.path())
            });
            let id = &*id;
            match &out {
                Ok(response) if response.status().is_server_error() => tracing::error!(
                    target: "tokengate::access",
                    request_id = %id,
                    method = %method,
                    path = %path,
                    status = response.status().as_u16(),
                    latency_us,
                    "finished processing request"
                ),
                Ok(response) => tracing::info!(
                    target: "tokengate::access",
                    request_id = %id,
                    method = %method,
                    path = %path,
                    status = response.status().as_u16(),
                    latency_us,
                    "finished processing request"
                ),
                Err(_) => tracing::error!(
                    target: "tokengate::access",
                    request_id = %id,
                    method = %method,
                    path = %path,
                    latency_us,
                    "request failed"
                ),
            }
        });
        Poll::Ready(out)
    }
}
