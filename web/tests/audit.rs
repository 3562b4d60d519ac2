//! The audit page: queue actions and removals with who made them (console user, API token,
//! command line), each change as the fields that differ with readable times, and a filter by
//! who, by kind and by text.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, NewMessage, NewRecipient, Notify, Role};
use postern_store::now;
use serde_json::json;
use support::*;

fn message(recipient: &str) -> NewMessage {
    NewMessage {
        sender: "a@x.test".into(),
        recipients: vec![NewRecipient {
            address: recipient.into(),
            orcpt: None,
            notify: Notify::default(),
        }],
        envid: None,
        ret: None,
        smtputf8: false,
        eight_bit: false,
        received_at: now(),
        client: "mx.example.org [192.0.2.1]".into(),
        auth_user: None,
        held: false,
        note: None,
        auth_results: None,
        body: b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
    }
}

postern_store::store_tests!(the_audit_page_says_who_did_what_and_filters);

async fn the_audit_page_says_who_did_what_and_filters(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let ids =
        store.queue_insert("mx1.test", &[message("b@y.test"), message("c@y.test")]).await.unwrap();
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    browser.post(&format!("/queue/{}/hold", ids[0]), &[]).await;
    let issued = store
        .create_token("test", &"alice".parse().unwrap(), "nightly script", Access::Write, &[], None)
        .await
        .unwrap();
    let api = Api { app: app.clone(), bearer: issued.bearer };
    let deleted = api
        .call(
            "POST",
            "/queue/actions",
            Some(json!({"action": "delete", "ids": [ids[1].to_string()]})),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let added =
        api.call("POST", "/domains", Some(json!({"name": "new.test", "kind": "local"}))).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(api.call("DELETE", "/domains/new.test", None).await.status, StatusCode::NO_CONTENT);

    let page = browser.get("/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    for text in [
        "console:alice",
        "queue.hold",
        "queue.delete",
        "domain.remove",
        &format!("api:alice/{} (nightly script)", issued.token.id),
        "<th scope=\"row\">created at</th>",
        " UTC</del>",
    ] {
        assert!(page.body.contains(text), "{text} in {}", page.body);
    }
    assert!(!page.body.contains("\"created_at\""), "no raw JSON");

    let queue_only = browser.get("/audit?kind=queue").await.body;
    assert!(queue_only.contains("queue.hold") && !queue_only.contains("domain.add"));
    let by_api = browser.get("/audit?actor=API%3A").await.body;
    assert!(by_api.contains("queue.delete") && !by_api.contains("queue.hold"));
    let found = browser.get(&format!("/audit?search={}", ids[0])).await.body;
    assert!(found.contains("queue.hold") && !found.contains("queue.delete"));
    let none = browser.get("/audit?search=nothing-like-this").await.body;
    assert!(none.contains("No changes match this filter."));
    let bad = browser.get("/audit?kind=bogus").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    let listed = api.call("GET", "/audit?kind=queue&actor=console", None).await.json();
    let actions: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["queue.hold"]);
}
