//! Browser-facing routes: the sign-in page and the sign-in/sign-out endpoints
//! (`sign_in.rs`), the token console (`console.rs`), the GraphQL playground at
//! `GET /api` (`playground.rs`), the embedded assets they load (`assets.rs`) and
//! the chrome every page shares (`page.rs`).

pub mod assets;
pub mod console;
pub mod page;
pub mod playground;
pub mod sign_in;

pub use sign_in::{login, login_page, logout, safe_next};

/// Whether the session cookie is marked `Secure` (`--secure-cookies`, else
/// not on loopback): the one thing the pages need that the core does not hold.
#[derive(Clone, Copy, Debug)]
pub struct CookiePolicy {
    /// Whether cookies are marked `Secure`.
    pub secure: bool,
}
