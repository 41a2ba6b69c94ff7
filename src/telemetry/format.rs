//! How a log line is laid out, as text or JSON. Both are tracing-subscriber's
//! own layouts (`Full` and `Json` with the event's fields flattened) with one
//! addition: a line logged while a request is served carries that request's
//! id, method and path — the request's [`access`] context —
//! as if it were the outermost span, `request{request_id=… method=… path=…}:`
//! in text and top-level `request_id`, `method` and `path` in JSON.
//!
//! The access line itself (target [`ACCESS`]) has them as fields, so they
//! are not written twice there. An event's own fields named `request_id`,
//! `method` or `path` would repeat them: tokengate logs none.
//!
//! Why not a span: a `tracing` span per request cost ≈ 6–8 µs of CPU per
//! request under load (the registry's bookkeeping and the filter's locks on
//! every enter and exit of every poll, the fields formatted at creation),
//! against ≈ 1 µs for the access line itself. The request's context is a task
//! local instead, read only when a line is written.

use std::fmt;

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::access::{self, RequestContext};

/// The access line's target.
pub const ACCESS: &str = "tokengate::access";

const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const ITALIC: &str = "\x1b[3m";
const RESET: &str = "\x1b[0m";

/// The time as tracing-subscriber's `SystemTime` writes it (RFC 3339 in UTC
/// with microseconds), the date and time of day formatted once a second per
/// thread instead of for every line.
fn write_time(w: &mut Writer<'_>) -> fmt::Result {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            let at = i64::try_from(secs)
                .ok()
                .and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0))
                .unwrap_or_default();
            text.clear();
            let _ = write!(text, "{}", at.format("%Y-%m-%dT%H:%M:%S"));
            *second = secs;
        }
        w.write_str(text)
    })?;
    let mut fraction = *b".000000Z";
    let mut micros = now.subsec_micros();
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    w.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
}

/// The access line's fields as tracing-subscriber's `DefaultFields` writes
/// them (the message, then ` name=value` with `Debug` values; the name in
/// italics and `=` dimmed on a terminal), written straight into the line: it
/// is written for every request.
struct AccessFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    ansi: bool,
    first: bool,
    result: fmt::Result,
}

impl Visit for AccessFields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let pad = if self.first { "" } else { " " };
        self.first = false;
        self.result = match (field.name(), self.ansi) {
            ("message", _) => write!(self.w, "{pad}{value:?}"),
            (name, false) => write!(self.w, "{pad}{name}={value:?}"),
            (name, true) => write!(self.w, "{pad}{ITALIC}{name}{RESET}{DIM}={RESET}{value:?}"),
        };
    }
}

fn level_colour(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        Level::DEBUG => "\x1b[34m",
        Level::TRACE => "\x1b[35m",
    }
}

/// Text: `TIME LEVEL request{…}:span{…}: target: message fields`, coloured
/// only when the writer is a terminal.
pub struct Text;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let ansi = w.has_ansi_escapes();
        let (dim, bold, reset) = if ansi {
            (DIM, BOLD, RESET)
        } else {
            ("", "", "")
        };
        w.write_str(dim)?;
        write_time(&mut w)?;
        w.write_str(reset)?;
        let colour = if ansi { level_colour(meta.level()) } else { "" };
        write!(w, " {colour}{:>5}{reset} ", meta.level().as_str())?;

        let mut any_span = false;
        if meta.target() != ACCESS {
            access::with_current(|request| {
                if let Some(r) = request {
                    any_span = true;
                    write!(
                        w,
                        "{bold}request{reset}{{request_id={} method={} path={}}}:",
                        r.id_for_text(),
                        r.method(),
                        r.path()
                    )?;
                }
                Ok::<_, fmt::Error>(())
            })?;
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                any_span = true;
                write!(w, "{bold}{}{reset}", span.name())?;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(w, "{bold}{{{reset}{fields}{bold}}}{reset}")?;
                    }
                }
                w.write_char(':')?;
            }
        }
        if any_span {
            w.write_char(' ')?;
        }
        write!(w, "{dim}{}:{reset} ", meta.target())?;
        if meta.target() == ACCESS {
            let mut fields = AccessFields {
                w: &mut w,
                ansi,
                first: true,
                result: Ok(()),
            };
            event.record(&mut fields);
            fields.result?;
        } else {
            ctx.format_fields(w.by_ref(), event)?;
        }
        writeln!(w)
    }
}

