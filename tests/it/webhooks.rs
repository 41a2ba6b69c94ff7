//! Webhooks (SPEC §10) through GraphQL, delivered to a real receiver that
//! checks every delivery with the Standard Webhooks reference library
//! (`standardwebhooks`): every event type, retries under the same id, giving
//! up, a slow receiver beside a quick one, two processes delivering once, a
//! kill -9 of the server with events committed, bad input, and the
//! administrators' view of deliveries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::support::*;
use crate::{both_backends, single};

both_backends!(
    every_token_event_arrives_signed_with_its_token_and_never_a_secret,
    failed_deliveries_are_retried_under_the_same_id_and_given_up_after_the_window,
    a_slow_receiver_does_not_delay_another,
    two_processes_deliver_each_event_once,
    events_committed_before_a_kill_are_delivered_after_the_restart,
    expiry_warnings_come_once_per_window_and_expired_once,
    bad_webhooks_are_refused_and_change_nothing,
    machine_tokens_are_not_announced_but_their_ends_are,
    finished_deliveries_are_pruned_after_a_week,
);

single!(async private_targets_are_refused_unless_allowed);

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub timestamp: i64,
    pub body: Value,
    /// Whether `standardwebhooks` accepted its signature.
    pub verified: bool,
}

/// How the receiver answers.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Ok,
    /// This status to the next `n` requests, then 200.
    FailNext(u16, usize),
    /// This status, always.
    Always(u16),
    /// 200, after this long.
    Slow(Duration),
}

#[derive(Default)]
struct ReceiverState {
    secret: Mutex<Option<String>>,
    got: Mutex<Vec<Received>>,
    answer: Mutex<Option<Answer>>,
    arrived: Notify,
}

/// A webhook receiver on an ephemeral port, in the test process.
pub struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub async fn start(answer: Answer) -> Receiver {
        Self::start_on("127.0.0.1:0", answer).await
    }

    /// On a given address (the kill -9 test brings a receiver back on its old port).
    pub async fn start_on(addr: &str, answer: Answer) -> Receiver {
        let state = Arc::new(ReceiverState::default());
        *state.answer.lock().unwrap() = Some(answer);
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { url, state }
    }

    pub fn set_secret(&self, secret: &str) {
        *self.state.secret.lock().unwrap() = Some(secret.to_owned());
    }

    pub fn set_answer(&self, answer: Answer) {
        *self.state.answer.lock().unwrap() = Some(answer);
    }

    pub fn got(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what arrived (or `within` passes), and answers it.
    pub async fn wait_until(
        &self,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.state.arrived.notified();
            let got = self.got();
            if done(&got) || tokio::time::Instant::now() >= deadline {
                return got;
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }
}

async fn receive(
    axum::extract::State(state): axum::extract::State<Arc<ReceiverState>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let secret = state.secret.lock().unwrap().clone();
    let verified = secret.is_some_and(|s| {
        standardwebhooks::Webhook::new(&s)
            .expect("a whsec_ secret")
            .verify(&body, &headers)
            .is_ok()
    });
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let received = Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp").parse().unwrap_or(0),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        verified,
    };
    let answer = {
        let mut a = state.answer.lock().unwrap();
        match *a {
            Some(Answer::FailNext(status, n)) if n > 0 => {
                *a = Some(Answer::FailNext(status, n - 1));
                Answer::Always(status)
            }
            Some(other) => other,
            None => Answer::Ok,
        }
    };
    if let Answer::Slow(d) = answer {
        tokio::time::sleep(d).await;
    }
    state.got.lock().unwrap().push(received);
    state.arrived.notify_waiters();
    if !verified {
        return StatusCode::BAD_REQUEST;
    }
    match answer {
        Answer::Always(s) => StatusCode::from_u16(s).unwrap(),
        _ => StatusCode::NO_CONTENT,
    }
}

