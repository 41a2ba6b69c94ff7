//! Logging: `tracing` to stderr, as text or JSON. Lines logged while a request
//! is served carry its id, method and path — never headers, query strings or
//! bodies — and every response gets an access line ([`access`]).
//!
//! Lines are formatted where they happen and appended to one in-memory buffer;
//! a writer thread empties it into stderr when it holds 64 KiB, when a warning
//! or an error is logged, and otherwise every 100 ms — an access log buffered
//! as nginx's `access_log … buffer= flush=` is. A request never waits on
//! stderr, and appending a line takes a lock held for a copy; the writer
//! thread is woken only by a full buffer or a warning. (`tracing-appender`,
//! used before, sends every line through a channel and wakes its thread for
//! each one when it sleeps: a futex call and a context switch per request
//! whenever the load leaves it idle between lines. In gateway mode, where
//! tokengate shares the cores with the upstream, that writer gave 0.71–0.73×
//! of the direct throughput and this one 0.80–0.83×: BENCHMARKS.md.)
//! Nothing is dropped: when stderr cannot keep up and 8 MiB are waiting, the
//! thread that logs writes them itself (the back-pressure a synchronous
//! writer gives, only much later). At exit the guard writes what is left;
//! lines logged after the guard is gone are written at once, unbuffered.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub mod access;
pub mod format;

/// How much is gathered before the writer thread is woken.
const FLUSH_AT: usize = 64 * 1024;
/// How long a line may wait in the buffer when little is logged.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Past this, the thread that logs writes the buffer out itself.
const BACK_PRESSURE_AT: usize = 8 * 1024 * 1024;

/// Keeps the log writer running: dropping it writes what is buffered and
/// stops the writer's thread. Hold it for as long as the program logs.
#[must_use = "logs are written only while the guard lives"]
pub struct LogGuard {
    writer: Option<(Arc<Shared>, JoinHandle<()>)>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some((shared, thread)) = self.writer.take() {
            shared.lock().stopped = true;
            shared.wake.notify_one();
            let _ = thread.join();
        }
    }
}

/// Installs the global subscriber (once; later calls are ignored, as in tests,
/// and return a guard that holds nothing).
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_env("TOKENGATE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn"));
    // Colour only for a person at a terminal: never escape codes in a file or pipe.
    let ansi = std::io::stderr().is_terminal();
    let writer = BufferedWriter::new(Box::new(std::io::stderr()), FLUSH_EVERY);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(format::Json)
            .try_init(),
        LogFormat::Text => builder.event_format(format::Text).try_init(),
    };
    if installed.is_err() {
        return LogGuard { writer: None };
    }
    let shared = writer.shared.clone();
    match std::thread::Builder::new()
        .name("tokengate-log".into())
        .spawn(move || writer.run())
    {
        Ok(thread) => LogGuard {
            writer: Some((shared, thread)),
        },
        Err(_) => {
            // No writer thread: every line is written as it comes.
            shared.lock().stopped = true;
            LogGuard { writer: None }
        }
    }
}

/// Writes a batch and flushes it. Nowhere to report a failure to write the
/// log: the batch is dropped.
fn emit(out: &mut dyn Write, bytes: &[u8]) {
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

struct State {
    buf: Vec<u8>,
    /// The writer thread has been woken and not yet emptied the buffer.
    urgent: bool,
    stopped: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// How long a line may wait when little is logged (`FLUSH_EVERY`).
    every: Duration,
    /// Where lines go; locked only to write a batch. Taken while `state` is
    /// held (never the other way round), so batches go out in order.
    out: Mutex<Box<dyn Write + Send>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while appending leaves bytes, not a broken invariant.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn out(&self) -> MutexGuard<'_, Box<dyn Write + Send>> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_out(&self, bytes: &[u8]) {
        emit(&mut **self.out(), bytes);
    }
}

/// The `MakeWriter` given to the subscriber: every line is appended to the
/// shared buffer.
#[derive(Clone)]
pub struct BufferedWriter {
    shared: Arc<Shared>,
}

