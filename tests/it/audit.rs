//! `auditEvents` (SPEC §10): a cursor connection, newest first, without gaps
//! or overlaps; filters; administrators see everything, others their own;
//! and the listings that take `first`/`after`.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::both_backends;
use crate::support::*;

both_backends!(
    audit_pages_have_no_gaps_or_overlaps_and_filter,
    listings_page_with_first_and_after,
);

const AUDIT: &str = "query($first: Int, $after: String, $action: String, $actor: ID) { auditEvents(first: $first, after: $after, action: $action, actorId: $actor) { edges { cursor node { id at action actorId subject ip } } pageInfo { hasNextPage endCursor } } }";

/// Every event visible to `auth`, page by page; also answers the page sizes.
async fn all_pages(
    app: &TestApp,
    auth: Auth<'_>,
    first: i64,
    filter: Value,
) -> (Vec<Value>, Vec<usize>) {
    let mut after: Option<String> = None;
    let mut nodes = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let mut vars = json!({ "first": first, "after": after });
        if let Some(f) = filter.as_object() {
            for (k, v) in f {
                vars[k] = v.clone();
            }
        }
        let r = app.gql(auth, AUDIT, vars).await;
        let conn = &r.data()["auditEvents"];
        let edges = conn["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.body));
        sizes.push(edges.len());
        for e in edges {
            nodes.push(e["node"].clone());
        }
        if conn["pageInfo"]["hasNextPage"] != true {
            return (nodes, sizes);
        }
        after = Some(conn["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
        // Events written between pages are newer: they never shift the pages.
        app.issue(auth, "between-pages", None, 3600).await;
    }
}

async fn audit_pages_have_no_gaps_or_overlaps_and_filter(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    // A failed sign-in, then sign-ins, tokens, a sign-out.
    let r = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": "wrong" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    let admin = app.sign_in_admin().await;
    for i in 0..17 {
        app.issue(Auth::Cookie(&admin), &format!("t{i}"), None, 3600)
            .await;
    }
    let member = app.member("mia@example.com").await;
    let (_, member_token) = app.issue(Auth::Cookie(&member), "mine", None, 3600).await;
    let throwaway = app.sign_in_admin().await;
    let out = app
        .client
        .post(app.url("/auth/logout"))
        .header("cookie", format!("tokengate_session={throwaway}"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success() || out.status().is_redirection());

    // One big page: the reference, newest first.
    let r = app
        .gql(Auth::Cookie(&admin), AUDIT, json!({ "first": 500 }))
        .await;
    let reference: Vec<Value> = r.data()["auditEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    let ids: Vec<i64> = reference
        .iter()
        .map(|n| n["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let actions: HashSet<&str> = reference
        .iter()
        .map(|n| n["action"].as_str().unwrap())
        .collect();
    for a in [
        "sign_in_failed",
        "sign_in",
        "token_issued",
        "sign_out",
        "user_created",
    ] {
        assert!(actions.contains(a), "{a} recorded: {actions:?}");
    }
    assert_eq!(r.data()["auditEvents"]["pageInfo"]["hasNextPage"], false);

    // Pages of 4, with events written between pages: exactly the reference.
    let (paged, sizes) = all_pages(&app, Auth::Cookie(&admin), 4, json!({})).await;
    let paged_ids: Vec<&str> = paged.iter().map(|n| n["id"].as_str().unwrap()).collect();
    let ref_ids: Vec<&str> = reference
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(paged_ids, ref_ids, "no gaps, no overlaps ({sizes:?})");
    assert!(
        sizes[..sizes.len() - 1].iter().all(|s| *s == 4),
        "{sizes:?}"
    );

    // Filters: by action, by actor.
    let (issued, _) = all_pages(
        &app,
        Auth::Cookie(&admin),
        5,
        json!({ "action": "token_issued" }),
    )
    .await;
    assert!(issued.len() >= 18, "{}", issued.len());
    assert!(issued.iter().all(|n| n["action"] == "token_issued"));
    let member_id = app.me(Auth::Cookie(&member)).await.data()["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (by_member, _) = all_pages(
        &app,
        Auth::Cookie(&admin),
        50,
        json!({ "actor": member_id }),
    )
    .await;
    assert!(!by_member.is_empty());
    assert!(by_member.iter().all(|n| n["actorId"] == member_id.as_str()));
    assert!(by_member
        .iter()
        .any(|n| n["subject"] == member_token.as_str()));

    // A member sees their own events only, whatever they ask for.
    let r = app
        .gql(Auth::Cookie(&member), AUDIT, json!({ "first": 500 }))
        .await;
    let mine = r.data()["auditEvents"]["edges"].as_array().unwrap().clone();
    assert!(!mine.is_empty(), "{}", r.body);
    for e in &mine {
        let n = &e["node"];
        assert!(
            n["actorId"] == member_id.as_str() || n["subject"] == member_id.as_str(),
            "{n}"
        );
    }
    let admin_id = app.me(Auth::Cookie(&admin)).await.data()["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // An administrator revokes the member's token: the member sees that too.
    assert_eq!(
        app.revoke(Auth::Cookie(&admin), &member_token).await.status,
        reqwest::StatusCode::OK
    );
    let r = app
        .gql(Auth::Cookie(&member), AUDIT, json!({ "actor": admin_id }))
        .await;
    let seen = r.data()["auditEvents"]["edges"].as_array().unwrap().clone();
    assert_eq!(
        seen.len(),
        1,
        "only the admin's action on the member's token: {}",
        r.body
    );
    assert_eq!(seen[0]["node"]["action"], "token_revoked");
    assert_eq!(seen[0]["node"]["subject"], member_token.as_str());

    // Bad input.
    for vars in [
        json!({ "first": 0 }),
        json!({ "first": 501 }),
        json!({ "after": "not-a-cursor" }),
        json!({ "after": "dXNlcjox" }),
    ] {
        let r = app.gql(Auth::Cookie(&admin), AUDIT, vars.clone()).await;
        assert_eq!(r.code(), "BAD_USER_INPUT", "{vars}: {}", r.body);
    }
    // Needs a token with tokens:read.
    let (narrow, _) = app
        .issue(Auth::Cookie(&admin), "narrow", Some(&["me:read"]), 3600)
        .await;
    let r = app.gql(Auth::Bearer(&narrow), AUDIT, json!({})).await;
    assert_eq!(r.code(), "FORBIDDEN", "{}", r.body);
    app.finish().await;
}

async fn listings_page_with_first_and_after(b: Backend) {
    let app = TestApp::start(b, |_| {}).await;
    let admin = app.sign_in_admin().await;
    for i in 0..7 {
        app.issue(Auth::Cookie(&admin), &format!("t{i}"), None, 3600)
            .await;
    }
    for i in 0..5 {
        tokengate::users::create(
            app.conn(),
            &format!("u{i}@example.com"),
            &tokengate::auth::secret::Secret::new(MEMBER_PASSWORD),
            tokengate::auth::Role::Member,
            None,
            None,
        )
        .await
        .unwrap();
    }
    for i in 0..4 {
        let r = app
            .gql(
                Auth::Cookie(&admin),
                "mutation($n: String!) { createServiceAccount(name: $n, scopes: [\"me:read\"]) { serviceAccount { id } } }",
                json!({ "n": format!("svc{i}") }),
            )
            .await;
        assert!(r.body["errors"].is_null(), "{}", r.body);
    }
    let cases = [
        (
            "accessTokens",
            "query($f: Int, $a: ID) { list: accessTokens(first: $f, after: $a) { id } }",
        ),
        (
            "users",
            "query($f: Int, $a: ID) { list: users(first: $f, after: $a) { id } }",
        ),
        (
            "serviceAccounts",
            "query($f: Int, $a: ID) { list: serviceAccounts(first: $f, after: $a) { id } }",
        ),
        (
            "me.accessTokens",
            "query($f: Int, $a: ID) { me { list: accessTokens(first: $f, after: $a) { id } } }",
        ),
    ];
    for (name, query) in cases {
        let list = |r: &Gql| -> Vec<String> {
            let d = r.data();
            let l = if d["list"].is_null() {
                &d["me"]["list"]
            } else {
                &d["list"]
            };
            l.as_array()
                .unwrap_or_else(|| panic!("{name}: {}", r.body))
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect()
        };
        // Today's call, unchanged: everything.
        let all = list(&app.gql(Auth::Cookie(&admin), query, json!({})).await);
        assert!(all.len() >= 4, "{name}: {all:?}");
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = list(
                &app.gql(Auth::Cookie(&admin), query, json!({ "f": 3, "a": after }))
                    .await,
            );
            assert!(page.len() <= 3);
            if page.is_empty() {
                break;
            }
            after = page.last().cloned();
            paged.extend(page);
        }
        assert_eq!(
            paged, all,
            "{name}: pages in the same order, no gaps or overlaps"
        );
        for vars in [
            json!({ "f": 0 }),
            json!({ "f": 501 }),
            json!({ "f": 2, "a": "nope" }),
        ] {
            let r = app.gql(Auth::Cookie(&admin), query, vars.clone()).await;
            assert_eq!(r.code(), "BAD_USER_INPUT", "{name} {vars}: {}", r.body);
        }
    }
    app.finish().await;
}
