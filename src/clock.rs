//! Time arithmetic that never panics.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// `t + d`, or `None` past the end of time (only reachable with durations that
/// `Config::check` refuses, but never a panic).
pub fn checked_after(t: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
}
