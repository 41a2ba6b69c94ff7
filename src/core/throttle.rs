//! Throttling of failed sign-in (and client authentication) attempts.
//!
//! Counts failures per key in a fixed window that opens at the key's first
//! failure; once a key reaches its limit, every attempt is refused until that
//! window ends, whether or not the password would have been right. Not
//! `governor`: governor limits the rate of all attempts, while a sign-in
//! throttle must count only failures (a person who signs in often is not an
//! attacker) and forget them on success.
//!
//! The counters live in a `moka` cache: each key is locked on its own (no
//! global mutex, no scan of every entry on a failure), and an entry expires by
//! itself when its window ends, so memory holds only the windows still open.
//! Keys are held as their SHA-256, so an entry has a fixed size whatever was
//! typed as an email, and no address or email sits in memory in clear.

use std::fmt;
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use moka::sync::Cache;
use moka::Expiry;

use crate::auth::secret::sha256;

/// A throttle key as stored: the SHA-256 of the account or address.
type Key = [u8; 32];

/// One key's failures since its window opened.
#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

/// How long a window stays open at `now` (zero once it has ended).
fn remaining(w: &Window, length: Duration, now: Instant) -> Duration {
    (w.started + length).saturating_duration_since(now)
}

/// An entry expires when its window ends. Not `time_to_live`, which would
/// restart on every update and turn the fixed window into a sliding one.
struct UntilWindowEnds(Duration);

impl Expiry<Key, Window> for UntilWindowEnds {
    fn expire_after_create(&self, _: &Key, w: &Window, now: Instant) -> Option<Duration> {
        Some(remaining(w, self.0, now))
    }

    fn expire_after_update(
        &self,
        _: &Key,
        w: &Window,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(remaining(w, self.0, now))
    }
}

/// Failure counters for one kind of key (account, client address).
pub struct Throttle {
    limit: u32,
    window: Duration,
    entries: Cache<Key, Window>,
}

impl fmt::Debug for Throttle {
    /// Counts only: the keys are email addresses and client addresses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl Throttle {
    /// At most `limit` failures per key within `window` of the key's first one.
    pub fn new(limit: u32, window: Duration) -> Self {
        Throttle {
            limit,
            window,
            // No capacity bound: evicting a live counter under a spray of
            // distinct keys would unlock the account the spray is aimed at.
            // Entries go when their window ends.
            entries: Cache::builder()
                .expire_after(UntilWindowEnds(window))
                .build(),
        }
    }

    /// `Some(seconds to wait)` when `key` is locked out now: the whole seconds
    /// until its window ends, rounded up, so a client that waits that long is
    /// let in.
    pub fn check(&self, key: &str) -> Option<u64> {
        let w = self.entries.get(&sha256(key.as_bytes()))?;
        let left = remaining(&w, self.window, Instant::now());
        (w.failures >= self.limit && !left.is_zero())
            .then(|| left.as_secs() + u64::from(left.subsec_nanos() > 0))
    }

    /// Records a failure for `key`, opening a window if none is open.
    pub fn fail(&self, key: &str) {
        let now = Instant::now();
        // Per-key lock: concurrent failures for one key are all counted.
        self.entries
            .entry(sha256(key.as_bytes()))
            .and_compute_with(|entry| {
                Op::Put(match entry.map(|e| e.into_value()) {
                    Some(w) if !remaining(&w, self.window, now).is_zero() => Window {
                        failures: w.failures.saturating_add(1),
                        ..w
                    },
                    _ => Window {
                        started: now,
                        failures: 1,
                    },
                })
            });
    }

    /// Counts an attempt for `key` *before* it is checked, unless `key` is
    /// locked out (then `Err(seconds to wait)`), in one step under the key's
    /// lock: parallel attempts cannot all pass a check that none has counted
    /// yet. An attempt that succeeds gives its count back with [`Throttle::release`]
    /// (or [`Throttle::clear`]).
    pub fn try_reserve(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut refused = None;
        self.entries
            .entry(sha256(key.as_bytes()))
            .and_compute_with(|entry| match entry.map(|e| e.into_value()) {
                Some(w) if !remaining(&w, self.window, now).is_zero() => {
                    if w.failures >= self.limit {
                        let left = remaining(&w, self.window, now);
                        refused = Some(left.as_secs() + u64::from(left.subsec_nanos() > 0));
                        Op::Nop
                    } else {
                        Op::Put(Window {
                            failures: w.failures + 1,
                            ..w
                        })
                    }
                }
                _ => Op::Put(Window {
                    started: now,
                    failures: 1,
                }),
            });
        refused.map_or(Ok(()), Err)
    }

    /// Gives back one reserved count for `key` (an attempt that succeeded).
    pub fn release(&self, key: &str) {
        let now = Instant::now();
        self.entries
            .entry(sha256(key.as_bytes()))
            .and_compute_with(|entry| match entry.map(|e| e.into_value()) {
                Some(w) if !remaining(&w, self.window, now).is_zero() && w.failures > 0 => {
                    Op::Put(Window {
                        failures: w.failures - 1,
                        ..w
                    })
                }
                _ => Op::Nop,
            });
    }

