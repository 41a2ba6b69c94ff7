//! tokengate as a library (SPEC §7): the bookstore example — its own fields,
//! scopes, table and migration — served by the public face and exercised over
//! HTTP; scopes declared in the TOML file; requiredScopes; the directive in
//! the SDL.

use async_graphql::{Context, Object, Subscription};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::single;
use crate::support::*;

/// The example itself, compiled into the tests: what `cargo run --example
/// bookstore` serves is `bookstore::bookstore().main()`.
#[path = "../../examples/bookstore.rs"]
#[allow(dead_code)]
mod bookstore;

both_backends!(
    bookstore_fields_need_their_scopes_and_the_rest_resolves,
    bookstore_refuses_bad_titles_and_writes_nothing,
    custom_scopes_behave_as_built_in_ones,
    required_scopes_is_the_least_set_a_document_needs,
    scopes_declared_in_the_toml_file_are_scopes,
    application_subscriptions_are_guarded_by_their_scope,
    the_running_server_serves_its_sdl_with_the_directives,
);

single!(
    bookstore_schema_shows_each_fields_scope,
    fields_requiring_undeclared_scopes_are_refused_at_build,
    root_fields_colliding_with_tokengates_are_refused,
    name_clashes_are_errors_that_say_what_to_rename,
    bad_scope_declarations_are_refused_with_their_name,
);

const BOOKS: &str = "{ books { id title addedBy } }";
const ADD: &str = "mutation($t: String!) { addBook(title: $t) { id title addedBy } }";

async fn start(b: Backend) -> TestApp {
    TestApp::start_app(bookstore::bookstore(), b, |_| {}).await
}

async fn add(app: &TestApp, auth: Auth<'_>, title: &str) -> Gql {
    app.gql(auth, ADD, json!({ "t": title })).await
}

fn forbidden_scope(r: &Gql) -> (&str, &str) {
    let e = &r.body["errors"][0];
    (
        e["extensions"]["code"].as_str().unwrap_or_default(),
        e["extensions"]["requiredScope"]
            .as_str()
            .unwrap_or_default(),
    )
}

