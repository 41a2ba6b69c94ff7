//! Integration tests: a real server over HTTP on an ephemeral port, on SQLite
//! and on PostgreSQL. One module per capability.

mod support;

mod binary;
mod cache;
mod deployment;
mod guard;
mod oauth;
mod sign_in;
mod tokens;
