//! A domain's directory (LDAP / Active Directory) in the console and the API: set, shown without
//! its password, a bad setting refused next to its field with the form kept, the connection test
//! and the lookup showing what the directory answered or why it could not (through a stand-in
//! for the engine's client, which `postern serve` hands in), removal, and the domain scope.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, Address, DirectorySettings, Role};
use postern_web::directory::{DirectoryAnswer, DirectoryFuture, DirectoryProbe};
use postern_web::{AppState, Settings, app};
use serde_json::json;
use support::*;

postern_store::store_tests!(
    the_console_attaches_tests_and_removes_a_directory,
    the_api_manages_a_directory,
    directories_follow_the_domain_scope
);

const SECRET: &str = "svc-password-never-shown";

/// A directory at 127.0.0.1:3890 that knows ann@a.test; any other URL is down.
struct FakeDirectory;

impl DirectoryProbe for FakeDirectory {
    fn test<'a>(&'a self, settings: &'a DirectorySettings) -> DirectoryFuture<'a> {
        Box::pin(async move {
            if settings.url.ends_with(":3890") {
                DirectoryAnswer {
                    ok: true,
                    found: None,
                    dn: None,
                    addresses: vec![],
                    message: format!("connected to {} as {}", settings.url, settings.bind_dn),
                    error: None,
                }
            } else {
                DirectoryAnswer::failed(format!("{}: Connection refused", settings.url))
            }
        })
    }

    fn lookup<'a>(
        &'a self,
        settings: &'a DirectorySettings,
        address: &'a Address,
    ) -> DirectoryFuture<'a> {
        Box::pin(async move {
            if !settings.url.ends_with(":3890") {
                return DirectoryAnswer::failed("no connection in time");
            }
            let found = address.to_string() == "ann@a.test";
            DirectoryAnswer {
                ok: true,
                found: Some(found),
                dn: found.then(|| "uid=ann,dc=a,dc=test".to_string()),
                addresses: if found {
                    vec!["ann@a.test".into(), "sales@a.test".into()]
                } else {
                    vec![]
                },
                message: if found {
                    "ann@a.test belongs to uid=ann,dc=a,dc=test".into()
                } else {
                    "no entry".into()
                },
                error: None,
            }
        })
    }
}

fn console_with_directory(store: &Store) -> axum::Router {
    let settings = Settings { live_wait: Duration::ZERO, ..Settings::default() };
    app(AppState::new(store.clone(), settings).with_directory_probe(Arc::new(FakeDirectory)))
}

fn form<'a>(url: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("url", url),
        ("bind_dn", "cn=postern,dc=a,dc=test"),
        ("bind_password", password),
        ("base_dn", "dc=a,dc=test"),
        ("user_filter", "(objectClass=person)"),
        ("attributes", "mail proxyAddresses"),
        ("timeout_ms", "3000"),
        ("cache_ttl_secs", "60"),
    ]
}

async fn the_console_attaches_tests_and_removes_a_directory(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console_with_directory(&store);
    let browser = Browser::login(&app, "alice").await;
    assert!(
        browser.get("/domains/a.test").await.body.contains("href=\"/domains/a.test/directory\"")
    );
    let page = browser.get("/domains/a.test/directory").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("takes no mailboxes from a directory"), "{}", page.body);

    // Plain LDAP to another machine is refused next to the URL; what was typed stays, but
    // never the password.
    let reply = browser.post("/domains/a.test/directory", &form("ldap://dc1.a.test", SECRET)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("id=\"e-url\""), "{}", reply.body);
    assert!(reply.body.contains("value=\"ldap://dc1.a.test\""), "{}", reply.body);
    assert!(!reply.body.contains(SECRET));
    let mut bad = form("ldap://127.0.0.1:3890", SECRET);
    bad[4] = ("user_filter", "objectClass=person");
    let reply = browser.post("/domains/a.test/directory", &bad).await;
    assert!(reply.body.contains("id=\"e-user_filter\""), "{}", reply.body);

    let reply =
        browser.post("/domains/a.test/directory", &form("ldap://127.0.0.1:3890", SECRET)).await;
    assert_eq!(reply.location(), "/domains/a.test/directory", "{}", reply.body);
    assert!(flash_text(&reply).contains("saved"), "{}", flash_text(&reply));
    let page = browser.get("/domains/a.test/directory").await;
    assert!(page.body.contains("A password is stored"), "{}", page.body);
    assert!(!page.body.contains(SECRET), "the password is never shown back");
    assert!(page.body.contains("Test connection") && page.body.contains("Look up this address"));

    // Saving again without a password keeps the stored one.
    let reply = browser.post("/domains/a.test/directory", &form("ldap://127.0.0.1:3890", "")).await;
    assert_eq!(reply.location(), "/domains/a.test/directory");
    let stored = store.get_directory(&"a.test".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.bind_password.expose(), SECRET);
    assert_eq!(stored.attributes, ["mail", "proxyAddresses"]);

    // The tests show what the directory said.
    let reply = browser.post("/domains/a.test/directory/test", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("connected to ldap://127.0.0.1:3890"), "{}", reply.body);
    let reply =
        browser.post("/domains/a.test/directory/lookup", &[("address", "ann@a.test")]).await;
    assert!(reply.body.contains("uid=ann,dc=a,dc=test") && reply.body.contains("sales@a.test"));
    let reply =
        browser.post("/domains/a.test/directory/lookup", &[("address", "not an address")]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("is not an address"), "{}", reply.body);

    // A directory that is down: the reason, plainly.
    let reply = browser.post("/domains/a.test/directory", &form("ldap://127.0.0.1:9", "")).await;
    assert_eq!(reply.location(), "/domains/a.test/directory");
    let reply = browser.post("/domains/a.test/directory/test", &[]).await;
    assert!(reply.body.contains("could not be asked") && reply.body.contains("Connection refused"));
    let reply =
        browser.post("/domains/a.test/directory/lookup", &[("address", "ann@a.test")]).await;
    assert!(reply.body.contains("no connection in time"), "{}", reply.body);

    // A relay domain has no mailboxes to take from a directory.
    let reply =
        browser.post("/domains/relay.test/directory", &form("ldap://127.0.0.1:3890", SECRET)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);

    let removed = browser
        .confirmed("/domains/a.test/directory/delete", &[], "Detach the directory of a.test?")
        .await;
    assert_eq!(removed.location(), "/domains/a.test/directory");
    assert!(store.get_directory(&"a.test".parse().unwrap()).await.unwrap().is_none());
    let audit = store.list_audit(5, None).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "directory.set" && e.actor == "console:alice"));
    assert!(audit.iter().all(|e| !format!("{e:?}").contains(SECRET)));
}