impl BufferedWriter {
    fn new(out: Box<dyn Write + Send>, every: Duration) -> Self {
        BufferedWriter {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    buf: Vec::with_capacity(FLUSH_AT * 2),
                    urgent: false,
                    stopped: false,
                }),
                wake: Condvar::new(),
                every,
                out: Mutex::new(out),
            }),
        }
    }

    /// The writer thread: swaps the buffer for an empty one and writes it,
    /// when woken or every `every`, until the guard is dropped.
    fn run(self) {
        let mut spare = Vec::with_capacity(FLUSH_AT * 2);
        loop {
            let mut state = self.shared.lock();
            if !state.urgent && !state.stopped {
                // Empty, or not yet worth a write: sleep until woken or the timer.
                state = self
                    .shared
                    .wake
                    .wait_timeout(state, self.shared.every)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            std::mem::swap(&mut state.buf, &mut spare);
            state.urgent = false;
            let stopped = state.stopped;
            // Take the output before letting the buffer go, so that a logging
            // thread under back-pressure cannot write later lines first.
            let out = (!spare.is_empty()).then(|| self.shared.out());
            drop(state);
            if let Some(mut out) = out {
                emit(&mut **out, &spare);
                drop(out);
                spare.clear();
                if spare.capacity() > FLUSH_AT * 16 {
                    spare.shrink_to(FLUSH_AT * 2);
                }
            }
            if stopped {
                // Anything appended meanwhile goes out too; later lines are
                // written directly (see `Line`).
                let state = self.shared.lock();
                self.shared.write_out(&state.buf);
                return;
            }
        }
    }
}

impl<'a> MakeWriter<'a> for BufferedWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            shared: &self.shared,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            shared: &self.shared,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

/// One line being written (the subscriber writes each formatted line at once).
pub struct Line<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut state = self.shared.lock();
        if state.stopped {
            // Keep the order: written while the buffer's lock is held.
            self.shared.write_out(bytes);
            return Ok(bytes.len());
        }
        state.buf.extend_from_slice(bytes);
        let len = state.buf.len();
        if len >= BACK_PRESSURE_AT {
            let full = std::mem::take(&mut state.buf);
            // Keep the order of lines: the batch is written before the lock
            // on the buffer is let go.
            self.shared.write_out(&full);
            return Ok(bytes.len());
        }
        let wake = (self.urgent || len >= FLUSH_AT) && !state.urgent;
        if wake {
            state.urgent = true;
        }
        drop(state);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// A writer whose timer never fires within a test: only a full buffer,
    /// a warning or the guard gets lines out.
    fn start(sink: &Sink) -> (BufferedWriter, LogGuard) {
        let writer = BufferedWriter::new(Box::new(sink.clone()), Duration::from_secs(3600));
        let shared = writer.shared.clone();
        let w = writer.clone();
        let thread = std::thread::spawn(move || w.run());
        (
            writer,
            LogGuard {
                writer: Some((shared, thread)),
            },
        )
    }

    fn line(w: &BufferedWriter, urgent: bool, text: &str) {
        let mut l = Line {
            shared: &w.shared,
            urgent,
        };
        l.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn an_info_line_waits_for_the_timer_or_a_full_buffer() {
        let sink = Sink::default();
        let (w, guard) = start(&sink);
        line(&w, false, "one access line\n");
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            sink.text(),
            "",
            "written before the buffer filled or the timer fired"
        );
        drop(guard);
        assert_eq!(sink.text(), "one access line\n");
    }

    #[test]
    fn a_full_buffer_is_written_without_waiting_for_the_timer() {
        let sink = Sink::default();
        let (w, _guard) = start(&sink);
        let text = "x".repeat(99) + "\n";
        for _ in 0..(FLUSH_AT / 100 + 1) {
            line(&w, false, &text);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while sink.text().len() < FLUSH_AT && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(sink.text().len() >= FLUSH_AT, "64 KiB logged, not written");
    }

    #[test]
    fn a_warning_is_written_without_waiting_for_the_timer() {
        let sink = Sink::default();
        let (w, _guard) = start(&sink);
        line(&w, false, "info before\n");
        line(&w, true, "a warning\n");
        let deadline = Instant::now() + Duration::from_secs(2);
        while sink.text().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sink.text(), "info before\na warning\n");
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        let sink = Sink::default();
        let (w, guard) = start(&sink);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        line(&w, false, &format!("{t} {i}\n"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        line(&w, false, "after the guard\n");
        let text = sink.text();
        let mut next = [0u32; 4];
        let mut lines = text.lines();
        for l in lines.by_ref().take(80_000) {
            let (t, i) = l.split_once(' ').unwrap();
            let t: usize = t.parse().unwrap();
            assert_eq!(
                i.parse::<u32>().unwrap(),
                next[t],
                "thread {t}'s lines out of order"
            );
            next[t] += 1;
        }
        assert_eq!(next, [20_000; 4], "lines lost");
        assert_eq!(lines.next(), Some("after the guard"));
    }
}
