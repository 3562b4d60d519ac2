//! The Blocklists and Greylisting pages and their API: lists, threshold and whitelist changed
//! and refused, the live tests (through an injected checker standing in for the engine's
//! resolver), greylisting switched per domain and a triplet judged; global administrators only.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{
    Access, Dnsbl, DnsblHit, DnsblReport, GreylistRecord, ListKind, Role, Triplet,
};
use postern_web::screening::{DnsblCheck, DnsblFuture, DnsblSubject};
use postern_web::{AppState, Settings, app};
use serde_json::json;
use support::*;

postern_store::store_tests!(
    blocklists_through_the_api,
    the_blocklists_page_adds_tests_and_removes,
    greylisting_through_the_api_and_the_page
);

/// Lists 127.0.0.2 and spam.test in every list of the right kind.
struct Listing;

impl DnsblCheck for Listing {
    fn check<'a>(&'a self, dnsbl: &'a Dnsbl, subject: &'a DnsblSubject) -> DnsblFuture<'a> {
        let listed = match subject {
            DnsblSubject::Client(ip) => *ip == "127.0.0.2".parse::<IpAddr>().unwrap(),
            DnsblSubject::Domain(d) => d.as_str() == "spam.test",
        };
        let kind = match subject {
            DnsblSubject::Client(_) => ListKind::Ip,
            DnsblSubject::Domain(_) => ListKind::Domain,
        };
        let hits = dnsbl
            .lists
            .iter()
            .filter(|l| listed && l.kind == kind)
            .map(|l| DnsblHit {
                zone: l.zone.to_string(),
                weight: l.weight,
                listed: "x".into(),
                query: format!("x.{}", l.zone),
                answers: vec!["127.0.0.2".into()],
            })
            .collect();
        Box::pin(async move { DnsblReport::new(hits, vec![], dnsbl.threshold) })
    }
}

fn console_with_lists(store: &Store) -> Router {
    let settings = Settings { live_wait: Duration::ZERO, ..Settings::default() };
    app(AppState::new(store.clone(), settings).with_dnsbl_check(Arc::new(Listing)))
}

