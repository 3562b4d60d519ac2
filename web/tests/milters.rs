//! Milters in the console and the API: added, moved, turned off and removed; a bad address
//! refused with the form kept; the live test showing what the milter negotiated (through a
//! stand-in for the engine's client, which `postern serve` hands in).

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, MilterAddress, MilterTimeouts, Role};
use postern_web::milters::{MilterProbe, ProbeResult};
use postern_web::{AppState, Settings, app};
use serde_json::json;
use support::*;

postern_store::store_tests!(
    the_console_manages_milters_and_tests_one,
    the_api_manages_milters_and_tests_one,
    milters_are_for_global_admins_only
);

/// Answers like a milter at port 8891 would, and that nothing listens anywhere else.
struct FakeProbe;

impl MilterProbe for FakeProbe {
    fn probe<'a>(
        &'a self,
        address: &'a MilterAddress,
        _timeouts: MilterTimeouts,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ProbeResult> + Send + 'a>> {
        Box::pin(async move {
            if address.to_string().ends_with(":8891") {
                ProbeResult {
                    ok: true,
                    version: Some(6),
                    actions: vec!["add-header".into(), "change-header".into()],
                    protocol: vec!["no-helo".into()],
                    error: None,
                }
            } else {
                ProbeResult {
                    ok: false,
                    version: None,
                    actions: vec![],
                    protocol: vec![],
                    error: Some("cannot connect: Connection refused".into()),
                }
            }
        })
    }
}

fn console_with_probe(store: &Store) -> axum::Router {
    let settings = Settings { live_wait: Duration::ZERO, ..Settings::default() };
    app(AppState::new(store.clone(), settings).with_milter_probe(Arc::new(FakeProbe)))
}

