//! The token service: every rule for issuing, verifying, listing and revoking
//! access tokens, one concern per file. GraphQL, OAuth and the CLI are thin
//! callers; service accounts build on `policy` and `issue`.

mod issue;
pub mod jwt;
mod lookup;
pub mod policy;
mod revoke;
mod verify;

use chrono::{DateTime, Utc};
use entity::access_token;

pub use entity::access_token::Grant;
pub use issue::{
    issue, issue_for, mint, rotate, IssueRequest, Issued, Mint, Owner, MAX_GRACE_SECS,
};
pub use lookup::{expiring_between, find, get_visible, list};
pub use revoke::{revoke, revoke_by_id, revoke_record};
pub use verify::{authenticate, check};

/// Whether a token can still be used, derived from its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Neither revoked nor past its expiry: it verifies.
    Active,
    /// Past its `expires_at`, and not revoked.
    Expired,
    /// Revoked (whether or not it has also expired).
    Revoked,
}

/// The token's [`Status`] at `now`; revocation wins over expiry.
pub fn status(t: &access_token::Model, now: DateTime<Utc>) -> Status {
    // A rotated token's revocation may lie ahead (its grace period).
    if t.revoked_at.is_some_and(|r| r <= now) {
        Status::Revoked
    } else if t.expires_at.is_some_and(|e| e <= now) {
        Status::Expired
    } else {
        Status::Active
    }
}