async fn the_api_manages_a_directory(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console_with_directory(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    assert_eq!(
        api.call("GET", "/domains/a.test/directory", None).await.status,
        StatusCode::NOT_FOUND
    );
    let body = json!({
        "url": "ldaps://127.0.0.1:3890", "bind_dn": "CN=postern,DC=a,DC=test",
        "bind_password": SECRET, "base_dn": "DC=a,DC=test",
        "attributes": ["mail", "proxyAddresses"], "cache_ttl_secs": 30
    });
    let set = api.call("PUT", "/domains/a.test/directory", Some(body)).await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.json());
    let view = set.json();
    assert_eq!(view["bind_password_set"], true);
    assert_eq!(view["timeout_ms"], 5000);
    assert_eq!(view["cache_ttl_secs"], 30);
    assert!(!view.to_string().contains(SECRET));
    let shown = api.call("GET", "/domains/a.test/directory", None).await.json();
    assert_eq!(shown["attributes"], json!(["mail", "proxyAddresses"]));
    assert!(!shown.to_string().contains(SECRET));
    for bad in [
        json!({"url": "http://x", "base_dn": "dc=a"}),
        json!({"url": "ldaps://x", "base_dn": ""}),
        json!({"url": "ldaps://x", "base_dn": "dc=a", "starttls": true}),
        json!({"url": "ldaps://x", "base_dn": "dc=a", "attributes": ["no good"]}),
        json!({"url": "ldaps://x", "base_dn": "dc=a", "timeout_ms": 0}),
        json!({"url": "ldaps://x", "base_dn": "dc=a", "ca_pem": "not a certificate"}),
    ] {
        let reply = api.call("PUT", "/domains/a.test/directory", Some(bad.clone())).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let test = api.call("POST", "/domains/a.test/directory/test", None).await.json();
    assert_eq!(test["ok"], true, "{test}");
    let found = api
        .call("POST", "/domains/a.test/directory/lookup", Some(json!({"address": "ann@a.test"})))
        .await
        .json();
    assert_eq!(found["found"], true);
    assert_eq!(found["addresses"], json!(["ann@a.test", "sales@a.test"]));
    let missing = api
        .call("POST", "/domains/a.test/directory/lookup", Some(json!({"address": "zed@a.test"})))
        .await
        .json();
    assert_eq!(missing["found"], false);
    let reply = api
        .call("POST", "/domains/a.test/directory/lookup", Some(json!({"address": "nonsense"})))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        api.call("POST", "/domains/b.test/directory/test", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("DELETE", "/domains/a.test/directory", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("DELETE", "/domains/a.test/directory", None).await.status,
        StatusCode::NOT_FOUND
    );

    // Without an LDAP client in the process, the tests say so.
    store
        .set_directory(
            "test",
            &"a.test".parse().unwrap(),
            postern_store::model::DirectoryUpdate {
                url: "ldaps://127.0.0.1:3890".into(),
                base_dn: "dc=a,dc=test".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let plain = console(&store);
    let api = Api::new(&store, &plain, "alice", Access::Write, &[]).await;
    let reply = api.call("POST", "/domains/a.test/directory/test", None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);

    let doc = api.call("GET", "/openapi.json", None).await.json();
    assert!(doc["paths"]["/domains/{name}/directory"]["put"].is_object());
    assert!(doc["paths"]["/domains/{name}/directory/lookup"]["post"].is_object());
}

async fn directories_follow_the_domain_scope(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console_with_directory(&store);
    let browser = Browser::login(&app, "dora").await;
    assert_eq!(browser.get("/domains/a.test/directory").await.status, StatusCode::OK);
    assert_eq!(browser.get("/domains/b.test/directory").await.status, StatusCode::FORBIDDEN);
    let reply =
        browser.post("/domains/b.test/directory", &form("ldaps://127.0.0.1:3890", SECRET)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let body = json!({"url": "ldaps://127.0.0.1:3890", "base_dn": "dc=b,dc=test"});
    assert_eq!(
        dora.call("PUT", "/domains/b.test/directory", Some(body.clone())).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        dora.call("PUT", "/domains/a.test/directory", Some(body)).await.status,
        StatusCode::OK
    );
    let reader = Api::new(&store, &app, "dora", Access::Read, &[]).await;
    assert_eq!(
        reader.call("DELETE", "/domains/a.test/directory", None).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(store.get_directory(&"b.test".parse().unwrap()).await.unwrap().is_none());
}
