//! Integration tests: a real server over HTTP on an ephemeral port, on SQLite
//! and on PostgreSQL. One module per capability; `harness` runs them.

mod harness;
mod support;

mod audit;
mod binary;
mod cache;
mod deployment;
mod guard;
mod library;
mod oauth;
mod sign_in;
mod tokens;
mod webhooks;

fn main() -> std::process::ExitCode {
    harness::main(&[
        audit::BOTH_BACKENDS,
        binary::SINGLE,
        binary::BOTH_BACKENDS,
        cache::BOTH_BACKENDS,
        deployment::BOTH_BACKENDS,
        guard::BOTH_BACKENDS,
        library::SINGLE,
        library::BOTH_BACKENDS,
        oauth::BOTH_BACKENDS,
        sign_in::BOTH_BACKENDS,
        tokens::BOTH_BACKENDS,
        webhooks::SINGLE,
        webhooks::BOTH_BACKENDS,
    ])
}
