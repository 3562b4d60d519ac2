//! Header and body checks in the console and the API: added, moved and removed; a bad regex
//! refused with the form kept; the live test naming the rule a pasted message hits.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, Role};
use serde_json::json;
use support::*;

postern_store::store_tests!(
    the_console_adds_checks_and_its_test_names_the_rule,
    the_api_manages_checks_and_tests_a_message,
    content_checks_are_for_global_admins_only
);

const MESSAGE: &str = "From: a@b.test\nSubject: cheap\n pills\nX-Mailer: SpamKit\n\nhello\n";

async fn the_console_adds_checks_and_its_test_names_the_rule(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    assert!(browser.get("/content-checks").await.body.contains("No content checks"));
    let reply = browser
        .post(
            "/content-checks",
            &[
                ("part", "header"),
                ("pattern", "^Subject:.*cheap pills"),
                ("action", "REJECT no pills"),
            ],
        )
        .await;
    assert_eq!(reply.location(), "/content-checks", "{}", reply.body);
    assert!(flash_text(&reply).starts_with("Content check 1 added"), "{}", flash_text(&reply));

    // A bad regex is refused next to its field, and what was typed stays.
    let reply = browser
        .post("/content-checks", &[("part", "body"), ("pattern", "(oops"), ("action", "HOLD")])
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body.contains("id=\"e-pattern\">") && reply.body.contains("not a valid pattern"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("value=\"(oops\""), "{}", reply.body);
    let reply = browser
        .post("/content-checks", &[("part", "body"), ("pattern", "x"), ("action", "IGNORE")])
        .await;
    assert!(reply.body.contains("id=\"e-action\">"), "{}", reply.body);

    browser
        .post(
            "/content-checks",
            &[("part", "header"), ("pattern", "^X-Mailer:"), ("action", "IGNORE")],
        )
        .await;
    // The live test: the unfolded Subject hits rule 1.
    let reply = browser.post("/content-checks/test", &[("message", MESSAGE)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body.contains("refused: <code>550 5.7.1 no pills</code> (rule 1)"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("header rule 1 (REJECT 550 5.7.1 no pills) matched"),
        "{}",
        reply.body
    );
    let moved = browser.post("/content-checks/move", &[("id", "2"), ("position", "1")]).await;
    assert_eq!(moved.location(), "/content-checks");
    let says = "Messages are no longer tried against it.";
    let removed = browser.confirmed("/content-checks/delete", &[("id", "1")], says).await;
    assert_eq!(removed.location(), "/content-checks");
    let reply = browser.post("/content-checks/test", &[("message", MESSAGE)]).await;
    assert!(reply.body.contains("would be accepted"), "{}", reply.body);
    assert!(reply.body.contains("Header after the checks"), "{}", reply.body);
    assert!(
        flash_text(&browser.post("/content-checks/delete", &[("id", "1")]).await)
            .contains("does not exist")
    );
    assert_eq!(store.list_content_checks().await.unwrap().len(), 1);
    assert_eq!(store.list_audit(1, None).await.unwrap()[0].actor, "console:alice");
}

async fn the_api_manages_checks_and_tests_a_message(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let created = api
        .call(
            "POST",
            "/content-checks",
            Some(json!({"part": "body", "pattern": "hello", "action": "HOLD"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json());
    assert_eq!(created.json()["action"], "HOLD");
    let created = api
        .call(
            "POST",
            "/content-checks",
            Some(json!({"part": "header", "pattern": "^X-Mailer:", "action": "REPLACE X-Mailer: hidden", "position": 1})),
        )
        .await;
    assert_eq!(created.json()["position"], 1);
    let bad = api
        .call(
            "POST",
            "/content-checks",
            Some(json!({"part": "header", "pattern": "[", "action": "WARN"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.json()["error"]["message"].as_str().unwrap().contains("not a valid pattern"));

    let list = api.call("GET", "/content-checks", None).await.json();
    assert_eq!(list["items"][0]["id"], 2);
    let result =
        api.call("POST", "/content-checks/test", Some(json!({"message": MESSAGE}))).await.json();
    assert_eq!(result["decision"], "accept");
    assert_eq!(result["held"], true);
    assert_eq!(result["hits"][0]["rule"], 2);
    assert_eq!(result["hits"][1]["rule"], 1);
    assert!(result["rewritten_header"].as_str().unwrap().contains("X-Mailer: hidden"));

    let moved = api.call("POST", "/content-checks/1/move", Some(json!({"position": 1}))).await;
    assert_eq!(moved.json()["position"], 1);
    assert_eq!(api.call("DELETE", "/content-checks/1", None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.call("DELETE", "/content-checks/1", None).await.status, StatusCode::NOT_FOUND);
    let doc = api.call("GET", "/openapi.json", None).await.json();
    assert!(doc["paths"]["/content-checks/test"]["post"].is_object());
}

async fn content_checks_are_for_global_admins_only(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "dora").await;
    assert!(!browser.get("/").await.body.contains("href=\"/content-checks\""));
    assert_eq!(browser.get("/content-checks").await.status, StatusCode::FORBIDDEN);
    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    assert_eq!(dora.call("GET", "/content-checks", None).await.status, StatusCode::FORBIDDEN);
}
