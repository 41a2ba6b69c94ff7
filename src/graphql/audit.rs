//! `auditEvents` (SPEC §10): the audit log as a cursor connection, newest first.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Object, SimpleObject, ID};
use base64::Engine;
use chrono::{DateTime, Utc};

use super::{boxed, core_of, principal, requires_scope};
use crate::audit;
use crate::auth::Scope;
use crate::error::{AppError, GqlResult};

/// One recorded action. Never carries a secret.
#[derive(SimpleObject)]
pub struct AuditEvent {
    id: ID,
    /// When it happened.
    at: DateTime<Utc>,
    /// `sign_in`, `sign_in_failed`, `sign_out`, `token_issued`, `token_rotated`,
    /// `token_revoked`, `service_account_created`, `webhook_created`, …
    action: String,
    /// The user who acted, when known.
    actor_id: Option<ID>,
    /// What it was about: a user's, token's, service account's or webhook's id.
    subject: Option<String>,
    /// The client address, for actions taken over HTTP.
    ip: Option<String>,
    /// Further detail as JSON text (names, scopes, owners; never secrets).
    detail: Option<String>,
}

fn cursor(id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("audit:{id}"))
}

fn parse_cursor(c: &str) -> Result<i64, AppError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("audit:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| {
            AppError::BadInput(
                "after: not a cursor of auditEvents (give an endCursor or an edge's cursor)".into(),
            )
        })
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The audit log, newest first: administrators with `users:read` see
    /// every event, others the events they did or that were about their account.
    #[graphql(directive = requires_scope::apply("tokens:read"))]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(50)", desc = "How many (1 to 500).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the page before.")] after: Option<String>,
        #[graphql(desc = "Only this action, such as `token_revoked`.")] action: Option<String>,
        #[graphql(desc = "Only events by this user.")] actor_id: Option<ID>,
    ) -> async_graphql::Result<Connection<String, AuditEvent>> {
        let p = principal(ctx).gql()?;
        let core = core_of(ctx).gql()?;
        let max = audit::MAX_PAGE as i32;
        let first = first.unwrap_or(50);
        if !(1..=max).contains(&first) {
            return Err(AppError::BadInput(format!("first must be from 1 to {max}"))).gql();
        }
        let before_id = after.as_deref().map(parse_cursor).transpose().gql()?;
        let everything = p.is_admin() && p.scopes.contains(Scope::USERS_READ);
        let (rows, more) = boxed(audit::page(
            &core.db,
            audit::Query {
                first: first as u64,
                before_id,
                action: action.as_deref(),
                actor_id: actor_id.as_ref().map(|a| a.as_str()),
                visible_to: (!everything).then_some(p.user_id.as_str()),
            },
        ))
        .await
        .map_err(AppError::from)
        .gql()?;
        let mut page = Connection::new(before_id.is_some(), more);
        page.edges.extend(rows.into_iter().map(|r| {
            Edge::new(
                cursor(r.id),
                AuditEvent {
                    id: ID(r.id.to_string()),
                    at: r.at,
                    action: r.action,
                    actor_id: r.actor_id.map(ID),
                    subject: r.subject,
                    ip: r.ip,
                    detail: r.detail,
                },
            )
        }));
        Ok(page)
    }
}