async fn bookstore_fields_need_their_scopes_and_the_rest_resolves(b: Backend) {
    let app = start(b).await;
    let admin = app.sign_in_admin().await;
    // A member's session holds what members are declared with: both book scopes.
    let member = app.member("mo@example.com").await;
    let r = add(&app, Auth::Cookie(&member), "Dune").await;
    assert_eq!(r.data()["addBook"]["title"], "Dune", "{}", r.body);
    let me = app.me(Auth::Cookie(&member)).await;
    assert_eq!(r.data()["addBook"]["addedBy"], me.data()["me"]["id"]);
    let r = app.gql(Auth::Cookie(&admin), BOOKS, json!({})).await;
    assert_eq!(r.data()["books"][0]["title"], "Dune");

    // Read only: books yes, addBook FORBIDDEN naming books:write, nothing written.
    let (reader, _) = app
        .issue(Auth::Cookie(&member), "reader", Some(&["books:read"]), 3600)
        .await;
    assert_eq!(
        app.gql(Auth::Bearer(&reader), BOOKS, json!({}))
            .await
            .data()["books"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = add(&app, Auth::Bearer(&reader), "Emma").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(forbidden_scope(&r), ("FORBIDDEN", "books:write"));
    assert_eq!(r.body["errors"][0]["path"], json!(["addBook"]));

    // No book scope: books is refused, the rest of the document resolves.
    let (plain, _) = app
        .issue(Auth::Cookie(&member), "plain", Some(&["me:read"]), 3600)
        .await;
    let r = app
        .gql(
            Auth::Bearer(&plain),
            "{ me { email } books { title } }",
            json!({}),
        )
        .await;
    assert_eq!(r.data()["me"]["email"], "mo@example.com");
    assert_eq!(r.data()["books"], Value::Null);
    assert_eq!(forbidden_scope(&r), ("FORBIDDEN", "books:read"));

    // Writer: adds; the book list has both, in order.
    let (writer, _) = app
        .issue(
            Auth::Cookie(&member),
            "writer",
            Some(&["books:read", "books:write"]),
            3600,
        )
        .await;
    assert_eq!(
        add(&app, Auth::Bearer(&writer), "Emma").await.data()["addBook"]["title"],
        "Emma"
    );
    let r = app.gql(Auth::Bearer(&writer), BOOKS, json!({})).await;
    let titles: Vec<&str> = r.data()["books"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Dune", "Emma"]);
    // No credential: 401 before any field, and nothing written.
    assert_eq!(
        add(&app, Auth::None, "Nope").await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app.gql(Auth::Bearer(&writer), BOOKS, json!({})).await;
    assert_eq!(r.data()["books"].as_array().unwrap().len(), 2);
    app.finish().await;
}

async fn bookstore_refuses_bad_titles_and_writes_nothing(b: Backend) {
    let app = start(b).await;
    let admin = app.sign_in_admin().await;
    let long = "x".repeat(201);
    for bad in ["", "   ", long.as_str(), "a\u{7}b"] {
        let r = add(&app, Auth::Cookie(&admin), bad).await;
        assert_eq!(r.code(), "BAD_USER_INPUT", "{bad:?}: {}", r.body);
        assert!(r.message().contains("1 to 200 characters"), "{}", r.body);
    }
    let r = app.gql(Auth::Cookie(&admin), BOOKS, json!({})).await;
    assert_eq!(r.data()["books"], json!([]));
    let exactly = "é".repeat(200);
    let r = add(&app, Auth::Cookie(&admin), &exactly).await;
    assert_eq!(r.data()["addBook"]["title"], exactly.as_str(), "{}", r.body);
    app.finish().await;
}

async fn custom_scopes_behave_as_built_in_ones(b: Backend) {
    let app = start(b).await;
    let admin = app.sign_in_admin().await;
    let member = app.member("mo@example.com").await;

    // updateAccessToken: unknown names listed with the valid ones; subset rule.
    let r = app
        .gql(
            Auth::Cookie(&member),
            "mutation { updateAccessToken(name: \"t\", scopes: [\"books:raed\"]) { success } }",
            json!({}),
        )
        .await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    assert!(
        r.message().contains("books:raed") && r.message().contains("books:write"),
        "{}",
        r.body
    );
    let (narrow, _) = app
        .issue(
            Auth::Cookie(&member),
            "narrow",
            Some(&["tokens:write", "books:read"]),
            3600,
        )
        .await;
    let r = app
        .gql(
            Auth::Bearer(&narrow),
            "mutation { updateAccessToken(name: \"wider\", scopes: [\"books:write\"]) { success } }",
            json!({}),
        )
        .await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    assert!(
        r.message().contains("cannot grant `books:write`"),
        "{}",
        r.body
    );
    // Left out, scopes default to all the caller holds, custom ones included.
    let r = app
        .gql(
            Auth::Bearer(&narrow),
            "mutation($e: Int) { updateAccessToken(name: \"same\", expirationTime: $e) { accessToken { scopes } } }",
            json!({ "e": chrono::Utc::now().timestamp() + 600 }),
        )
        .await;
    assert_eq!(
        r.data()["updateAccessToken"]["accessToken"]["scopes"],
        json!(["tokens:write", "books:read"]),
        "{}",
        r.body
    );

    // The OAuth side: metadata, a service account, client credentials, scope
    // checks, introspection and exchange.
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let supported = meta["scopes_supported"].as_array().unwrap();
    assert!(supported.contains(&json!("books:read")) && supported.contains(&json!("books:write")));
    let r = app
        .gql(
            Auth::Cookie(&admin),
            "mutation { createServiceAccount(name: \"sync\", scopes: [\"books:read\"]) { clientSecret serviceAccount { clientId scopes } } }",
            json!({}),
        )
        .await;
    let account = &r.data()["createServiceAccount"];
    assert_eq!(
        account["serviceAccount"]["scopes"],
        json!(["books:read"]),
        "{}",
        r.body
    );
    let client_id = account["serviceAccount"]["clientId"].as_str().unwrap();
    let secret = account["clientSecret"].as_str().unwrap();
    let token_for = |scope: &'static str| {
        app.client
            .post(app.url("/oauth2/token"))
            .basic_auth(client_id, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
    };
    let resp = token_for("books:write").await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
    let resp = token_for("books:read").await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["scope"], "books:read");
    let machine = body["access_token"].as_str().unwrap();
    let r = app.gql(Auth::Bearer(machine), BOOKS, json!({})).await;
    assert_eq!(r.data()["books"], json!([]), "{}", r.body);
    assert_eq!(
        forbidden_scope(&add(&app, Auth::Bearer(machine), "x").await),
        ("FORBIDDEN", "books:write")
    );
    let intro: Value = app
        .client
        .post(app.url("/oauth2/introspect"))
        .basic_auth(client_id, Some(secret))
        .form(&[("token", machine)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(intro["active"], true);
    assert_eq!(intro["scope"], "books:read");
    let exchanged: Value = app
        .client
        .post(app.url("/oauth2/token"))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", machine),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("scope", "books:read"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(exchanged["scope"], "books:read", "{exchanged}");

    // The console offers the custom scopes with their descriptions.
    let html = app
        .client
        .get(app.url("/console"))
        .header("cookie", format!("tokengate_session={member}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"value="books:read""#), "{html}");
    assert!(html.contains("Read the catalogue") && html.contains("Add books to the catalogue"));
    assert!(!html.contains(r#"value="users:read""#));
    app.finish().await;
}

async fn required_scopes_is_the_least_set_a_document_needs(b: Backend) {
    let app = start(b).await;
    let admin = app.sign_in_admin().await;
    let member = app.member("mo@example.com").await;
    let ask = |query: &'static str, op: Option<&'static str>| {
        let cookie = member.clone();
        let app = &app;
        async move {
            app.gql(
                Auth::Cookie(&cookie),
                "query($q: String!, $op: String) { requiredScopes(query: $q, operationName: $op) }",
                json!({ "q": query, "op": op }),
            )
            .await
        }
    };
    let cases: [(&str, Option<&str>, &[&str]); 7] = [
        ("{ books { title } }", None, &["books:read"]),
        ("{ __typename __schema { queryType { name } } }", None, &[]),
        (
            "mutation { a: addBook(title: \"x\") { ...F } } fragment F on Book { title }",
            None,
            &["books:write"],
        ),
        (
            "query A { books { id } } query B { me { email accessTokens { id } } }",
            Some("B"),
            &["me:read", "tokens:read"],
        ),
        (
            "{ users { email accessTokens { id } } books { ... on Book { title } } }",
            None,
            &["tokens:read", "users:read", "books:read"],
        ),
        (
            "query { me { email } ...Q } fragment Q on Query { books { id } }",
            None,
            &["me:read", "books:read"],
        ),
        ("{ requiredScopes(query: \"{ books { id } }\") }", None, &[]),
    ];
    for (query, op, want) in cases {
        let r = ask(query, op).await;
        assert_eq!(
            r.data()["requiredScopes"],
            json!(want),
            "{query}: {}",
            r.body
        );
    }
    for (bad, op, says) in [
        ("{ books {", None, "does not parse"),
        (
            "{ nope }",
            None,
            "cannot query field `nope` on type `Query`",
        ),
        ("{ books { ...G } }", None, "unknown fragment `G`"),
        (
            "query A { me { id } } query B { books { id } }",
            None,
            "operationName",
        ),
        ("query A { me { id } }", Some("Z"), "no operation named `Z`"),
    ] {
        let r = ask(bad, op).await;
        assert_eq!(r.code(), "BAD_USER_INPUT", "{bad}: {}", r.body);
        assert!(r.message().contains(says), "{bad}: {}", r.body);
    }
    // Fragments spread many times over are walked once each: 3^30 paths,
    // answered at once.
    let mut blowup = String::from("query { ...f0 } ");
    for i in 0..30 {
        blowup.push_str(&format!(
            "fragment f{i} on Query {{ ...f{n} ...f{n} ...f{n} }} ",
            n = i + 1
        ));
    }
    blowup.push_str("fragment f30 on Query { me { id } }");
    let r = app
        .gql(
            Auth::Cookie(&member),
            "query($q: String!) { requiredScopes(query: $q) }",
            json!({ "q": blowup }),
        )
        .await;
    assert_eq!(r.data()["requiredScopes"], json!(["me:read"]), "{}", r.body);
    // Run as a document itself, it is refused before any walk over it.
    let r = app.gql(Auth::Cookie(&member), &blowup, json!({})).await;
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expands to"),
        "{}",
        r.body
    );
    // Enough, and no more: a token with exactly the answer runs the document;
    // without one of them it is refused.
    let doc = "{ me { email } books { title } }";
    let r = app
        .gql(
            Auth::Cookie(&member),
            "query($q: String!) { requiredScopes(query: $q) }",
            json!({ "q": doc }),
        )
        .await;
    let names: Vec<String> = serde_json::from_value(r.data()["requiredScopes"].clone()).unwrap();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(names, ["me:read", "books:read"]);
    let (exact, _) = app
        .issue(Auth::Cookie(&member), "exact", Some(&names), 3600)
        .await;
    let r = app.gql(Auth::Bearer(&exact), doc, json!({})).await;
    assert!(r.body.get("errors").is_none(), "{}", r.body);
    let (less, _) = app
        .issue(Auth::Cookie(&member), "less", Some(&["me:read"]), 3600)
        .await;
    let r = app.gql(Auth::Bearer(&less), doc, json!({})).await;
    assert_eq!(forbidden_scope(&r), ("FORBIDDEN", "books:read"));
    // Any authenticated caller may ask, even with no scope for the fields asked
    // about; nobody unauthenticated may.
    let r = app
        .gql(
            Auth::Bearer(&less),
            "{ requiredScopes(query: \"{ users { id } }\") }",
            json!({}),
        )
        .await;
    assert_eq!(r.data()["requiredScopes"], json!(["users:read"]));
    let r = app
        .gql(
            Auth::None,
            "{ requiredScopes(query: \"{ me { id } }\") }",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    drop(admin);
    app.finish().await;
}

/// A TOML file with `[[scopes]]`, for the binary's configuration.
fn scopes_file(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("tokengate.toml");
    std::fs::write(&path, body).unwrap();
    path
}

async fn scopes_declared_in_the_toml_file_are_scopes(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = scopes_file(
        dir.path(),
        r#"
[[scopes]]
name = "reports:read"
description = "Read the monthly reports"
roles = ["member"]

[[scopes]]
name = "reports:export"
description = "Export reports"
"#,
    );
    let file = tokengate::Config::load(&tokengate::config::ConfigArgs {
        config: Some(path),
        ..Default::default()
    })
    .unwrap();
    let app = TestApp::start(b, |c| c.scopes = file.scopes.clone()).await;
    let member = app.member("mo@example.com").await;
    // Members hold what names them; an admin-only scope stays the admin's.
    let (token, _) = app
        .issue(Auth::Cookie(&member), "r", Some(&["reports:read"]), 3600)
        .await;
    let r = app
        .gql(
            Auth::Bearer(&token),
            "{ accessTokens { scopes } }",
            json!({}),
        )
        .await;
    assert_eq!(forbidden_scope(&r), ("FORBIDDEN", "tokens:read"));
    let r = app
        .gql(
            Auth::Cookie(&member),
            "mutation { updateAccessToken(name: \"x\", scopes: [\"reports:export\"]) { success } }",
            json!({}),
        )
        .await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    assert!(
        r.message().contains("cannot grant `reports:export`"),
        "{}",
        r.body
    );
    let admin = app.sign_in_admin().await;
    let (exporter, _) = app
        .issue(Auth::Cookie(&admin), "e", Some(&["reports:export"]), 3600)
        .await;
    let r = app
        .gql(
            Auth::Cookie(&admin),
            "{ accessTokens { name scopes } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r.data()["accessTokens"][0]["scopes"],
        json!(["reports:export"])
    );
    assert!(!exporter.is_empty());
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(meta["scopes_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("reports:export")));
    let html = app
        .client
        .get(app.url("/console"))
        .header("cookie", format!("tokengate_session={member}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Read the monthly reports"));
    assert!(!html.contains("reports:export"));
    app.finish().await;
}

/// The SDL a running server serves, policy included, to authenticated callers.
async fn the_running_server_serves_its_sdl_with_the_directives(b: Backend) {
    let app = start(b).await;
    let resp = app
        .client
        .get(app.url("/api/schema.graphql"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let member = app.member("mo@example.com").await;
    let (plain, _) = app
        .issue(Auth::Cookie(&member), "plain", Some(&["me:read"]), 3600)
        .await;
    let resp = app
        .client
        .get(app.url("/api/schema.graphql"))
        .bearer_auth(&plain)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let sdl = resp.text().await.unwrap();
    assert_eq!(sdl, app.state.schema.sdl());
    assert!(sdl.contains(r#"books: [Book!]! @requiresScopes(scopes: [["books:read"]])"#));
    app.finish().await;
}

fn bookstore_schema_shows_each_fields_scope() {
    let (_, schema) = bookstore::bookstore()
        .prepare(tokengate::Config::default())
        .unwrap();
    let sdl = schema.sdl();
    for line in [
        r#"books: [Book!]! @requiresScopes(scopes: [["books:read"]])"#,
        r#"addBook(title: String!): Book! @requiresScopes(scopes: [["books:write"]])"#,
        r#"me: User! @requiresScopes(scopes: [["me:read"]])"#,
        "directive @requiresScopes(scopes: [[String!]!]!) on FIELD_DEFINITION",
        "requiredScopes(query: String!, operationName: String): [String!]!",
    ] {
        assert!(sdl.contains(line), "missing {line} in\n{sdl}");
    }
}

struct Undeclared;

#[Object]
impl Undeclared {
    #[graphql(directive = tokengate::requires_scope::apply("reports:read"))]
    async fn report(&self, _ctx: &Context<'_>) -> String {
        String::new()
    }
}

fn fields_requiring_undeclared_scopes_are_refused_at_build() {
    let err = tokengate::TokenGate::new()
        .query(Undeclared)
        .prepare(tokengate::Config::default())
        .err()
        .expect("an undeclared scope is refused");
    assert!(
        err.to_string()
            .contains("Query.report requires scope `reports:read`, which is not declared"),
        "{err}"
    );
    let ok = tokengate::TokenGate::new()
        .query(Undeclared)
        .scope(tokengate::ScopeDef::new("reports:read", "Read reports"))
        .prepare(tokengate::Config::default());
    assert!(ok.is_ok());
}

struct Collides;

#[Object]
impl Collides {
    async fn me(&self) -> String {
        String::new()
    }
    async fn mine(&self) -> String {
        String::new()
    }
}

fn root_fields_colliding_with_tokengates_are_refused() {
    let err = tokengate::TokenGate::new()
        .query(Collides)
        .prepare(tokengate::Config::default())
        .err()
        .expect("a collision is refused");
    assert_eq!(
        err.to_string(),
        "the application's Query fields `me` collide with tokengate's; rename them"
    );
    let err = tokengate::TokenGate::new()
        .mutation(Collides)
        .prepare(tokengate::Config::default());
    assert!(err.is_ok(), "Mutation has no `me`");
}

/// What a newcomer writes first: an object called `Query`.
mod newcomer {
    use async_graphql::{Object, SimpleObject};

    pub struct Query;

    #[Object]
    impl Query {
        async fn hello(&self) -> &str {
            "hello"
        }
    }

    /// Shares its GraphQL name with tokengate's `User`.
    #[derive(SimpleObject)]
    pub struct User {
        pub nickname: String,
    }

    pub struct People;

    #[Object]
    impl People {
        async fn someone(&self) -> User {
            User {
                nickname: "x".into(),
            }
        }
    }
}

fn name_clashes_are_errors_that_say_what_to_rename() {
    let err = tokengate::TokenGate::new()
        .query(newcomer::Query)
        .prepare(tokengate::Config::default())
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("object is named `Query`")
            && err.to_string().contains("#[graphql(name"),
        "{err}"
    );
    let err = tokengate::TokenGate::new()
        .query(newcomer::People)
        .prepare(tokengate::Config::default())
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("conflict with tokengate's") && err.to_string().contains("`User`"),
        "{err}"
    );
}

fn bad_scope_declarations_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    for (body, says) in [
        (
            "[[scopes]]\nname = \"Reports\"\ndescription = \"x\"\n",
            "scope name `Reports` is not valid",
        ),
        (
            "[[scopes]]\nname = \"me:read\"\ndescription = \"x\"\n",
            "scope `me:read` is declared twice",
        ),
        (
            "[[scopes]]\nname = \"a:b\"\ndescription = \"x\"\nroles = [\"owner\"]\n",
            "unknown role `owner`",
        ),
        (
            "[[scopes]]\nname = \"a:b\"\n",
            "missing field `description`",
        ),
    ] {
        let path = scopes_file(dir.path(), body);
        let err = tokengate::Config::load(&tokengate::config::ConfigArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains(says), "{body}: {err}");
    }
    // Declared twice, once in code and once in the file.
    let config = tokengate::Config {
        scopes: vec![tokengate::ScopeDef::new("books:read", "again")],
        ..Default::default()
    };
    let err = bookstore::bookstore().prepare(config).err().unwrap();
    assert!(err
        .to_string()
        .contains("scope `books:read` is declared twice"));
}

struct Ticks;

#[Subscription]
impl Ticks {
    #[graphql(directive = tokengate::requires_scope::apply("ticks:read"))]
    async fn ticks(&self) -> impl async_graphql::futures_util::Stream<Item = i32> {
        async_graphql::futures_util::stream::iter(0..3)
    }
}

/// A subscription's root field makes a stream instead of resolving, so its
/// scope is checked before the operation runs; the SDL shows it like any other.
async fn application_subscriptions_are_guarded_by_their_scope(b: Backend) {
    let gate = tokengate::TokenGate::new().subscription(Ticks).scope(
        tokengate::ScopeDef::new("ticks:read", "Watch the ticks")
            .held_by([tokengate::Role::Member]),
    );
    let app = TestApp::start_app(gate, b, |_| {}).await;
    let member = app.member("mo@example.com").await;
    let (plain, _) = app
        .issue(Auth::Cookie(&member), "plain", Some(&["me:read"]), 3600)
        .await;
    let r = app
        .gql(Auth::Bearer(&plain), "subscription { ticks }", json!({}))
        .await;
    assert_eq!(
        forbidden_scope(&r),
        ("FORBIDDEN", "ticks:read"),
        "{}",
        r.body
    );
    let r = app
        .gql(
            Auth::Bearer(&plain),
            "subscription S { ...T } fragment T on Subscription { ticks }",
            json!({}),
        )
        .await;
    assert_eq!(
        forbidden_scope(&r),
        ("FORBIDDEN", "ticks:read"),
        "{}",
        r.body
    );
    let r = app
        .gql(
            Auth::Cookie(&member),
            "{ requiredScopes(query: \"subscription { ticks }\") }",
            json!({}),
        )
        .await;
    assert_eq!(r.data()["requiredScopes"], json!(["ticks:read"]));
    let sdl = app.state.schema.sdl();
    assert!(
        sdl.contains(r#"ticks: Int! @requiresScopes(scopes: [["ticks:read"]])"#),
        "{sdl}"
    );
    app.finish().await;
}
