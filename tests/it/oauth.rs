//! Machine clients: service accounts and the OAuth 2.0 endpoints.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::harness::skip;
use crate::support::*;

both_backends!(
    client_credentials_issues_a_working_token,
    client_credentials_errors_follow_rfc_6749,
    single_active_token_ends_the_previous_one,
    disabling_a_service_account_refuses_its_tokens_and_secret,
    rotating_the_secret_retires_the_old_one,
    token_exchange_caps_scope_and_lifetime_and_dies_with_its_parent,
    exchanged_tokens_end_with_a_parent_rotated_with_grace,
    revocation_endpoint_follows_rfc_7009,
    introspection_reports_active_then_inactive,
    admins_issue_named_tokens_for_service_accounts,
    metadata_lists_endpoints_and_capabilities,
    interop_with_a_third_party_oauth_client,
);

/// A service account made through GraphQL by the administrator.
struct Client {
    id: String,
    client_id: String,
    secret: String,
}

async fn create_client(
    app: &TestApp,
    admin: &str,
    scopes: &[&str],
    single: bool,
    lifetime: Option<i64>,
) -> Client {
    let r = app
        .gql(
            Auth::Cookie(admin),
            "mutation($s: [String!]!, $single: Boolean, $life: Int) { createServiceAccount(name: \"robot\", scopes: $s, singleActiveToken: $single, accessTokenLifetime: $life) { clientSecret serviceAccount { id clientId scopes accessTokenLifetime singleActiveToken disabledAt } } }",
            json!({ "s": scopes, "single": single, "life": lifetime }),
        )
        .await;
    let p = &r.data()["createServiceAccount"];
    assert_eq!(p["serviceAccount"]["scopes"], json!(scopes), "{}", r.body);
    Client {
        id: p["serviceAccount"]["id"].as_str().unwrap().to_owned(),
        client_id: p["serviceAccount"]["clientId"].as_str().unwrap().to_owned(),
        secret: p["clientSecret"].as_str().unwrap().to_owned(),
    }
}

