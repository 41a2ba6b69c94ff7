//! The test harness: a real tokengate server on an ephemeral port, on a fresh
//! SQLite file or a fresh PostgreSQL database, with helpers to sign in, issue
//! tokens and send GraphQL.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{json, Value};
use tokengate::auth::secret::Secret;
use tokengate::server::Running;
use tokengate::{AppState, Config};
use tokio::sync::oneshot;

pub const ADMIN_EMAIL: &str = "ada@example.com";
pub const ADMIN_PASSWORD: &str = "correct-horse-battery-staple";
pub const MEMBER_PASSWORD: &str = "member-password-1234";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL database the tests connect to first, to create their own.
pub fn pg_admin_url() -> String {
    std::env::var("TOKENGATE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A connection to [`pg_admin_url`] that gives up after 10 s rather than the
/// pool's default 30 (`--include-ignored` without a server then fails fast).
async fn pg_admin() -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = sea_orm::ConnectOptions::new(pg_admin_url());
    options
        .max_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10));
    Database::connect(options).await
}

/// Whether this is CI (`CI` set, and not `false` or `0`): there, a missing
/// dependency fails its tests instead of skipping them.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A fresh database: a file in a temporary directory, or a new PostgreSQL database.
pub struct TestDb {
    pub url: String,
    pub dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    /// A fresh database. Panics when it cannot be made: the runner has already
    /// marked PostgreSQL tests ignored when PostgreSQL is unreachable outside CI.
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("tokengate.db").display()
                );
                TestDb {
                    url,
                    dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let admin = pg_admin()
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at {}: {e}", pg_admin_url()));
                let name = format!("tokengate_test_{}", uuid_simple());
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create database");
                admin.close().await.ok();
                let base = pg_admin_url();
                let url = match base.rsplit_once('/') {
                    Some((prefix, _)) => format!("{prefix}/{name}"),
                    None => panic!("bad TOKENGATE_TEST_PG_URL"),
                };
                TestDb {
                    url,
                    dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// Another handle on the same database that does not own it (for a second
    /// server process sharing it).
    pub fn shared(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            dir: None,
            pg_name: None,
        }
    }

    /// Drops a PostgreSQL database made for the test now (else `Drop` does).
    pub async fn drop_database(&mut self) {
        if let Some(name) = self.pg_name.take() {
            drop_pg_database(&name).await;
        }
    }
}

/// `DROP DATABASE … WITH (FORCE)`: also ends the connections a server left open.
async fn drop_pg_database(name: &str) {
    let dropped = async {
        let admin = pg_admin().await?;
        let result = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        admin.close().await.ok();
        result.map(|_| ())
    };
    if let Err(e) = dropped.await {
        eprintln!("could not drop test database {name}: {e}");
    }
}

/// A database made for a test is dropped however the test ends, a panic
/// included (`Drop` runs while unwinding). It runs on a runtime of its own in a
/// thread of its own: the test's runtime may be the one unwinding.
impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => rt.block_on(drop_pg_database(&name)),
                Err(e) => eprintln!("could not drop test database {name}: {e}"),
            }
        });
        let _ = dropping.join();
    }
}

fn uuid_simple() -> String {
    Secret::random()
        .expose()
        .to_lowercase()
        .replace(['-', '_'], "x")[..20]
        .to_owned()
}

