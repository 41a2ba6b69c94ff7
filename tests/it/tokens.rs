//! Access tokens: the seed flow, forged tokens, rotation, scopes, lifetimes, bad
//! input, isolation, restarts, key rotation, JWKS, storage and last-used.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::*;

both_backends!(
    seed_flow_issue_use_revoke,
    forged_and_stale_tokens_are_refused_with_their_reason,
    token_of_a_disabled_user_is_refused,
    issuing_under_a_taken_name_rotates,
    concurrent_issues_under_one_name_leave_one_active,
    scopes_are_a_subset_of_the_callers,
    a_token_made_by_a_token_never_outlives_it,
    bad_input_is_refused_and_changes_nothing,
    non_expiring_tokens_only_when_configured,
    users_see_and_revoke_only_their_own_tokens,
    acting_on_anothers_tokens_takes_the_admin_role_and_users_scopes,
    tokens_and_keys_survive_a_restart,
    key_rotation_keeps_old_tokens_valid,
    jwks_publishes_the_verifying_keys,
    database_holds_only_digests,
    last_used_is_batched_not_written_per_request,
    token_events_are_audited,
    active_tokens_per_user_are_capped,
    rotation_keeps_name_scopes_and_lifetime_and_honours_the_grace_period,
    issuing_under_a_name_ends_its_token_in_grace_and_its_successor,
    a_grace_period_ends_on_every_process,
);