/// JSON, one object per line: `timestamp`, `level`, the event's fields
/// (`message` among them), `target`, the request's `request_id`, `method`
/// and `path` when there is one, and `spans` when any is open. The fields
/// must be formatted with tracing-subscriber's `JsonFields`.
pub struct Json;

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        write_time(&mut w)?;
        write!(w, "\",\"level\":\"{}\"", meta.level().as_str())?;
        let mut fields = String::new();
        ctx.format_fields(Writer::new(&mut fields), event)?;
        write_members(&mut w, &fields)?;
        w.write_str(",\"target\":")?;
        json_str(&mut w, meta.target())?;
        if meta.target() != ACCESS {
            access::with_current(|request| match request {
                Some(r) => write_request(&mut w, r),
                None => Ok(()),
            })?;
        }
        if let Some(scope) = ctx.event_scope() {
            let mut first = true;
            for span in scope.from_root() {
                w.write_str(if first { ",\"spans\":[" } else { "," })?;
                first = false;
                w.write_str("{\"name\":")?;
                json_str(&mut w, span.name())?;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                    write_members(&mut w, fields)?;
                }
                w.write_char('}')?;
            }
            if !first {
                w.write_char(']')?;
            }
        }
        w.write_str("}\n")
    }
}

fn write_request(w: &mut Writer<'_>, r: &RequestContext) -> fmt::Result {
    w.write_str(",\"request_id\":")?;
    json_str(w, r.id())?;
    w.write_str(",\"method\":")?;
    json_str(w, r.method())?;
    w.write_str(",\"path\":")?;
    json_str(w, r.path())
}

/// Writes the members of the JSON object `object` (as `JsonFields` formats
/// them), each preceded by a comma; nothing for `{}` or anything not an object.
fn write_members(w: &mut Writer<'_>, object: &str) -> fmt::Result {
    let inner = object
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .map(str::trim)
        .unwrap_or("");
    if inner.is_empty() {
        return Ok(());
    }
    w.write_char(',')?;
    w.write_str(inner)
}

