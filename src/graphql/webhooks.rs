//! Webhooks (SPEC §10): administrators register receivers, list them with
//! their recent deliveries, and delete them.

use async_graphql::{Context, Enum, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::webhook;

use super::{boxed, core_of, ip, principal, requires_scope};
use crate::error::{AppError, GqlResult};
use crate::webhooks;

/// A registered receiver of token events.
pub struct Webhook(webhook::Model);

#[Object]
impl Webhook {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// Where deliveries are POSTed.
    async fn url(&self) -> &str {
        &self.0.url
    }
    /// The event types it receives.
    async fn events(&self) -> Vec<&str> {
        self.0.events.split(' ').collect()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Its most recent deliveries, newest first.
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(20)", desc = "How many (1 to 100).")] first: Option<i32>,
    ) -> async_graphql::Result<Vec<WebhookDelivery>> {
        let first = first.unwrap_or(20);
        if !(1..=100).contains(&first) {
            return Err(AppError::BadInput("first must be from 1 to 100".into())).gql();
        }
        let rows = boxed(webhooks::recent_deliveries(
            core_of(ctx).gql()?,
            &self.0.id,
            first as u64,
        ))
        .await
        .gql()?;
        Ok(rows.into_iter().map(WebhookDelivery::from).collect())
    }
}

/// Where a delivery stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum DeliveryStatus {
    /// Not yet answered with a 2xx; `nextAttemptAt` says when it is tried again.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Retried for a day without success; given up.
    Failed,
}

/// One event on its way to one webhook.
#[derive(SimpleObject)]
pub struct WebhookDelivery {
    id: ID,
    /// The `webhook-id` header: the same on every attempt.
    event_id: String,
    /// `token.created`, `token.rotated`, …
    event_type: String,
    status: DeliveryStatus,
    /// Attempts so far.
    attempts: i32,
    created_at: DateTime<Utc>,
    last_attempt_at: Option<DateTime<Utc>>,
    /// When a pending delivery is tried next.
    next_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's HTTP status on the last attempt.
    response_status: Option<i32>,
    /// Why the last attempt failed.
    error: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
}

impl From<webhooks::DeliveryView> for WebhookDelivery {
    fn from(v: webhooks::DeliveryView) -> Self {
        let d = v.delivery;
        let status = match d.status.as_str() {
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            _ => DeliveryStatus::Pending,
        };
        WebhookDelivery {
            id: ID(d.id.to_string()),
            event_id: v.message_id,
            event_type: v.event_type,
            status,
            attempts: d.attempts,
            created_at: d.created_at,
            last_attempt_at: d.last_attempt_at,
            next_attempt_at: (status == DeliveryStatus::Pending).then_some(d.next_attempt_at),
            response_status: d.response_status,
            error: d.last_error,
            delivered_at: d.delivered_at,
        }
    }
}

/// A new webhook and its signing secret: the one response that carries it.
#[derive(SimpleObject)]
pub struct CreateWebhookPayload {
    pub webhook: Webhook,
    /// `whsec_…`: verify deliveries with it (any Standard Webhooks library). Shown this once.
    pub secret: String,
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// Every webhook (administrators), oldest first.
    #[graphql(directive = requires_scope::apply("users:write"))]
    async fn webhooks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Webhook>> {
        admin(ctx)?;
        Ok(boxed(webhooks::list(core_of(ctx).gql()?))
            .await
            .gql()?
            .into_iter()
            .map(Webhook)
            .collect())
    }
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers a receiver for `events` (`token.created`, `token.rotated`,
    /// `token.revoked`, `token.expiring`, `token.expired`). Deliveries follow
    /// the Standard Webhooks specification; the secret is in this response only.
    #[graphql(directive = requires_scope::apply("users:write"))]
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        url: String,
        events: Vec<String>,
    ) -> async_graphql::Result<CreateWebhookPayload> {
        let p = admin(ctx)?;
        let created = boxed(webhooks::create(
            core_of(ctx).gql()?,
            Some(&p.user_id),
            &url,
            &events,
            ip(ctx),
        ))
        .await
        .gql()?;
        Ok(CreateWebhookPayload {
            webhook: Webhook(created.webhook),
            secret: created.secret.expose().to_owned(),
        })
    }

    /// Deletes a webhook; its pending deliveries are dropped.
    #[graphql(directive = requires_scope::apply("users:write"))]
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Webhook> {
        let p = admin(ctx)?;
        Ok(Webhook(
            boxed(webhooks::delete(
                core_of(ctx).gql()?,
                Some(&p.user_id),
                &id,
                ip(ctx),
            ))
            .await
            .gql()?,
        ))
    }
}

/// Webhooks are the administrators' (the scope alone is not enough: a
/// service account may be granted `users:write`).
fn admin<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a crate::auth::Principal> {
    let p = principal(ctx).gql()?;
    if !p.is_admin() {
        return Err(AppError::Forbidden {
            scope: "users:write",
        })
        .gql();
    }
    Ok(p)
}