async fn seed_flow_issue_use_revoke(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let exp = chrono::Utc::now().timestamp() + 180 * 86400 - 60;
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            "mutation($exp: Int) { updateAccessToken(expirationTime: $exp) { success sessionJwt accessToken { id name scopes status expiresAt } } }",
            json!({ "exp": exp }),
        )
        .await;
    let p = &r.data()["updateAccessToken"];
    assert_eq!(p["success"], true);
    assert_eq!(p["accessToken"]["name"], "default");
    assert_eq!(p["accessToken"]["status"], "ACTIVE");
    assert_eq!(
        p["accessToken"]["scopes"],
        json!([
            "me:read",
            "tokens:read",
            "tokens:write",
            "users:read",
            "users:write"
        ])
    );
    let expires =
        chrono::DateTime::parse_from_rfc3339(p["accessToken"]["expiresAt"].as_str().unwrap())
            .unwrap();
    assert_eq!(expires.timestamp(), exp);
    let token = p["sessionJwt"].as_str().unwrap().to_owned();
    let id = p["accessToken"]["id"].as_str().unwrap().to_owned();

    // The token's shape (RFC 9068).
    let parts: Vec<_> = token.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str()),
        (Some("EdDSA"), Some("at+jwt"))
    );
    assert!(header["kid"].is_string());
    assert_eq!(claims["jti"], id);
    assert_eq!(claims["iss"], app.state.keys.issuer().as_str());
    assert_eq!(claims["exp"], exp);
    assert_eq!(
        claims["scope"],
        "me:read tokens:read tokens:write users:read users:write"
    );

    let r = app.me(Auth::Bearer(&token)).await;
    assert_eq!(r.data()["me"]["email"], ADMIN_EMAIL);

    // The token string appears in exactly one response: listing never shows it.
    let r = app
        .gql(
            Auth::Bearer(&token),
            "{ accessTokens { id name status } me { accessTokens { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r.data()["accessTokens"],
        json!([{ "id": id, "name": "default", "status": "ACTIVE" }])
    );
    assert_eq!(r.data()["me"]["accessTokens"], json!([{ "id": id }]));
    assert!(!r.body.to_string().contains(&token));

    let r = app.revoke(Auth::Cookie(&cookie), &id).await;
    assert_eq!(r.data()["revokeAccessToken"]["status"], "REVOKED");
    let r = app.me(Auth::Bearer(&token)).await;
    assert_eq!(
        (r.status, r.reason()),
        (StatusCode::UNAUTHORIZED, "revoked")
    );
    assert!(r.www_authenticate().contains(r#"error="invalid_token""#));
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            "{ accessTokens(includeInactive: true) { status } accessTokens2: accessTokens { id } }",
            json!({}),
        )
        .await;
    assert_eq!(r.data()["accessTokens"], json!([{ "status": "REVOKED" }]));
    assert_eq!(r.data()["accessTokens2"], json!([]));
    app.finish().await;
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

async fn forged_and_stale_tokens_are_refused_with_their_reason(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let (token, id) = app.issue(Auth::Cookie(&cookie), "real", None, 3600).await;
    let parts: Vec<&str> = token.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();

    // alg none, the signature left empty.
    let none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "at+jwt", "kid": header["kid"] })),
        parts[1]
    );
    // HS256 keyed with the public key (the classic algorithm-confusion attack).
    let jwks: Value = app.jwks().await;
    let public = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let hs_header = json!({ "alg": "HS256", "typ": "at+jwt", "kid": header["kid"] });
    let hs = jsonwebtoken::encode(
        &serde_json::from_value(hs_header).unwrap(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    // Tampered payload: another subject, same signature.
    let mut someone_else = claims.clone();
    someone_else["sub"] = json!("someone-else");
    let tampered = format!("{}.{}.{}", parts[0], b64(&someone_else), parts[2]);
    // A kid this server never had.
    let mut other_kid = header.clone();
    other_kid["kid"] = json!("not-a-key");
    let unknown_kid = format!("{}.{}.{}", b64(&other_kid), parts[1], parts[2]);
    // Well signed, but by another issuer, or already expired, or never stored.
    let now = chrono::Utc::now();
    let sign = |iss: &str, exp: chrono::DateTime<chrono::Utc>, jti: &str| {
        tokengate::tokens::jwt::sign(
            &app.state,
            &tokengate::tokens::jwt::Claims::new(
                iss,
                claims["sub"].as_str().unwrap(),
                jti,
                now,
                Some(exp),
                app.state.scopes.to_space_separated(app.state.scopes.all()),
                None,
            ),
        )
        .unwrap()
        .expose()
        .to_owned()
    };
    let foreign = sign(
        "https://elsewhere.example",
        now + chrono::Duration::hours(1),
        &id,
    );
    let expired = sign(
        &app.state.keys.issuer(),
        now - chrono::Duration::minutes(5),
        &id,
    );
    let unstored = sign(
        &app.state.keys.issuer(),
        now + chrono::Duration::hours(1),
        "00000000-0000-7000-8000-000000000000",
    );
    // Same jti, valid signature, but not the token whose digest was stored.
    let other_digest = sign(
        &app.state.keys.issuer(),
        now + chrono::Duration::minutes(30),
        &id,
    );

    for (label, forged, reason) in [
        ("alg none", none, "bad_signature"),
        ("HS256 with public key", hs, "bad_signature"),
        ("tampered payload", tampered, "bad_signature"),
        ("unknown kid", unknown_kid, "unknown"),
        ("wrong issuer", foreign, "unknown"),
        ("expired", expired, "expired"),
        ("never issued", unstored, "unknown"),
        ("digest mismatch", other_digest, "unknown"),
    ] {
        let r = app.me(Auth::Bearer(&forged)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{label}");
        assert_eq!(r.reason(), reason, "{label}: {}", r.body);
        assert!(
            r.www_authenticate().contains("error_description="),
            "{label}"
        );
    }
    // The real one still works.
    assert_eq!(app.me(Auth::Bearer(&token)).await.status, StatusCode::OK);
    app.finish().await;
}

async fn token_of_a_disabled_user_is_refused(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.member("bob@example.com").await;
    let (token, _) = app.issue(Auth::Cookie(&cookie), "bob", None, 3600).await;
    assert_eq!(app.me(Auth::Bearer(&token)).await.status, StatusCode::OK);
    entity::user::Entity::update_many()
        .col_expr(
            entity::user::Column::DisabledAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now()),
        )
        .filter(entity::user::Column::Email.eq("bob@example.com"))
        .exec(app.conn())
        .await
        .unwrap();
    // Disabled behind the server's back (as another process would): refused
    // within a second, once the revocation poll sees it.
    let (r, _) = app
        .refused_within(Auth::Bearer(&token), Duration::from_secs(1))
        .await;
    assert_eq!(
        (r.status, r.reason()),
        (StatusCode::UNAUTHORIZED, "revoked")
    );
    app.finish().await;
}

async fn issuing_under_a_taken_name_rotates(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let (first, first_id) = app.issue(Auth::Cookie(&cookie), "ci", None, 3600).await;
    let (other, _) = app.issue(Auth::Cookie(&cookie), "other", None, 3600).await;
    let (second, second_id) = app.issue(Auth::Cookie(&cookie), "ci", None, 3600).await;
    assert_ne!(first_id, second_id);
    assert_eq!(app.me(Auth::Bearer(&first)).await.reason(), "revoked");
    assert_eq!(app.me(Auth::Bearer(&second)).await.status, StatusCode::OK);
    assert_eq!(
        app.me(Auth::Bearer(&other)).await.status,
        StatusCode::OK,
        "other names untouched"
    );
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            "{ accessTokens(includeInactive: true) { id name status } }",
            json!({}),
        )
        .await;
    let statuses: Vec<(String, String)> = r.data()["accessTokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("ci".into(), "ACTIVE".into()),
            ("other".into(), "ACTIVE".into()),
            ("ci".into(), "REVOKED".into())
        ]
    );
    app.finish().await;
}

