//! The deployment's identity (SPEC §1): the issuer lives in the database, so a
//! token stays valid when the server restarts on another port, when another
//! process serves the same database, and after `--issuer` changes.

use reqwest::StatusCode;

use crate::both_backends;
use crate::support::*;

both_backends!(
    tokens_survive_a_restart_on_another_port,
    processes_on_other_ports_accept_each_others_tokens,
    a_new_issuer_goes_into_new_tokens_and_earlier_ones_still_verify,
    a_running_server_learns_an_issuer_chosen_by_another_process,
);

fn iss_of(token: &str) -> String {
    jwt_claims(token)["iss"].as_str().unwrap().to_owned()
}

async fn accepted(app: &TestApp, token: &str) -> bool {
    let r = app.me(Auth::Bearer(token)).await;
    r.status == StatusCode::OK && r.data()["me"]["email"] == ADMIN_EMAIL
}

async fn tokens_survive_a_restart_on_another_port(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let first_base = app.base.clone();
    let cookie = app.sign_in_admin().await;
    let (token, _) = app.issue(Auth::Cookie(&cookie), "ci", None, 3600).await;
    // The first start chose http://<its listen address> and stored it.
    assert_eq!(iss_of(&token), first_base);
    let app = app.restart().await;
    assert_ne!(app.base, first_base, "the restart listens on another port");
    assert!(accepted(&app, &token).await, "the token survives the move");
    // The metadata keeps the deployment's issuer and points at where it is now.
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(meta["issuer"], first_base.as_str());
    assert_eq!(meta["token_endpoint"], format!("{}/oauth2/token", app.base));
    assert_eq!(
        meta["jwks_uri"],
        format!("{}/.well-known/jwks.json", app.base)
    );
    // And the server keeps issuing under the deployment's issuer.
    let cookie = app.sign_in_admin().await;
    let (again, _) = app.issue(Auth::Cookie(&cookie), "ci2", None, 3600).await;
    assert_eq!(iss_of(&again), first_base);
    app.finish().await;
}

async fn processes_on_other_ports_accept_each_others_tokens(b: Backend) {
    let a = TestApp::start(b, |_| {}).await;
    let second = TestApp::start_on(a.db.shared(), test_config(&a.db.url)).await;
    assert_ne!(a.base, second.base);
    let from_a = a
        .issue(Auth::Cookie(&a.sign_in_admin().await), "a", None, 3600)
        .await
        .0;
    let from_b = second
        .issue(Auth::Cookie(&second.sign_in_admin().await), "b", None, 3600)
        .await
        .0;
    assert_eq!(iss_of(&from_a), iss_of(&from_b));
    assert!(accepted(&second, &from_a).await);
    assert!(accepted(&a, &from_b).await);
    let mut second = second;
    second.stop().await;
    a.finish().await;
}

async fn a_new_issuer_goes_into_new_tokens_and_earlier_ones_still_verify(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    let (old, _) = app.issue(Auth::Cookie(&cookie), "old", None, 3600).await;
    let old_iss = iss_of(&old);

    // Restart with a configured issuer: new tokens carry it, the old one verifies.
    let mut moved = app;
    moved.config.issuer = Some("https://auth.example.test".into());
    let app = moved.restart().await;
    let cookie = app.sign_in_admin().await;
    let (new, _) = app.issue(Auth::Cookie(&cookie), "new", None, 3600).await;
    assert_eq!(iss_of(&new), "https://auth.example.test");
    assert!(accepted(&app, &old).await, "issued under {old_iss}");
    assert!(accepted(&app, &new).await);
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(meta["issuer"], "https://auth.example.test");

    // Without --issuer the next start keeps the deployment's newest choice.
    let mut plain = app;
    plain.config.issuer = None;
    let app = plain.restart().await;
    let cookie = app.sign_in_admin().await;
    let (third, _) = app.issue(Auth::Cookie(&cookie), "third", None, 3600).await;
    assert_eq!(iss_of(&third), "https://auth.example.test");
    assert!(accepted(&app, &old).await);
    assert!(accepted(&app, &new).await);
    app.finish().await;
}

async fn a_running_server_learns_an_issuer_chosen_by_another_process(b: Backend) {
    let a = TestApp::start(b, |_| {}).await;
    let before = a.state.keys.issuer();
    // Another process starts on the same database with a new --issuer.
    let mut config = test_config(&a.db.url);
    config.issuer = Some("https://edge.example.test".into());
    let mut second = TestApp::start_on(a.db.shared(), config).await;
    let from_b = second
        .issue(Auth::Cookie(&second.sign_in_admin().await), "b", None, 3600)
        .await
        .0;
    assert_eq!(iss_of(&from_b), "https://edge.example.test");
    // The first server re-reads its keys only every minute, yet verifies the
    // new issuer's token: an unknown issuer makes it look again (at most once
    // a second, so allow that second).
    assert_eq!(a.state.keys.issuer(), before);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !accepted(&a, &from_b).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the new issuer was never learnt"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(a.state.keys.issuer(), "https://edge.example.test");
    second.stop().await;
    a.finish().await;
}
