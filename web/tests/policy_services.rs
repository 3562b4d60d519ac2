//! Policy services in the console and the API: added and removed, a bad address refused with the
//! form kept, and the live test showing what the service answered (through a fake probe: the
//! real protocol client is the engine's, tested against postgrey there).

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, PolicyService, Role};
use postern_web::policy_probe::{PolicyProbe, ProbeRequest};
use postern_web::{AppState, Settings, app};
use serde_json::json;
use support::*;

postern_store::store_tests!(
    the_console_adds_services_and_tests_one,
    the_api_manages_services_and_tests_one,
    policy_services_are_for_global_admins_only
);

/// Answers DEFER_IF_PERMIT for a service at port 1 and fails for the rest.
struct Fake;

impl PolicyProbe for Fake {
    fn probe<'a>(
        &'a self,
        service: &'a PolicyService,
        request: &'a ProbeRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + 'a>>
    {
        Box::pin(async move {
            if service.address.to_string().ends_with(":1") {
                Ok(format!("DEFER_IF_PERMIT Greylisted {}", request.client))
            } else {
                Err("cannot connect: refused".into())
            }
        })
    }
}

fn with_probe(store: &Store) -> axum::Router {
    let settings = Settings { live_wait: Duration::ZERO, ..Settings::default() };
    app(AppState::new(store.clone(), settings).with_policy_probe(Arc::new(Fake)))
}

async fn the_console_adds_services_and_tests_one(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = with_probe(&store);
    let browser = Browser::login(&app, "alice").await;
    assert!(browser.get("/policy-services").await.body.contains("No policy services"));
    let reply = browser
        .post(
            "/policy-services",
            &[
                ("name", "grey"),
                ("address", "inet:127.0.0.1:1"),
                ("stage", "rcpt"),
                ("timeout", "2s"),
                ("on_failure", "defer"),
            ],
        )
        .await;
    assert_eq!(reply.location(), "/policy-services", "{}", reply.body);
    let reply = browser
        .post("/policy-services", &[("name", "bad"), ("address", "tcp://x"), ("stage", "rcpt")])
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("id=\"e-address\">"), "{}", reply.body);
    assert!(reply.body.contains("value=\"tcp://x\""), "{}", reply.body);
    let reply = browser
        .post("/policy-services", &[("name", "grey"), ("address", "unix:/x"), ("stage", "data")])
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);

    let page = browser.get("/policy-services").await.body;
    assert!(page.contains("inet:127.0.0.1:1") && page.contains("2000 ms"), "{page}");
    let reply =
        browser.post("/policy-services/test", &[("name", "grey"), ("client", "192.0.2.9")]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body.contains("grey answered: action=DEFER_IF_PERMIT Greylisted 192.0.2.9"),
        "{}",
        reply.body
    );
    let reply = browser.post("/policy-services/test", &[("name", "nope")]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("id=\"e-name\">"), "{}", reply.body);

    let says = "Remove the policy service grey";
    let removed = browser.confirmed("/policy-services/delete", &[("name", "grey")], says).await;
    assert_eq!(removed.location(), "/policy-services");
    assert!(store.list_policy_services().await.unwrap().is_empty());
}

async fn the_api_manages_services_and_tests_one(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = with_probe(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let created = api
        .call("POST", "/policy-services", Some(json!({"name": "spf", "address": "unix:/run/spf.sock", "stage": "data", "timeout_ms": 500})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json());
    assert_eq!(created.json()["on_failure"], "dunno");
    assert_eq!(created.json()["timeout_ms"], 500);
    let bad = api
        .call(
            "POST",
            "/policy-services",
            Some(json!({"name": "x", "address": "inet:h:1", "stage": "helo"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let list = api.call("GET", "/policy-services", None).await.json();
    assert_eq!(list["items"][0]["address"], "unix:/run/spf.sock");
    let result = api.call("POST", "/policy-services/spf/test", Some(json!({}))).await.json();
    assert_eq!(result["answered"], false);
    assert_eq!(result["failure"], "cannot connect: refused");
    let missing = api.call("POST", "/policy-services/nope/test", Some(json!({}))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.call("DELETE", "/policy-services/spf", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("DELETE", "/policy-services/spf", None).await.status,
        StatusCode::NOT_FOUND
    );

    // Without an engine in the process, the test says so.
    let plain = console(&store);
    api.call(
        "POST",
        "/policy-services",
        Some(json!({"name": "g", "address": "inet:127.0.0.1:1", "stage": "rcpt"})),
    )
    .await;
    let api = Api::new(&store, &plain, "alice", Access::Write, &[]).await;
    let result = api.call("POST", "/policy-services/g/test", Some(json!({}))).await;
    assert_eq!(result.status, StatusCode::SERVICE_UNAVAILABLE);
}

async fn policy_services_are_for_global_admins_only(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "dora").await;
    assert!(!browser.get("/").await.body.contains("href=\"/policy-services\""));
    assert_eq!(browser.get("/policy-services").await.status, StatusCode::FORBIDDEN);
    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    assert_eq!(dora.call("GET", "/policy-services", None).await.status, StatusCode::FORBIDDEN);
}