/// Sixteen issues under one name at once (and sixteen under other names
/// beside them): each rotates the one before it, whichever commits first, so
/// exactly one token of that name is left active; the other names are untouched.
async fn concurrent_issues_under_one_name_leave_one_active(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let issues = (0..32).map(|i| {
        let name = if i % 2 == 0 {
            "race".to_owned()
        } else {
            format!("other-{i}")
        };
        let (app, cookie) = (&app, &cookie);
        async move { app.issue(Auth::Cookie(cookie), &name, None, 3600).await }
    });
    let issued = futures_join_all(issues).await;
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            "{ accessTokens(includeInactive: true) { id name status } }",
            json!({}),
        )
        .await;
    let tokens = r.data()["accessTokens"].as_array().unwrap().clone();
    let active = |name: &str| -> Vec<String> {
        tokens
            .iter()
            .filter(|t| t["name"].as_str().unwrap().starts_with(name) && t["status"] == "ACTIVE")
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        active("race").len(),
        1,
        "one active token named race: {tokens:?}"
    );
    assert_eq!(active("other-").len(), 16, "other names untouched");
    let race_tokens = tokens.iter().filter(|t| t["name"] == "race").count();
    assert_eq!(race_tokens, 16, "every issue under the name was stored");
    // SQLite: the issues queued behind one another committed in batches
    // (core::writer), fewer commits than writes; PostgreSQL has no writer.
    let metrics = app.metrics().await;
    let count = |name: &str| -> Option<u64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    };
    match b {
        Backend::Sqlite => {
            let (writes, commits) = (
                count("tokengate_sqlite_writes_total").unwrap(),
                count("tokengate_sqlite_commits_total").unwrap(),
            );
            assert!(writes >= 32, "{metrics}");
            assert!(
                commits < writes,
                "batched: {commits} commits for {writes} writes"
            );
        }
        Backend::Postgres => assert_eq!(count("tokengate_sqlite_commits_total"), None),
    }
    // The active one works; every other token issued under the name is refused.
    let survivor = active("race")[0].clone();
    for (i, (token, id)) in issued.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let status = app.me(Auth::Bearer(token)).await.status;
        if *id == survivor {
            assert_eq!(status, StatusCode::OK, "the survivor ({i}) works");
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "rotated away ({i})");
        }
    }
    app.finish().await;
}

async fn token_count(app: &TestApp) -> u64 {
    entity::access_token::Entity::find()
        .count(app.conn())
        .await
        .unwrap()
}

async fn scopes_are_a_subset_of_the_callers(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let member = app.member("bob@example.com").await;
    let before = token_count(&app).await;
    let issue = |auth, scopes: Value| {
        app.gql(
            auth,
            "mutation($s: [String!], $exp: Int) { updateAccessToken(expirationTime: $exp, scopes: $s) { sessionJwt accessToken { scopes } } }",
            json!({ "s": scopes, "exp": chrono::Utc::now().timestamp() + 3600 }),
        )
    };
    let r = issue(Auth::Cookie(&member), json!(["users:read"])).await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    assert!(r.message().contains("users:read"), "{}", r.message());
    let r = issue(Auth::Cookie(&member), json!(["root"])).await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    assert!(
        r.message().contains("unknown scope `root`"),
        "{}",
        r.message()
    );
    assert_eq!(token_count(&app).await, before, "refusals wrote nothing");

    // Default: all of the caller's scopes; a member has no users:*.
    let r = issue(Auth::Cookie(&member), Value::Null).await;
    assert_eq!(
        r.data()["updateAccessToken"]["accessToken"]["scopes"],
        json!(["me:read", "tokens:read", "tokens:write"])
    );
    // A token can only pass on what it holds.
    let (narrow, _) = app
        .issue(
            Auth::Cookie(&member),
            "narrow",
            Some(&["tokens:write", "me:read"]),
            3600,
        )
        .await;
    let r = issue(Auth::Bearer(&narrow), json!(["tokens:read"])).await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    let r = app
        .gql(Auth::Bearer(&narrow), "{ accessTokens { id } }", json!({}))
        .await;
    assert_eq!(
        (
            r.code(),
            r.body["errors"][0]["extensions"]["requiredScope"].as_str()
        ),
        ("FORBIDDEN", Some("tokens:read"))
    );
    app.finish().await;
}

async fn a_token_made_by_a_token_never_outlives_it(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let (parent, parent_id) = app.issue(Auth::Cookie(&cookie), "parent", None, 3600).await;
    let before = token_count(&app).await;
    let q = "mutation($exp: Int) { updateAccessToken(expirationTime: $exp, name: \"child\") { accessToken { id expiresAt } } }";
    let too_long = chrono::Utc::now().timestamp() + 7200;
    let r = app
        .gql(Auth::Bearer(&parent), q, json!({ "exp": too_long }))
        .await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    assert!(r.message().contains("cannot outlive"), "{}", r.message());
    assert_eq!(token_count(&app).await, before);
    let ok = chrono::Utc::now().timestamp() + 1800;
    let r = app
        .gql(Auth::Bearer(&parent), q, json!({ "exp": ok }))
        .await;
    let child_id = r.data()["updateAccessToken"]["accessToken"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let child = entity::access_token::Entity::find_by_id(child_id)
        .one(app.conn())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(child.parent_id.as_deref(), Some(parent_id.as_str()));
    app.finish().await;
}

async fn bad_input_is_refused_and_changes_nothing(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let (_, existing) = app.issue(Auth::Cookie(&cookie), "keep", None, 3600).await;
    let before = token_count(&app).await;
    let now = chrono::Utc::now().timestamp();
    let long_name = "n".repeat(101);
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "exp": now - 10, "name": "keep" }), "in the past"),
        (
            json!({ "exp": now + 181 * 86400, "name": "keep" }),
            "maximum token lifetime",
        ),
        (
            json!({ "exp": null, "name": "keep" }),
            "expirationTime is required",
        ),
        (json!({ "exp": now + 60, "name": "" }), "name is empty"),
        (json!({ "exp": now + 60, "name": "   " }), "name is empty"),
        (json!({ "exp": now + 60, "name": long_name }), "too long"),
        (
            json!({ "exp": now + 60, "name": "keep", "scopes": [] }),
            "at least one scope",
        ),
    ];
    for (vars, expected) in cases {
        let r = app
            .gql(
                Auth::Cookie(&cookie),
                "mutation($exp: Int, $name: String, $scopes: [String!]) { updateAccessToken(expirationTime: $exp, name: $name, scopes: $scopes) { sessionJwt } }",
                vars.clone(),
            )
            .await;
        assert_eq!(r.code(), "BAD_USER_INPUT", "{vars}: {}", r.body);
        assert!(r.message().contains(expected), "{vars}: {}", r.message());
        assert!(r.body["data"].is_null() || r.body["data"]["updateAccessToken"].is_null());
    }
    assert_eq!(token_count(&app).await, before, "nothing written");
    // The token named "keep" was not rotated away by any refused attempt.
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            "query($id: ID!) { accessToken(id: $id) { status } }",
            json!({ "id": existing }),
        )
        .await;
    assert_eq!(r.data()["accessToken"]["status"], "ACTIVE");
    // Revoking an unknown id: NOT_FOUND.
    let r = app.revoke(Auth::Cookie(&cookie), "nope").await;
    assert_eq!(r.code(), "NOT_FOUND");
    app.finish().await;
}

