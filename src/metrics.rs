//! A handful of Prometheus counters, rendered by `GET /metrics`. No label ever
//! carries a credential.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::AuthReason;

const REASONS: [AuthReason; 7] = [
    AuthReason::Missing,
    AuthReason::Malformed,
    AuthReason::BadSignature,
    AuthReason::Expired,
    AuthReason::Revoked,
    AuthReason::Unknown,
    AuthReason::SessionExpired,
];

/// This process's counters, from zero at start, rendered by [`Metrics::render`].
#[derive(Default)]
pub struct Metrics {
    /// GraphQL requests executed (past the guard).
    pub graphql_requests: AtomicU64,
    auth_failures: [AtomicU64; 7],
    /// Sign-ins that started a session.
    pub sign_ins: AtomicU64,
    /// Sign-ins refused (wrong credentials, throttled) or failed.
    pub sign_in_failures: AtomicU64,
    /// Tokens issued by the `updateAccessToken` mutation (OAuth grants and the
    /// CLI are not counted).
    pub tokens_issued: AtomicU64,
    /// Tokens revoked in this process, by any path (rotation, and exchanged
    /// tokens revoked with their parent, included).
    pub tokens_revoked: AtomicU64,
}

impl Metrics {
    /// Counts one request refused by the guard, by reason.
    pub fn auth_failure(&self, reason: AuthReason) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.auth_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition.
    /// `cache` is (hits, misses) of the verified-credential cache.
    pub fn render(&self, last_used_writes: u64, cache: (u64, u64)) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, samples: &[(String, u64)]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (labels, v) in samples {
                out.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            "tokengate_graphql_requests_total",
            "GraphQL requests executed.",
            &[(String::new(), get(&self.graphql_requests))],
        );
        let failures: Vec<_> = REASONS
            .iter()
            .zip(&self.auth_failures)
            .map(|(r, a)| (format!("{{reason=\"{}\"}}", r.as_str()), get(a)))
            .collect();
        counter(
            "tokengate_auth_failures_total",
            "Requests refused by the guard.",
            &failures,
        );
        counter(
            "tokengate_sign_ins_total",
            "Sign-in attempts.",
            &[
                ("{result=\"ok\"}".into(), get(&self.sign_ins)),
                ("{result=\"failed\"}".into(), get(&self.sign_in_failures)),
            ],
        );
        counter(
            "tokengate_tokens_issued_total",
            "Access tokens issued.",
            &[(String::new(), get(&self.tokens_issued))],
        );
        counter(
            "tokengate_tokens_revoked_total",
            "Access tokens revoked.",
            &[(String::new(), get(&self.tokens_revoked))],
        );
        counter(
            "tokengate_last_used_writes_total",
            "Rows written to record last-used times.",
            &[(String::new(), last_used_writes)],
        );
        counter(
            "tokengate_credential_cache_total",
            "Guard lookups in the verified-credential cache.",
            &[
                ("{result=\"hit\"}".into(), cache.0),
                ("{result=\"miss\"}".into(), cache.1),
            ],
        );
        out
    }
}
