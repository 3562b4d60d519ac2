//! A domain's own page: its mailboxes and aliases, the quota they are given, its DNS health at
//! a glance, its kind to change; and the domain list's counts.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{DomainKind, NewMailbox, PasswordHash, Role};
use support::*;

postern_store::store_tests!(a_domain_has_a_page_with_what_is_in_it);

async fn a_domain_has_a_page_with_what_is_in_it(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["b.test"]).await;
    add_mailbox(&store, "ann@a.test").await;
    let new = NewMailbox {
        address: "bob@a.test".parse().unwrap(),
        display_name: "Bob".into(),
        enabled: true,
        quota_bytes: Some(500 * 1024 * 1024),
        password_hash: PasswordHash::create(PASSWORD).unwrap(),
    };
    store.add_mailbox("test", new).await.unwrap();
    store
        .create_alias(
            "test",
            &"sales@a.test".parse().unwrap(),
            &["ann@a.test".parse().unwrap(), "bob@a.test".parse().unwrap()],
        )
        .await
        .unwrap();
    let app = console(&store);
    let alice = Browser::login(&app, "alice").await;

    let page = alice.get("/domains/a.test").await;
    assert_eq!(page.status, StatusCode::OK);
    for text in [
        "href=\"/mailboxes/ann@a.test\"",
        "href=\"/mailboxes/bob@a.test\"",
        "href=\"/aliases/sales@a.test\"",
        "ann@a.test, bob@a.test",
        "500 MB in all, and 1 mailbox with no limit",
        "href=\"/domains/a.test/dns\"",
        "not checked",
        "action=\"/domains/a.test/kind\"",
    ] {
        assert!(page.body.contains(text), "{text} in {}", page.body);
    }
    let list = alice.get("/domains").await.body;
    assert!(list.contains("<a href=\"/domains/a.test\">a.test</a>"));
    assert!(list.contains("<td>2</td>\n    <td>1</td>"), "two mailboxes and an alias: {list}");

    // A domain with mailboxes cannot become a relay domain; an empty one can.
    let refused = alice.post("/domains/a.test/kind", &[("kind", "relay")]).await;
    assert_eq!(refused.location(), "/domains/a.test");
    assert!(flash_text(&refused).contains("relay domain"), "{}", flash_text(&refused));
    assert_eq!(
        store.get_domain(&"a.test".parse().unwrap()).await.unwrap().unwrap().kind,
        DomainKind::Local
    );
    let done = alice.post("/domains/b.test/kind", &[("kind", "relay")]).await;
    assert_eq!(done.location(), "/domains/b.test");
    assert_eq!(
        store.get_domain(&"b.test".parse().unwrap()).await.unwrap().unwrap().kind,
        DomainKind::Relay
    );
    assert_eq!(store.list_audit(1, None).await.unwrap()[0].action, "domain.update");

    // A domain-admin sees its own domain's page, not another's, and changes no kind.
    let dora = Browser::login(&app, "dora").await;
    assert_eq!(dora.get("/domains/b.test").await.status, StatusCode::OK);
    assert_eq!(dora.get("/domains/a.test").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        dora.post("/domains/b.test/kind", &[("kind", "local")]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(alice.get("/domains/nowhere.test").await.status, StatusCode::NOT_FOUND);
}