async fn non_expiring_tokens_only_when_configured(b: Backend) {
    let app = TestApp::start(b, |c| c.allow_non_expiring_tokens = true).await;
    let cookie = app.sign_in_admin().await;
    let r = app
        .gql(Auth::Cookie(&cookie), "mutation { updateAccessToken(name: \"forever\") { sessionJwt accessToken { expiresAt status } } }", json!({}))
        .await;
    let p = &r.data()["updateAccessToken"];
    assert!(p["accessToken"]["expiresAt"].is_null(), "{}", r.body);
    let token = p["sessionJwt"].as_str().unwrap();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(claims.get("exp").is_none());
    assert_eq!(app.me(Auth::Bearer(token)).await.status, StatusCode::OK);
    // A token that expires cannot make one that never does: the child would
    // outlive its parent.
    let (expiring, _) = app
        .issue(Auth::Cookie(&cookie), "expiring", None, 3600)
        .await;
    let r = app
        .gql(
            Auth::Bearer(&expiring),
            "mutation { updateAccessToken(name: \"child\") { sessionJwt } }",
            json!({}),
        )
        .await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    app.finish().await;
}

async fn users_see_and_revoke_only_their_own_tokens(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let admin = app.sign_in_admin().await;
    let bob = app.member("bob@example.com").await;
    let carol = app.member("carol@example.com").await;
    let (bob_token, bob_id) = app.issue(Auth::Cookie(&bob), "bob", None, 3600).await;
    let r = app
        .gql(
            Auth::Cookie(&carol),
            "query($id: ID!) { accessToken(id: $id) { id } }",
            json!({ "id": bob_id }),
        )
        .await;
    assert!(r.data()["accessToken"].is_null());
    let r = app
        .gql(Auth::Cookie(&carol), "{ accessTokens { id } }", json!({}))
        .await;
    assert_eq!(r.data()["accessTokens"], json!([]));
    let r = app.revoke(Auth::Cookie(&carol), &bob_id).await;
    assert_eq!(r.code(), "NOT_FOUND");
    assert_eq!(
        app.me(Auth::Bearer(&bob_token)).await.status,
        StatusCode::OK
    );
    // Administrators may read and revoke anyone's.
    let r = app
        .gql(
            Auth::Cookie(&admin),
            "query($id: ID!) { accessToken(id: $id) { name } }",
            json!({ "id": bob_id }),
        )
        .await;
    assert_eq!(r.data()["accessToken"]["name"], "bob");
    let r = app
        .gql(
            Auth::Cookie(&admin),
            "{ users { email accessTokens { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r.data()["users"][1],
        json!({ "email": "bob@example.com", "accessTokens": [{ "name": "bob" }] })
    );
    let r = app.revoke(Auth::Cookie(&admin), &bob_id).await;
    assert_eq!(r.data()["revokeAccessToken"]["status"], "REVOKED");
    assert_eq!(app.me(Auth::Bearer(&bob_token)).await.reason(), "revoked");
    app.finish().await;
}

async fn tokens_and_keys_survive_a_restart(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let (token, _) = app
        .issue(Auth::Cookie(&cookie), "durable", None, 3600)
        .await;
    let jwks_before: Value = app.jwks().await;
    let app = app.restart().await;
    assert_eq!(
        app.me(Auth::Bearer(&token)).await.data()["me"]["email"],
        ADMIN_EMAIL
    );
    let jwks_after: Value = app.jwks().await;
    assert_eq!(jwks_before, jwks_after, "no new key on restart");
    app.finish().await;
}

async fn key_rotation_keeps_old_tokens_valid(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let (old, _) = app.issue(Auth::Cookie(&cookie), "old", None, 3600).await;
    // Rotate as `tokengate keys rotate` would, behind the running server's back.
    let new_kid = tokengate::core::keys::rotate(app.conn()).await.unwrap();
    app.state.keys.reload(app.conn()).await.unwrap();
    let (new, _) = app.issue(Auth::Cookie(&cookie), "new", None, 3600).await;
    assert_eq!(kid_of(&new), new_kid);
    assert_ne!(kid_of(&old), new_kid);
    assert_eq!(
        app.me(Auth::Bearer(&old)).await.status,
        StatusCode::OK,
        "old key still verifies"
    );
    assert_eq!(app.me(Auth::Bearer(&new)).await.status, StatusCode::OK);
    let jwks: Value = app.jwks().await;
    let mut kids: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    let mut want = vec![kid_of(&old), new_kid];
    want.sort();
    assert_eq!(kids, want);
    app.finish().await;
}

