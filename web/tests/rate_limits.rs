//! Rate limits in the console and the API (global only), the counters the engines publish, and
//! a flood of wrong API tokens slowed per token and address with 429 (issue 13).

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use postern_store::model::{Access, Role};
use postern_store::{RateCounter, Store};
use serde_json::json;
use support::*;

postern_store::store_tests!(
    limits_are_added_changed_and_removed_in_the_console,
    the_page_and_the_api_show_the_counters_nearest_their_limits,
    rate_limits_are_for_global_admins_only,
    a_token_manages_rate_limits,
    wrong_api_tokens_are_slowed_per_token_and_address
);

async fn summaries(store: &Store) -> Vec<String> {
    store.list_rate_limits().await.unwrap().iter().map(|l| l.summary()).collect()
}

async fn limits_are_added_changed_and_removed_in_the_console(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get("/rate-limits").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("password guessing from one address"), "the defaults are listed");
    assert!(browser.get("/").await.body.contains("href=\"/rate-limits\""), "in the navigation");
    let form = [
        ("measure", "messages"),
        ("key", "sender-domain"),
        ("threshold", "200"),
        ("window", "1h"),
        ("description", "bulk <senders>"),
    ];
    let reply = browser.post("/rate-limits", &form).await;
    assert_eq!(reply.location(), "/rate-limits", "{}", reply.body);
    assert!(
        flash_text(&reply).starts_with("Rate limit 4: 200 messages per sender-domain per 1h added")
    );
    let page = browser.get("/rate-limits").await;
    assert!(page.body.contains("bulk &#60;senders&#62;"), "{}", page.body);

    // A key that does not go with the measure is placed at its field, with what was typed.
    let bad = [("measure", "connections"), ("key", "user"), ("threshold", "5"), ("window", "1m")];
    let reply = browser.post("/rate-limits", &bad).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body.contains("connections are counted per client-ip, client-network only"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("<option selected>user</option>"), "{}", reply.body);
    let bad = [("measure", "messages"), ("key", "user"), ("threshold", "x"), ("window", "1y")];
    let reply = browser.post("/rate-limits", &bad).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("id=\"e-threshold\">"), "{}", reply.body);

    let edit = [
        ("id", "4"),
        ("measure", "messages"),
        ("key", "sender-domain"),
        ("threshold", "50"),
        ("window", "10m"),
        ("description", ""),
    ];
    let reply = browser.post("/rate-limits/update", &edit).await;
    assert_eq!(reply.location(), "/rate-limits");
    assert!(
        flash_text(&reply).starts_with("Rate limit 4 is now 50 messages per sender-domain per 10m")
    );
    let bad = [
        ("id", "4"),
        ("measure", "messages"),
        ("key", "sender-domain"),
        ("threshold", "0"),
        ("window", "1m"),
    ];
    let reply = browser.post("/rate-limits/update", &bad).await;
    assert!(flash_text(&reply).contains("threshold"), "{}", flash_text(&reply));

    let says = "Remove the rate limit 50 messages per sender-domain per 10m?";
    let reply = browser.confirmed("/rate-limits/delete", &[("id", "4")], says).await;
    assert_eq!(reply.location(), "/rate-limits");
    let again = browser.post("/rate-limits/delete", &[("id", "4")]).await;
    assert!(flash_text(&again).contains("does not exist"), "{}", flash_text(&again));
    assert_eq!(summaries(&store).await.len(), 3);
    assert_eq!(store.list_audit(1, None).await.unwrap()[0].actor, "console:alice");
}

async fn the_page_and_the_api_show_the_counters_nearest_their_limits(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let later = postern_store::clock::now() + 300;
    let counter = |subject: &str, count, threshold, limit_id| RateCounter {
        node: "mx1".into(),
        limit_id,
        subject: subject.into(),
        count,
        threshold,
        resets_at: later,
        updated_at: 0,
    };
    store
        .publish_rate_counters(
            "mx1",
            &[counter("192.0.2.7", 31, 30, 1), counter("198.51.100.3", 12, 60, 2)],
        )
        .await
        .unwrap();
    let app = console(&store);
    let page = Browser::login(&app, "alice").await.get("/rate-limits").await;
    let near = page.body.find("192.0.2.7").expect("listed");
    assert!(near < page.body.find("198.51.100.3").unwrap(), "nearest the threshold first");
    assert!(page.body.contains("31 / 30 <strong>refused</strong>"), "{}", page.body);
    assert!(page.body.contains("#1: 30 auth-failures per client-ip per 1h"), "{}", page.body);

    let api = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let got = api.call("GET", "/rate-limits/counters", None).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    let items = &got.json()["items"];
    assert_eq!(items[0]["subject"], "192.0.2.7");
    assert_eq!(items[0]["refused"], true);
    assert_eq!(items[1]["refused"], false);
}

