//! The expiry scan: `token.expiring` when a named API token enters one of the
//! warning windows (7 days and 1 day by default, `--token-expiry-warnings`),
//! `token.expired` when it expires unrevoked. Run every
//! `--expiry-scan-interval` from start-up, so tokens already inside a window
//! when the server starts are announced too. Each announcement is marked on
//! the token in the same transaction as its outbox event, by a conditional
//! update: one process wins, and a window is announced once.
//!
//! Only the most urgent window is announced (a token found with 12 hours left
//! gets the 1-day warning, not the 7-day one too), a window no shorter than
//! the token's whole life is skipped, and client-credentials and exchanged
//! tokens (short-lived, renewed by their clients) are not announced at all.
//! Tokens that expired more than a day before a scan are not announced
//! (a server started after a long stop does not flood receivers), nor tokens
//! revoked or rotated before they expire, nor those of disabled owners.

use chrono::{DateTime, Utc};
use entity::access_token::{self, Grant};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::core::Core;
use crate::error::AppError;

/// What the scan found and announced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Announced {
    /// `token.expiring` events written.
    pub expiring: usize,
    /// `token.expired` events written.
    pub expired: usize,
}

/// Tokens read and marked per transaction: a mass expiry (a million tokens
/// issued together) is scanned in bounded memory, and SQLite's one writer is
/// held a page at a time.
const PAGE: u64 = 500;

/// One pass of the scan.
pub async fn scan(core: &Core, now: DateTime<Utc>) -> Result<Announced, AppError> {
    let windows: Vec<i64> = {
        let mut w: Vec<i64> = core
            .config
            .token_expiry_warnings
            .iter()
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4))
            .collect();
        w.sort_unstable();
        w
    };
    let widest = windows.last().copied().unwrap_or(0);
    let mut out = Announced::default();
    // Keyset over (expires_at, id): marking a window leaves a token in the
    // filter, so the cursor, not the filter, moves the scan on.
    let mut after: Option<(DateTime<Utc>, String)> = None;
    loop {
        let mut page = access_token::Entity::find()
            .filter(access_token::Column::Grant.eq(Grant::Api))
            .filter(access_token::Column::ExpiresAt.is_not_null())
            .filter(access_token::Column::ExpiresAt.gt(now - chrono::Duration::days(1)))
            .filter(access_token::Column::ExpiresAt.lte(now + chrono::Duration::seconds(widest)))
            .filter(
                Condition::any()
                    .add(access_token::Column::ExpiryNotice.is_null())
                    .add(access_token::Column::ExpiryNotice.gt(0)),
            );
        if let Some((at, id)) = &after {
            page = page.filter(
                Condition::any()
                    .add(access_token::Column::ExpiresAt.gt(*at))
                    .add(
                        Condition::all()
                            .add(access_token::Column::ExpiresAt.eq(*at))
                            .add(access_token::Column::Id.gt(id.as_str())),
                    ),
            );
        }
        let candidates = page
            .order_by_asc(access_token::Column::ExpiresAt)
            .order_by_asc(access_token::Column::Id)
            .limit(PAGE)
            .all(&core.db)
            .await?;
        let Some(last) = candidates.last() else {
            break;
        };
        after = last.expires_at.map(|at| (at, last.id.clone()));
        let full = candidates.len() as u64 == PAGE;
        let (expiring, expired) = scan_page(core, now, &windows, candidates).await?;
        out.expiring += expiring;
        out.expired += expired;
        if !full {
            break;
        }
    }
    if out != Announced::default() {
        super::outbox::wake(core);
    }
    Ok(out)
}

/// Announces what a page of candidates is due, in one transaction; returns
/// the `token.expiring` and `token.expired` events written.
async fn scan_page(
    core: &Core,
    now: DateTime<Utc>,
    windows: &[i64],
    candidates: Vec<access_token::Model>,
) -> Result<(usize, usize), AppError> {
    let owners: Vec<&str> = candidates.iter().map(|t| t.user_id.as_str()).collect();
    let disabled: Vec<String> = entity::user::Entity::find()
        .filter(entity::user::Column::Id.is_in(owners))
        .filter(entity::user::Column::DisabledAt.is_not_null())
        .all(&core.db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    // What each token is due, decided before the transaction.
    let mut due = Vec::new();
    for token in candidates {
        let Some(expires_at) = token.expires_at else {
            continue;
        };
        let left = (expires_at - now).num_seconds();
        let life = (expires_at - token.created_at).num_seconds();
        // Revoked, or rotated (revoked at the end of a grace period), before
        // it expires: no warning and no expiry to announce.
        if token.revoked_at.is_some_and(|r| r <= expires_at) {
            continue;
        }
        // An owner disabled: its tokens are refused already.
        if disabled.contains(&token.user_id) {
            continue;
        }
        let target = if expires_at <= now {
            0
        } else {
            match windows.iter().find(|w| left <= **w && life > **w) {
                Some(w) => *w,
                None => continue,
            }
        };
        if token.expiry_notice.is_some_and(|n| n <= target) {
            continue;
        }
        due.push((token, target, left));
    }
    if due.is_empty() {
        return Ok((0, 0));
    }
    let counts = core
        .write::<_, (usize, usize), AppError>(move |txn| {
            Box::pin(async move {
                // Read at the first mark, not before: on SQLite a transaction
                // must open with its write (a read first can fail to upgrade
                // when another connection wrote in between).
                let mut outbox: Option<super::outbox::Outbox> = None;
                let (mut expiring, mut expired) = (0, 0);
                for (token, target, left) in due {
                    // Conditional: another process may have announced it.
                    let marked = access_token::Entity::update_many()
                        .col_expr(access_token::Column::ExpiryNotice, Expr::value(target))
                        .filter(access_token::Column::Id.eq(token.id.as_str()))
                        .filter(
                            Condition::any()
                                .add(access_token::Column::ExpiryNotice.is_null())
                                .add(access_token::Column::ExpiryNotice.gt(target)),
                        )
                        // Still not revoked before it expires: a revocation
                        // committed since the candidates were read wins.
                        .filter(
                            Condition::any()
                                .add(access_token::Column::RevokedAt.is_null())
                                .add(
                                    Expr::col(access_token::Column::RevokedAt)
                                        .gt(Expr::col(access_token::Column::ExpiresAt)),
                                ),
                        )
                        .exec(txn)
                        .await?;
                    if marked.rows_affected == 0 {
                        continue;
                    }
                    let kind = if target == 0 {
                        expired += 1;
                        "token.expired"
                    } else {
                        expiring += 1;
                        "token.expiring"
                    };
                    let extra = |data: &mut serde_json::Value| {
                        if target > 0 {
                            data["expiresInSeconds"] = left.into();
                            data["warningWindowSeconds"] = target.into();
                        }
                    };
                    super::outbox::Outbox::open_once(&mut outbox, txn)
                        .await?
                        .token_event(txn, kind, &token, extra, now)
                        .await?;
                }
                Ok((expiring, expired))
            })
        })
        .await?;
    Ok(counts)
}