/// A running server and a client for it.
pub struct TestApp {
    pub base: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// How a request authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    None,
    Cookie(&'a str),
    Bearer(&'a str),
}

/// A GraphQL response as the test sees it.
#[derive(Debug)]
pub struct Gql {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Gql {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    /// The first error's `extensions.code`.
    pub fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("")
    }
    pub fn reason(&self) -> &str {
        self.body["errors"][0]["extensions"]["reason"]
            .as_str()
            .unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.body["errors"][0]["message"].as_str().unwrap_or("")
    }
    pub fn www_authenticate(&self) -> &str {
        self.headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// The test configuration: ephemeral port, the given database, a known admin.
pub fn test_config(db_url: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: db_url.to_owned(),
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(Secret::new(ADMIN_PASSWORD)),
        ..Config::default()
    }
}

impl TestApp {
    /// Starts a server on a fresh database; `tweak` adjusts the configuration.
    pub async fn start(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::new(backend).await;
        let mut config = test_config(&db.url);
        tweak(&mut config);
        Self::start_on(db, config).await
    }

    /// Starts a server with `config` on an existing database.
    pub async fn start_on(db: TestDb, config: Config) -> TestApp {
        Self::start_gate(tokengate::TokenGate::new(), db, config).await
    }

    /// Starts an application built on tokengate (its public face) on a fresh
    /// database; `tweak` adjusts the configuration.
    pub async fn start_app<Q, M, S>(
        gate: tokengate::TokenGate<Q, M, S>,
        backend: Backend,
        tweak: impl FnOnce(&mut Config),
    ) -> TestApp
    where
        Q: async_graphql::ObjectType + 'static,
        M: async_graphql::ObjectType + 'static,
        S: async_graphql::SubscriptionType + 'static,
    {
        let db = TestDb::new(backend).await;
        let mut config = test_config(&db.url);
        tweak(&mut config);
        Self::start_gate(gate, db, config).await
    }

    async fn start_gate<Q, M, S>(
        gate: tokengate::TokenGate<Q, M, S>,
        db: TestDb,
        config: Config,
    ) -> TestApp
    where
        Q: async_graphql::ObjectType + 'static,
        M: async_graphql::ObjectType + 'static,
        S: async_graphql::SubscriptionType + 'static,
    {
        let (tx, rx) = oneshot::channel::<()>();
        let Running {
            addr,
            state,
            handle,
        } = gate
            .start(config.clone(), async move {
                let _ = rx.await;
            })
            .await
            .expect("server starts");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestApp {
            base: format!("http://{addr}"),
            state,
            client,
            db,
            config,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server exits cleanly");
        }
        self.state.db.clone().close().await.ok();
    }

    /// Stops this server and starts another on the same database and settings.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let db = std::mem::replace(
            &mut self.db,
            TestDb {
                url: String::new(),
                dir: None,
                pg_name: None,
            },
        );
        let mut config = self.config.clone();
        // Another port (the old one is held while the new server binds, so the
        // system cannot hand it back): the deployment's issuer stays.
        config.listen = "127.0.0.1:0".parse().unwrap();
        let old = self.base.trim_start_matches("http://").to_owned();
        let _hold = std::net::TcpListener::bind(&old).ok();
        TestApp::start_on(db, config).await
    }

    /// Stops the server and drops its database.
    pub async fn finish(mut self) {
        self.stop().await;
        self.db.drop_database().await;
    }

    /// A second connection to the same database, for checks behind the API's back.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.state.db
    }

