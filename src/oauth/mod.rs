//! OAuth 2.0 endpoints for machine clients: the token endpoint (RFC 6749 §4.4
//! client credentials, RFC 8693 token exchange), revocation (RFC 7009),
//! introspection (RFC 7662) and server metadata (RFC 8414).
//!
//! Handlers parse and answer; the rules live in `tokens` and `service_accounts`.
//! One file per endpoint; `error` is the RFC 6749 §5.2 error and `client` the
//! form parsing and client authentication they share.

mod client;
mod error;
mod introspect;
mod metadata;
mod revoke;
mod token;

pub use introspect::introspect;
pub use metadata::metadata;
pub use revoke::revoke;
pub use token::token;

/// `grant_type` of the client credentials grant (RFC 6749 §4.4).
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
/// `grant_type` of token exchange (RFC 8693).
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type URI of an access token, the only one token exchange takes
/// and issues (RFC 8693 §3).
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Lifetime of an exchanged token unless its parent ends sooner.
pub const EXCHANGE_LIFETIME_SECS: i64 = 15 * 60;
