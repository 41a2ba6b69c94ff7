//! The guard and the GraphQL endpoint's HTTP rules: 401 reasons and headers,
//! Bearer over cookie, FORBIDDEN with requiredScope, CSRF, GET, limits, the
//! GraphQL-over-HTTP response media types.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::*;

both_backends!(
    missing_credentials_answer_401_with_bearer_challenge,
    malformed_credentials_answer_401_malformed,
    unknown_session_cookie_is_refused,
    bad_bearer_wins_over_a_valid_cookie,
    missing_scope_gives_forbidden_field_and_the_rest_resolves,
    members_cannot_list_users,
    cookie_posts_must_be_json,
    get_runs_queries_and_refuses_mutations,
    limits_refuse_deep_aliased_and_oversized_requests,
    a_document_sent_again_is_checked_and_answered_as_the_first_time,
    introspection_needs_credentials,
    request_errors_have_no_data_with_graphql_response_json,
    health_and_readiness,
);

async fn missing_credentials_answer_401_with_bearer_challenge(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let r = app.me(Auth::None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.www_authenticate(), r#"Bearer realm="tokengate""#);
    assert_eq!(r.code(), "UNAUTHENTICATED");
    assert_eq!(r.reason(), "missing");
    assert!(r.body.get("data").is_none(), "nothing executed: {}", r.body);
    app.finish().await;
}

async fn malformed_credentials_answer_401_malformed(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    for header in [
        "Basic YWRhOnB3",
        "Bearer",
        "Bearer not-a-jwt",
        "Bearer a.b",
        "Bearer a b c",
    ] {
        let resp = app
            .client
            .post(app.url("/api"))
            .header("authorization", header)
            .json(&json!({ "query": "{ me { id } }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{header}");
        let www = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            www.starts_with(
                r#"Bearer realm="tokengate", error="invalid_token", error_description=""#
            ),
            "{www}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["reason"], "malformed",
            "{header}"
        );
    }
    let r = app.me(Auth::Cookie("short")).await;
    assert_eq!(
        (r.status, r.reason()),
        (StatusCode::UNAUTHORIZED, "malformed")
    );
    assert_eq!(
        r.www_authenticate(),
        r#"Bearer realm="tokengate""#,
        "no token was presented"
    );
    app.finish().await;
}

async fn unknown_session_cookie_is_refused(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let forged = tokengate::auth::secret::Secret::random();
    let r = app.me(Auth::Cookie(forged.expose())).await;
    assert_eq!(
        (r.status, r.reason()),
        (StatusCode::UNAUTHORIZED, "unknown")
    );
    app.finish().await;
}

async fn bad_bearer_wins_over_a_valid_cookie(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let resp = app
        .client
        .post(app.url("/api"))
        .header("cookie", format!("tokengate_session={cookie}"))
        .bearer_auth("eyJhbGciOiJFZERTQSJ9.e30.c2ln")
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(r#"error="invalid_token""#));
    app.finish().await;
}

async fn missing_scope_gives_forbidden_field_and_the_rest_resolves(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let (token, _) = app
        .issue(Auth::Cookie(&cookie), "narrow", Some(&["me:read"]), 3600)
        .await;
    let r = app
        .gql(
            Auth::Bearer(&token),
            "{ me { email } users { email } }",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let err = &r.body["errors"][0];
    assert_eq!(err["extensions"]["code"], "FORBIDDEN");
    assert_eq!(err["extensions"]["requiredScope"], "users:read");
    assert_eq!(err["path"], json!(["users"]));
    assert_eq!(r.body["data"]["me"]["email"], ADMIN_EMAIL);
    assert_eq!(
        r.body["data"].get("users"),
        Some(&Value::Null),
        "the refused field is present as null"
    );
    // Alone, the refused field still yields data with it as null.
    let r = app
        .gql(Auth::Bearer(&token), "{ accessTokens { id } }", json!({}))
        .await;
    assert_eq!(r.body["data"], json!({ "accessTokens": null }));
    assert_eq!(
        r.body["errors"][0]["extensions"]["requiredScope"],
        "tokens:read"
    );
    app.finish().await;
}

async fn members_cannot_list_users(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.member("bob@example.com").await;
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            "{ me { role } users { email } }",
            json!({}),
        )
        .await;
    assert_eq!(r.code(), "FORBIDDEN");
    assert_eq!(
        r.body["errors"][0]["extensions"]["requiredScope"],
        "users:read"
    );
    assert_eq!(r.body["data"]["me"]["role"], "member");
    let admin = app.sign_in_admin().await;
    let r = app
        .gql(Auth::Cookie(&admin), "{ users { email role } }", json!({}))
        .await;
    assert_eq!(
        r.data()["users"],
        json!([{ "email": ADMIN_EMAIL, "role": "admin" }, { "email": "bob@example.com", "role": "member" }])
    );
    app.finish().await;
}

async fn cookie_posts_must_be_json(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let exp = chrono::Utc::now().timestamp() + 3600;
    let mutation =
        format!("mutation {{ updateAccessToken(expirationTime: {exp}) {{ sessionJwt }} }}");
    let mutation = mutation.as_str();
    for (ctype, body) in [
        ("application/x-www-form-urlencoded", format!("query={}", mutation.replace(' ', "+"))),
        ("multipart/form-data; boundary=X", format!("--X\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{{\"query\":\"{}\"}}\r\n--X--\r\n", mutation.replace('"', "\\\""))),
        ("text/plain", json!({ "query": mutation }).to_string()),
    ] {
        let resp = with_auth(app.client.post(app.url("/api")), Auth::Cookie(&cookie))
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ctype}");
    }
    // Nothing ran: no token was issued.
    assert!(entity::access_token::Entity::find()
        .all(app.conn())
        .await
        .unwrap()
        .is_empty());
    app.finish().await;
}

use sea_orm::EntityTrait;

async fn get_runs_queries_and_refuses_mutations(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let get = |q: &str| {
        with_auth(app.client.get(app.url("/api")), Auth::Cookie(&cookie))
            .query(&[("query", q.to_owned())])
            .send()
    };
    let resp = get("{ me { email } }").await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["data"]["me"]["email"],
        ADMIN_EMAIL
    );
    let exp = chrono::Utc::now().timestamp() + 3600;
    let resp = get(&format!(
        "mutation {{ updateAccessToken(expirationTime: {exp}) {{ sessionJwt }} }}"
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    assert!(entity::access_token::Entity::find()
        .all(app.conn())
        .await
        .unwrap()
        .is_empty());
    // Without credentials a GET query is refused like a POST.
    let resp = app
        .client
        .get(app.url("/api"))
        .query(&[("query", "{ me { id } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    app.finish().await;
}

async fn limits_refuse_deep_aliased_and_oversized_requests(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    // Depth: ofType nests as deep as one likes.
    let mut inner = String::from("name");
    for _ in 0..16 {
        inner = format!("ofType {{ {inner} }}");
    }
    let deep = format!("{{ __schema {{ types {{ fields {{ type {{ {inner} }} }} }} }} }}");
    let r = app.gql(Auth::Cookie(&cookie), &deep, json!({})).await;
    assert!(
        r.message().to_lowercase().contains("nested too deep"),
        "{}",
        r.body
    );
    assert!(r.body["data"].is_null());

    let aliases: String = (0..31).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            &format!("{{ {aliases} }}"),
            json!({}),
        )
        .await;
    assert!(r.message().contains("31 aliases; at most 30"), "{}", r.body);

    let big = "x".repeat((1 << 20) + 1);
    let resp = with_auth(app.client.post(app.url("/api")), Auth::Cookie(&cookie))
        .json(&json!({ "query": "{ me { id } }", "variables": { "pad": big } }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    app.finish().await;
}

/// Documents that pass the limits are kept parsed by their text (issue 14):
/// sending one again must answer exactly as the first time — the operation
/// chosen by name, the variables of this request, the caller of this request —
/// and a refused document stays refused.
async fn a_document_sent_again_is_checked_and_answered_as_the_first_time(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let member = app.member("bo@example.com").await;
    let doc = "query Me { me { email } } query Tokens($all: Boolean) { accessTokens(includeInactive: $all) { name } }";
    let run = |auth, op: &'static str, vars| {
        let app = &app;
        async move {
            let resp = with_auth(app.client.post(app.url("/api")), auth)
                .json(&json!({ "query": doc, "operationName": op, "variables": vars }))
                .send()
                .await
                .unwrap();
            resp.json::<Value>().await.unwrap()
        }
    };
    for _ in 0..2 {
        let me = run(Auth::Cookie(&cookie), "Me", json!({})).await;
        assert_eq!(me["data"]["me"]["email"], ADMIN_EMAIL, "{me}");
        let me = run(Auth::Cookie(&member), "Me", json!({})).await;
        assert_eq!(me["data"]["me"]["email"], "bo@example.com", "{me}");
        let tokens = run(Auth::Cookie(&cookie), "Tokens", json!({ "all": true })).await;
        assert!(tokens["data"]["accessTokens"].is_array(), "{tokens}");
        assert!(
            tokens["data"].get("me").is_none(),
            "only the named operation ran"
        );
        // Without variables the validation is remembered; a later request
        // with variables is validated again, so a wrong value is still refused.
        let tokens = run(Auth::Cookie(&cookie), "Tokens", json!({})).await;
        assert!(tokens["data"]["accessTokens"].is_array(), "{tokens}");
        let bad = run(Auth::Cookie(&cookie), "Tokens", json!({ "all": "yes" })).await;
        assert!(bad["data"].is_null() && bad["errors"].is_array(), "{bad}");
        let unknown = run(Auth::Cookie(&cookie), "Nope", json!({})).await;
        assert!(
            unknown["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Unknown operation")),
            "{unknown}"
        );
    }
    // A document that fails validation fails every time.
    for _ in 0..2 {
        let r = app
            .gql(Auth::Cookie(&cookie), "{ me { id nope } }", json!({}))
            .await;
        assert!(r.message().contains("nope"), "{}", r.body);
    }
    let aliases: String = (0..31).map(|i| format!("a{i}: me {{ id }} ")).collect();
    for _ in 0..2 {
        let r = app
            .gql(
                Auth::Cookie(&cookie),
                &format!("{{ {aliases} }}"),
                json!({}),
            )
            .await;
        assert!(r.message().contains("31 aliases; at most 30"), "{}", r.body);
    }
    app.finish().await;
}

async fn introspection_needs_credentials(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let r = app
        .gql(Auth::None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(
        (r.status, r.reason()),
        (StatusCode::UNAUTHORIZED, "missing")
    );
    let cookie = app.sign_in_admin().await;
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            "{ __schema { queryType { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(r.data()["__schema"]["queryType"]["name"], "Query");
    app.finish().await;
}

/// POSTs `{"query", "variables"}` with the given `Accept`; returns the status,
/// the Content-Type and the body.
async fn post_accepting(
    app: &TestApp,
    auth: Auth<'_>,
    accept: &str,
    query: &str,
    variables: Value,
) -> (StatusCode, String, Value) {
    let resp = with_auth(app.client.post(app.url("/api")), auth)
        .header("accept", accept)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
    (status, ctype, resp.json().await.unwrap())
}

async fn request_errors_have_no_data_with_graphql_response_json(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    const MODERN: &str = "application/graphql-response+json";
    let cookie = app.sign_in_admin().await;
    let auth = Auth::Cookie(&cookie);
    let failing_before_execution = [
        ("syntax error", "{ me { id }", json!({})),
        ("unknown field", "{ me { id } noSuchField }", json!({})),
        (
            "variable coercion",
            "query($n: Int!) { me { id } }",
            json!({ "n": null }),
        ),
    ];
    for (what, query, variables) in failing_before_execution {
        // GraphQL over HTTP, application/graphql-response+json: a request error
        // is a 4xx and the body has no data entry.
        let (status, ctype, body) =
            post_accepting(&app, auth, MODERN, query, variables.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(ctype, MODERN, "{what}");
        assert!(body.get("data").is_none(), "{what}: no data entry: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
        // application/json (legacy) is unchanged: 200 with data null and the errors.
        let (status, ctype, body) =
            post_accepting(&app, auth, "application/json", query, variables).await;
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
        assert_eq!(ctype, "application/json", "{what}");
        assert_eq!(body.get("data"), Some(&Value::Null), "{what}: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }

    // Execution started: a field error is not a request error; the response
    // keeps its data entry (the failed field null) and is a 200.
    let (token, _) = app.issue(auth, "me-only", Some(&["me:read"]), 3600).await;
    for (query, data, path) in [
        (
            "{ me { email accessTokens { id } } }",
            json!({ "me": { "email": ADMIN_EMAIL, "accessTokens": null } }),
            json!(["me", "accessTokens"]),
        ),
        (
            "{ accessTokens { id } }",
            json!({ "accessTokens": null }),
            json!(["accessTokens"]),
        ),
    ] {
        let (status, ctype, body) =
            post_accepting(&app, Auth::Bearer(&token), MODERN, query, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(ctype, MODERN, "{query}");
        assert_eq!(body.get("data"), Some(&data), "{query}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{query}"
        );
        assert_eq!(body["errors"][0]["path"], path, "{query}");
    }
    app.finish().await;
}

async fn health_and_readiness(b: Backend) {
    let mut app = TestApp::start(b, |_| {}).await;
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("x-request-id"));
    // With the database gone, readiness fails while liveness holds.
    let base = app.base.clone();
    let client = app.client.clone();
    app.state.db.clone().close().await.ok();
    let resp = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    app.stop().await;
    app.db.drop_database().await;
}
