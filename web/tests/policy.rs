//! Access rules in the console and the API: added, moved and removed; a bad pattern refused with
//! the form kept; the live test form and `/policy/test` naming the rule an envelope hits.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, Role};
use serde_json::json;
use support::*;

postern_store::store_tests!(
    the_console_adds_rules_and_its_test_form_names_the_rule,
    the_api_manages_rules_and_tests_an_envelope,
    policy_is_for_global_admins_only
);

async fn the_console_adds_rules_and_its_test_form_names_the_rule(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    assert!(browser.get("/policy").await.body.contains("No access rules"));
    let reply = browser
        .post(
            "/policy",
            &[
                ("stage", "rcpt"),
                ("client", "192.0.2.0/24"),
                ("recipient", "@example.test"),
                ("action", "REJECT 550 5.7.1 not from there"),
                ("description", "branch <office>"),
            ],
        )
        .await;
    assert_eq!(reply.location(), "/policy", "{}", reply.body);
    assert!(flash_text(&reply).starts_with("Access rule 1 added"), "{}", flash_text(&reply));

    // A bad pattern is refused next to its field, and what was typed stays.
    let reply = browser
        .post("/policy", &[("stage", "mail"), ("sender", "/(oops/"), ("action", "OK")])
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body.contains("id=\"e-sender\">") && reply.body.contains("not a valid pattern"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("value=\"/(oops/\""), "{}", reply.body);
    let reply =
        browser.post("/policy", &[("stage", "rcpt"), ("action", "DEFER 550 5.7.1 x")]).await;
    assert!(
        reply.body.contains("id=\"e-action\">") && reply.body.contains("4xx"),
        "{}",
        reply.body
    );

    // The live test form names the rule and why it matched.
    let reply = browser
        .post(
            "/policy/test",
            &[
                ("client", "192.0.2.9"),
                ("helo", "c.test"),
                ("from", "a@sender.test"),
                ("to", "x@other.test, ann@example.test"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("rcpt &#60;x@other.test&#62;: no rule matched"), "{}", reply.body);
    assert!(
        reply
            .body
            .contains("rcpt &#60;ann@example.test&#62;: rule 1 (REJECT 550 5.7.1 not from there)")
            && reply.body.contains("client 192.0.2.9 is in 192.0.2.0/24"),
        "{}",
        reply.body
    );
    let reply = browser.post("/policy/test", &[("client", "nowhere"), ("to", "a@b.test")]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("id=\"e-client\">"), "{}", reply.body);

    browser.post("/policy", &[("stage", "connect"), ("action", "OK")]).await;
    let moved = browser.post("/policy/move", &[("id", "2"), ("position", "1")]).await;
    assert_eq!(moved.location(), "/policy");
    assert_eq!(store.list_policy_rules().await.unwrap()[0].id, 2);
    let says = "Remove access rule 2 (at ";
    let removed = browser.confirmed("/policy/delete", &[("id", "1")], says).await;
    assert_eq!(removed.location(), "/policy");
    assert!(
        flash_text(&browser.post("/policy/delete", &[("id", "1")]).await)
            .contains("does not exist")
    );
    assert_eq!(store.list_policy_rules().await.unwrap().len(), 1);
    assert_eq!(store.list_audit(1, None).await.unwrap()[0].actor, "console:alice");
}

async fn the_api_manages_rules_and_tests_an_envelope(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let created = api
        .call(
            "POST",
            "/policy/rules",
            Some(json!({"stage": "mail", "sender": "@spam.test", "action": "REJECT 553 5.7.1 no"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json());
    assert_eq!(created.json()["action"], "REJECT 553 5.7.1 no");
    let created = api
        .call(
            "POST",
            "/policy/rules",
            Some(json!({"stage": "mail", "authenticated": true, "action": "OK", "position": 1})),
        )
        .await;
    assert_eq!(created.json()["position"], 1);
    let bad = api
        .call(
            "POST",
            "/policy/rules",
            Some(json!({"stage": "mail", "sender": "/[/", "action": "OK"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.json()["error"]["message"].as_str().unwrap().contains("not a valid pattern"));

    let list = api.call("GET", "/policy/rules", None).await.json();
    assert_eq!(list["items"][0]["id"], 2);
    assert_eq!(list["items"][1]["sender"], "@spam.test");

    let test = |auth: Option<&str>| json!({"client": "198.51.100.1", "from": "x@spam.test", "to": ["ann@example.test"], "auth": auth});
    let result = api.call("POST", "/policy/test", Some(test(None))).await.json();
    let steps = result["steps"].as_array().unwrap();
    let mail = steps.iter().find(|s| s["stage"] == "mail").unwrap();
    assert_eq!(mail["rule"], 1);
    assert_eq!(mail["why"], "sender \"x@spam.test\" matches @spam.test");
    assert_eq!(steps.last().unwrap()["stage"], "mail", "a refusal ends the test");
    let result =
        api.call("POST", "/policy/test", Some(test(Some("ann@example.test")))).await.json();
    let mail = result["steps"].as_array().unwrap().iter().find(|s| s["stage"] == "mail").cloned();
    assert_eq!(mail.unwrap()["rule"], 2);

    let moved = api.call("POST", "/policy/rules/1/move", Some(json!({"position": 1}))).await;
    assert_eq!(moved.json()["position"], 1);
    assert_eq!(api.call("DELETE", "/policy/rules/1", None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.call("DELETE", "/policy/rules/1", None).await.status, StatusCode::NOT_FOUND);

    let doc = api.call("GET", "/openapi.json", None).await.json();
    assert!(doc["paths"]["/policy/test"]["post"].is_object());
    assert!(doc["paths"]["/policy/rules/{id}/move"]["post"].is_object());
}

async fn policy_is_for_global_admins_only(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "dora").await;
    assert!(!browser.get("/").await.body.contains("href=\"/policy\""));
    assert_eq!(browser.get("/policy").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        browser.post("/policy", &[("stage", "connect"), ("action", "REJECT")]).await.status,
        StatusCode::FORBIDDEN
    );
    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    assert_eq!(dora.call("GET", "/policy/rules", None).await.status, StatusCode::FORBIDDEN);
    let test = json!({"client": "192.0.2.1", "to": ["a@a.test"]});
    assert_eq!(dora.call("POST", "/policy/test", Some(test)).await.status, StatusCode::FORBIDDEN);
    assert!(store.list_policy_rules().await.unwrap().is_empty());
}
