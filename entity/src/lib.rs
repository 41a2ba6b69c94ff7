//! sea-orm entities for tokengate's tables.
//!
//! Rows never leave the store layer: GraphQL and HTTP types are separate, so a
//! digest or key column can never be published by accident.

#![warn(missing_docs)]

pub mod access_token;
pub mod audit_event;
pub mod issuer;
pub mod service_account;
pub mod session;
pub mod session_end;
pub mod signing_key;
pub mod user;
pub mod webhook;
pub mod webhook_delivery;
pub mod webhook_event;