    /// Signs in with JSON and returns the session cookie value.
    pub async fn sign_in(&self, email: &str, password: &str) -> String {
        let resp = self
            .client
            .post(self.url("/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "sign-in as {email}");
        cookie_value(resp.headers()).expect("session cookie")
    }

    pub async fn sign_in_admin(&self) -> String {
        self.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Creates a member through the service and signs them in.
    pub async fn member(&self, email: &str) -> String {
        tokengate::users::create(
            self.conn(),
            email,
            &Secret::new(MEMBER_PASSWORD),
            tokengate::auth::Role::Member,
            None,
            None,
        )
        .await
        .expect("create member");
        self.sign_in(email, MEMBER_PASSWORD).await
    }

    /// POSTs a GraphQL request.
    pub async fn gql(&self, auth: Auth<'_>, query: &str, variables: Value) -> Gql {
        let req = self
            .client
            .post(self.url("/api"))
            .json(&json!({ "query": query, "variables": variables }));
        let resp = with_auth(req, auth).send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        Gql {
            status,
            headers,
            body,
        }
    }

    /// Issues a token with `updateAccessToken`; returns (token, id).
    pub async fn issue(
        &self,
        auth: Auth<'_>,
        name: &str,
        scopes: Option<&[&str]>,
        lifetime_secs: i64,
    ) -> (String, String) {
        let exp = chrono::Utc::now().timestamp() + lifetime_secs;
        let r = self
            .gql(
                auth,
                "mutation($exp: Int, $name: String, $scopes: [String!]) { updateAccessToken(expirationTime: $exp, name: $name, scopes: $scopes) { success sessionJwt accessToken { id } } }",
                json!({ "exp": exp, "name": name, "scopes": scopes }),
            )
            .await;
        assert_eq!(
            r.data()["updateAccessToken"]["success"],
            json!(true),
            "issue failed: {}",
            r.body
        );
        let p = &r.data()["updateAccessToken"];
        (
            p["sessionJwt"].as_str().unwrap().to_owned(),
            p["accessToken"]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// `{ me { id email } }`: who a credential is, or why it is refused.
    pub async fn me(&self, auth: Auth<'_>) -> Gql {
        self.gql(auth, "{ me { id email } }", json!({})).await
    }

    /// `revokeAccessToken(id)`, answering `{ id status revokedAt }`.
    pub async fn revoke(&self, auth: Auth<'_>, id: &str) -> Gql {
        self.gql(
            auth,
            "mutation($id: ID!) { revokeAccessToken(id: $id) { id status revokedAt } }",
            json!({ "id": id }),
        )
        .await
    }

    /// `GET path` as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET /.well-known/jwks.json`.
    pub async fn jwks(&self) -> Value {
        self.get_json("/.well-known/jwks.json").await
    }

    /// `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Sends [`TestApp::me`] until it is refused or `within` passes (a change
    /// made by another process reaches this one's credential cache by polling);
    /// returns the last answer and how long it took.
    pub async fn refused_within(&self, auth: Auth<'_>, within: Duration) -> (Gql, Duration) {
        let start = std::time::Instant::now();
        loop {
            let r = self.me(auth).await;
            if r.status == StatusCode::UNAUTHORIZED || start.elapsed() >= within {
                return (r, start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs the batched last-used writer now, as its timer would (`force`: as
    /// at shutdown, ignoring the minimum gap between two writes of a token).
    /// A test that calls it sets a long `last_used_flush_interval`, so that the
    /// timer cannot take the notes first and leave this call nothing to write.
    pub async fn flush_last_used(&self, force: bool) {
        self.state.last_used.flush(&self.state, force).await;
    }
}

pub fn with_auth(req: reqwest::RequestBuilder, auth: Auth<'_>) -> reqwest::RequestBuilder {
    match auth {
        Auth::None => req,
        Auth::Cookie(c) => req.header("cookie", format!("tokengate_session={c}")),
        Auth::Bearer(t) => req.bearer_auth(t),
    }
}

/// The `tokengate_session` value from a `Set-Cookie` header.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    set_cookie(headers).and_then(|c| {
        c.split(';')
            .next()?
            .strip_prefix("tokengate_session=")
            .map(str::to_owned)
    })
}

pub fn set_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Audit actions recorded so far, oldest first.
pub async fn audit_actions(db: &DatabaseConnection) -> Vec<String> {
    use sea_orm::{EntityTrait, QueryOrder};
    entity::audit_event::Entity::find()
        .order_by_asc(entity::audit_event::Column::Id)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

/// Part `n` of a JWT (0: header, 1: claims), decoded, without verifying it.
fn jwt_part(token: &str, n: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(n).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// A JWT's header, unverified.
pub fn jwt_header(token: &str) -> Value {
    jwt_part(token, 0)
}

/// A JWT's claims, unverified.
pub fn jwt_claims(token: &str) -> Value {
    jwt_part(token, 1)
}

/// The `kid` a token was signed with.
pub fn kid_of(token: &str) -> String {
    jwt_header(token)["kid"].as_str().unwrap().to_owned()
}