async fn jwks_publishes_the_verifying_keys(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let (token, token_id) = app.issue(Auth::Cookie(&cookie), "t", None, 3600).await;
    let resp = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age="));
    let jwks: Value = resp.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"), Some("sig"))
    );
    assert_eq!(key["kid"].as_str().unwrap(), kid_of(&token));
    assert!(key.get("d").is_none(), "no private part");
    // Another service can verify the token offline with the published key alone.
    let decoding =
        jsonwebtoken::DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_issuer(&[app.state.keys.issuer()]);
    let data = jsonwebtoken::decode::<Value>(&token, &decoding, &v).unwrap();
    assert_eq!(data.claims["jti"].as_str(), Some(token_id.as_str()));
    app.finish().await;
}

async fn database_holds_only_digests(b: Backend) {
    let mut app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let (token, _) = app.issue(Auth::Cookie(&cookie), "secret", None, 3600).await;
    let signature = token.rsplit('.').next().unwrap().to_owned();
    let row = entity::access_token::Entity::find()
        .one(app.conn())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.digest,
        tokengate::auth::secret::sha256(token.as_bytes())
    );
    for col in [&row.id, &row.name, &row.scopes, &row.user_id] {
        assert!(!col.contains(&signature));
    }
    if b == Backend::Sqlite {
        // Scan the database file, WAL and shared memory while running, then again
        // after shutdown (when the WAL has been checkpointed into the main file).
        let dir = app.db.dir.as_ref().unwrap().path().to_owned();
        let mut scanned = 0;
        for round in 0..2 {
            if round == 1 {
                app.stop().await;
            }
            for entry in std::fs::read_dir(&dir).unwrap() {
                let Ok(bytes) = std::fs::read(entry.unwrap().path()) else {
                    continue;
                };
                scanned += bytes.len();
                for needle in [token.as_bytes(), signature.as_bytes(), cookie.as_bytes()] {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle),
                        "secret found in the database files"
                    );
                }
            }
        }
        assert!(scanned > 0);
        app.db.drop_database().await;
    } else {
        // PostgreSQL: no column of any row holds the token or its signature.
        use sea_orm::{ConnectionTrait, Statement};
        let rows = app
            .conn()
            .query_all(Statement::from_string(sea_orm::DbBackend::Postgres, "SELECT row_to_json(t)::text AS j FROM access_tokens t UNION ALL SELECT row_to_json(s)::text FROM sessions s UNION ALL SELECT row_to_json(a)::text FROM audit_events a"))
            .await
            .unwrap();
        assert!(!rows.is_empty());
        for row in rows {
            let text: String = row.try_get("", "j").unwrap();
            assert!(
                !text.contains(&signature) && !text.contains(&cookie),
                "secret found: {text}"
            );
        }
        app.finish().await;
    }
}

async fn last_used_is_batched_not_written_per_request(b: Backend) {
    // The test runs the writer itself (flush_last_used); its timer stays idle.
    let app = TestApp::start(b, |c| {
        c.last_used_flush_interval = Duration::from_secs(3600)
    })
    .await;
    let cookie = app.sign_in_admin().await;
    let (token, id) = app.issue(Auth::Cookie(&cookie), "busy", None, 3600).await;
    let q = "query($id: ID!) { accessToken(id: $id) { lastUsedAt lastUsedIp } }";
    let r = app.gql(Auth::Cookie(&cookie), q, json!({ "id": id })).await;
    assert!(r.data()["accessToken"]["lastUsedAt"].is_null());
    assert!(r.data()["accessToken"]["lastUsedIp"].is_null());
    let before = app.state.last_used.writes();
    for _ in 0..30 {
        assert_eq!(app.me(Auth::Bearer(&token)).await.status, StatusCode::OK);
    }
    app.flush_last_used(false).await;
    let after = app.state.last_used.writes();
    assert_eq!(after - before, 1, "30 requests, one write");
    let r = app.gql(Auth::Cookie(&cookie), q, json!({ "id": id })).await;
    let last = chrono::DateTime::parse_from_rfc3339(
        r.data()["accessToken"]["lastUsedAt"].as_str().unwrap(),
    )
    .unwrap();
    assert!((chrono::Utc::now() - last.with_timezone(&chrono::Utc)).num_seconds() < 60);
    // The address it was used from, written with the time.
    assert_eq!(r.data()["accessToken"]["lastUsedIp"], "127.0.0.1");
    // More use within the gap: no further write yet.
    for _ in 0..10 {
        app.me(Auth::Bearer(&token)).await;
    }
    app.flush_last_used(false).await;
    assert_eq!(app.state.last_used.writes(), after);
    // The count is published.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(&format!("tokengate_last_used_writes_total {after}")),
        "{metrics}"
    );
    app.finish().await;
}

