//! The inbound mail-authentication policy through the API: the global policy for global
//! administrators, a domain's override for whoever manages the domain, bad values refused.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, Role};
use serde_json::json;
use support::*;

postern_store::store_tests!(
    the_policy_is_set_globally_and_per_domain,
    the_console_page_sets_and_clears_policies
);

async fn the_policy_is_set_globally_and_per_domain(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let alice = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let dora = Api::new(&store, &app, "dora", Access::Write, &["a.test"]).await;

    let shown = alice.call("GET", "/mailauth/policy", None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.json()["global"]["dmarc_reject"], "reject");
    let set = alice
        .call(
            "PUT",
            "/mailauth/policy",
            Some(json!({"dmarc_quarantine": "hold", "temperror": "defer"})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let global = store.mail_auth_policies().await.unwrap().global;
    assert_eq!(global.dmarc_quarantine.as_str(), "hold");
    assert_eq!(global.temperror.as_str(), "defer");
    let bad = alice.call("PUT", "/mailauth/policy", Some(json!({"spf_fail": "bounce"}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(bad.body.contains("reject, tag, record"), "{}", bad.body);

    // A domain admin sets its domain's override but not the global policy or another domain's.
    assert_eq!(dora.call("GET", "/mailauth/policy", None).await.status, StatusCode::FORBIDDEN);
    let own = dora.call("GET", "/domains/a.test/mailauth/policy", None).await.json();
    assert_eq!(
        (own["overridden"].as_bool(), own["policy"]["temperror"].as_str()),
        (Some(false), Some("defer"))
    );
    let set = dora
        .call("PUT", "/domains/a.test/mailauth/policy", Some(json!({"spf_fail": "reject"})))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let own = set.json();
    assert_eq!(own["overridden"], true);
    assert_eq!(own["policy"]["spf_fail"], "reject");
    assert_eq!(own["policy"]["dmarc_quarantine"], "hold", "made from the global policy");
    let other = dora.call("PUT", "/domains/b.test/mailauth/policy", Some(json!({}))).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let listed = alice.call("GET", "/mailauth/policy", None).await.json();
    assert_eq!(listed["overrides"][0]["domain"], "a.test");

    let cleared = dora.call("DELETE", "/domains/a.test/mailauth/policy", None).await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT);
    assert!(store.mail_auth_policies().await.unwrap().domains.is_empty());
    let again = dora.call("DELETE", "/domains/a.test/mailauth/policy", None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

async fn the_console_page_sets_and_clears_policies(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get("/mailauth").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("DMARC fail, p=reject") && page.body.contains("All domains"));
    let fields = [
        ("domain", "a.test"),
        ("dmarc_reject", "quarantine"),
        ("dmarc_quarantine", "hold"),
        ("spf_fail", "tag"),
        ("temperror", "defer"),
    ];
    let reply = browser.post("/mailauth", &fields).await;
    assert_eq!(reply.location(), "/mailauth");
    let policies = store.mail_auth_policies().await.unwrap();
    let own = policies.domains.get(&"a.test".parse().unwrap()).expect("an override");
    assert_eq!((own.dmarc_reject.as_str(), own.temperror.as_str()), ("quarantine", "defer"));
    let page = browser.get("/mailauth").await.body;
    assert!(page.contains("action=\"/mailauth/clear\"") && page.contains("hold"), "{page}");
    let bad = browser.post("/mailauth", &[("dmarc_reject", "bounce")]).await;
    assert_eq!(bad.location(), "/mailauth");
    assert!(flash_text(&bad).contains("reject, quarantine, record"), "{}", flash_text(&bad));
    let says = "Clear the SPF/DKIM/DMARC policy set for a.test?";
    browser.confirmed("/mailauth/clear", &[("domain", "a.test")], says).await;
    assert!(store.mail_auth_policies().await.unwrap().domains.is_empty());

    let dora = Browser::login(&app, "dora").await;
    assert_eq!(dora.get("/mailauth").await.status, StatusCode::FORBIDDEN);
}
