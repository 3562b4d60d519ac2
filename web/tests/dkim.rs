//! `/api/v1/domains/{name}/dkim` and the console's DKIM page: keys, records to publish, the
//! rollout, scoped to the caller's domains; never a private key.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, DkimKey, DnsCheck, DomainName, Role};
use postern_web::dns::DkimCheck;
use postern_web::{AppState, Settings, app};
use serde_json::json;
use support::*;

/// Says every record is published (the real check is the engine's, tested in server/tests).
struct AllPublished(Store);

impl DkimCheck for AllPublished {
    fn check<'a>(
        &'a self,
        actor: &'a str,
        domain: &'a DomainName,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = postern_store::Result<Vec<DkimKey>>> + Send + 'a>,
    > {
        Box::pin(async move {
            for key in self.0.list_dkim_keys(Some(domain)).await? {
                self.0
                    .record_dkim_check(actor, domain, &key.selector, &DnsCheck::Published)
                    .await?;
            }
            self.0.list_dkim_keys(Some(domain)).await
        })
    }
}

postern_store::store_tests!(
    keys_are_managed_through_the_api,
    the_console_shows_what_to_publish_and_what_may_go
);

async fn keys_are_managed_through_the_api(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let settings = Settings { live_wait: Duration::ZERO, ..Settings::default() };
    let plain = console(&store);
    let checking = app(AppState::new(store.clone(), settings)
        .with_dkim_check(Arc::new(AllPublished(store.clone()))));
    let api = Api::new(&store, &plain, "alice", Access::Write, &[]).await;

    let made = api
        .call(
            "POST",
            "/domains/a.test/dkim",
            Some(json!({"algorithm": "ed25519", "selector": "one"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let key = made.json();
    assert_eq!(key["record_name"], "one._domainkey.a.test");
    assert_eq!(key["state"], "pending");
    assert!(key["record_value"].as_str().unwrap().starts_with("v=DKIM1; k=ed25519; p="));
    let rsa = api.call("POST", "/domains/a.test/dkim", Some(json!({}))).await;
    assert_eq!(rsa.status, StatusCode::CREATED, "{}", rsa.body);
    assert_eq!(rsa.json()["record_strings"].as_array().unwrap().len(), 2, "RSA: two strings");
    let weak = api
        .call("POST", "/domains/a.test/dkim", Some(json!({"algorithm": "rsa", "bits": 1024})))
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", weak.body);
    assert!(weak.body.contains("too weak"), "{}", weak.body);
    let odd = api.call("POST", "/domains/a.test/dkim", Some(json!({"algorithm": "dsa"}))).await;
    assert_eq!(odd.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", odd.body);
    let list = api.call("GET", "/domains/a.test/dkim", None).await;
    assert_eq!(list.json()["items"].as_array().unwrap().len(), 2);
    assert!(!list.body.contains("private") && !list.body.contains("sealed"), "{}", list.body);

    let none = api.call("POST", "/domains/a.test/dkim/rotate", Some(json!({}))).await;
    assert_eq!(none.status, StatusCode::CONFLICT, "{}", none.body);
    let no_dns = api.call("POST", "/domains/a.test/dkim/check", None).await;
    assert_eq!(no_dns.status, StatusCode::CONFLICT, "{}", no_dns.body);

    // Checked: published, so active.
    let api_checking = Api { app: checking, bearer: api.bearer.clone() };
    let checked = api_checking.call("POST", "/domains/a.test/dkim/check", None).await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.body);
    assert!(checked.json()["items"].as_array().unwrap().iter().all(|k| k["state"] == "active"));
    let next = api
        .call("POST", "/domains/a.test/dkim/rotate", Some(json!({"algorithm": "ed25519"})))
        .await;
    assert_eq!(next.status, StatusCode::CREATED, "{}", next.body);
    let selector = next.json()["selector"].as_str().unwrap().to_string();
    let on = api.call("POST", &format!("/domains/a.test/dkim/{selector}/activate"), None).await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    let list = api.call("GET", "/domains/a.test/dkim", None).await.json();
    let one = list["items"].as_array().unwrap().iter().find(|k| k["selector"] == "one").unwrap();
    assert_eq!(one["state"], "retiring");
    assert!(one["keep_published_until"].as_i64().unwrap() > one["retiring_at"].as_i64().unwrap());
    assert_eq!(one["may_remove_record"], false);

    // A domain-admin manages its own domain's keys only.
    let dora = Api::new(&store, &plain, "dora", Access::Write, &[]).await;
    assert_eq!(dora.call("GET", "/domains/a.test/dkim", None).await.status, StatusCode::OK);
    let other = dora.call("POST", "/domains/b.test/dkim", Some(json!({}))).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.body);
    assert_eq!(dora.call("GET", "/domains/b.test/dkim", None).await.status, StatusCode::FORBIDDEN);
}

async fn the_console_shows_what_to_publish_and_what_may_go(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    assert!(browser.get("/domains").await.body.contains("href=\"/domains/a.test/dkim\""));
    let page = browser.get("/domains/a.test/dkim").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No DKIM keys"), "{}", page.body);

    let reply = browser
        .post(
            "/domains/a.test/dkim",
            &[("algorithm", "ed25519"), ("bits", ""), ("selector", "one")],
        )
        .await;
    assert_eq!(reply.location(), "/domains/a.test/dkim", "{}", reply.body);
    assert!(
        flash_text(&reply).starts_with("Key one._domainkey.a.test generated"),
        "{}",
        flash_text(&reply)
    );
    let weak =
        browser.post("/domains/a.test/dkim", &[("algorithm", "rsa"), ("bits", "1024")]).await;
    assert!(flash_text(&weak).contains("too weak"), "{}", flash_text(&weak));
    let page = browser.get("/domains/a.test/dkim").await.body;
    assert!(
        page.contains("one._domainkey.a.test") && page.contains("&#34;v=DKIM1; k=ed25519; p="),
        "{page}"
    );
    assert!(page.contains("pending: publish it") && page.contains("not checked yet"), "{page}");

    browser.post("/domains/a.test/dkim/activate", &[("selector", "one")]).await;
    let rotated = browser.post("/domains/a.test/dkim/rotate", &[("algorithm", "")]).await;
    assert!(flash_text(&rotated).starts_with("Next key"), "{}", flash_text(&rotated));
    let next =
        store.list_dkim_keys(Some(&"a.test".parse().unwrap())).await.unwrap()[1].selector.clone();
    browser.post("/domains/a.test/dkim/activate", &[("selector", next.as_str())]).await;
    let page = browser.get("/domains/a.test/dkim").await.body;
    assert!(page.contains("retiring: keep it published until"), "{page}");
    assert!(!page.contains("sealed:") && !page.contains("PRIVATE"), "{page}");
    let no_dns = browser.post("/domains/a.test/dkim/check", &[]).await;
    assert!(flash_text(&no_dns).contains("no DNS resolver"), "{}", flash_text(&no_dns));

    // A domain-admin sees its own domain's keys only.
    let dora = Browser::login(&app, "dora").await;
    assert_eq!(dora.get("/domains/a.test/dkim").await.status, StatusCode::OK);
    assert_eq!(dora.get("/domains/b.test/dkim").await.status, StatusCode::FORBIDDEN);
    let other = dora.post("/domains/b.test/dkim", &[("algorithm", "ed25519")]).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(store.list_dkim_keys(Some(&"b.test".parse().unwrap())).await.unwrap().len(), 0);
}
