//! tokengate: a GraphQL API server with token management built in.
//!
//! The binary (`src/main.rs`) only parses the command line; everything else lives
//! here so integration tests and benchmarks drive the same code.

pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod db;
pub mod error;
pub mod graphql;
pub mod guard;
pub mod metrics;
pub mod oauth;
pub mod password;
pub mod request;
pub mod server;
pub mod service_accounts;
pub mod sessions;
pub mod telemetry;
pub mod tokens;
pub mod users;
pub mod web;

pub use app::{App, AppState};
pub use config::Config;
pub use error::AppError;

/// Runs the parsed command line: `serve` (the default) or another command.
pub async fn run(cli: cli::Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config).map_err(anyhow::Error::msg)?;
    telemetry::init(config.log_format);
    match cli.command.unwrap_or(cli::Command::Serve) {
        cli::Command::Serve => server::serve(config).await,
        command => cli::run(config, command).await,
    }
}
