//! Micro-benchmarks of the per-request costs: the guard's token path (warm: a
//! cache hit; cold: signature and database), session lookup, the whole guard
//! step on a header map, sign-in's argon2id verification, and issuing a token.
//!
//! `cargo bench --bench guard` (SQLite in a temporary directory).

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use criterion::{criterion_group, criterion_main, Criterion};
use tokengate::auth::secret::Secret;
use tokengate::auth::{Credential, Principal};
use tokengate::core::Core;
use tokengate::tokens::{self, IssueRequest};
use tokengate::Config;
use tokengate::{guard, password, sessions};

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: Core,
    token: String,
    cookie: String,
    admin: Principal,
    hash: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        database_url: format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
        admin_email: Some("ada@example.com".into()),
        admin_password: Some(Secret::new("correct-horse-battery-staple")),
        ..Config::default()
    };
    let (app, token, cookie, admin, hash) = rt.block_on(async {
        let app = Core::open(config, "127.0.0.1:8080".parse().unwrap())
            .await
            .unwrap();
        tokengate::users::bootstrap_admin(
            &app.db,
            app.config.admin_email.as_deref(),
            app.config.admin_password.as_ref(),
        )
        .await
        .unwrap();
        let user = tokengate::users::find_by_email(&app.db, "ada@example.com")
            .await
            .unwrap()
            .unwrap();
        let admin = Principal::of_user(&user, app.scopes.all(), Credential::Operator);
        let req = IssueRequest {
            name: "bench".into(),
            expiration_time: Some(chrono::Utc::now().timestamp() + 3600),
            ..IssueRequest::default()
        };
        let token = tokens::issue(&app, &admin, req, None)
            .await
            .unwrap()
            .token
            .expose()
            .to_owned();
        let cookie = sessions::create(&app.db, &user.id, Duration::from_secs(3600), "127.0.0.1")
            .await
            .unwrap();
        (
            app,
            token,
            cookie.expose().to_owned(),
            admin,
            user.password_hash,
        )
    });
    Fixture {
        rt,
        app,
        token,
        cookie,
        admin,
        hash,
        _dir: dir,
    }
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("guard");
    g.bench_function("token_warm", |b| {
        b.to_async(&f.rt).iter(|| async {
            guard::token_principal(&f.app, &f.token, Some(std::net::Ipv4Addr::LOCALHOST.into()))
                .await
                .unwrap()
        })
    });
    g.bench_function("token_cold_signature_and_database", |b| {
        b.to_async(&f.rt)
            .iter(|| async { tokens::authenticate(&f.app, &f.token).await.unwrap() })
    });
    g.bench_function("token_signature_only", |b| {
        b.to_async(&f.rt)
            .iter(|| async { tokens::jwt::verify(&f.app, &f.token).await.unwrap() })
    });
    let mut bearer = HeaderMap::new();
    bearer.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", f.token)).unwrap(),
    );
    g.bench_function("request_headers_warm", |b| {
        b.to_async(&f.rt)
            .iter(|| async { guard::authenticate(&f.app, &bearer).await.unwrap() })
    });
    g.bench_function("session_warm", |b| {
        b.to_async(&f.rt)
            .iter(|| async { guard::session_principal(&f.app, &f.cookie).await.unwrap() })
    });
    g.bench_function("session_cold_database", |b| {
        b.to_async(&f.rt).iter(|| async {
            sessions::authenticate(&f.app.db, &f.app.scopes, &f.cookie)
                .await
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("slow_paths");
    g.sample_size(20);
    g.bench_function("sign_in_argon2id_verify", |b| {
        b.to_async(&f.rt).iter(|| async {
            assert!(
                password::verify("correct-horse-battery-staple".into(), Some(f.hash.clone())).await
            )
        })
    });
    let mut n = 0u64;
    g.bench_function("issue_token", |b| {
        b.to_async(&f.rt).iter(|| {
            n += 1;
            let req = IssueRequest {
                name: format!("bench-{n}"),
                expiration_time: Some(chrono::Utc::now().timestamp() + 3600),
                ..IssueRequest::default()
            };
            let (app, admin) = (&f.app, &f.admin);
            async move { tokens::issue(app, admin, req, None).await.unwrap() }
        })
    });
    g.finish();
}

criterion_group!(guard_benches, benches);
criterion_main!(guard_benches);