async fn the_console_manages_milters_and_tests_one(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console_with_probe(&store);
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get("/milters").await;
    assert!(page.body.contains("No milters"), "{}", page.body);
    assert!(page.body.contains("href=\"/milters\""), "in the navigation");
    let reply = browser
        .post(
            "/milters",
            &[
                ("name", "opendkim"),
                ("address", "inet:127.0.0.1:8891"),
                ("default_action", "accept"),
            ],
        )
        .await;
    assert_eq!(reply.location(), "/milters", "{}", reply.body);
    assert!(flash_text(&reply).starts_with("Milter opendkim added"), "{}", flash_text(&reply));

    // A bad address is refused next to its field, and what was typed stays.
    let reply =
        browser.post("/milters", &[("name", "clamav"), ("address", "127.0.0.1:7357")]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("id=\"e-address\">"), "{}", reply.body);
    assert!(reply.body.contains("value=\"127.0.0.1:7357\""), "{}", reply.body);
    let reply = browser
        .post("/milters", &[("name", "x"), ("address", "unix:/run/x.sock"), ("eom_timeout", "2h")])
        .await;
    assert!(reply.body.contains("id=\"e-eom_timeout\">"), "{}", reply.body);
    let reply = browser
        .post(
            "/milters",
            &[("name", "clamav"), ("address", "unix:/run/clamav/milter.ctl"), ("position", "1")],
        )
        .await;
    assert_eq!(reply.location(), "/milters");
    let milters = store.list_milters().await.unwrap();
    assert_eq!(milters.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["clamav", "opendkim"]);
    let (clamav, opendkim) = (milters[0].id.to_string(), milters[1].id.to_string());

    // The live test shows what the milter negotiated, or why it could not.
    let reply = browser.post("/milters/test", &[("id", &opendkim)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("Test of opendkim"), "{}", reply.body);
    assert!(reply.body.contains("add-header, change-header") && reply.body.contains("no-helo"));
    let reply = browser.post("/milters/test", &[("id", &clamav)]).await;
    assert!(reply.body.contains("Connection refused"), "{}", reply.body);

    let moved = browser.post("/milters/move", &[("id", &opendkim), ("position", "1")]).await;
    assert_eq!(moved.location(), "/milters");
    assert_eq!(store.list_milters().await.unwrap()[0].name, "opendkim");
    let off = browser.post("/milters/enable", &[("id", &clamav), ("enabled", "no")]).await;
    assert!(flash_text(&off).contains("turned off"));
    assert!(!store.load_config().await.unwrap().milters[1].enabled);
    let says = "Remove the milter clamav (unix:/run/clamav/milter.ctl)?";
    let removed = browser.confirmed("/milters/delete", &[("id", &clamav)], says).await;
    assert_eq!(removed.location(), "/milters");
    assert!(
        flash_text(&browser.post("/milters/delete", &[("id", &clamav)]).await)
            .contains("does not exist")
    );
    assert_eq!(store.list_milters().await.unwrap().len(), 1);
    assert_eq!(store.list_audit(1, None).await.unwrap()[0].actor, "console:alice");
}

async fn the_api_manages_milters_and_tests_one(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console_with_probe(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let created = api
        .call(
            "POST",
            "/milters",
            Some(json!({"name": "rspamd", "address": "inet:localhost:11332"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json());
    let body = created.json();
    assert_eq!(body["default_action"], "tempfail");
    assert_eq!(body["listeners"], "smtp,submission");
    assert_eq!(body["eom_timeout_ms"], 300000);
    let created = api
        .call(
            "POST",
            "/milters",
            Some(
                json!({"name": "dkim", "address": "inet:127.0.0.1:8891", "listeners": "submission",
                "command_timeout_ms": 5000, "default_action": "accept", "position": 1}),
            ),
        )
        .await;
    assert_eq!(created.json()["position"], 1);
    let dkim = created.json()["id"].as_i64().unwrap();
    let duplicate =
        api.call("POST", "/milters", Some(json!({"name": "dkim", "address": "unix:/x"}))).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    for bad in [
        json!({"name": "a b", "address": "unix:/x"}),
        json!({"name": "x", "address": "localhost"}),
        json!({"name": "x", "address": "unix:/x", "default_action": "skip"}),
        json!({"name": "x", "address": "unix:/x", "connect_timeout_ms": 0}),
        json!({"name": "x", "address": "unix:/x", "listeners": "lmtp"}),
    ] {
        let reply = api.call("POST", "/milters", Some(bad.clone())).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let list = api.call("GET", "/milters", None).await.json();
    assert_eq!(list["items"][0]["name"], "dkim");
    assert_eq!(list["items"][1]["address"], "inet:localhost:11332");

    let test = api.call("POST", &format!("/milters/{dkim}/test"), None).await.json();
    assert_eq!(test["ok"], true);
    assert_eq!(test["version"], 6);
    let test = api.call("POST", "/milters/1/test", None).await.json();
    assert_eq!(test["ok"], false);
    assert!(test["error"].as_str().unwrap().contains("refused"));
    assert_eq!(api.call("POST", "/milters/99/test", None).await.status, StatusCode::NOT_FOUND);

    let moved = api.call("POST", "/milters/1/move", Some(json!({"position": 1}))).await;
    assert_eq!(moved.json()["position"], 1);
    let off = api.call("POST", "/milters/1/enabled", Some(json!({"enabled": false}))).await;
    assert_eq!(off.json()["enabled"], false);
    assert_eq!(api.call("DELETE", "/milters/1", None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.call("DELETE", "/milters/1", None).await.status, StatusCode::NOT_FOUND);

    // Without a milter client in the process, the test says so.
    let plain = console(&store);
    let api = Api::new(&store, &plain, "alice", Access::Write, &[]).await;
    let reply = api.call("POST", &format!("/milters/{dkim}/test"), None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);

    let doc = api.call("GET", "/openapi.json", None).await.json();
    assert!(doc["paths"]["/milters/{id}/test"]["post"].is_object());
    assert!(doc["paths"]["/milters/{id}/move"]["post"].is_object());
}

async fn milters_are_for_global_admins_only(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console_with_probe(&store);
    let browser = Browser::login(&app, "dora").await;
    assert!(!browser.get("/").await.body.contains("href=\"/milters\""));
    assert_eq!(browser.get("/milters").await.status, StatusCode::FORBIDDEN);
    let reply = browser.post("/milters", &[("name", "x"), ("address", "unix:/x")]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    assert_eq!(dora.call("GET", "/milters", None).await.status, StatusCode::FORBIDDEN);
    let body = json!({"name": "x", "address": "unix:/x"});
    assert_eq!(dora.call("POST", "/milters", Some(body)).await.status, StatusCode::FORBIDDEN);
    assert!(store.list_milters().await.unwrap().is_empty());
}
