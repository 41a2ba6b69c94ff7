//! The `tokengate` binary: `serve` output and logs, the first administrator's
//! one-time password, configuration precedence, the schema file, and the CLI
//! commands on SQLite and PostgreSQL.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;
use crate::{both_backends, single};

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

/// A `tokengate serve` child process.
pub(crate) struct Served {
    child: Child,
    pub(crate) base: String,
    stderr: std::thread::JoinHandle<String>,
}

pub(crate) fn serve(db_url: &str, envs: &[(&str, &str)], args: &[&str]) -> Served {
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", "127.0.0.1:0", "--database-url", db_url])
        .args(args)
        .env_remove("TOKENGATE_ADMIN_EMAIL")
        .env_remove("TOKENGATE_ADMIN_PASSWORD")
        .env_remove("TOKENGATE_LISTEN")
        .env_remove("DATABASE_URL")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn tokengate");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first stdout line: {line:?}"))
        .to_owned();
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        s + &rest
    });
    Served {
        child,
        base,
        stderr,
    }
}

impl Served {
    /// Sends SIGKILL: the process ends at once, mid-whatever it was doing.
    pub(crate) fn kill9(mut self) {
        Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        let _ = self.child.wait();
        let _ = self.stderr.join();
    }

    /// Sends SIGTERM, expects a clean exit, returns everything it wrote.
    pub(crate) fn terminate(mut self) -> String {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "graceful shutdown exits 0, got {status}");
        self.stderr.join().unwrap()
    }
}