const CREATE: &str = "mutation($url: String!, $events: [String!]!) { createWebhook(url: $url, events: $events) { secret webhook { id url events createdAt } } }";
const ALL_EVENTS: [&str; 5] = [
    "token.created",
    "token.rotated",
    "token.revoked",
    "token.expiring",
    "token.expired",
];
const DELIVERIES: &str = "{ webhooks { id url deliveries(first: 100) { id eventId eventType status attempts lastAttemptAt nextAttemptAt responseStatus error deliveredAt } } }";

/// Registers a webhook for `events` at the receiver and gives the receiver
/// its secret; answers the webhook's id.
pub async fn register(app: &TestApp, cookie: &str, receiver: &Receiver, events: &[&str]) -> String {
    let r = app
        .gql(
            Auth::Cookie(cookie),
            CREATE,
            json!({ "url": receiver.url, "events": events }),
        )
        .await;
    let p = &r.data()["createWebhook"];
    let secret = p["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("createWebhook: {}", r.body));
    assert!(secret.starts_with("whsec_"), "{secret}");
    receiver.set_secret(secret);
    p["webhook"]["id"].as_str().unwrap().to_owned()
}

/// A configuration for fast webhook tests: private targets allowed (the
/// receiver is on loopback), quick polls and retries.
fn fast(c: &mut tokengate::Config) {
    c.allow_private_webhook_targets = true;
    c.webhook_poll_interval = Duration::from_millis(100);
    c.webhook_retry_base = Duration::from_millis(100);
}

async fn every_token_event_arrives_signed_with_its_token_and_never_a_secret(b: Backend) {
    let app = TestApp::start(b, |c| {
        fast(c);
        c.expiry_scan_interval = Duration::from_millis(200);
    })
    .await;
    let cookie = app.sign_in_admin().await;
    let receiver = Receiver::start(Answer::Ok).await;
    let hook = register(&app, &cookie, &receiver, &ALL_EVENTS).await;

    // created, rotated by name, rotated by rotateAccessToken, revoked.
    let (first, first_id) = app.issue(Auth::Cookie(&cookie), "ci", None, 3600).await;
    let (_, second_id) = app.issue(Auth::Cookie(&cookie), "ci", None, 3600).await;
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            "mutation($id: ID) { rotateAccessToken(id: $id, gracePeriod: 60) { sessionJwt accessToken { id } } }",
            json!({ "id": second_id }),
        )
        .await;
    let third_id = r.data()["rotateAccessToken"]["accessToken"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", r.body))
        .to_owned();
    assert_eq!(
        app.revoke(Auth::Cookie(&cookie), &third_id).await.status,
        StatusCode::OK
    );
    // expired: a token that lives two seconds.
    let (_, short_id) = app.issue(Auth::Cookie(&cookie), "short", None, 2).await;

    let got = receiver
        .wait_until(Duration::from_secs(20), |g| g.len() >= 6)
        .await;
    assert!(
        got.iter().all(|r| r.verified),
        "every delivery verifies: {got:?}"
    );
    let events: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            (
                r.body["type"].as_str().unwrap().to_owned(),
                r.body["data"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("token.created", &first_id),
        ("token.rotated", &second_id),
        ("token.rotated", &third_id),
        ("token.revoked", &third_id),
        ("token.created", &short_id),
        ("token.expired", &short_id),
    ];
    for (t, id) in want {
        assert_eq!(
            events
                .iter()
                .filter(|(et, eid)| et == t && eid == id)
                .count(),
            1,
            "one {t} for {id}: {events:?}"
        );
    }
    let by_type = |t: &str, id: &str| {
        got.iter()
            .find(|r| r.body["type"] == t && r.body["data"]["id"] == id)
            .unwrap()
            .clone()
    };
    // The payload: type, timestamp, the token's fields, its owner; never a secret.
    let created = by_type("token.created", &first_id);
    assert!(created.id.starts_with("msg_"), "{}", created.id);
    assert_eq!(created.body["data"]["name"], "ci");
    assert_eq!(created.body["data"]["owner"]["email"], ADMIN_EMAIL);
    assert!(created.body["data"]["owner"]["id"].is_string());
    assert!(created.body["timestamp"].is_string());
    assert!(created.body["data"]["scopes"].is_array());
    let rotated = by_type("token.rotated", &second_id);
    assert_eq!(rotated.body["data"]["previousIds"], json!([first_id]));
    let graced = by_type("token.rotated", &third_id);
    assert_eq!(graced.body["data"]["previousIds"], json!([second_id]));
    assert!(graced.body["data"]["previousRevokedAt"].is_string());
    let revoked = by_type("token.revoked", &third_id);
    assert!(revoked.body["data"]["revokedAt"].is_string());
    for r in &got {
        let text = r.body.to_string();
        assert!(!text.contains(&first), "a token in a payload");
        assert!(!text.contains("whsec_"), "a secret in a payload");
        assert!(!text.contains("digest"), "a digest in a payload");
    }
    // Every message id is its own.
    let mut ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), got.len());

    // The administrators' view.
    let r = app.gql(Auth::Cookie(&cookie), DELIVERIES, json!({})).await;
    let hooks = r.data()["webhooks"].as_array().unwrap().clone();
    assert_eq!(hooks.len(), 1, "{}", r.body);
    assert_eq!(hooks[0]["id"], hook.as_str());
    let deliveries = hooks[0]["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 6, "{}", r.body);
    for d in deliveries {
        assert_eq!(d["status"], "DELIVERED", "{d}");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["responseStatus"], 204);
        assert!(d["nextAttemptAt"].is_null());
        assert!(d["deliveredAt"].is_string());
    }
    assert!(app
        .metrics()
        .await
        .contains("tokengate_webhook_attempts_total{outcome=\"delivered\"} 6"));

    // A member cannot see or make webhooks.
    let member = app.member("mo@example.com").await;
    let r = app.gql(Auth::Cookie(&member), DELIVERIES, json!({})).await;
    assert_eq!(r.code(), "FORBIDDEN", "{}", r.body);
    let r = app
        .gql(
            Auth::Cookie(&member),
            CREATE,
            json!({ "url": receiver.url, "events": ["token.created"] }),
        )
        .await;
    assert_eq!(r.code(), "FORBIDDEN", "{}", r.body);

    // Deleted: no more deliveries, and audited.
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            "mutation($id: ID!) { deleteWebhook(id: $id) { id } }",
            json!({ "id": hook }),
        )
        .await;
    assert_eq!(r.data()["deleteWebhook"]["id"], hook.as_str(), "{}", r.body);
    app.issue(Auth::Cookie(&cookie), "after", None, 3600).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.got().len(),
        6,
        "nothing after the webhook is deleted"
    );
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            "mutation($id: ID!) { deleteWebhook(id: $id) { id } }",
            json!({ "id": hook }),
        )
        .await;
    assert_eq!(r.code(), "NOT_FOUND", "{}", r.body);
    let actions = audit_actions(app.conn()).await;
    assert!(actions.contains(&"webhook_created".to_owned()));
    assert!(actions.contains(&"webhook_deleted".to_owned()));
    app.finish().await;
}

