//! Throttling of failed sign-in (and client authentication) attempts.
//!
//! Counts failures per key in a fixed window; once a key reaches its limit, every
//! attempt is refused until the window ends, whether or not the password would
//! have been right. Hand-written rather than `governor`: governor limits the rate
//! of all attempts, while a sign-in throttle must count only failures (a person
//! who signs in often is not an attacker) and forget them on success.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Failure counters for one kind of key (account, client address).
#[derive(Debug)]
pub struct Throttle {
    limit: u32,
    window: Duration,
    entries: Mutex<HashMap<String, Window>>,
}

impl Throttle {
    pub fn new(limit: u32, window: Duration) -> Self {
        Throttle {
            limit,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(seconds to wait)` when `key` is locked out now.
    pub fn check(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let w = entries.get(key)?;
        let elapsed = now.duration_since(w.started);
        if w.failures >= self.limit && elapsed < self.window {
            Some((self.window - elapsed).as_secs().max(1))
        } else {
            None
        }
    }

    /// Records a failure for `key`.
    pub fn fail(&self, key: &str) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > 100_000 {
            // Bound memory under a spray of distinct keys: drop finished windows.
            entries.retain(|_, w| now.duration_since(w.started) < self.window);
        }
        let w = entries.entry(key.to_owned()).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(w.started) >= self.window {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures += 1;
    }

    /// Forgets `key`'s failures (after a successful sign-in).
    pub fn clear(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The sign-in throttles: per account and per client address.
#[derive(Debug)]
pub struct SignInThrottle {
    pub per_account: Throttle,
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
    /// `Some(retry after)` when either the account or the address is locked out.
    pub fn check(&self, account: &str, address: &str) -> Option<u64> {
        match (
            self.per_account.check(account),
            self.per_address.check(address),
        ) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn fail(&self, account: &str, address: &str) {
        self.per_account.fail(account);
        self.per_address.fail(address);
    }

    pub fn succeed(&self, account: &str) {
        self.per_account.clear(account);
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
}