async fn token_events_are_audited(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    app.issue(Auth::Cookie(&cookie), "a", None, 3600).await;
    let (_, id) = app.issue(Auth::Cookie(&cookie), "a", None, 3600).await;
    app.revoke(Auth::Cookie(&cookie), &id).await;
    let actions = audit_actions(app.conn()).await;
    assert_eq!(
        actions[2..],
        ["token_issued", "token_rotated", "token_revoked"]
    );
    let events = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Action.eq("token_revoked"))
        .all(app.conn())
        .await
        .unwrap();
    assert_eq!(events[0].subject.as_deref(), Some(id.as_str()));
    assert!(events[0].actor_id.is_some());
    assert_eq!(events[0].ip.as_deref(), Some("127.0.0.1"));
    assert!(events[0]
        .detail
        .as_deref()
        .unwrap()
        .contains("\"name\":\"a\""));
    app.finish().await;
}

/// The one rule (SPEC §4, README "Whose tokens you can act on"): another
/// owner's tokens need the admin role *and* `users:read` to read, `users:write`
/// to revoke or to issue for a service account — in the credential in use.
async fn acting_on_anothers_tokens_takes_the_admin_role_and_users_scopes(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let admin = app.sign_in_admin().await;
    let member = app.member("grace@example.com").await;
    let (member_token, member_id) = app.issue(Auth::Cookie(&member), "ci", None, 3600).await;
    let member_user = app.me(Auth::Cookie(&member)).await.data()["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let robot = app
        .gql(
            Auth::Cookie(&admin),
            "mutation { createServiceAccount(name: \"robot\", scopes: [\"me:read\"]) { serviceAccount { id } } }",
            json!({}),
        )
        .await
        .data()["createServiceAccount"]["serviceAccount"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let narrowed = |scopes: &'static [&'static str]| {
        let admin = admin.clone();
        let app = &app;
        async move {
            app.issue(
                Auth::Cookie(&admin),
                scopes.join("+").as_str(),
                Some(scopes),
                3600,
            )
            .await
            .0
        }
    };
    let read_one = "query($id: ID!) { accessToken(id: $id) { id } }";
    let list_of = "query($o: ID) { accessTokens(ownerId: $o) { id } }";
    let exp = chrono::Utc::now().timestamp() + 600;
    let issue_for = &format!("mutation($sa: ID) {{ updateAccessToken(expirationTime: {exp}, name: \"robot\", serviceAccountId: $sa) {{ success }} }}");
    let still_works = |token: String| {
        let app = &app;
        async move { app.me(Auth::Bearer(&token)).await.status == StatusCode::OK }
    };

    // An administrator's token narrowed to tokens:* acts on its own tokens only.
    let tokens_only = narrowed(&["me:read", "tokens:read", "tokens:write"]).await;
    let t = Auth::Bearer(&tokens_only);
    let r = app.gql(t, read_one, json!({ "id": member_id })).await;
    assert_eq!(r.data()["accessToken"], Value::Null, "{}", r.body);
    let r = app.revoke(t, &member_id).await;
    assert_eq!(r.code(), "NOT_FOUND", "{}", r.body);
    assert!(still_works(member_token.clone()).await);
    let r = app.gql(t, list_of, json!({ "o": member_user })).await;
    assert_eq!(r.code(), "FORBIDDEN", "{}", r.body);
    assert_eq!(
        r.body["errors"][0]["extensions"]["requiredScope"],
        "users:read"
    );
    let r = app.gql(t, issue_for.as_str(), json!({ "sa": robot })).await;
    assert_eq!(r.code(), "FORBIDDEN", "{}", r.body);
    assert_eq!(
        r.body["errors"][0]["extensions"]["requiredScope"],
        "users:write"
    );
    let r = app
        .gql(t, issue_for.as_str(), json!({ "sa": "no-such-account" }))
        .await;
    assert_eq!(r.code(), "FORBIDDEN", "no existence leak: {}", r.body);

    // With users:read it reads them, but revoking needs users:write.
    let reader = narrowed(&["tokens:read", "tokens:write", "users:read"]).await;
    let t = Auth::Bearer(&reader);
    let r = app.gql(t, read_one, json!({ "id": member_id })).await;
    assert_eq!(r.data()["accessToken"]["id"], member_id.as_str());
    let r = app.gql(t, list_of, json!({ "o": member_user })).await;
    assert_eq!(r.data()["accessTokens"][0]["id"], member_id.as_str());
    let r = app.revoke(t, &member_id).await;
    assert_eq!(r.code(), "FORBIDDEN", "{}", r.body);
    assert_eq!(
        r.body["errors"][0]["extensions"]["requiredScope"],
        "users:write"
    );
    assert!(still_works(member_token.clone()).await);

    // A member never acts on another's tokens, whatever the scope.
    let admin_token = narrowed(&["me:read"]).await;
    let admin_token_id = app
        .gql(
            Auth::Cookie(&admin),
            "{ accessTokens { id name } }",
            json!({}),
        )
        .await
        .data()["accessTokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "me:read")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.revoke(Auth::Cookie(&member), &admin_token_id).await;
    assert_eq!(r.code(), "NOT_FOUND", "{}", r.body);
    assert!(still_works(admin_token).await);
    let r = app
        .gql(
            Auth::Cookie(&member),
            issue_for.as_str(),
            json!({ "sa": robot }),
        )
        .await;
    assert_eq!(r.code(), "FORBIDDEN", "{}", r.body);

    // With users:write too, it revokes and issues for the service account.
    let writer = narrowed(&["tokens:read", "tokens:write", "users:read", "users:write"]).await;
    let t = Auth::Bearer(&writer);
    let r = app.gql(t, issue_for.as_str(), json!({ "sa": robot })).await;
    assert_eq!(r.data()["updateAccessToken"]["success"], true, "{}", r.body);
    let r = app.revoke(t, &member_id).await;
    assert_eq!(
        r.data()["revokeAccessToken"]["status"],
        "REVOKED",
        "{}",
        r.body
    );
    assert!(!still_works(member_token).await);
    app.finish().await;
}

/// `--max-tokens-per-user`: the next named token past the cap is refused with
/// the numbers and nothing changes; rotating under a taken name still works at
/// the cap; revoking one makes room. Concurrent issues for one user stop at
/// the cap too.
async fn active_tokens_per_user_are_capped(b: Backend) {
    let app = TestApp::start(b, |c| c.max_tokens_per_user = 3).await;
    let cookie = app.sign_in_admin().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            app.issue(Auth::Cookie(&cookie), &format!("t{i}"), None, 3600)
                .await
                .1,
        );
    }
    let exp = chrono::Utc::now().timestamp() + 3600;
    let attempt = |name: &'static str| {
        app.gql(
            Auth::Cookie(&cookie),
            "mutation($n: String, $e: Int) { updateAccessToken(name: $n, expirationTime: $e) { success } }",
            json!({ "n": name, "e": exp }),
        )
    };
    let r = attempt("t3").await;
    assert_eq!(r.code(), "BAD_USER_INPUT", "{}", r.body);
    assert!(
        r.message().contains("3 active tokens") && r.message().contains("most allowed is 3"),
        "{}",
        r.body
    );
    let listed = app
        .gql(
            Auth::Cookie(&cookie),
            "{ accessTokens { name } }",
            json!({}),
        )
        .await;
    assert_eq!(listed.data()["accessTokens"].as_array().unwrap().len(), 3);
    // Rotation replaces, so it fits.
    assert_eq!(
        attempt("t0").await.data()["updateAccessToken"]["success"],
        true
    );
    // Room after a revocation.
    let r = app.revoke(Auth::Cookie(&cookie), &ids[1]).await;
    assert_eq!(r.data()["revokeAccessToken"]["status"], "REVOKED");
    assert_eq!(
        attempt("t3").await.data()["updateAccessToken"]["success"],
        true
    );
    // Ten at once, one slot left after another revocation: exactly one wins.
    let r = app.revoke(Auth::Cookie(&cookie), &ids[2]).await;
    assert_eq!(r.data()["revokeAccessToken"]["status"], "REVOKED");
    let names = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"];
    let results = futures_join_all(names.iter().map(|n| attempt(n))).await;
    let won = results
        .iter()
        .filter(|r| r.data()["updateAccessToken"]["success"] == true)
        .count();
    assert_eq!(
        won,
        1,
        "{:?}",
        results.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let listed = app
        .gql(
            Auth::Cookie(&cookie),
            "{ accessTokens { name } }",
            json!({}),
        )
        .await;
    assert_eq!(listed.data()["accessTokens"].as_array().unwrap().len(), 3);
    app.finish().await;
}