fn json_str(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    let quoted = serde_json::to_string(s).map_err(|_| fmt::Error)?;
    w.write_str(&quoted)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use axum::http::{Request, Response, StatusCode};
    use tower_layer::Layer;
    use tower_service::Service;
    use tracing_subscriber::fmt::format::JsonFields;

    use super::super::access::AccessLogLayer;
    use super::{write_time, Json, Text, Writer, ACCESS, ITALIC};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A handler that logs a warning inside a span of its own, gives way to
    /// other tasks, logs again, and answers 500 for `/fail`, else 200.
    #[derive(Clone)]
    struct Handler;

    impl Service<Request<()>> for Handler {
        type Response = Response<()>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Response<()>, Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<()>) -> Self::Future {
            Box::pin(async move {
                {
                    let span = tracing::info_span!("lookup", table = "tokens");
                    let _in = span.enter();
                    tracing::warn!(detail = "in\"side", "something to note");
                }
                tokio::task::yield_now().await;
                tracing::warn!("after giving way");
                let status = if req.uri().path() == "/fail" {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                };
                let mut response = Response::new(());
                *response.status_mut() = status;
                Ok(response)
            })
        }
    }

    fn request(path: &str, id: &str) -> Request<()> {
        Request::builder()
            .method("POST")
            .uri(path)
            .header("x-request-id", id)
            .body(())
            .unwrap()
    }

    /// Serves two requests at once on one thread through the access-log layer
    /// under `subscriber`, then logs one line outside any request; answers
    /// what was logged.
    fn logged(
        subscriber: impl tracing::Subscriber + Send + Sync,
        sink: &Sink,
        second_id: &str,
    ) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            rt.block_on(async {
                let mut one = AccessLogLayer.layer(Handler);
                let mut two = AccessLogLayer.layer(Handler);
                let (a, b) = tokio::join!(
                    one.call(request("/api?token=secret", "req-1")),
                    two.call(request("/fail", second_id)),
                );
                a.unwrap();
                b.unwrap();
            });
            tracing::info!("outside any request");
        });
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    fn text_subscriber(sink: &Sink) -> impl tracing::Subscriber + Send + Sync {
        let s = sink.clone();
        tracing_subscriber::fmt()
            .with_writer(move || s.clone())
            .with_ansi(false)
            .event_format(Text)
            .finish()
    }

    #[test]
    fn the_time_is_written_as_tracing_subscribers_system_time_writes_it() {
        use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
        for _ in 0..100 {
            let (mut ours, mut theirs) = (String::new(), String::new());
            write_time(&mut Writer::new(&mut ours)).unwrap();
            SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            assert_eq!(ours.len(), "2026-11-24T00:10:15.123456Z".len(), "{ours}");
            let shape = ours.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                10 => b == b'T',
                13 | 16 => b == b':',
                19 => b == b'.',
                26 => b == b'Z',
                _ => b.is_ascii_digit(),
            });
            assert!(shape, "{ours}");
            assert!(ours <= theirs, "{ours} after {theirs}");
            if ours[..19] == theirs[..19] {
                return; // the same second (else a second turned in between)
            }
        }
        panic!("never the same second as SystemTime");
    }

    /// The access line's fields read as `DefaultFields` writes them, with
    /// and without colour.
    #[test]
    fn the_access_fields_are_written_as_the_default_fields_are() {
        for ansi in [false, true] {
            let (ours, theirs) = (Sink::default(), Sink::default());
            let emit = || {
                tracing::info!(
                    target: ACCESS,
                    request_id = %"r-1",
                    method = %"GET",
                    path = %"/x y",
                    status = 200u16,
                    latency_us = 17u64,
                    "finished processing request"
                )
            };
            let s = ours.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || s.clone())
                .with_ansi(ansi)
                .event_format(Text)
                .finish();
            tracing::subscriber::with_default(subscriber, emit);
            let s = theirs.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || s.clone())
                .with_ansi(ansi)
                .finish();
            tracing::subscriber::with_default(subscriber, emit);
            let text = |sink: &Sink| {
                let all = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
                let at = all
                    .find("finished processing request")
                    .expect("the message");
                all[at..].to_owned()
            };
            assert_eq!(text(&ours), text(&theirs), "ansi {ansi}");
            assert_eq!(text(&ours).contains(ITALIC), ansi);
        }
    }

    #[test]
    fn text_lines_carry_the_request_served_and_the_access_line_its_status() {
        let sink = Sink::default();
        let text = logged(text_subscriber(&sink), &sink, "req-2");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        let one = "request{request_id=req-1 method=POST path=/api}";
        let two = "request{request_id=req-2 method=POST path=/fail}";
        let target = "tokengate::telemetry::format::tests";
        // The two requests' lines interleave (in an order Tokio picks); each
        // keeps its own context.
        let expected = [
            format!(" WARN {one}:lookup{{table=\"tokens\"}}: {target}: something to note detail=\"in\\\"side\""),
            format!(" WARN {two}:lookup{{table=\"tokens\"}}: {target}: something to note detail=\"in\\\"side\""),
            format!(" WARN {one}: {target}: after giving way"),
            " INFO tokengate::access: finished processing request request_id=req-1 method=POST path=/api status=200 latency_us=".into(),
            format!(" WARN {two}: {target}: after giving way"),
            "ERROR tokengate::access: finished processing request request_id=req-2 method=POST path=/fail status=500 latency_us=".into(),
            format!(" INFO {target}: outside any request"),
        ];
        for want in &expected {
            assert!(
                lines.iter().any(|l| l.contains(want.as_str())),
                "no line has: {want}\n{text}"
            );
        }
        assert!(
            lines[0].contains("something to note") && lines[1].contains("something to note"),
            "the requests did not interleave: {text}"
        );
        assert!(!text.contains("secret"), "the query string was logged");
    }

    #[test]
    fn a_request_id_that_could_forge_fields_is_quoted_and_cut() {
        let sink = Sink::default();
        let forged = format!("x}} method=DELETE {}", "y".repeat(300));
        let text = logged(text_subscriber(&sink), &sink, &forged);
        let quoted = format!("{:?}", &forged[..128]);
        assert!(
            text.contains(&format!(
                "request{{request_id={quoted} method=POST path=/fail}}"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "request_id={quoted} method=POST path=/fail status=500"
            )),
            "{text}"
        );
        assert!(!text.contains(&"y".repeat(129)), "the id was not cut");
    }

    #[test]
    fn json_lines_carry_the_request_served_as_members() {
        let sink = Sink::default();
        let s = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || s.clone())
            .with_ansi(false)
            .fmt_fields(JsonFields::new())
            .event_format(Json)
            .finish();
        let text = logged(subscriber, &sink, "req-2");
        assert!(!text.contains("secret"), "the query string was logged");
        for line in text.lines() {
            assert!(
                line.matches("\"request_id\"").count() <= 1,
                "a member written twice: {line}"
            );
        }
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 7, "{text}");
        let find = |what: &dyn Fn(&serde_json::Value) -> bool| {
            lines
                .iter()
                .find(|l| what(l))
                .unwrap_or_else(|| panic!("no such line: {text}"))
        };
        let warning = find(&|l| l["message"] == "something to note" && l["request_id"] == "req-2");
        assert_eq!(warning["level"], "WARN");
        assert_eq!(warning["message"], "something to note");
        assert_eq!(warning["detail"], "in\"side");
        assert_eq!(warning["request_id"], "req-2");
        assert_eq!(warning["method"], "POST");
        assert_eq!(warning["path"], "/fail");
        assert_eq!(
            warning["spans"],
            serde_json::json!([{ "name": "lookup", "table": "tokens" }])
        );
        let later = find(&|l| l["message"] == "after giving way" && l["request_id"] == "req-1");
        assert_eq!(later["path"], "/api");
        assert!(later.get("spans").is_none());
        let access = find(&|l| l["target"] == "tokengate::access" && l["status"] == 500);
        assert_eq!(access["target"], "tokengate::access");
        assert_eq!(access["level"], "ERROR");
        assert_eq!(access["status"], 500);
        assert_eq!(access["request_id"], "req-2");
        assert_eq!(access["method"], "POST");
        assert_eq!(access["path"], "/fail");
        assert!(access["latency_us"].is_u64());
        assert!(access.get("spans").is_none());
        let outside = &lines[6];
        assert_eq!(outside["message"], "outside any request");
        assert!(outside.get("request_id").is_none());
        assert!(outside["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
