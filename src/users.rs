//! The user service: creating users, signing in, the first administrator.

use chrono::Utc;
use entity::user;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};

use crate::audit::{self, Event};
use crate::auth::secret::Secret;
use crate::auth::Role;
use crate::core::throttle::SignInThrottle;
use crate::error::{AppError, AppResult};
use crate::password;

/// Normalises and checks an email address.
pub fn normalize_email(email: &str) -> AppResult<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(AppError::BadInput(
            "give a valid email address, like ada@example.com".into(),
        ))
    }
}

/// Creates a user. Refuses a taken email and a weak password; writes nothing then.
pub async fn create(
    db: &DatabaseConnection,
    email: &str,
    password: &Secret,
    role: Role,
    actor_id: Option<&str>,
    ip: Option<&str>,
) -> AppResult<user::Model> {
    let email = normalize_email(email)?;
    password::validate_new(password.expose())?;
    if find_by_email(db, &email).await?.is_some() {
        return Err(AppError::BadInput(format!(
            "a user with email {email} already exists"
        )));
    }
    let hash = password::hash(password.expose().to_owned()).await?;
    let model = user::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        email: Set(email),
        password_hash: Set(hash),
        role: Set(role),
        created_at: Set(Utc::now()),
        disabled_at: Set(None),
    }
    .insert(db)
    .await?;
    audit::record(
        db,
        Event {
            actor_id,
            action: "user_created",
            subject: Some(&model.id),
            ip,
            detail: Some(serde_json::json!({ "email": model.email, "role": model.role.as_str() })),
            owner_id: None,
        },
    )
    .await;
    Ok(model)
}

/// The user (or service account identity) with this email, which must already
/// be normalised ([`normalize_email`]).
pub async fn find_by_email(db: &DatabaseConnection, email: &str) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(db)
        .await?)
}

/// The user with this id, if any.
pub async fn find(db: &DatabaseConnection, id: &str) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find_by_id(id).one(db).await?)
}

/// Every person, disabled ones included, oldest first (by creation, then
/// id); service accounts' identities are left out; one
/// [`Page`](crate::db::Page) of them.
pub async fn list(db: &DatabaseConnection, page: &crate::db::Page) -> AppResult<Vec<user::Model>> {
    use sea_orm::{Condition, QuerySelect};
    let mut q = user::Entity::find().filter(user::Column::Role.ne(Role::Service));
    if let Some(after) = &page.after {
        let last = user::Entity::find_by_id(after.as_str())
            .filter(user::Column::Role.ne(Role::Service))
            .one(db)
            .await?
            .ok_or_else(|| {
                AppError::BadInput(format!("after: `{after}` is not the id of a user"))
            })?;
        q = q.filter(
            Condition::any()
                .add(user::Column::CreatedAt.gt(last.created_at))
                .add(
                    Condition::all()
                        .add(user::Column::CreatedAt.eq(last.created_at))
                        .add(user::Column::Id.gt(last.id)),
                ),
        );
    }
    let mut q = q
        .order_by_asc(user::Column::CreatedAt)
        .order_by_asc(user::Column::Id);
    if let Some(first) = page.first {
        q = q.limit(first);
    }
    Ok(q.all(db).await?)
}

/// Checks an email and password. Unknown emails, disabled users and wrong
/// passwords all fail the same way in about the same time; failures count
/// toward the throttle, which refuses further tries with `Throttled`.
pub async fn sign_in(
    db: &DatabaseConnection,
    throttle: &SignInThrottle,
    email: &str,
    password: &Secret,
    ip: &str,
) -> AppResult<user::Model> {
    let email = email.trim().to_lowercase();
    // Counted before the password is checked, so parallel guesses cannot all
    // pass a check that none has counted yet.
    if let Err(retry_after) = throttle.begin(&email, ip) {
        audit::record(
            db,
            Event {
                action: "sign_in_throttled",
                ip: Some(ip),
                detail: Some(serde_json::json!({ "email": email })),
                ..Default::default()
            },
        )
        .await;
        return Err(AppError::Throttled { retry_after });
    }
    let user = find_by_email(db, &email).await?;
    let phc = user.as_ref().map(|u| u.password_hash.clone());
    let ok = password::verify(password.expose().to_owned(), phc).await;
    match user {
        Some(user) if ok && user.disabled_at.is_none() => {
            throttle.succeeded(&email, ip);
            audit::record(
                db,
                Event {
                    actor_id: Some(&user.id),
                    action: "sign_in",
                    subject: Some(&user.id),
                    ip: Some(ip),
                    detail: None,
                    owner_id: None,
                },
            )
            .await;
            Ok(user)
        }
        user => {
            // Already counted by `begin`.
            audit::record(
                db,
                Event {
                    action: "sign_in_failed",
                    subject: user.as_ref().map(|u| u.id.as_str()),
                    ip: Some(ip),
                    detail: Some(serde_json::json!({ "email": email })),
                    ..Default::default()
                },
            )
            .await;
            Err(AppError::InvalidCredentials)
        }
    }
}

/// On an empty database, creates the first administrator: from
/// the configured email and password (`TOKENGATE_ADMIN_EMAIL` / `TOKENGATE_ADMIN_PASSWORD`)
/// when set, else `admin@localhost` with a generated one-time password printed once to stderr.
pub async fn bootstrap_admin(
    db: &DatabaseConnection,
    email: Option<&str>,
    password: Option<&Secret>,
) -> AppResult<()> {
    if user::Entity::find().count(db).await? > 0 {
        return Ok(());
    }
    let email = email.unwrap_or("admin@localhost");
    let (password, generated) = match password {
        Some(p) => (p.clone(), false),
        None => (Secret::random(), true),
    };
    let admin = create(db, email, &password, Role::Admin, None, None).await?;
    if generated {
        // The one place a password is printed: the operator needs it to sign in.
        eprintln!(
            "created the first administrator\n  email:    {}\n  password: {}\n(shown once; sign in at /login and keep it somewhere safe)",
            admin.email,
            password.expose()
        );
    } else {
        tracing::info!(email = %admin.email, "created the first administrator");
    }
    Ok(())
}
