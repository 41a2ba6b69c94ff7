//! tokengate: a GraphQL API server with token management built in.
//!
//! Use it as a program (`tokengate serve`) or as a library that serves your
//! own GraphQL objects behind the same guard: see [`TokenGate`]. The binary
//! (`src/main.rs`) is `TokenGate::new().main()`, the same face an application
//! uses.

#![warn(missing_docs)]

pub mod app;
pub mod audit;
pub mod auth;
pub mod builder;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod db;
pub mod error;
pub mod gateway;
pub mod graphql;
pub mod guard;
pub mod memory;
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
pub mod webhooks;

pub use app::{App, AppState};
pub use auth::scopes::ScopeDef;
pub use auth::Role;
pub use builder::TokenGate;
pub use config::Config;
pub use error::AppError;
pub use graphql::{app_data, bad_user_input, caller, database, requires_scope, AuthMethod, Caller};

/// The GraphQL library tokengate is built on, for an application's objects
/// (depend on the same version: `async-graphql = "7.2"`).
pub use async_graphql;
/// The ORM of tokengate's database, for an application's entities.
pub use sea_orm;
/// Migrations beside tokengate's: implement `MigratorTrait` and pass it to
/// [`TokenGate::migrations`].
pub use sea_orm_migration;

/// Runs the parsed command line of tokengate alone (the binary's program).
pub async fn run(cli: cli::Cli) -> anyhow::Result<()> {
    TokenGate::new().run(cli).await
}
