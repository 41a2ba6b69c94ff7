//! Logging: `tracing` to stderr, as text or JSON. Request spans carry a request
//! id, method and path — never headers, query strings or bodies.
//!
//! Lines are formatted where they happen and written by a dedicated thread
//! (`tracing-appender`), which drains everything queued and writes it through
//! one buffer per batch: a request never waits on stderr, and under load many
//! lines go out in one `write`. Under load no line is dropped: when the
//! writer falls 128 000 lines behind, logging waits for it (the same
//! back-pressure a synchronous writer gives, only much later). At exit the
//! guard flushes what is queued, waiting about a second at most; lines logged
//! after the guard is gone are lost.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Keeps the log writer running: dropping it flushes what is queued and stops
/// the writer's thread. Hold it for as long as the program logs.
#[must_use = "logs are flushed and written only while the guard lives"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

/// Installs the global subscriber (once; later calls are ignored, as in tests,
/// and return a guard that holds nothing).
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_env("TOKENGATE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn"));
    // Colour only for a person at a terminal: never escape codes in a file or pipe.
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("tokengate-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard {
        _writer: installed.is_ok().then_some(guard),
    }
}