async fn post_form(
    app: &TestApp,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = app.client.post(app.url(path)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn cc_token(
    app: &TestApp,
    c: &Client,
    scope: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    post_form(app, "/oauth2/token", Some((&c.client_id, &c.secret)), &form).await
}

use crate::support::jwt_claims as claims;

async fn client_credentials_issues_a_working_token(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let admin = app.sign_in_admin().await;
    let c = create_client(&app, &admin, &["me:read", "tokens:read"], false, None).await;
    let (status, headers, body) = cc_token(&app, &c, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["scope"], "me:read tokens:read",
        "all allowed scopes when none asked"
    );
    let token = body["access_token"].as_str().unwrap();
    let cl = claims(token);
    // The token's lifetime exactly, never a second short.
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert_eq!(expires_in, 28800, "8 hours by default");
    assert_eq!(
        expires_in,
        cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap()
    );
    assert_eq!(cl["client_id"], c.client_id.as_str());
    assert_eq!(cl["sub"], c.id.as_str());
    let r = app
        .gql(
            Auth::Bearer(token),
            "{ me { id role } accessTokens { id } }",
            json!({}),
        )
        .await;
    assert_eq!(r.data()["me"]["role"], "service");
    // Form-field client authentication works too, and a narrower scope is honoured.
    let (status, _, body) = post_form(
        &app,
        "/oauth2/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.secret),
            ("scope", "me:read"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["scope"], "me:read");
    let narrow = body["access_token"].as_str().unwrap();
    let r = app
        .gql(Auth::Bearer(narrow), "{ accessTokens { id } }", json!({}))
        .await;
    assert_eq!(r.code(), "FORBIDDEN");
    // Service accounts are not people: not in `users`, listed in `serviceAccounts`.
    let r = app.gql(Auth::Cookie(&admin), "{ users { email } serviceAccounts { clientId accessTokenLifetime singleActiveToken } }", json!({})).await;
    assert_eq!(r.data()["users"].as_array().unwrap().len(), 1);
    assert_eq!(
        r.data()["serviceAccounts"],
        json!([{ "clientId": c.client_id, "accessTokenLifetime": 28800, "singleActiveToken": false }])
    );
    // The secret is stored only as a digest.
    let row = entity::service_account::Entity::find()
        .one(app.conn())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.secret_digest,
        tokengate::auth::secret::sha256(c.secret.as_bytes())
    );
    app.finish().await;
}

use sea_orm::EntityTrait;

async fn client_credentials_errors_follow_rfc_6749(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let admin = app.sign_in_admin().await;
    let c = create_client(&app, &admin, &["me:read"], false, None).await;
    let before = entity::access_token::Entity::find()
        .all(app.conn())
        .await
        .unwrap()
        .len();

    let (status, headers, body) = post_form(
        &app,
        "/oauth2/token",
        Some((&c.client_id, "wrong")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let (status, _, body) = post_form(
        &app,
        "/oauth2/token",
        Some(("tgc_nobody", "x")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, _, body) = post_form(
        &app,
        "/oauth2/token",
        None,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );

    let (status, _, body) = cc_token(&app, &c, Some("users:write")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    let (status, _, body) = cc_token(&app, &c, Some("bogus")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    let (status, _, body) = post_form(
        &app,
        "/oauth2/token",
        Some((&c.client_id, &c.secret)),
        &[("grant_type", "password")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (status, _, body) =
        post_form(&app, "/oauth2/token", Some((&c.client_id, &c.secret)), &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    // Two client authentication methods at once.
    let (status, _, body) = post_form(
        &app,
        "/oauth2/token",
        Some((&c.client_id, &c.secret)),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.secret),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    // JSON instead of a form.
    let resp = app
        .client
        .post(app.url("/oauth2/token"))
        .basic_auth(&c.client_id, Some(&c.secret))
        .json(&json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        entity::access_token::Entity::find()
            .all(app.conn())
            .await
            .unwrap()
            .len(),
        before,
        "no token issued"
    );

    // Failures are audited, and throttled after five in a row for one client.
    assert!(audit_actions(app.conn())
        .await
        .iter()
        .any(|a| a == "client_auth_failed"));
    for _ in 0..5 {
        post_form(
            &app,
            "/oauth2/token",
            Some((&c.client_id, "wrong")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    }
    let (status, headers, _) = cc_token(&app, &c, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    app.finish().await;
}

async fn single_active_token_ends_the_previous_one(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let admin = app.sign_in_admin().await;
    let single = create_client(&app, &admin, &["me:read"], true, Some(3600)).await;
    let (_, _, first) = cc_token(&app, &single, None).await;
    let (_, _, second) = cc_token(&app, &single, None).await;
    let first = first["access_token"].as_str().unwrap();
    let second = second["access_token"].as_str().unwrap();
    assert!(second.len() > 10);
    assert_eq!(app.me(Auth::Bearer(first)).await.reason(), "revoked");
    assert_eq!(app.me(Auth::Bearer(second)).await.status, StatusCode::OK);
    assert!(claims(second)["exp"].as_i64().unwrap() - chrono::Utc::now().timestamp() <= 3600);
    // Without the flag, tokens accumulate.
    let many = create_client(&app, &admin, &["me:read"], false, None).await;
    let (_, _, a) = cc_token(&app, &many, None).await;
    let (_, _, _b) = cc_token(&app, &many, None).await;
    assert_eq!(
        app.me(Auth::Bearer(a["access_token"].as_str().unwrap()))
            .await
            .status,
        StatusCode::OK
    );
    app.finish().await;
}

async fn disabling_a_service_account_refuses_its_tokens_and_secret(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let admin = app.sign_in_admin().await;
    let c = create_client(&app, &admin, &["me:read"], false, None).await;
    let (_, _, body) = cc_token(&app, &c, None).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let r = app
        .gql(
            Auth::Cookie(&admin),
            "mutation($id: ID!) { disableServiceAccount(id: $id) { disabledAt } }",
            json!({ "id": c.id }),
        )
        .await;
    assert!(
        r.data()["disableServiceAccount"]["disabledAt"].is_string(),
        "{}",
        r.body
    );
    assert_eq!(app.me(Auth::Bearer(&token)).await.reason(), "revoked");
    let (status, _, body) = cc_token(&app, &c, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    // Members cannot manage service accounts.
    let member = app.member("bob@example.com").await;
    let r = app.gql(Auth::Cookie(&member), "mutation { createServiceAccount(name: \"x\", scopes: [\"me:read\"]) { clientSecret } }", json!({})).await;
    assert_eq!(
        (
            r.code(),
            r.body["errors"][0]["extensions"]["requiredScope"].as_str()
        ),
        ("FORBIDDEN", Some("users:write"))
    );
    // Nor can service accounts: users:* is an administrator's, so an account
    // cannot be given it (it could otherwise take over other accounts).
    let listed = app
        .gql(
            Auth::Cookie(&admin),
            "{ serviceAccounts { id } }",
            json!({}),
        )
        .await;
    let before = listed.data()["serviceAccounts"].as_array().unwrap().len();
    for scope in ["users:read", "users:write"] {
        let r = app
            .gql(
                Auth::Cookie(&admin),
                "mutation($s: [String!]!) { createServiceAccount(name: \"provisioner\", scopes: $s) { clientSecret } }",
                json!({ "s": ["me:read", scope] }),
            )
            .await;
        assert_eq!(r.code(), "BAD_USER_INPUT", "{}", r.body);
        assert!(r.message().contains(scope), "{}", r.message());
    }
    let after = app
        .gql(
            Auth::Cookie(&admin),
            "{ serviceAccounts { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        after.data()["serviceAccounts"].as_array().unwrap().len(),
        before,
        "nothing written"
    );
    app.finish().await;
}

async fn rotating_the_secret_retires_the_old_one(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let admin = app.sign_in_admin().await;
    let mut c = create_client(&app, &admin, &["me:read"], false, None).await;
    let r = app.gql(Auth::Cookie(&admin), "mutation($id: ID!) { rotateServiceAccountSecret(id: $id) { clientSecret serviceAccount { clientId } } }", json!({ "id": c.id })).await;
    let new_secret = r.data()["rotateServiceAccountSecret"]["clientSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_secret, c.secret);
    let (status, _, _) = cc_token(&app, &c, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    c.secret = new_secret;
    assert_eq!(cc_token(&app, &c, None).await.0, StatusCode::OK);
    app.finish().await;
}

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

async fn token_exchange_caps_scope_and_lifetime_and_dies_with_its_parent(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let (parent, parent_id) = app
        .issue(
            Auth::Cookie(&cookie),
            "long-lived",
            Some(&["me:read", "tokens:read"]),
            90 * 86400,
        )
        .await;
    let exchange = |subject: String, scope: Option<&'static str>| {
        let app = &app;
        async move {
            let mut form = vec![
                ("grant_type", EXCHANGE.to_owned()),
                ("subject_token", subject),
                ("subject_token_type", ACCESS_TOKEN.to_owned()),
            ];
            if let Some(s) = scope {
                form.push(("scope", s.to_owned()));
            }
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(app, "/oauth2/token", None, &form).await
        }
    };
    let (status, headers, body) = exchange(parent.clone(), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(body["scope"], "me:read tokens:read");
    let child = body["access_token"].as_str().unwrap().to_owned();
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert_eq!(expires_in, 900, "15 minutes exactly");
    let cl = claims(&child);
    assert_eq!(
        expires_in,
        cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap()
    );
    assert_eq!(
        app.me(Auth::Bearer(&child)).await.data()["me"]["email"],
        ADMIN_EMAIL
    );

    let (_, _, narrow) = exchange(parent.clone(), Some("me:read")).await;
    assert_eq!(narrow["scope"], "me:read");
    let (status, _, body) = exchange(parent.clone(), Some("users:write")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    let (status, _, body) = exchange("not-a-token".into(), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, _, body) = post_form(
        &app,
        "/oauth2/token",
        None,
        &[("grant_type", EXCHANGE), ("subject_token", &parent)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // Never past the parent's expiry.
    let (short, _) = app.issue(Auth::Cookie(&cookie), "short", None, 120).await;
    let (_, _, body) = exchange(short, None).await;
    assert!(body["expires_in"].as_i64().unwrap() <= 120, "{body}");

    // An exchanged token's own exchange dies with the root too.
    let (_, _, grand) = exchange(child.clone(), None).await;
    let grandchild = grand["access_token"].as_str().unwrap().to_owned();
    app.revoke(Auth::Cookie(&cookie), &parent_id).await;
    for t in [&parent, &child, &grandchild] {
        assert_eq!(app.me(Auth::Bearer(t)).await.reason(), "revoked");
    }
    app.finish().await;
}

async fn revocation_endpoint_follows_rfc_7009(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let admin = app.sign_in_admin().await;
    let c = create_client(&app, &admin, &["me:read"], false, None).await;
    let other = create_client(&app, &admin, &["me:read"], false, None).await;
    let (_, _, body) = cc_token(&app, &c, None).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    // Another client cannot revoke it (answered 200 all the same).
    let (status, _, _) = post_form(
        &app,
        "/oauth2/revoke",
        Some((&other.client_id, &other.secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.me(Auth::Bearer(&token)).await.status, StatusCode::OK);
    // Its own client can.
    let (status, headers, _) = post_form(
        &app,
        "/oauth2/revoke",
        Some((&c.client_id, &c.secret)),
        &[("token", &token), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(app.me(Auth::Bearer(&token)).await.reason(), "revoked");
    // Unknown tokens: 200. Bad client credentials: 401.
    assert_eq!(
        post_form(
            &app,
            "/oauth2/revoke",
            Some((&c.client_id, &c.secret)),
            &[("token", "garbage")]
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        post_form(
            &app,
            "/oauth2/revoke",
            Some((&c.client_id, "wrong")),
            &[("token", "garbage")]
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    // A user's token may revoke itself without client authentication.
    let (mine, _) = app.issue(Auth::Cookie(&admin), "script", None, 3600).await;
    assert_eq!(
        post_form(&app, "/oauth2/revoke", None, &[("token", &mine)])
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(app.me(Auth::Bearer(&mine)).await.reason(), "revoked");
    app.finish().await;
}

async fn introspection_reports_active_then_inactive(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let admin = app.sign_in_admin().await;
    let rs = create_client(&app, &admin, &["me:read"], false, None).await;
    let c = create_client(&app, &admin, &["me:read", "tokens:read"], false, None).await;
    let (_, _, body) = cc_token(&app, &c, Some("me:read")).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, headers, info) = post_form(
        &app,
        "/oauth2/introspect",
        Some((&rs.client_id, &rs.secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], c.id.as_str());
    assert_eq!(info["scope"], "me:read");
    assert_eq!(info["client_id"], c.client_id.as_str());
    assert_eq!(info["token_type"], "Bearer");
    assert_eq!(info["jti"], claims(&token)["jti"]);
    assert_eq!(info["exp"], claims(&token)["exp"]);
    assert!(info["iat"].is_i64());
    // Only authenticated clients may introspect.
    assert_eq!(
        post_form(&app, "/oauth2/introspect", None, &[("token", &token)])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // After revocation, and for garbage: just inactive.
    post_form(
        &app,
        "/oauth2/revoke",
        Some((&c.client_id, &c.secret)),
        &[("token", &token)],
    )
    .await;
    let (_, _, info) = post_form(
        &app,
        "/oauth2/introspect",
        Some((&rs.client_id, &rs.secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(info, json!({ "active": false }));
    let (_, _, info) = post_form(
        &app,
        "/oauth2/introspect",
        Some((&rs.client_id, &rs.secret)),
        &[("token", "x.y.z")],
    )
    .await;
    assert_eq!(info, json!({ "active": false }));
    app.finish().await;
}

async fn admins_issue_named_tokens_for_service_accounts(b: Backend) {
    let app = TestApp::start(b, |c| c.allow_non_expiring_tokens = true).await;
    let admin = app.sign_in_admin().await;
    let c = create_client(&app, &admin, &["me:read"], false, None).await;
    let q = "mutation($sa: ID, $s: [String!]) { updateAccessToken(name: \"integration\", serviceAccountId: $sa, scopes: $s) { sessionJwt accessToken { id name scopes expiresAt } } }";
    let r = app
        .gql(Auth::Cookie(&admin), q, json!({ "sa": c.id }))
        .await;
    let p = &r.data()["updateAccessToken"];
    assert_eq!(p["accessToken"]["scopes"], json!(["me:read"]), "{}", r.body);
    assert!(
        p["accessToken"]["expiresAt"].is_null(),
        "non-expiring where allowed"
    );
    let token = p["sessionJwt"].as_str().unwrap();
    assert_eq!(claims(token)["client_id"], c.client_id.as_str());
    let r = app.me(Auth::Bearer(token)).await;
    assert_eq!(r.data()["me"]["id"], c.id.as_str());
    // Beyond the account's scopes: refused.
    let r = app
        .gql(
            Auth::Cookie(&admin),
            q,
            json!({ "sa": c.id, "s": ["users:read"] }),
        )
        .await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    // Admins can list the account's tokens by owner; members cannot.
    let r = app
        .gql(
            Auth::Cookie(&admin),
            "query($o: ID) { accessTokens(ownerId: $o) { name } }",
            json!({ "o": c.id }),
        )
        .await;
    assert_eq!(r.data()["accessTokens"], json!([{ "name": "integration" }]));
    let member = app.member("bob@example.com").await;
    let r = app
        .gql(
            Auth::Cookie(&member),
            "query($o: ID) { accessTokens(ownerId: $o) { name } }",
            json!({ "o": c.id }),
        )
        .await;
    assert_eq!(r.code(), "FORBIDDEN");
    let r = app
        .gql(Auth::Cookie(&member), q, json!({ "sa": c.id }))
        .await;
    assert_eq!(r.code(), "FORBIDDEN");
    // The exchange flow: the long-lived API token for a short-lived one.
    let (status, _, body) = post_form(
        &app,
        "/oauth2/token",
        None,
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", token),
            ("subject_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["expires_in"].as_i64().unwrap() <= 900);
    app.finish().await;
}

async fn metadata_lists_endpoints_and_capabilities(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let iss = app.state.keys.issuer();
    assert_eq!(meta["issuer"], iss.as_str());
    assert_eq!(meta["token_endpoint"], format!("{iss}/oauth2/token"));
    assert_eq!(meta["revocation_endpoint"], format!("{iss}/oauth2/revoke"));
    assert_eq!(
        meta["introspection_endpoint"],
        format!("{iss}/oauth2/introspect")
    );
    assert_eq!(meta["jwks_uri"], format!("{iss}/.well-known/jwks.json"));
    assert_eq!(
        meta["grant_types_supported"],
        json!(["client_credentials", EXCHANGE])
    );
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        meta["scopes_supported"],
        json!([
            "me:read",
            "tokens:read",
            "tokens:write",
            "users:read",
            "users:write"
        ])
    );
    app.finish().await;
}

/// Python's requests-oauthlib (installed by .ci/run) fetches a token with client
/// credentials and calls /api with it.
async fn interop_with_a_third_party_oauth_client(b: Backend) {
    let available = std::process::Command::new("python3")
        .args(["-c", "import requests_oauthlib"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        skip("python3's requests-oauthlib is not installed: pip install requests-oauthlib");
    }
    let app = TestApp::start(b, |_| {}).await;
    let admin = app.sign_in_admin().await;
    let c = create_client(&app, &admin, &["me:read"], false, None).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/client_credentials.py"
    );
    let args = [
        script.to_owned(),
        app.base.clone(),
        c.client_id.clone(),
        c.secret.clone(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3").args(args).output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["me"]["id"], c.id.as_str());
    assert_eq!(result["token_type"], "Bearer");
    app.finish().await;
}

/// A token exchanged from one rotated with a grace period works through the
/// grace and ends with its parent, not before and not never.
async fn exchanged_tokens_end_with_a_parent_rotated_with_grace(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let (parent, parent_id) = app
        .issue(
            Auth::Cookie(&cookie),
            "deploy",
            Some(&["me:read", "tokens:read"]),
            3600,
        )
        .await;
    let (status, _, body) = post_form(
        &app,
        "/oauth2/token",
        None,
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", &parent),
            ("subject_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let child = body["access_token"].as_str().unwrap().to_owned();
    // Timed from before the request: the grace counts from the server's
    // rotation, which happens before its answer arrives.
    let started = std::time::Instant::now();
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            "mutation($id: ID) { rotateAccessToken(id: $id, gracePeriod: 2) { sessionJwt } }",
            json!({ "id": parent_id }),
        )
        .await;
    assert!(r.body["errors"].is_null(), "{}", r.body);
    assert_eq!(app.me(Auth::Bearer(&child)).await.status, StatusCode::OK);
    let (r, _) = app
        .refused_within(Auth::Bearer(&child), std::time::Duration::from_secs(6))
        .await;
    assert_eq!(
        (r.status, r.reason()),
        (StatusCode::UNAUTHORIZED, "revoked"),
        "the exchanged token ends with its parent"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "not before the grace ends"
    );
    assert_eq!(
        app.me(Auth::Bearer(&parent)).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.finish().await;
}