async fn blocklists_through_the_api(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console_with_lists(&store);
    let alice = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let dora = Api::new(&store, &app, "dora", Access::Write, &["a.test"]).await;

    let added = alice
        .call(
            "POST",
            "/dnsbl/lists",
            Some(json!({"zone": "zen.bl.test", "kind": "ip", "weight": 2, "codes": "127.0.0.2, 127.0.0.10-11"})),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(added.json()["codes"], "127.0.0.2,127.0.0.10-127.0.0.11");
    let again = alice
        .call("POST", "/dnsbl/lists", Some(json!({"zone": "zen.bl.test", "kind": "ip"})))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    let bad = alice
        .call(
            "POST",
            "/dnsbl/lists",
            Some(json!({"zone": "x.test", "kind": "ip", "codes": "10.0.0.1"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let bad =
        alice.call("POST", "/dnsbl/lists", Some(json!({"zone": "x.test", "kind": "both"}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    alice
        .call("POST", "/dnsbl/lists", Some(json!({"zone": "dbl.bl.test", "kind": "domain"})))
        .await;

    let set = alice.call("PUT", "/dnsbl/threshold", Some(json!({"threshold": 3}))).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let white =
        alice.call("POST", "/dnsbl/whitelist", Some(json!({"entry": "192.0.2.0/24"}))).await;
    assert_eq!(white.status, StatusCode::CREATED, "{}", white.body);
    let shown = alice.call("GET", "/dnsbl", None).await.json();
    assert_eq!(shown["threshold"], 3);
    assert_eq!(shown["lists"].as_array().unwrap().len(), 2);
    assert_eq!(shown["whitelist"][0], "192.0.2.0/24");

    // The live test: listed below the threshold, then at it.
    let test = alice.call("POST", "/dnsbl/test", Some(json!({"subject": "127.0.0.2"}))).await;
    assert_eq!(test.status, StatusCode::OK, "{}", test.body);
    let test = test.json();
    assert_eq!((test["verdict"].as_str(), test["score"].as_i64()), (Some("note"), Some(2)));
    alice.call("PUT", "/dnsbl/threshold", Some(json!({"threshold": 2}))).await;
    let test =
        alice.call("POST", "/dnsbl/test", Some(json!({"subject": "127.0.0.2"}))).await.json();
    assert_eq!(test["verdict"], "reject");
    assert_eq!(
        test["reply"],
        "554 5.7.1 Service unavailable; client [127.0.0.2] blocked using zen.bl.test"
    );
    let test =
        alice.call("POST", "/dnsbl/test", Some(json!({"subject": "192.0.2.7"}))).await.json();
    assert_eq!(test["verdict"], "whitelisted");
    let test =
        alice.call("POST", "/dnsbl/test", Some(json!({"subject": "spam.test"}))).await.json();
    assert_eq!((test["kind"].as_str(), test["score"].as_i64()), (Some("domain"), Some(1)));
    let bad = alice.call("POST", "/dnsbl/test", Some(json!({"subject": "not a name"}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);

    // Without a resolver, the test says so.
    let plain = console(&store);
    let alice_plain = Api::new(&store, &plain, "alice", Access::Write, &[]).await;
    let none = alice_plain.call("POST", "/dnsbl/test", Some(json!({"subject": "127.0.0.2"}))).await;
    assert_eq!(none.status, StatusCode::CONFLICT, "{}", none.body);

    // Domain administrators see none of it.
    assert_eq!(dora.call("GET", "/dnsbl", None).await.status, StatusCode::FORBIDDEN);
    let denied =
        dora.call("POST", "/dnsbl/lists", Some(json!({"zone": "y.test", "kind": "ip"}))).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    let removed = alice.call("DELETE", "/dnsbl/whitelist?entry=192.0.2.0/24", None).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    let removed = alice.call("DELETE", "/dnsbl/lists/zen.bl.test", None).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let gone = alice.call("DELETE", "/dnsbl/lists/zen.bl.test", None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(store.dnsbl().await.unwrap().lists.len(), 1);
}

async fn the_blocklists_page_adds_tests_and_removes(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console_with_lists(&store);
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get("/dnsbl").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No list yet") && page.body.contains("href=\"/dnsbl\""));

    let fields = [
        ("zone", "zen.bl.test"),
        ("kind", "ip"),
        ("weight", "1"),
        ("codes", ""),
        ("description", "zen"),
    ];
    let reply = browser.post("/dnsbl/lists", &fields).await;
    assert_eq!(reply.location(), "/dnsbl");
    let bad =
        browser.post("/dnsbl/lists", &[("zone", "x.test"), ("kind", "ip"), ("codes", "&0")]).await;
    assert!(flash_text(&bad).contains("matches nothing"), "{}", flash_text(&bad));
    let bad = browser.post("/dnsbl/threshold", &[("threshold", "many")]).await;
    assert!(flash_text(&bad).contains("whole number"), "{}", flash_text(&bad));
    browser.post("/dnsbl/whitelist", &[("entry", "partner.test")]).await;
    assert_eq!(store.dnsbl().await.unwrap().whitelist.len(), 1);

    let tested = browser.post("/dnsbl/test", &[("subject", "127.0.0.2")]).await;
    assert_eq!(tested.status, StatusCode::OK);
    assert!(tested.body.contains("127.0.0.2: reject"), "{}", tested.body);
    assert!(tested.body.contains("blocked using zen.bl.test"), "{}", tested.body);
    let tested = browser.post("/dnsbl/test", &[("subject", "what?")]).await;
    assert_eq!(tested.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(tested.body.contains("neither an IP address nor a domain"), "{}", tested.body);

    let says = "Remove partner.test from the blocklist whitelist?";
    browser.confirmed("/dnsbl/whitelist/remove", &[("entry", "partner.test")], says).await;
    assert_eq!(store.dnsbl().await.unwrap().lists.len(), 1, "asking removed nothing");
    let says = "Stop asking the blocklist zen.bl.test?";
    browser.confirmed("/dnsbl/lists/remove", &[("zone", "zen.bl.test")], says).await;
    let dnsbl = store.dnsbl().await.unwrap();
    assert!(dnsbl.lists.is_empty() && dnsbl.whitelist.is_empty());

    let dora = Browser::login(&app, "dora").await;
    assert_eq!(dora.get("/dnsbl").await.status, StatusCode::FORBIDDEN);
    assert_eq!(dora.get("/greylisting").await.status, StatusCode::FORBIDDEN);
}

async fn greylisting_through_the_api_and_the_page(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let alice = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let dora = Api::new(&store, &app, "dora", Access::Write, &["a.test"]).await;

    // A domain administrator switches its own domain, not another.
    assert_eq!(
        dora.call("PUT", "/domains/a.test/greylisting", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        dora.call("PUT", "/domains/b.test/greylisting", None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(dora.call("GET", "/greylisting", None).await.status, StatusCode::FORBIDDEN);
    let missing = alice.call("PUT", "/domains/none.test/greylisting", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let set = alice.call("PUT", "/greylisting/settings", Some(json!({"delay": 60}))).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let shown = set.json();
    assert_eq!(shown["settings"]["delay"], 60);
    assert_eq!(shown["settings"]["retry_window"], 172_800);
    assert_eq!(shown["domains"][0], "a.test");
    let bad = alice.call("PUT", "/greylisting/settings", Some(json!({"delay": 0}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);

    // What would happen now: a first attempt, then (with a stored record) a pass.
    let ask = json!({"client": "192.0.2.9", "sender": "x@sender.test", "recipient": "u@a.test"});
    let test = alice.call("POST", "/greylisting/test", Some(ask.clone())).await;
    assert_eq!(test.status, StatusCode::OK, "{}", test.body);
    let test = test.json();
    assert_eq!((test["verdict"].as_str(), test["wait"].as_i64()), (Some("defer"), Some(60)));
    assert_eq!(test["client_network"], "192.0.2.0/24");
    assert!(store.list_greylist_records(10).await.unwrap().0.is_empty(), "a test records nothing");
    let now = postern_store::now();
    let triplet = Triplet::new("192.0.2.9".parse().unwrap(), "x@sender.test", "u@a.test");
    let record =
        GreylistRecord { triplet, first_seen: now - 120, last_seen: now - 120, passed_at: None };
    store.save_greylist_record(&record).await.unwrap();
    let test = alice.call("POST", "/greylisting/test", Some(ask)).await.json();
    assert_eq!(test["verdict"], "pass");
    let off = alice
        .call(
            "POST",
            "/greylisting/test",
            Some(json!({"client": "192.0.2.9", "recipient": "u@b.test"})),
        )
        .await
        .json();
    assert_eq!(off["verdict"], "off");
    let bad = alice
        .call("POST", "/greylisting/test", Some(json!({"client": "x", "recipient": "u@a.test"})))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The page: switch, delays, test, recent triplets.
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get("/greylisting").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("x@sender.test") && page.body.contains("Turn off"), "{}", page.body);
    let reply = browser.post("/greylisting/domain", &[("domain", "b.test"), ("on", "1")]).await;
    assert_eq!(reply.location(), "/greylisting");
    assert!(store.greylisting().await.unwrap().domains.len() == 2);
    let bad = browser
        .post("/greylisting/settings", &[("delay", "10"), ("retry_window", "5"), ("expire", "100")])
        .await;
    assert!(flash_text(&bad).contains("longer than the delay"), "{}", flash_text(&bad));
    let tested = browser
        .post(
            "/greylisting/test",
            &[("client", "198.51.100.1"), ("sender", ""), ("recipient", "u@b.test")],
        )
        .await;
    assert_eq!(tested.status, StatusCode::OK);
    assert!(tested.body.contains("a first attempt: 450 4.7.1 Greylisted"), "{}", tested.body);
    assert_eq!(
        dora.call("DELETE", "/domains/a.test/greylisting", None).await.status,
        StatusCode::NO_CONTENT
    );
}
