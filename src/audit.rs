//! Audit events: who did what, when, from where. Never secrets.

use chrono::Utc;
use entity::audit_event;
use sea_orm::{ActiveModelTrait, ConnectionTrait, NotSet, Set};

/// One event to record.
#[derive(Debug, Default)]
pub struct Event<'a> {
    /// The user who acted; `None` when unknown (a failed sign-in, the CLI).
    pub actor_id: Option<&'a str>,
    /// What happened, in snake case: `sign_in`, `token_issued`, `token_revoked`…
    pub action: &'a str,
    /// What the action was about: a user id, a token id.
    pub subject: Option<&'a str>,
    /// The client address; `None` outside a request.
    pub ip: Option<&'a str>,
    /// Further detail, stored as JSON text. Never secrets or digests.
    pub detail: Option<serde_json::Value>,
}

/// Writes `event`. A failure to audit is logged and does not fail the action
/// that has already happened.
pub async fn record(db: &impl ConnectionTrait, event: Event<'_>) {
    let row = audit_event::ActiveModel {
        id: NotSet,
        at: Set(Utc::now()),
        actor_id: Set(event.actor_id.map(str::to_owned)),
        action: Set(event.action.to_owned()),
        subject: Set(event.subject.map(str::to_owned)),
        ip: Set(event.ip.map(str::to_owned)),
        detail: Set(event.detail.map(|d| d.to_string())),
    };
    if let Err(e) = row.insert(db).await {
        tracing::error!(action = event.action, error = %e, "could not write audit event");
    }
}
