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
    /// Whose the subject is (a token's owner): they see the event too.
    pub owner_id: Option<&'a str>,
}

/// Writes `event`. A failure to audit is logged and does not fail the action
/// that has already happened.
pub async fn record(db: &impl ConnectionTrait, event: Event<'_>) {
    let action = event.action;
    if let Err(e) = row(event).insert(db).await {
        tracing::error!(action, error = %e, "could not write audit event");
    }
}

/// Writes `event` inside the transaction of the action it describes: a
/// failure fails the action (on PostgreSQL a failed statement aborts the
/// transaction, whose commit would then roll everything back unannounced).
pub async fn record_in(txn: &impl ConnectionTrait, event: Event<'_>) -> Result<(), sea_orm::DbErr> {
    row(event).insert(txn).await.map(|_| ())
}

fn row(event: Event<'_>) -> audit_event::ActiveModel {
    audit_event::ActiveModel {
        id: NotSet,
        at: Set(Utc::now()),
        actor_id: Set(event.actor_id.map(str::to_owned)),
        action: Set(event.action.to_owned()),
        subject: Set(event.subject.map(str::to_owned)),
        ip: Set(event.ip.map(str::to_owned)),
        detail: Set(event.detail.map(|d| d.to_string())),
        owner_id: Set(event.owner_id.map(str::to_owned)),
    }
}

/// A page of the audit log, newest first.
#[derive(Debug, Default)]
pub struct Query<'a> {
    /// How many events (1 to [`MAX_PAGE`]).
    pub first: u64,
    /// Only events older than this one (the previous page's last id).
    pub before_id: Option<i64>,
    /// Only this action.
    pub action: Option<&'a str>,
    /// Only events by this actor.
    pub actor_id: Option<&'a str>,
    /// `Some(user)`: only events that user did, that were about their
    /// account, or about something of theirs, such as their tokens (everyone
    /// but administrators with `users:read`).
    pub visible_to: Option<&'a str>,
}

/// The largest page [`page`] answers.
pub const MAX_PAGE: u64 = 500;

/// Events matching `q`, newest first, and whether older ones remain. Paging
/// by id (`before_id`) is stable while new events are written: a page never
/// repeats or skips a committed event that was there when the first page was read.
pub async fn page(
    db: &impl ConnectionTrait,
    q: Query<'_>,
) -> Result<(Vec<audit_event::Model>, bool), sea_orm::DbErr> {
    use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    let mut find = audit_event::Entity::find();
    if let Some(id) = q.before_id {
        find = find.filter(audit_event::Column::Id.lt(id));
    }
    if let Some(action) = q.action {
        find = find.filter(audit_event::Column::Action.eq(action));
    }
    if let Some(actor) = q.actor_id {
        find = find.filter(audit_event::Column::ActorId.eq(actor));
    }
    if let Some(user) = q.visible_to {
        find = find.filter(
            Condition::any()
                .add(audit_event::Column::ActorId.eq(user))
                .add(audit_event::Column::Subject.eq(user))
                .add(audit_event::Column::OwnerId.eq(user)),
        );
    }
    let first = q.first.clamp(1, MAX_PAGE);
    let mut rows = find
        .order_by_desc(audit_event::Column::Id)
        .limit(first + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > first;
    rows.truncate(first as usize);
    Ok((rows, more))
}
