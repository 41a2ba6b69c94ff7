//! A handful of Prometheus counters, rendered by `GET /metrics`. No label ever
//! carries a credential.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

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
    /// GraphQL operations running on WebSocket connections.
    pub ws_operations: AtomicI64,
    ws_closes: [AtomicU64; WS_CLOSES.len()],
    /// Webhook attempts answered 2xx.
    pub webhook_delivered: AtomicU64,
    /// Webhook attempts failed and scheduled again.
    pub webhook_retries: AtomicU64,
    /// Webhook deliveries given up after their retries.
    pub webhook_failed: AtomicU64,
    /// Deliveries waiting in the outbox (all processes), as of the worker's last look.
    pub webhook_pending: AtomicI64,
}

/// Why the server closed a WebSocket connection (the `reason` label).
pub const WS_CLOSES: [&str; 9] = [
    "unauthenticated",
    "credential_ended",
    "init_timeout",
    "invalid_message",
    "message_too_big",
    "too_many_operations",
    "too_many_connections",
    "keepalive_timeout",
    "client",
];

impl Metrics {
    /// Counts a WebSocket close by one of [`WS_CLOSES`].
    pub fn ws_closed(&self, reason: &str) {
        if let Some(i) = WS_CLOSES.iter().position(|r| *r == reason) {
            self.ws_closes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one request refused by the guard, by reason.
    pub fn auth_failure(&self, reason: AuthReason) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.auth_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition.
    /// `cache` is (hits, misses) of the verified-credential cache.
    /// `ws_open` is the number of open WebSocket connections.
    /// `sqlite_writes`: on SQLite, the writer thread's writes and commits
    /// (`core::writer`); not rendered elsewhere.
    pub fn render(
        &self,
        last_used_writes: u64,
        cache: (u64, u64),
        ws_open: usize,
        sqlite_writes: Option<(u64, u64)>,
    ) -> String {
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
        if let Some((writes, commits)) = sqlite_writes {
            counter(
                "tokengate_sqlite_writes_total",
                "Writes (issues, revocations, last-used and expiry batches) run in committed SQLite transactions, those rolled back alone included.",
                &[(String::new(), writes)],
            );
            counter(
                "tokengate_sqlite_commits_total",
                "SQLite write transactions committed, each a batch of the writes queued together.",
                &[(String::new(), commits)],
            );
        }
        counter(
            "tokengate_credential_cache_total",
            "Guard lookups in the verified-credential cache.",
            &[
                ("{result=\"hit\"}".into(), cache.0),
                ("{result=\"miss\"}".into(), cache.1),
            ],
        );
        let closes: Vec<_> = WS_CLOSES
            .iter()
            .zip(&self.ws_closes)
            .map(|(r, a)| (format!("{{reason=\"{r}\"}}"), get(a)))
            .collect();
        counter(
            "tokengate_ws_closes_total",
            "WebSocket connections ended, by reason.",
            &closes,
        );
        counter(
            "tokengate_webhook_attempts_total",
            "Webhook delivery attempts by this process, by outcome.",
            &[
                (
                    "{outcome=\"delivered\"}".into(),
                    get(&self.webhook_delivered),
                ),
                ("{outcome=\"retry\"}".into(), get(&self.webhook_retries)),
                ("{outcome=\"failed\"}".into(), get(&self.webhook_failed)),
            ],
        );
        let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
            ));
        };
        gauge(
            &mut out,
            "tokengate_ws_connections",
            "Open WebSocket connections.",
            ws_open as i64,
        );
        gauge(
            &mut out,
            "tokengate_ws_operations",
            "Operations running on WebSocket connections.",
            self.ws_operations.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tokengate_webhook_deliveries_pending",
            "Webhook deliveries waiting to be sent or retried.",
            self.webhook_pending.load(Ordering::Relaxed),
        );
        out
    }
}
