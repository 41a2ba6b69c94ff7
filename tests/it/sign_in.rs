//! Accounts and sessions: bootstrap, sign-in, throttling, cookies, expiry, sign-out.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::*;

both_backends!(
    bootstrap_admin_signs_in_and_is_never_recreated,
    json_sign_in_sets_a_strict_session_cookie,
    secure_cookie_flag_follows_configuration,
    form_sign_in_redirects_only_to_same_site_paths,
    wrong_password_and_unknown_email_answer_alike,
    failed_sign_ins_are_throttled_per_account,
    parallel_guesses_get_no_more_than_the_limit,
    session_expires_after_its_lifetime,
    sign_out_ends_the_session_server_side,
    sign_in_and_user_events_are_audited,
);

async fn bootstrap_admin_signs_in_and_is_never_recreated(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let r = app
        .gql(Auth::Cookie(&cookie), "{ me { email role } }", json!({}))
        .await;
    assert_eq!(
        r.data()["me"],
        json!({ "email": ADMIN_EMAIL, "role": "admin" })
    );

    // A restart with other bootstrap settings must not create another admin.
    let mut app = app;
    app.config.admin_email = Some("mallory@example.com".into());
    let app = app.restart().await;
    let r = app
        .gql(
            Auth::Cookie(&app.sign_in_admin().await),
            "{ users { email } }",
            json!({}),
        )
        .await;
    assert_eq!(r.data()["users"], json!([{ "email": ADMIN_EMAIL }]));
    app.finish().await;
}

async fn json_sign_in_sets_a_strict_session_cookie(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let resp = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = set_cookie(resp.headers()).unwrap();
    let value = cookie_value(resp.headers()).unwrap();
    assert_eq!(value.len(), 43, "256-bit id, base64url");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=2400"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(
        !cookie.contains("Secure"),
        "loopback defaults to non-Secure cookies"
    );
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({ "ok": true }));

    // Only the digest is stored.
    let rows = entity::session::Entity::find()
        .all(app.conn())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].digest, value.as_bytes());
    assert_eq!(rows[0].digest.len(), 32);
    app.finish().await;
}

use sea_orm::EntityTrait;

async fn secure_cookie_flag_follows_configuration(b: Backend) {
    let app = TestApp::start(b, |c| c.secure_cookies = Some(true)).await;
    let resp = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert!(set_cookie(resp.headers()).unwrap().contains("; Secure"));
    app.finish().await;
}

async fn form_sign_in_redirects_only_to_same_site_paths(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    for (next, expected) in [
        (Some("/api"), "/api"),
        (None, "/console"),
        (Some("//evil.example/x"), "/console"),
        (Some("https://evil.example/"), "/console"),
        (Some("/\\evil.example"), "/console"),
    ] {
        let mut form = vec![("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)];
        if let Some(n) = next {
            form.push(("next", n));
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let resp = app
            .client
            .post(app.url("/auth/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "next={next:?}");
        assert_eq!(resp.headers()["location"], expected, "next={next:?}");
        assert!(cookie_value(resp.headers()).is_some());
    }
    // A wrong password in the form shows the page again with the error inline.
    let resp = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email={}&password=nope", urlencode(ADMIN_EMAIL)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("Wrong email or password."));
    app.finish().await;
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn post_login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

async fn wrong_password_and_unknown_email_answer_alike(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let wrong = post_login(&app, ADMIN_EMAIL, "not-the-password").await;
    let unknown = post_login(&app, "nobody@example.com", "not-the-password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(wrong.headers()).is_none());
    let a = wrong.json::<Value>().await.unwrap();
    let b2 = unknown.json::<Value>().await.unwrap();
    assert_eq!(a, json!({ "error": "invalid_credentials" }));
    assert_eq!(a, b2);
    assert_eq!(
        entity::session::Entity::find()
            .all(app.conn())
            .await
            .unwrap()
            .len(),
        0
    );
    app.finish().await;
}

async fn failed_sign_ins_are_throttled_per_account(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    app.member("bob@example.com").await;
    for _ in 0..5 {
        assert_eq!(
            post_login(&app, ADMIN_EMAIL, "wrong-password")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Locked: even the right password is refused, with Retry-After.
    let resp = post_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 900, "retry-after {retry}");
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({ "error": "too_many_attempts" })
    );
    // Another account from the same address is not locked out.
    assert_eq!(
        post_login(&app, "bob@example.com", MEMBER_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    app.finish().await;
}

/// Twenty wrong passwords at once: the throttle counts each attempt before
/// the password is checked, so exactly five are checked and the rest refused.
async fn parallel_guesses_get_no_more_than_the_limit(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (client, url) = (app.client.clone(), app.url("/auth/login"));
        attempts.spawn(async move {
            let body = json!({ "email": ADMIN_EMAIL, "password": format!("guess-number-{i}") });
            client.post(url).json(&body).send().await.unwrap().status()
        });
    }
    let statuses = attempts.join_all().await;
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    assert_eq!(
        (
            count(StatusCode::UNAUTHORIZED),
            count(StatusCode::TOO_MANY_REQUESTS)
        ),
        (5, 15),
        "{statuses:?}"
    );
    let resp = post_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    app.finish().await;
}

async fn session_expires_after_its_lifetime(b: Backend) {
    let app = TestApp::start(b, |c| c.session_lifetime = Duration::from_secs(1)).await;
    let cookie = app.sign_in_admin().await;
    assert_eq!(app.me(Auth::Cookie(&cookie)).await.status, StatusCode::OK);
    // Wait out the lifetime, to the instant stored with the session (the
    // credential cache holds the same one). Backdating the row would not do:
    // the cache would still serve the session, and that is half of what this
    // test checks.
    let expires_at = entity::session::Entity::find()
        .one(app.conn())
        .await
        .unwrap()
        .expect("the session's row")
        .expires_at;
    let left = (expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(1)).await;
    let r = app.me(Auth::Cookie(&cookie)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.reason(), "session_expired");
    assert_eq!(r.code(), "UNAUTHENTICATED");
    app.finish().await;
}

async fn sign_out_ends_the_session_server_side(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let resp = with_auth(
        app.client.post(app.url("/auth/logout")),
        Auth::Cookie(&cookie),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        set_cookie(resp.headers()).unwrap().contains("Max-Age=0"),
        "cookie cleared"
    );
    // Replaying the old cookie fails: the row is gone, not just the browser's copy.
    let r = app.me(Auth::Cookie(&cookie)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.reason(), "unknown");
    assert!(entity::session::Entity::find()
        .all(app.conn())
        .await
        .unwrap()
        .is_empty());
    app.finish().await;
}

async fn sign_in_and_user_events_are_audited(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let _ = post_login(&app, ADMIN_EMAIL, "wrong-password").await;
    let cookie = app.sign_in_admin().await;
    with_auth(
        app.client.post(app.url("/auth/logout")),
        Auth::Cookie(&cookie),
    )
    .send()
    .await
    .unwrap();
    let actions = audit_actions(app.conn()).await;
    assert_eq!(
        actions,
        ["user_created", "sign_in_failed", "sign_in", "sign_out"]
    );
    let events = entity::audit_event::Entity::find()
        .all(app.conn())
        .await
        .unwrap();
    assert!(
        events[1..]
            .iter()
            .all(|e| e.ip.as_deref() == Some("127.0.0.1")),
        "address recorded"
    );
    assert!(events.iter().all(|e| !e
        .detail
        .clone()
        .unwrap_or_default()
        .contains(ADMIN_PASSWORD)));
    app.finish().await;
}