async fn rate_limits_are_for_global_admins_only(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "dora").await;
    assert!(!browser.get("/").await.body.contains("href=\"/rate-limits\""));
    assert_eq!(browser.get("/rate-limits").await.status, StatusCode::FORBIDDEN);
    let form = [("measure", "messages"), ("key", "user"), ("threshold", "1"), ("window", "1h")];
    assert_eq!(browser.post("/rate-limits", &form).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        browser.post("/rate-limits/delete", &[("id", "1")]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        browser.post("/rate-limits/update", &[("id", "1")]).await.status,
        StatusCode::FORBIDDEN
    );
    let api = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    assert_eq!(api.call("GET", "/rate-limits", None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.call("GET", "/rate-limits/counters", None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.call("DELETE", "/rate-limits/1", None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(summaries(&store).await.len(), 3);
}

async fn a_token_manages_rate_limits(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let new = json!({"key": "user", "measure": "messages", "threshold": 100, "window_secs": 3600});
    let created = api.call("POST", "/rate-limits", Some(new)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.json()["summary"], "100 messages per user per 1h");
    let id = created.json()["id"].as_i64().unwrap();
    let bad = json!({"key": "sender-domain", "measure": "auth-failures", "threshold": 1, "window_secs": 60});
    let refused = api.call("POST", "/rate-limits", Some(bad)).await;
    assert_eq!(
        (refused.status, refused.json()["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("key"))
    );
    let change =
        json!({"key": "user", "measure": "recipients", "threshold": 500, "window_secs": 86400});
    let changed = api.call("PUT", &format!("/rate-limits/{id}"), Some(change.clone())).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.json()["window"], "1d");
    assert_eq!(
        api.call("PUT", "/rate-limits/99", Some(change)).await.status,
        StatusCode::NOT_FOUND
    );
    let list = api.call("GET", "/rate-limits", None).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 4);
    assert_eq!(
        api.call("DELETE", &format!("/rate-limits/{id}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("DELETE", &format!("/rate-limits/{id}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    let reader = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    assert_eq!(reader.call("DELETE", "/rate-limits/1", None).await.status, StatusCode::FORBIDDEN);

    let doc = api.call("GET", "/openapi.json", None).await.json();
    for (path, method) in
        [("/rate-limits", "post"), ("/rate-limits/{id}", "put"), ("/rate-limits/counters", "get")]
    {
        assert!(doc["paths"][path][method].is_object(), "{path} {method}");
    }
}

async fn wrong_api_tokens_are_slowed_per_token_and_address(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let call = |bearer: String| {
        let app = app.clone();
        async move {
            let mut request = Request::get("/api/v1/domains")
                .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
                .body(Body::empty())
                .unwrap();
            // As the console's server loop says who is asking.
            let peer: std::net::SocketAddr = "192.0.2.80:5000".parse().unwrap();
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            send(&app, request).await
        }
    };
    // Five wrong secrets for one token ID are answered as usual…
    for n in 0..5 {
        assert_eq!(call(format!("pst_guessed_{n}")).await.status, StatusCode::UNAUTHORIZED);
    }
    // …then a wrong secret for that ID is answered 429, with the time to wait.
    let slowed = call("pst_guessed_6".into()).await;
    assert_eq!(slowed.status, StatusCode::TOO_MANY_REQUESTS, "{}", slowed.body);
    assert_eq!(slowed.json()["error"]["code"], "too_many_attempts");
    assert!(slowed.headers.get(header::RETRY_AFTER).is_some());
    // The good token still gets in at once from there: only failures count.
    assert_eq!(call(api.bearer.clone()).await.status, StatusCode::OK);
    // Guessing across token IDs slows the whole address past its allowance (20 failures,
    // the six above among them).
    for n in 0..14 {
        assert_eq!(call(format!("pst_other{n}_x")).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(call("pst_another_x".into()).await.status, StatusCode::TOO_MANY_REQUESTS);
    // Wrong secrets for the good token's own ID, from this slowed address, do not lock its
    // holder out: a good token always gets in.
    let own_id = api.bearer.trim_start_matches("pst_").split('_').next().unwrap().to_string();
    for n in 0..8 {
        call(format!("pst_{own_id}_wrong{n}")).await;
    }
    assert_eq!(call(api.bearer.clone()).await.status, StatusCode::OK);
    // Junk that is no token at all is refused as such, never throttled, never counted.
    for junk in ["not-a-token", "pst_", "pst_noseparator"] {
        assert_eq!(call(junk.into()).await.status, StatusCode::UNAUTHORIZED, "{junk}");
    }
    // The 429 is in the OpenAPI document, on every operation.
    let doc =
        send(&app, Request::get("/api/v1/openapi.json").body(Body::empty()).unwrap()).await.json();
    let op = &doc["paths"]["/domains"]["get"]["responses"]["429"];
    assert!(op["headers"]["Retry-After"].is_object(), "{op}");
}