    /// Forgets `key`'s failures (after a successful sign-in).
    pub fn clear(&self, key: &str) {
        self.entries.invalidate(&sha256(key.as_bytes()));
    }
}

/// The sign-in throttles: per account and per client address.
#[derive(Debug)]
pub struct SignInThrottle {
    /// Failures keyed by account (the trimmed, lowercased email, or the client id).
    pub per_account: Throttle,
    /// Failures keyed by client address.
    pub per_address: Throttle,
}

impl Default for SignInThrottle {
    /// 5 failures per account and 50 per address, per 15 minutes.
    fn default() -> Self {
        let window = Duration::from_secs(15 * 60);
        SignInThrottle {
            per_account: Throttle::new(5, window),
            per_address: Throttle::new(50, window),
        }
    }
}

impl SignInThrottle {
    /// `Some(retry after)` when either the account or the address is locked
    /// out: the longer wait when both are, since both must free.
    pub fn check(&self, account: &str, address: &str) -> Option<u64> {
        match (
            self.per_account.check(account),
            self.per_address.check(address),
        ) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Records a failed attempt against both the account and the address.
    pub fn fail(&self, account: &str, address: &str) {
        self.per_account.fail(account);
        self.per_address.fail(address);
    }

    /// Clears the account's failures; the address keeps its count.
    pub fn succeed(&self, account: &str) {
        self.per_account.clear(account);
    }

    /// Starts an attempt: counts it against the account and the address before
    /// the credential is checked, or refuses with the seconds to wait when
    /// either is locked out (nothing is counted then). Finish a successful
    /// attempt with [`SignInThrottle::succeeded`]; a failed one is already counted.
    pub fn begin(&self, account: &str, address: &str) -> Result<(), u64> {
        self.per_account.try_reserve(account)?;
        if let Err(wait) = self.per_address.try_reserve(address) {
            self.per_account.release(account);
            return Err(self
                .per_account
                .check(account)
                .map_or(wait, |a| a.max(wait)));
        }
        Ok(())
    }

    /// A begun attempt succeeded: the account's failures are forgotten and the
    /// address gets its count back.
    pub fn succeeded(&self, account: &str, address: &str) {
        self.per_account.clear(account);
        self.per_address.release(address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_limit_and_clears_on_success() {
        let t = Throttle::new(2, Duration::from_secs(60));
        assert_eq!(t.check("a"), None);
        t.fail("a");
        assert_eq!(t.check("a"), None);
        t.fail("a");
        assert!(t.check("a").is_some());
        assert_eq!(t.check("b"), None);
        t.clear("a");
        assert_eq!(t.check("a"), None);
    }

    #[test]
    fn retry_after_counts_up_to_the_end_of_the_window() {
        let t = Throttle::new(1, Duration::from_secs(900));
        t.fail("a");
        // A moment after the first failure 899.99… seconds are left: 900, not 899.
        assert_eq!(t.check("a"), Some(900));
    }

    #[test]
    fn an_attempt_is_counted_before_it_is_checked() {
        let t = SignInThrottle::default();
        // Five attempts in flight at once: the sixth is refused before any
        // of them has finished.
        for _ in 0..5 {
            assert_eq!(t.begin("ada", "10.0.0.1"), Ok(()));
        }
        assert!(t.begin("ada", "10.0.0.1").is_err());
        // A success forgets the account's count and gives the address its one back.
        t.succeeded("ada", "10.0.0.1");
        assert_eq!(t.begin("ada", "10.0.0.1"), Ok(()));
        // An address at its limit refuses without counting against the account.
        let a = SignInThrottle::default();
        for i in 0..50 {
            assert_eq!(a.begin(&format!("user{i}"), "10.0.0.9"), Ok(()));
        }
        assert!(a.begin("grace", "10.0.0.9").is_err());
        assert_eq!(a.per_account.check("grace"), None);
        assert_eq!(a.begin("grace", "10.0.0.8"), Ok(()));
    }

    #[test]
    fn either_limit_locks_and_success_clears_only_the_account() {
        let t = SignInThrottle::default();
        for _ in 0..5 {
            assert_eq!(t.check("ada", "10.0.0.1"), None);
            t.fail("ada", "10.0.0.1");
        }
        assert!(t.check("ada", "10.0.0.2").is_some(), "account locked");
        assert_eq!(t.check("bob", "10.0.0.1"), None, "address under 50");
        t.succeed("ada");
        assert_eq!(t.check("ada", "10.0.0.1"), None);
        for i in 0..45 {
            t.fail(&format!("user{i}"), "10.0.0.1");
        }
        assert!(t.check("carol", "10.0.0.1").is_some(), "address locked");
        assert_eq!(t.check("carol", "10.0.0.2"), None);
    }
}
