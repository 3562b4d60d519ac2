//! Trusted networks in the console and the API: global only; the CIDR's `/` travels
//! percent-encoded in API paths and as a form field in the console.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, Role};
use serde_json::json;
use support::*;

async fn cidrs(store: &postern_store::Store) -> Vec<String> {
    store.list_networks().await.unwrap().iter().map(|n| n.cidr.to_string()).collect()
}

postern_store::store_tests!(
    a_network_is_added_and_removed_in_the_console,
    a_bad_network_says_what_is_wrong_and_keeps_what_was_typed,
    networks_are_for_global_admins_only,
    a_token_manages_networks_with_the_slash_encoded
);

async fn a_network_is_added_and_removed_in_the_console(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get("/networks").await;
    assert!(page.body.contains("127.0.0.1/32") && page.body.contains("built in"), "{}", page.body);
    let reply = browser
        .post("/networks", &[("cidr", "192.0.2.0/24"), ("description", "office <LAN>")])
        .await;
    assert_eq!(reply.location(), "/networks", "{}", reply.body);
    assert!(
        flash_text(&reply)
            .starts_with("Trusted network 192.0.2.0/24 added; no engine has applied it yet")
    );
    let page = browser.get("/networks").await;
    assert!(
        page.body.contains("office &#60;LAN&#62;") && !page.body.contains("<LAN>"),
        "{}",
        page.body
    );
    assert_eq!(store.list_audit(1, None).await.unwrap()[0].actor, "console:alice");

    let removed =
        browser.post("/networks/delete", &[("cidr", "192.0.2.0/24"), ("confirm", "yes")]).await;
    assert_eq!(removed.location(), "/networks");
    assert_eq!(cidrs(&store).await, ["127.0.0.1/32", "::1/128"]);
    let again =
        browser.post("/networks/delete", &[("cidr", "192.0.2.0/24"), ("confirm", "yes")]).await;
    assert_eq!(again.location(), "/networks");
    assert!(flash_text(&again).contains("does not exist"));
}

async fn a_bad_network_says_what_is_wrong_and_keeps_what_was_typed(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let reply = browser.post("/networks", &[("cidr", "10.1.2.3/8"), ("description", "typo")]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body.contains("id=\"e-cidr\">") && reply.body.contains("did you mean 10.0.0.0/8"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("value=\"10.1.2.3/8\"") && reply.body.contains("value=\"typo\""),
        "{}",
        reply.body
    );
    let long = "x".repeat(201);
    let reply = browser.post("/networks", &[("cidr", "10.0.0.0/8"), ("description", &long)]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("id=\"e-description\">"), "{}", reply.body);
    let dup = browser.post("/networks", &[("cidr", "127.0.0.1"), ("description", "")]).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert!(
        dup.body.contains("id=\"e-cidr\">trusted network 127.0.0.1/32 already exists"),
        "{}",
        dup.body
    );
    assert_eq!(cidrs(&store).await.len(), 2);
}

async fn networks_are_for_global_admins_only(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "dora").await;
    assert!(
        !browser.get("/").await.body.contains("href=\"/networks\""),
        "not in a domain-admin's navigation"
    );
    assert_eq!(browser.get("/networks").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        browser.post("/networks", &[("cidr", "0.0.0.0/0"), ("description", "")]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        browser.post("/networks/delete", &[("cidr", "127.0.0.1/32")]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(cidrs(&store).await, ["127.0.0.1/32", "::1/128"]);

    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let narrow = Api::new(&store, &app, "alice", Access::Write, &["a.test"]).await;
    for api in [&dora, &narrow] {
        assert_eq!(api.call("GET", "/networks", None).await.status, StatusCode::FORBIDDEN);
        assert_eq!(
            api.call("POST", "/networks", Some(json!({"cidr": "0.0.0.0/0"}))).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            api.call("DELETE", "/networks/127.0.0.1%2F32", None).await.status,
            StatusCode::FORBIDDEN
        );
    }
    let reader = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    assert_eq!(reader.call("GET", "/networks", None).await.status, StatusCode::OK);
    let refused = reader.call("POST", "/networks", Some(json!({"cidr": "0.0.0.0/0"}))).await;
    assert_eq!(
        (refused.status, refused.json()["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    assert_eq!(
        reader.call("DELETE", "/networks/127.0.0.1%2F32", None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(cidrs(&store).await, ["127.0.0.1/32", "::1/128"]);
}

async fn a_token_manages_networks_with_the_slash_encoded(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let created = api
        .call(
            "POST",
            "/networks",
            Some(json!({"cidr": "198.51.100.0/24", "description": "branch"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.json()["cidr"], "198.51.100.0/24");
    api.call("POST", "/networks", Some(json!({"cidr": "2001:db8::/48"}))).await;
    let dup = api.call("POST", "/networks", Some(json!({"cidr": "198.51.100.0/24"}))).await;
    assert_eq!(
        (dup.status, dup.json()["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate"))
    );
    let bad = api.call("POST", "/networks", Some(json!({"cidr": "198.51.100.7/24"}))).await;
    assert_eq!(
        (bad.status, bad.json()["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("cidr"))
    );

    // Text order: "127…" < "198…" < "2001…" < "::1…".
    let page = api.call("GET", "/networks?limit=2", None).await.json();
    let first: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|n| n["cidr"].as_str().unwrap()).collect();
    assert_eq!(first, ["127.0.0.1/32", "198.51.100.0/24"]);
    assert_eq!(page["next"], "198.51.100.0/24");
    let rest = api.call("GET", "/networks?limit=2&after=198.51.100.0%2F24", None).await.json();
    let rest: Vec<&str> =
        rest["items"].as_array().unwrap().iter().map(|n| n["cidr"].as_str().unwrap()).collect();
    assert_eq!(rest, ["2001:db8::/48", "::1/128"]);

    assert_eq!(
        api.call("DELETE", "/networks/198.51.100.0%2F24", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("DELETE", "/networks/2001:db8::%2F48", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("DELETE", "/networks/127.0.0.1", None).await.status,
        StatusCode::NO_CONTENT,
        "a bare address is one host"
    );
    assert_eq!(api.call("DELETE", "/networks/127.0.0.1", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.call("DELETE", "/networks/not-a-network", None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // An unencoded slash is two path segments: no such endpoint.
    assert_eq!(
        api.call("DELETE", "/networks/10.0.0.0/8", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(cidrs(&store).await, ["::1/128"]);

    let doc = send(
        &app,
        axum::http::Request::get("/api/v1/openapi.json").body(axum::body::Body::empty()).unwrap(),
    )
    .await
    .json();
    assert!(
        doc["paths"]["/networks"]["get"].is_object()
            && doc["paths"]["/networks"]["post"].is_object()
    );
    let param = &doc["paths"]["/networks/{cidr}"]["delete"]["parameters"][0];
    assert!(param["description"].as_str().unwrap().contains("%2F"), "{param}");
}