async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    async_graphql::futures_util::future::join_all(futures).await
}

const ROTATE: &str = "mutation($id: ID, $g: Int) { rotateAccessToken(id: $id, gracePeriod: $g) { sessionJwt accessToken { id name scopes } } }";

/// SPEC §10: rotation gives a new token with the same name, scopes and length
/// of life; the old one works through its grace period, then is refused; a
/// rotated token cannot be rotated again (its successor untouched); with no
/// id the token in use rotates itself.
async fn rotation_keeps_name_scopes_and_lifetime_and_honours_the_grace_period(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let scopes = ["me:read", "tokens:read", "tokens:write"];
    let (old, old_id) = app
        .issue(Auth::Cookie(&cookie), "deploy", Some(&scopes), 7200)
        .await;
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            ROTATE,
            json!({ "id": old_id, "g": 0 }),
        )
        .await;
    let p = &r.data()["rotateAccessToken"];
    assert_eq!(p["accessToken"]["name"], "deploy", "{}", r.body);
    assert_eq!(p["accessToken"]["scopes"], json!(scopes));
    let new = p["sessionJwt"].as_str().unwrap().to_owned();
    let life = |t: &str| {
        let c = jwt_claims(t);
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap()
    };
    assert!(
        (life(&new) - life(&old)).abs() <= 1,
        "{} vs {}",
        life(&new),
        life(&old)
    );
    // No grace: the old one is refused at once, the new one works.
    let r = app.me(Auth::Bearer(&old)).await;
    assert_eq!(
        (r.status, r.reason()),
        (StatusCode::UNAUTHORIZED, "revoked")
    );
    assert_eq!(app.me(Auth::Bearer(&new)).await.status, StatusCode::OK);
    // Rotating the rotated one again is refused and leaves its successor alone.
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            ROTATE,
            json!({ "id": old_id, "g": 0 }),
        )
        .await;
    assert_eq!(r.code(), "BAD_USER_INPUT", "{}", r.body);
    assert!(
        r.message().contains("already revoked, rotated or expired"),
        "{}",
        r.body
    );
    assert_eq!(app.me(Auth::Bearer(&new)).await.status, StatusCode::OK);

    // Self-rotation with a grace period: the token in use keeps working, then stops.
    // Timed from before the request: the grace counts from the rotation.
    let started = std::time::Instant::now();
    let r = app.gql(Auth::Bearer(&new), ROTATE, json!({ "g": 2 })).await;
    let newer = r.data()["rotateAccessToken"]["sessionJwt"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", r.body))
        .to_owned();
    assert_eq!(app.me(Auth::Bearer(&new)).await.status, StatusCode::OK);
    // Listed as active while in grace; a second rotation of it is refused.
    let r = app.gql(Auth::Bearer(&new), ROTATE, json!({ "g": 0 })).await;
    assert_eq!(r.code(), "BAD_USER_INPUT", "{}", r.body);
    let (r, _) = app
        .refused_within(Auth::Bearer(&new), Duration::from_secs(5))
        .await;
    assert_eq!(
        (r.status, r.reason()),
        (StatusCode::UNAUTHORIZED, "revoked")
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "refused before its grace ended"
    );
    assert_eq!(app.me(Auth::Bearer(&newer)).await.status, StatusCode::OK);

    // Bad input: a session has no token of its own; the grace is bounded.
    let r = app
        .gql(Auth::Cookie(&cookie), ROTATE, json!({ "g": 0 }))
        .await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    let newer_id = jwt_claims(&newer)["jti"].as_str().unwrap().to_owned();
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            ROTATE,
            json!({ "id": newer_id, "g": 86_401 }),
        )
        .await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    assert!(r.message().contains("86400"), "{}", r.body);
    assert_eq!(app.me(Auth::Bearer(&newer)).await.status, StatusCode::OK);
    app.finish().await;
}