fn run(args: &[&str], stdin: Option<&str>, envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("DATABASE_URL")
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

single!(
    committed_schema_equals_the_served_schema,
    async first_admin_gets_a_one_time_password_on_stderr_and_logs_hold_no_secrets,
    async flags_beat_environment_beat_file,
    durations_out_of_range_are_refused_at_start,
);

fn committed_schema_equals_the_served_schema() {
    let (ok, sdl, _) = run(&["schema"], None, &[]);
    assert!(ok);
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert_eq!(
        sdl, committed,
        "schema.graphql drifted: run `cargo run -- schema > schema.graphql`"
    );
    let (_, schema) = tokengate::TokenGate::new()
        .prepare(tokengate::Config::default())
        .unwrap();
    assert_eq!(sdl, schema.sdl());
}

async fn first_admin_gets_a_one_time_password_on_stderr_and_logs_hold_no_secrets() {
    let db = TestDb::new(Backend::Sqlite).await;
    let served = serve(&db.url, &[("TOKENGATE_LOG", "debug")], &[]);
    let client = reqwest::Client::new();
    // The bootstrap lines, the password among them, go to stderr before
    // "listening": once the server is ready, stop it and read what it wrote.
    assert_eq!(
        client
            .get(format!("{}/readyz", served.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let first_run = served.terminate();
    assert!(
        !first_run.contains('\u{1b}'),
        "colour codes in logs written to a pipe: {first_run:?}"
    );
    // The access line of that request, with its context.
    assert!(
        first_run.lines().any(|l| l
            .contains(" INFO tokengate::access: finished processing request request_id=")
            && l.contains(" method=GET path=/readyz status=200 latency_us=")),
        "no access line for /readyz: {first_run}"
    );
    let password = first_run
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .expect("one-time password printed")
        .trim()
        .to_owned();
    assert!(first_run.contains("email:    admin@localhost"));

    // Second start: nothing printed about an administrator, and the password works.
    let served = serve(
        &db.url,
        &[("TOKENGATE_LOG", "debug"), ("TOKENGATE_LOG_FORMAT", "json")],
        &[],
    );
    let resp = client
        .post(format!("{}/auth/login", served.base))
        .json(&json!({ "email": "admin@localhost", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = cookie_value(resp.headers()).unwrap();
    // Use the session, issue a token, use it, fail a sign-in: all logged at debug.
    let exp = chrono::Utc::now().timestamp() + 3600;
    let body: Value = client
        .post(format!("{}/api", served.base))
        .header("cookie", format!("tokengate_session={cookie}"))
        .json(&json!({ "query": format!("mutation {{ updateAccessToken(expirationTime: {exp}) {{ sessionJwt }} }}") }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["data"]["updateAccessToken"]["sessionJwt"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = client
        .post(format!("{}/api", served.base))
        .bearer_auth(&token)
        .json(&json!({ "query": "{ me { email } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = client
        .post(format!("{}/api", served.base))
        .bearer_auth(format!("{token}x"))
        .json(&json!({ "query": "{ me { email } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let refused_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let _ = client
        .post(format!("{}/auth/login", served.base))
        .json(&json!({ "email": "admin@localhost", "password": "guess-password-123" }))
        .send()
        .await
        .unwrap();
    let logs = served.terminate();
    assert!(
        !logs.contains("created the first administrator"),
        "bootstrap ran twice"
    );
    // Every log line is one JSON object (the one-time password and the
    // "listening on" notice are printed, not logged); the refused request's
    // access line names it by the id it was answered with.
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["request_id"] == refused_id.as_str() && l["target"] == "tokengate::access")
        .unwrap_or_else(|| panic!("no line for request {refused_id}: {logs}"));
    assert_eq!(access["message"], "finished processing request");
    assert_eq!(access["status"], 401);
    assert_eq!(access["method"], "POST");
    assert_eq!(access["path"], "/api");
    for secret in [
        password.as_str(),
        cookie.as_str(),
        token.as_str(),
        token.rsplit('.').next().unwrap(),
        "guess-password-123",
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

async fn flags_beat_environment_beat_file() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokengate.toml");
    std::fs::write(&file, "session_lifetime = \"5m\"\nmax_token_lifetime = \"2d\"\nissuer = \"https://from-file.example\"\n").unwrap();
    let file = file.to_str().unwrap().to_owned();
    let envs = [
        ("TOKENGATE_ADMIN_EMAIL", ADMIN_EMAIL),
        ("TOKENGATE_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("TOKENGATE_MAX_TOKEN_LIFETIME", "1d"),
        ("TOKENGATE_ISSUER", "https://from-env.example"),
    ];
    let served = serve(
        &db.url,
        &envs,
        &["--config", &file, "--issuer", "https://from-flag.example"],
    );
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/auth/login", served.base))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    let set = set_cookie(resp.headers()).unwrap();
    assert!(
        set.contains("Max-Age=300"),
        "session lifetime from the file: {set}"
    );
    let cookie = cookie_value(resp.headers()).unwrap();
    let issue = |exp: i64| {
        client
            .post(format!("{}/api", served.base))
            .header("cookie", format!("tokengate_session={cookie}"))
            .json(&json!({ "query": format!("mutation {{ updateAccessToken(expirationTime: {exp}) {{ sessionJwt }} }}") }))
            .send()
    };
    let now = chrono::Utc::now().timestamp();
    let over: Value = issue(now + 86400 + 3600)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        over["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "env's 1d beats the file's 2d: {over}"
    );
    let ok: Value = issue(now + 3600).await.unwrap().json().await.unwrap();
    let token = ok["data"]["updateAccessToken"]["sessionJwt"]
        .as_str()
        .unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], "https://from-flag.example");
    served.terminate();

    let (ok, _, err) = run(
        &["--config", "/nonexistent/tokengate.toml", "migrate"],
        None,
        &[],
    );
    assert!(!ok);
    assert!(err.contains("cannot read config file"), "{err}");
}

fn durations_out_of_range_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let file = dir.path().join("tokengate.toml");
    std::fs::write(&file, "max_token_lifetime = \"10000000d\"\n").unwrap();
    let file = file.to_str().unwrap();
    // (flags, environment, the setting the error must name)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 5] = [
        (
            &["--max-token-lifetime", "10000000d"],
            &[],
            "--max-token-lifetime",
        ),
        (
            &["--session-lifetime", "10000000d"],
            &[],
            "--session-lifetime",
        ),
        (&["--session-lifetime", "0s"], &[], "--session-lifetime"),
        (
            &[],
            &[("TOKENGATE_SESSION_LIFETIME", "100000y")],
            "--session-lifetime",
        ),
        (&["--config", file], &[], "--max-token-lifetime"),
    ];
    for (args, envs, flag) in cases {
        let (ok, _, err) = run(
            &[&["--database-url", &url], args, &["migrate"]].concat(),
            None,
            envs,
        );
        assert!(!ok, "{args:?} {envs:?} was accepted");
        assert!(
            err.contains(flag) && err.contains("out of range"),
            "{args:?} {envs:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // Nothing was written: the refusal comes before the database is opened.
    assert!(!dir.path().join("t.db").exists());
    let (ok, _, err) = run(&["--issuer", "auth.example.com", "schema"], None, &[]);
    assert!(!ok);
    assert!(err.contains("not an http(s) URL"), "{err}");
    // The webhook and gateway settings (SPEC §8, §10).
    let bad_upstream = dir.path().join("upstream.toml");
    std::fs::write(
        &bad_upstream,
        "[upstream]\nurl = \"http://127.0.0.1:4000/graphql\"\n[upstream.scopes]\n\"orders\" = \"orders:read\"\n",
    )
    .unwrap();
    let no_url = dir.path().join("no-url.toml");
    std::fs::write(
        &no_url,
        "[upstream.scopes]\n\"Query.orders\" = \"orders:read\"\n",
    )
    .unwrap();
    let refused: [(&[&str], &str); 6] = [
        (&["--webhook-timeout", "1h"], "--webhook-timeout"),
        (
            &["--token-expiry-warnings", "7d,1s"],
            "--token-expiry-warnings",
        ),
        (&["--token-expiry-warnings", "soon"], "not a duration"),
        (
            &["--upstream", "ftp://example.com/graphql"],
            "not an http(s) URL",
        ),
        (
            &["--config", bad_upstream.to_str().unwrap()],
            "is not a root field",
        ),
        (&["--config", no_url.to_str().unwrap()], "needs a url"),
    ];
    for (args, says) in refused {
        let (ok, _, err) = run(&[args, &["schema"]].concat(), None, &[]);
        assert!(!ok, "{args:?} was accepted");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

both_backends!(
    cli_manages_users_tokens_and_keys,
    a_running_server_signs_with_a_key_rotated_from_the_cli,
);

/// `tokengate keys rotate` from the shell, and nothing else: the running server
/// re-reads its keys on its own, then signs with the new one and publishes both.
async fn a_running_server_signs_with_a_key_rotated_from_the_cli(b: Backend) {
    let app = TestApp::start(b, |c| {
        c.key_reload_interval = Duration::from_millis(200);
    })
    .await;
    let cookie = app.sign_in_admin().await;
    let (old, _) = app.issue(Auth::Cookie(&cookie), "old", None, 3600).await;
    let old_kid = kid_of(&old);
    let (ok, out, err) = run(
        &["--database-url", &app.db.url, "keys", "rotate"],
        None,
        &[],
    );
    assert!(ok, "{err}");
    let new_kid = out
        .strip_prefix("new signing key ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("kid in {out:?}"))
        .to_owned();
    assert_ne!(new_kid, old_kid);
    // On a fresh database it makes the first key.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_url = format!("sqlite://{}?mode=rwc", fresh.path().join("f.db").display());
    let (ok, out, err) = run(&["--database-url", &fresh_url, "keys", "rotate"], None, &[]);
    assert!(ok && out.contains("is active"), "{out} {err}");
    let kids = || async {
        let jwks: Value = app.jwks().await;
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    // No request names the new kid: only the periodic reload can find it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !kids().await.contains(&new_kid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the JWKS never listed the rotated key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        kids().await.contains(&old_kid),
        "the retired key still verifies"
    );
    let (new, _) = app.issue(Auth::Cookie(&cookie), "new", None, 3600).await;
    assert_eq!(kid_of(&new), new_kid, "signs with the rotated key");
    for token in [&old, &new] {
        let r = app.me(Auth::Bearer(token)).await;
        assert_eq!(r.data()["me"]["email"], ADMIN_EMAIL);
    }
    app.finish().await;
}

async fn cli_manages_users_tokens_and_keys(b: Backend) {
    let db = TestDb::new(b).await;
    let url = db.url.clone();
    let (ok, out, err) = run(&["--database-url", &url, "migrate"], None, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("migrations applied"));
    // The password comes from stdin, never argv.
    let (ok, out, err) = run(
        &[
            "--database-url",
            &url,
            "user",
            "add",
            "--email",
            "Eve@Example.com",
        ],
        Some("eve-password-12345\n"),
        &[],
    );
    assert!(ok, "{err}");
    assert!(out.contains("created member eve@example.com"), "{out}");
    let (ok, _, err) = run(
        &[
            "--database-url",
            &url,
            "user",
            "add",
            "--email",
            "weak@example.com",
        ],
        Some("short\n"),
        &[],
    );
    assert!(!ok);
    assert!(err.contains("at least 12 characters"), "{err}");

    // Neither the server (on an ephemeral port) nor the CLI (default --listen)
    // configures an issuer: both use the deployment's, so CLI tokens verify.
    let app = TestApp::start_on(db, test_config(&url)).await;
    let db_flag = ["--database-url", &url];
    let cli = |args: &[&str]| run(&[&db_flag[..], args].concat(), None, &[]);

    let (ok, token, err) = cli(&[
        "token",
        "issue",
        "--email",
        "eve@example.com",
        "--name",
        "deploy",
        "--expires",
        "30d",
        "--scope",
        "me:read",
    ]);
    assert!(ok, "{err}");
    let token = token.trim().to_owned();
    assert!(err.contains("shown once"), "{err}");
    let r = app.me(Auth::Bearer(&token)).await;
    assert_eq!(r.data()["me"]["email"], "eve@example.com");
    let (ok, _, err) = cli(&[
        "token",
        "issue",
        "--email",
        "eve@example.com",
        "--expires",
        "400d",
    ]);
    assert!(!ok);
    assert!(err.contains("maximum token lifetime"), "{err}");

    let (ok, list, _) = cli(&["token", "list", "--email", "eve@example.com"]);
    assert!(ok);
    assert!(
        list.contains("deploy") && list.contains("ACTIVE") && list.contains("me:read"),
        "{list}"
    );
    assert!(!list.contains(&token));
    let id = list
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    // Rotating keys from the shell: the running server keeps accepting the old
    // token and verifies tokens signed with the new key (it reloads on an unknown kid).
    let (ok, out, err) = cli(&["keys", "rotate"]);
    assert!(ok, "{err}");
    assert!(out.contains("is active"));
    assert_eq!(app.me(Auth::Bearer(&token)).await.status, StatusCode::OK);
    let (_, newer, _) = cli(&[
        "token",
        "issue",
        "--email",
        "eve@example.com",
        "--name",
        "newer",
        "--expires",
        "1d",
    ]);
    // An unknown kid makes the server re-read its keys, at most once a second
    // after its last read (the periodic re-read is a minute away): ask until
    // that second has passed, rather than sleeping a guessed one.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while app.me(Auth::Bearer(newer.trim())).await.status != StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "a token signed with the rotated key is still refused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (ok, out, _) = cli(&["token", "revoke", &id]);
    assert!(ok);
    assert!(out.contains("revoked"));
    // The CLI is another process: the server learns of it within a second.
    let (r, _) = app
        .refused_within(Auth::Bearer(&token), Duration::from_secs(1))
        .await;
    assert_eq!(r.reason(), "revoked");
    let (ok, _, err) = cli(&["token", "revoke", "no-such-id"]);
    assert!(!ok);
    assert!(err.contains("no access token"), "{err}");

    // Rotation from the shell: a fresh token rotated with no grace; the new
    // one (printed once) works, the old one is refused within a second.
    let (_, fresh, _) = cli(&[
        "token",
        "issue",
        "--email",
        "eve@example.com",
        "--name",
        "ci",
        "--expires",
        "30d",
    ]);
    let fresh = fresh.trim().to_owned();
    let fresh_id = jwt_claims(&fresh)["jti"].as_str().unwrap().to_owned();
    let (ok, rotated, err) = cli(&["token", "rotate", &fresh_id, "--grace", "0s"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("rotated") && err.contains("shown once"),
        "{err}"
    );
    let rotated = rotated.trim().to_owned();
    assert_eq!(jwt_claims(&rotated)["sub"], jwt_claims(&fresh)["sub"]);
    assert_eq!(app.me(Auth::Bearer(&rotated)).await.status, StatusCode::OK);
    let (r, _) = app
        .refused_within(Auth::Bearer(&fresh), Duration::from_secs(1))
        .await;
    assert_eq!(r.reason(), "revoked");
    let (ok, _, err) = cli(&["token", "rotate", &fresh_id]);
    assert!(!ok);
    assert!(err.contains("already revoked, rotated or expired"), "{err}");
    app.finish().await;
}
