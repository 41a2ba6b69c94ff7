//! The verified-credential cache and revocation across processes sharing one
//! database (SPEC §4: immediate in the revoking process, within one second in
//! every other).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::support::*;

both_backends!(
    seen_credentials_are_served_from_the_cache,
    revocation_reaches_another_process_within_a_second,
    sign_out_and_disable_reach_another_process_within_a_second,
);

/// A second server on the same database (on its own port, with no issuer
/// configured: the deployment's is in the database).
async fn second_process(a: &TestApp, tweak: impl FnOnce(&mut tokengate::Config)) -> TestApp {
    let db = a.db.shared();
    let mut config = test_config(&a.db.url);
    tweak(&mut config);
    TestApp::start_on(db, config).await
}

async fn seen_credentials_are_served_from_the_cache(b: Backend) {
    // The test runs the last-used writer itself; its timer stays idle.
    let app = TestApp::start(b, |c| {
        c.last_used_flush_interval = Duration::from_secs(3600)
    })
    .await;
    let cookie = app.sign_in_admin().await;
    let (token, id) = app.issue(Auth::Cookie(&cookie), "hot", None, 3600).await;
    let cache = &app.state.credentials;
    let (hits, misses) = (cache.hits(), cache.misses());
    assert_eq!(app.me(Auth::Bearer(&token)).await.status, StatusCode::OK);
    // Write out the use the full verification noted, so only hits note more.
    app.flush_last_used(true).await;
    for _ in 0..9 {
        assert_eq!(app.me(Auth::Bearer(&token)).await.status, StatusCode::OK);
    }
    assert_eq!(cache.misses() - misses, 1, "verified once");
    assert_eq!(cache.hits() - hits, 9, "then served from the cache");
    // A hit still counts as a use: the hits left a last-used time to write.
    let writes = app.state.last_used.writes();
    app.flush_last_used(true).await;
    assert_eq!(
        app.state.last_used.writes() - writes,
        1,
        "cache hits noted no use"
    );
    // And the hits are published.
    let metrics = app.metrics().await;
    let line = format!(
        "tokengate_credential_cache_total{{result=\"hit\"}} {}",
        cache.hits()
    );
    assert!(metrics.contains(&line), "{line} not in {metrics}");
    // Revocation evicts at once in this process, cache or not.
    app.revoke(Auth::Cookie(&cookie), &id).await;
    assert_eq!(app.me(Auth::Bearer(&token)).await.reason(), "revoked");
    app.finish().await;
}

async fn revocation_reaches_another_process_within_a_second(b: Backend) {
    let a = TestApp::start(b, |_| {}).await;
    let other = second_process(&a, |_| {}).await;
    let cookie = a.sign_in_admin().await;
    let (token, id) = a.issue(Auth::Cookie(&cookie), "shared", None, 3600).await;
    // Warm the other process's cache.
    for _ in 0..2 {
        assert_eq!(other.me(Auth::Bearer(&token)).await.status, StatusCode::OK);
    }
    assert!(other.state.credentials.hits() >= 1);
    a.revoke(Auth::Cookie(&cookie), &id).await;
    let (r, took) = other
        .refused_within(Auth::Bearer(&token), Duration::from_secs(1))
        .await;
    assert_eq!(r.reason(), "revoked", "still accepted after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    if b == Backend::Postgres {
        // With the catch-up poll all but off, LISTEN/NOTIFY alone carries it.
        let notified = second_process(&a, |c| {
            c.revocation_poll_interval = Duration::from_secs(3600)
        })
        .await;
        let (token, id) = a.issue(Auth::Cookie(&cookie), "notified", None, 3600).await;
        for _ in 0..2 {
            assert_eq!(
                notified.me(Auth::Bearer(&token)).await.status,
                StatusCode::OK
            );
        }
        // NOTIFY reaches only a listener subscribed when the revocation commits.
        tokio::time::timeout(
            Duration::from_secs(5),
            notified.state.revocation_listener.subscribed(),
        )
        .await
        .expect("the revocation listener subscribes");
        a.revoke(Auth::Cookie(&cookie), &id).await;
        let (r, took) = notified
            .refused_within(Auth::Bearer(&token), Duration::from_secs(1))
            .await;
        assert_eq!(
            r.reason(),
            "revoked",
            "NOTIFY did not arrive within {took:?}"
        );
        let mut notified = notified;
        notified.stop().await;
    }
    let mut other = other;
    other.stop().await;
    a.finish().await;
}

async fn sign_out_and_disable_reach_another_process_within_a_second(b: Backend) {
    let a = TestApp::start(b, |_| {}).await;
    let other = second_process(&a, |_| {}).await;
    let cookie = a.sign_in_admin().await;
    for _ in 0..2 {
        assert_eq!(other.me(Auth::Cookie(&cookie)).await.status, StatusCode::OK);
    }
    // A service account's token, warm in the other process.
    let admin2 = a.sign_in_admin().await;
    let r = a
        .gql(
            Auth::Cookie(&admin2),
            "mutation { createServiceAccount(name: \"bot\", scopes: [\"me:read\"]) { clientSecret serviceAccount { id clientId } } }",
            json!({}),
        )
        .await;
    let p = &r.data()["createServiceAccount"];
    let (sa_id, client_id, secret) = (
        p["serviceAccount"]["id"].as_str().unwrap().to_owned(),
        p["serviceAccount"]["clientId"].as_str().unwrap().to_owned(),
        p["clientSecret"].as_str().unwrap().to_owned(),
    );
    let body: serde_json::Value = a
        .client
        .post(a.url("/oauth2/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sa_token = body["access_token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        assert_eq!(
            other.me(Auth::Bearer(&sa_token)).await.status,
            StatusCode::OK
        );
    }

    // Sign out on one process: the other refuses the cookie within a second.
    with_auth(a.client.post(a.url("/auth/logout")), Auth::Cookie(&cookie))
        .send()
        .await
        .unwrap();
    let (r, took) = other
        .refused_within(Auth::Cookie(&cookie), Duration::from_secs(1))
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "session still accepted after {took:?}"
    );

    // Disable the service account on one process: the other refuses its token.
    a.gql(
        Auth::Cookie(&admin2),
        "mutation($id: ID!) { disableServiceAccount(id: $id) { id } }",
        json!({ "id": sa_id }),
    )
    .await;
    let (r, took) = other
        .refused_within(Auth::Bearer(&sa_token), Duration::from_secs(1))
        .await;
    assert_eq!(r.reason(), "revoked", "token still accepted after {took:?}");
    let mut other = other;
    other.stop().await;
    a.finish().await;
}