/// Rotation by name ends every active token of the name, a rotated one in its
/// grace period included (its `revoked_at` lies in the future), at once; the
/// owner's tokens of other names are untouched.
async fn issuing_under_a_name_ends_its_token_in_grace_and_its_successor(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let (other, _) = app.issue(Auth::Cookie(&cookie), "other", None, 3600).await;
    let (old, old_id) = app.issue(Auth::Cookie(&cookie), "deploy", None, 3600).await;
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            ROTATE,
            json!({ "id": old_id, "g": 3600 }),
        )
        .await;
    let successor = r.data()["rotateAccessToken"]["sessionJwt"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", r.body))
        .to_owned();
    // In its grace period: still works.
    assert_eq!(app.me(Auth::Bearer(&old)).await.status, StatusCode::OK);
    assert_eq!(
        app.me(Auth::Bearer(&successor)).await.status,
        StatusCode::OK
    );
    let (newest, _) = app.issue(Auth::Cookie(&cookie), "deploy", None, 3600).await;
    for t in [&old, &successor] {
        let r = app.me(Auth::Bearer(t)).await;
        assert_eq!(
            (r.status, r.reason()),
            (StatusCode::UNAUTHORIZED, "revoked")
        );
    }
    assert_eq!(app.me(Auth::Bearer(&newest)).await.status, StatusCode::OK);
    assert_eq!(app.me(Auth::Bearer(&other)).await.status, StatusCode::OK);
    let listed = app
        .gql(
            Auth::Cookie(&cookie),
            "{ accessTokens { name } }",
            json!({}),
        )
        .await;
    let mut names: Vec<&str> = listed.data()["accessTokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["deploy", "other"], "{}", listed.body);
    app.finish().await;
}

/// Rotated with a grace period on one process, the old token keeps working
/// on another sharing the database (which has it cached) until the grace
/// ends, and is refused there too within the poll's reach after that.
async fn a_grace_period_ends_on_every_process(b: Backend) {
    let a = TestApp::start(b, |_| {}).await;
    let mut config = a.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let other = TestApp::start_on(a.db.shared(), config).await;
    let cookie = a.sign_in_admin().await;
    let (old, old_id) = a.issue(Auth::Cookie(&cookie), "deploy", None, 3600).await;
    // Cached as valid on the other process.
    assert_eq!(other.me(Auth::Bearer(&old)).await.status, StatusCode::OK);
    // Timed from before the request: the grace counts from the rotation.
    let rotated = std::time::Instant::now();
    let r = a
        .gql(
            Auth::Cookie(&cookie),
            ROTATE,
            json!({ "id": old_id, "g": 2 }),
        )
        .await;
    let new = r.data()["rotateAccessToken"]["sessionJwt"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", r.body))
        .to_owned();
    assert_eq!(
        other.me(Auth::Bearer(&old)).await.status,
        StatusCode::OK,
        "in grace"
    );
    assert_eq!(other.me(Auth::Bearer(&new)).await.status, StatusCode::OK);
    let (r, _) = other
        .refused_within(Auth::Bearer(&old), Duration::from_secs(6))
        .await;
    assert_eq!(
        (r.status, r.reason()),
        (StatusCode::UNAUTHORIZED, "revoked")
    );
    let waited = rotated.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "refused before its grace ended: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(4),
        "the end reached the other process late: {waited:?}"
    );
    assert_eq!(
        a.me(Auth::Bearer(&old)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(other.me(Auth::Bearer(&new)).await.status, StatusCode::OK);
    other.finish().await;
    a.finish().await;
}