async fn failed_deliveries_are_retried_under_the_same_id_and_given_up_after_the_window(b: Backend) {
    let app = TestApp::start(b, |c| {
        fast(c);
        c.webhook_retry_for = Duration::from_secs(2);
    })
    .await;
    let cookie = app.sign_in_admin().await;
    // One receiver fails twice then accepts; the other always answers 500.
    let flaky = Receiver::start(Answer::FailNext(503, 2)).await;
    let broken = Receiver::start(Answer::Always(500)).await;
    register(&app, &cookie, &flaky, &["token.created"]).await;
    register(&app, &cookie, &broken, &["token.created"]).await;
    let (_, id) = app.issue(Auth::Cookie(&cookie), "ci", None, 3600).await;

    let got = flaky
        .wait_until(Duration::from_secs(15), |g| g.len() >= 3)
        .await;
    assert_eq!(got.len(), 3, "two failures, then the delivery: {got:?}");
    assert!(got.iter().all(|r| r.verified));
    assert!(
        got.iter().all(|r| r.id == got[0].id),
        "every attempt carries the same webhook-id: {got:?}"
    );
    assert!(got.iter().all(|r| r.body["data"]["id"] == id.as_str()));
    assert!(
        got.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
        "each attempt signed at its own time: {got:?}"
    );

    // The broken receiver: attempts until the retry window closes, then failed.
    let view = |r: &Gql, url: &str| -> Value {
        r.data()["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["url"] == url)
            .unwrap()["deliveries"][0]
            .clone()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let failed = loop {
        let r = app.gql(Auth::Cookie(&cookie), DELIVERIES, json!({})).await;
        let d = view(&r, &broken.url);
        if d["status"] == "FAILED" || std::time::Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["responseStatus"], 500);
    assert!(
        failed["error"].as_str().unwrap().contains("500"),
        "{failed}"
    );
    assert!(failed["nextAttemptAt"].is_null());
    let attempts = failed["attempts"].as_i64().unwrap();
    assert!(attempts >= 2, "{failed}");
    assert_eq!(broken.got().len() as i64, attempts);
    assert!(broken.got().iter().all(|r| r.id == broken.got()[0].id));
    let r = app.gql(Auth::Cookie(&cookie), DELIVERIES, json!({})).await;
    let delivered = view(&r, &flaky.url);
    assert_eq!(
        (delivered["status"].as_str(), delivered["attempts"].as_i64()),
        (Some("DELIVERED"), Some(3)),
        "{delivered}"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("tokengate_webhook_attempts_total{outcome=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tokengate_webhook_deliveries_pending"),
        "{metrics}"
    );
    app.finish().await;
}

async fn a_slow_receiver_does_not_delay_another(b: Backend) {
    let app = TestApp::start(b, |c| {
        fast(c);
        c.webhook_timeout = Duration::from_secs(60);
    })
    .await;
    let cookie = app.sign_in_admin().await;
    let slow = Receiver::start(Answer::Slow(Duration::from_secs(30))).await;
    let quick = Receiver::start(Answer::Ok).await;
    register(&app, &cookie, &slow, &["token.created"]).await;
    register(&app, &cookie, &quick, &["token.created"]).await;
    // More events than one webhook may hold in flight, so the slow one's
    // backlog is in the way if anything is.
    let started = std::time::Instant::now();
    for i in 0..12 {
        app.issue(Auth::Cookie(&cookie), &format!("t{i}"), None, 3600)
            .await;
    }
    let issuing = started.elapsed();
    let got = quick
        .wait_until(Duration::from_secs(10), |g| g.len() >= 12)
        .await;
    assert_eq!(got.len(), 12, "the quick receiver got everything meanwhile");
    assert!(
        issuing < Duration::from_secs(10),
        "issuing waited on the slow receiver: {issuing:?}"
    );
    assert!(slow.got().is_empty(), "the slow one has not answered yet");
    app.finish().await;
}

async fn two_processes_deliver_each_event_once(b: Backend) {
    let a = TestApp::start(b, fast).await;
    let mut config = a.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let second = TestApp::start_on(a.db.shared(), config).await;
    let cookie_a = a.sign_in_admin().await;
    let cookie_b = second.sign_in_admin().await;
    let receiver = Receiver::start(Answer::Ok).await;
    register(
        &a,
        &cookie_a,
        &receiver,
        &["token.created", "token.revoked"],
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let (app, cookie) = if i % 2 == 0 {
            (&a, &cookie_a)
        } else {
            (&second, &cookie_b)
        };
        let (_, id) = app
            .issue(Auth::Cookie(cookie), &format!("t{i}"), None, 3600)
            .await;
        // Revoked on the other process.
        let (other, other_cookie) = if i % 2 == 0 {
            (&second, &cookie_b)
        } else {
            (&a, &cookie_a)
        };
        assert_eq!(
            other.revoke(Auth::Cookie(other_cookie), &id).await.status,
            StatusCode::OK
        );
        ids.push(id);
    }
    receiver
        .wait_until(Duration::from_secs(15), |g| g.len() >= 20)
        .await;
    // Let any duplicate arrive before counting.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let got = receiver.got();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in receiver.got() {
        assert!(r.verified);
        *per_id.entry(r.id.clone()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 20, "{got:?}");
    assert!(
        per_id.values().all(|n| *n == 1),
        "each event delivered once: {per_id:?}"
    );
    for id in &ids {
        for t in ["token.created", "token.revoked"] {
            assert!(receiver
                .got()
                .iter()
                .any(|r| r.body["type"] == t && r.body["data"]["id"] == id.as_str()));
        }
    }
    second.finish().await;
    a.finish().await;
}

async fn events_committed_before_a_kill_are_delivered_after_the_restart(b: Backend) {
    let db = TestDb::new(b).await;
    let receiver = Receiver::start(Answer::Always(503)).await;
    let envs = [
        ("TOKENGATE_ADMIN_EMAIL", ADMIN_EMAIL),
        ("TOKENGATE_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("TOKENGATE_ALLOW_PRIVATE_WEBHOOK_TARGETS", "true"),
        ("TOKENGATE_WEBHOOK_RETRY_BASE", "200ms"),
        ("TOKENGATE_WEBHOOK_POLL_INTERVAL", "100ms"),
        ("TOKENGATE_WEBHOOK_TIMEOUT", "1s"),
        ("TOKENGATE_LOG", "warn"),
    ];
    let served = crate::binary::serve(&db.url, &envs, &[]);
    let client = reqwest::Client::new();
    let gql = |base: String, cookie: Option<String>, query: &'static str, vars: Value| {
        let client = client.clone();
        async move {
            let mut req = client
                .post(format!("{base}/api"))
                .json(&json!({ "query": query, "variables": vars }));
            if let Some(c) = cookie {
                req = req.header("cookie", format!("tokengate_session={c}"));
            }
            req.send().await.unwrap().json::<Value>().await.unwrap()
        }
    };
    let sign_in = |base: String| {
        let client = client.clone();
        async move {
            let resp = client
                .post(format!("{base}/auth/login"))
                .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
                .send()
                .await
                .unwrap();
            cookie_value(resp.headers()).expect("session cookie")
        }
    };
    let cookie = sign_in(served.base.clone()).await;
    let r = gql(
        served.base.clone(),
        Some(cookie.clone()),
        CREATE,
        json!({ "url": receiver.url, "events": ["token.created"] }),
    )
    .await;
    receiver.set_secret(r["data"]["createWebhook"]["secret"].as_str().unwrap());
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = gql(
            served.base.clone(),
            Some(cookie.clone()),
            "mutation($n: String, $exp: Int) { updateAccessToken(name: $n, expirationTime: $exp) { accessToken { id } } }",
            json!({ "n": format!("t{i}"), "exp": chrono::Utc::now().timestamp() + 3600 }),
        )
        .await;
        ids.push(
            r["data"]["updateAccessToken"]["accessToken"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_owned(),
        );
    }
    // Attempted and refused at least once each, then the process dies.
    receiver
        .wait_until(Duration::from_secs(10), |g| {
            ids.iter()
                .all(|id| g.iter().any(|r| r.body["data"]["id"] == id.as_str()))
        })
        .await;
    let before: HashMap<String, String> = receiver
        .got()
        .into_iter()
        .map(|r| (r.body["data"]["id"].as_str().unwrap().to_owned(), r.id))
        .collect();
    assert_eq!(before.len(), 5);
    served.kill9();
    receiver.set_answer(Answer::Ok);
    let seen = receiver.got().len();

    let served = crate::binary::serve(&db.url, &envs, &[]);
    let got = receiver
        .wait_until(Duration::from_secs(30), |g| {
            g[seen..].iter().filter(|r| r.verified).count() >= 5
        })
        .await;
    let after: Vec<&Received> = got[seen..].iter().collect();
    for id in &ids {
        let arrived: Vec<&&Received> = after
            .iter()
            .filter(|r| r.body["data"]["id"] == id.as_str())
            .collect();
        assert_eq!(arrived.len(), 1, "{id} delivered once after the restart");
        assert_eq!(
            arrived[0].id, before[id],
            "the same webhook-id as before the kill"
        );
    }
    let r = gql(
        served.base.clone(),
        Some(sign_in(served.base.clone()).await),
        DELIVERIES,
        json!({}),
    )
    .await;
    let deliveries = r["data"]["webhooks"][0]["deliveries"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(deliveries.len(), 5, "{r}");
    assert!(deliveries.iter().all(|d| d["status"] == "DELIVERED"), "{r}");
    served.terminate();
    drop(db);
}

/// Moves the named tokens' creation back by `by`, behind the API's back.
async fn backdate(app: &TestApp, names: &[&str], by: chrono::Duration) {
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
    let rows = entity::access_token::Entity::find()
        .filter(entity::access_token::Column::Name.is_in(names.iter().copied()))
        .all(app.conn())
        .await
        .unwrap();
    assert_eq!(rows.len(), names.len());
    for row in rows {
        let created = row.created_at;
        let mut row: entity::access_token::ActiveModel = row.into();
        row.created_at = Set(created - by);
        row.update(app.conn()).await.unwrap();
    }
}

async fn expiry_warnings_come_once_per_window_and_expired_once(b: Backend) {
    let app = TestApp::start(b, |c| {
        fast(c);
        c.expiry_scan_interval = Duration::from_millis(100);
    })
    .await;
    let cookie = app.sign_in_admin().await;
    let receiver = Receiver::start(Answer::Ok).await;
    register(
        &app,
        &cookie,
        &receiver,
        &["token.expiring", "token.expired"],
    )
    .await;
    // Tokens issued 30 days ago (moved back behind the API's back): one with
    // three days left, one with twelve hours, one with 40 days.
    let (_, in_3d) = app.issue(Auth::Cookie(&cookie), "a", None, 3 * 86400).await;
    let (_, in_12h) = app.issue(Auth::Cookie(&cookie), "b", None, 12 * 3600).await;
    let (_, in_40d) = app
        .issue(Auth::Cookie(&cookie), "c", None, 40 * 86400)
        .await;
    // Born with less than a day: no warning for a window longer than its life.
    let (_, short) = app.issue(Auth::Cookie(&cookie), "d", None, 3600).await;
    backdate(&app, &["a", "b", "c"], chrono::Duration::days(30)).await;
    let got = receiver
        .wait_until(Duration::from_secs(10), |g| g.len() >= 2)
        .await;
    assert!(got.len() >= 2, "{got:?}");
    tokio::time::sleep(Duration::from_millis(600)).await; // several more scans
    let got = receiver.got();
    assert!(got.iter().all(|r| r.verified));
    let warned: Vec<(String, i64)> = got
        .iter()
        .map(|r| {
            assert_eq!(r.body["type"], "token.expiring", "{:?}", r.body);
            (
                r.body["data"]["id"].as_str().unwrap().to_owned(),
                r.body["data"]["warningWindowSeconds"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(warned.len(), 2, "{warned:?}");
    assert!(warned.contains(&(in_3d.clone(), 7 * 86400)), "{warned:?}");
    assert!(
        warned.contains(&(in_12h.clone(), 86400)),
        "only the most urgent window: {warned:?}"
    );
    assert!(!warned.iter().any(|(id, _)| *id == in_40d || *id == short));

    // Two days pass for the three-day token: its one-day warning, once.
    {
        use sea_orm::{ActiveModelTrait, EntityTrait, Set};
        let row = entity::access_token::Entity::find_by_id(in_3d.as_str())
            .one(app.conn())
            .await
            .unwrap()
            .unwrap();
        let mut row: entity::access_token::ActiveModel = row.into();
        row.expires_at = Set(Some(chrono::Utc::now() + chrono::Duration::hours(20)));
        row.update(app.conn()).await.unwrap();
    }
    receiver
        .wait_until(Duration::from_secs(10), |g| g.len() >= 3)
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = receiver.got();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[2].body["data"]["id"], in_3d.as_str());
    assert_eq!(got[2].body["data"]["warningWindowSeconds"], 86400);

    // Expired, unrevoked: token.expired once; a revoked one that expires: nothing.
    let (_, dies) = app.issue(Auth::Cookie(&cookie), "dies", None, 2).await;
    let (_, revoked) = app.issue(Auth::Cookie(&cookie), "revoked", None, 2).await;
    app.revoke(Auth::Cookie(&cookie), &revoked).await;
    receiver
        .wait_until(Duration::from_secs(10), |g| g.len() >= 4)
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = receiver.got();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[3].body["type"], "token.expired");
    assert_eq!(got[3].body["data"]["id"], dies.as_str());
    app.finish().await;
}

async fn bad_webhooks_are_refused_and_change_nothing(b: Backend) {
    let app = TestApp::start(b, fast).await;
    let cookie = app.sign_in_admin().await;
    let audit_before = audit_actions(app.conn()).await.len();
    let cases: &[(&str, &[&str], &str)] = &[
        ("ftp://example.com/hook", &["token.created"], "http"),
        ("not a url", &["token.created"], "absolute"),
        ("/relative/path", &["token.created"], "absolute"),
        (
            "https://user:pw@example.com/hook",
            &["token.created"],
            "credentials",
        ),
        ("https://example.com/hook", &[], "empty"),
        ("https://example.com/hook", &["token.nope"], "unknown event"),
        (
            "https://example.com/hook",
            &["token.created", "TOKEN.CREATED"],
            "unknown event",
        ),
    ];
    for (url, events, says) in cases {
        let r = app
            .gql(
                Auth::Cookie(&cookie),
                CREATE,
                json!({ "url": url, "events": events }),
            )
            .await;
        assert_eq!(r.code(), "BAD_USER_INPUT", "{url} {events:?}: {}", r.body);
        assert!(r.message().contains(says), "{url}: {}", r.message());
    }
    let long = format!("https://example.com/{}", "a".repeat(2100));
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            CREATE,
            json!({ "url": long, "events": ["token.created"] }),
        )
        .await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    let r = app.gql(Auth::Cookie(&cookie), DELIVERIES, json!({})).await;
    assert_eq!(r.data()["webhooks"], json!([]), "{}", r.body);
    assert_eq!(
        audit_actions(app.conn()).await.len(),
        audit_before,
        "nothing audited"
    );
    // A webhook listing never carries the secret.
    let receiver = Receiver::start(Answer::Ok).await;
    register(
        &app,
        &cookie,
        &receiver,
        &["token.created", "token.created"],
    )
    .await;
    let r = app
        .gql(Auth::Cookie(&cookie), "{ webhooks { events } }", json!({}))
        .await;
    assert_eq!(
        r.data()["webhooks"][0]["events"],
        json!(["token.created"]),
        "duplicates dropped"
    );
    let r = app
        .gql(Auth::Cookie(&cookie), "{ webhooks { secret } }", json!({}))
        .await;
    assert!(!r.body["errors"].is_null(), "no secret field: {}", r.body);
    app.finish().await;
}

async fn private_targets_are_refused_unless_allowed() {
    let app = TestApp::start(Backend::Sqlite, |_| {}).await;
    let cookie = app.sign_in_admin().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://app.localhost/hook",
        "http://10.0.0.7/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ] {
        let r = app
            .gql(
                Auth::Cookie(&cookie),
                CREATE,
                json!({ "url": url, "events": ["token.created"] }),
            )
            .await;
        assert_eq!(r.code(), "BAD_USER_INPUT", "{url}: {}", r.body);
        assert!(
            r.message().contains("--allow-private-webhook-targets"),
            "{url}: {}",
            r.message()
        );
    }
    let r = app
        .gql(Auth::Cookie(&cookie), "{ webhooks { id } }", json!({}))
        .await;
    assert_eq!(r.data()["webhooks"], json!([]));
    app.finish().await;
}

async fn post_form(
    app: &TestApp,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> Value {
    let mut req = app.client.post(app.url(path)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.unwrap().json().await.unwrap()
}

/// Client-credentials and exchanged tokens are not announced one by one
/// (`token.created`), but a token exchanged from one rotated with a grace
/// period is announced as revoked with its parent's rotation.
async fn machine_tokens_are_not_announced_but_their_ends_are(b: Backend) {
    let app = TestApp::start(b, fast).await;
    let cookie = app.sign_in_admin().await;
    let receiver = Receiver::start(Answer::Ok).await;
    register(
        &app,
        &cookie,
        &receiver,
        &["token.created", "token.rotated", "token.revoked"],
    )
    .await;
    // A service account's client-credentials token: no event.
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            "mutation { createServiceAccount(name: \"robot\", scopes: [\"me:read\"]) { clientSecret serviceAccount { clientId } } }",
            json!({}),
        )
        .await;
    let p = &r.data()["createServiceAccount"];
    let (id, secret) = (
        p["serviceAccount"]["clientId"].as_str().unwrap().to_owned(),
        p["clientSecret"].as_str().unwrap().to_owned(),
    );
    let cc = post_form(
        &app,
        "/oauth2/token",
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert!(cc["access_token"].is_string(), "{cc}");
    // A named token, and a token exchanged from it: one token.created (the named one).
    let (parent, parent_id) = app.issue(Auth::Cookie(&cookie), "deploy", None, 3600).await;
    let ex = post_form(
        &app,
        "/oauth2/token",
        None,
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", &parent),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
        ],
    )
    .await;
    let child = ex["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{ex}"))
        .to_owned();
    let child_id = crate::support::jwt_claims(&child)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    // Rotated with a grace period: token.rotated, and the child's token.revoked.
    let r = app
        .gql(
            Auth::Cookie(&cookie),
            "mutation($id: ID) { rotateAccessToken(id: $id, gracePeriod: 60) { accessToken { id } } }",
            json!({ "id": parent_id }),
        )
        .await;
    assert!(r.body["errors"].is_null(), "{}", r.body);
    receiver
        .wait_until(Duration::from_secs(10), |g| g.len() >= 3)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got: Vec<(String, String)> = receiver
        .got()
        .iter()
        .map(|r| {
            (
                r.body["type"].as_str().unwrap().to_owned(),
                r.body["data"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.contains(&("token.created".into(), parent_id.clone())),
        "{got:?}"
    );
    assert!(got.iter().any(|(t, _)| t == "token.rotated"), "{got:?}");
    assert!(
        got.contains(&("token.revoked".into(), child_id.clone())),
        "{got:?}"
    );
    app.finish().await;
}

/// Delivered deliveries older than 7 days, and events left without any, are
/// pruned (at start, then hourly); recent ones stay.
async fn finished_deliveries_are_pruned_after_a_week(b: Backend) {
    use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};
    let app = TestApp::start(b, fast).await;
    let cookie = app.sign_in_admin().await;
    let receiver = Receiver::start(Answer::Ok).await;
    register(&app, &cookie, &receiver, &["token.created"]).await;
    app.issue(Auth::Cookie(&cookie), "old", None, 3600).await;
    app.issue(Auth::Cookie(&cookie), "new", None, 3600).await;
    receiver
        .wait_until(Duration::from_secs(10), |g| g.len() >= 2)
        .await;
    let count = |app: &TestApp| {
        let db = app.conn().clone();
        async move {
            (
                entity::webhook_delivery::Entity::find()
                    .count(&db)
                    .await
                    .unwrap(),
                entity::webhook_event::Entity::find()
                    .count(&db)
                    .await
                    .unwrap(),
            )
        }
    };
    // Wait for both outcomes to be recorded, then age the first by 8 days.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let first = loop {
        let rows = entity::webhook_delivery::Entity::find()
            .all(app.conn())
            .await
            .unwrap();
        if rows.iter().all(|d| d.status == "delivered") || std::time::Instant::now() > deadline {
            break rows.into_iter().min_by_key(|d| d.id).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(first.status, "delivered");
    let created = first.created_at;
    let mut old: entity::webhook_delivery::ActiveModel = first.into();
    old.created_at = Set(created - chrono::Duration::days(8));
    old.update(app.conn()).await.unwrap();
    assert_eq!(count(&app).await, (2, 2));
    let app = app.restart().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(&app).await != (1, 1) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(&app).await,
        (1, 1),
        "the old delivery and its event are gone"
    );
    app.finish().await;
}
