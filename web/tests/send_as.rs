//! A mailbox's send-as list in the API and on its console page: set, shown, cleared, and kept
//! to the caller's own domains.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, Role};
use serde_json::json;
use support::*;

postern_store::store_tests!(
    the_api_sets_and_shows_the_send_as_list,
    a_domain_admin_may_grant_only_its_own_domains,
    the_mailbox_page_sets_the_send_as_list
);

async fn the_api_sets_and_shows_the_send_as_list(store: Store) {
    add_test_domains(&store).await;
    add_mailbox(&store, "ann@a.test").await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;

    let set = api
        .call(
            "PATCH",
            "/mailboxes/ann@a.test",
            Some(json!({"send_as": ["ceo@a.test", "@b.test", "me@gmail.test"]})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.json()["send_as"], json!(["ceo@a.test", "me@gmail.test", "@b.test"]));
    let config = store.load_config().await.unwrap();
    let ann = "ann@a.test".parse().unwrap();
    assert!(config.may_send_as(&ann, &"anyone@b.test".parse().unwrap()));
    assert!(!config.may_send_as(&ann, &"bob@a.test".parse().unwrap()));

    let bad = api
        .call("PATCH", "/mailboxes/ann@a.test", Some(json!({"send_as": ["not an address"]})))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["error"]["field"], "send_as");
    let cleared = api.call("PATCH", "/mailboxes/ann@a.test", Some(json!({"send_as": []}))).await;
    assert_eq!(cleared.json()["send_as"], json!([]));
}

async fn a_domain_admin_may_grant_only_its_own_domains(store: Store) {
    add_test_domains(&store).await;
    add_mailbox(&store, "ann@a.test").await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    for other in ["ceo@b.test", "@b.test", "me@gmail.test"] {
        let reply =
            api.call("PATCH", "/mailboxes/ann@a.test", Some(json!({"send_as": [other]}))).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{other}: {}", reply.body);
    }
    let own = api
        .call("PATCH", "/mailboxes/ann@a.test", Some(json!({"send_as": ["sales@a.test"]})))
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);

    let browser = Browser::login(&app, "dora").await;
    let reply = browser
        .post(
            "/mailboxes/ann@a.test",
            &[("display_name", ""), ("quota", ""), ("enabled", "on"), ("send_as", "ceo@b.test")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body.contains("id=\"e-send_as\"") && reply.body.contains("b.test"),
        "{}",
        reply.body
    );
    let got = store.get_mailbox(&"ann@a.test".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(got.send_as.iter().map(ToString::to_string).collect::<Vec<_>>(), ["sales@a.test"]);
}

async fn the_mailbox_page_sets_the_send_as_list(store: Store) {
    add_test_domains(&store).await;
    add_mailbox(&store, "ann@a.test").await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get("/mailboxes/ann@a.test").await;
    assert!(
        page.body.contains("name=\"send_as\"")
            && page.body.contains("only its own address and its aliases"),
        "{}",
        page.body
    );

    let reply = browser
        .post(
            "/mailboxes/ann@a.test",
            &[
                ("display_name", ""),
                ("quota", ""),
                ("enabled", "on"),
                ("send_as", "ceo@a.test, @b.test"),
            ],
        )
        .await;
    assert_eq!(reply.location(), "/mailboxes/ann@a.test", "{}", reply.body);
    let page = browser.get("/mailboxes/ann@a.test").await;
    assert!(page.body.contains("ceo@a.test, @b.test"), "{}", page.body);

    let bad = browser
        .post(
            "/mailboxes/ann@a.test",
            &[("display_name", ""), ("quota", ""), ("enabled", "on"), ("send_as", "@")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"e-send_as\""), "{}", bad.body);
    // A form without the field (an older page) leaves the list alone.
    browser
        .post("/mailboxes/ann@a.test", &[("display_name", "Ann"), ("quota", ""), ("enabled", "on")])
        .await;
    let got = store.get_mailbox(&"ann@a.test".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(got.send_as.len(), 2);
}
