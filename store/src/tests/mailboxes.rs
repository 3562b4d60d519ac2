use super::*;
use crate::MailboxFilter;
use crate::StoreError;
use crate::model::MailboxUpdate;

crate::store_tests!(
    add_update_remove,
    refusals_name_the_problem,
    list_by_domain,
    pages_by_domain_and_search
);

async fn add_update_remove(store: Store) {
    domain(&store, "example.com").await;
    mailbox(&store, "Ann@Example.com").await;
    let got = store.get_mailbox(&a("ann@example.com")).await.unwrap().unwrap();
    assert!(got.enabled);
    assert!(got.password_hash.verify("a long enough password"));

    let update = MailboxUpdate {
        display_name: Some("Ann Example".into()),
        enabled: Some(false),
        quota_bytes: Some(Some(1 << 30)),
        password_hash: Some(PasswordHash::create("another password").unwrap()),
        send_as: Some(crate::model::parse_send_as("@other.test, boss@example.com").unwrap()),
    };
    store.update_mailbox(ACTOR, &a("ann@example.com"), update).await.unwrap();
    let got = store.get_mailbox(&a("ann@example.com")).await.unwrap().unwrap();
    assert_eq!(
        (got.display_name.as_str(), got.enabled, got.quota_bytes),
        ("Ann Example", false, Some(1 << 30))
    );
    let send_as: Vec<String> = got.send_as.iter().map(ToString::to_string).collect();
    assert_eq!(send_as, ["boss@example.com", "@other.test"]);
    let config = store.load_config().await.unwrap();
    assert!(config.may_send_as(&a("ann@example.com"), &a("x@other.test")));
    assert!(!config.may_send_as(&a("ann@example.com"), &a("x@example.com")));
    assert!(got.password_hash.verify("another password"));
    assert!(!got.password_hash.verify("a long enough password"));

    store.remove_mailbox(ACTOR, &a("ann@example.com")).await.unwrap();
    assert!(store.get_mailbox(&a("ann@example.com")).await.unwrap().is_none());
}

async fn refusals_name_the_problem(store: Store) {
    domain(&store, "example.com").await;
    store.add_domain(ACTOR, &d("relay.example"), DomainKind::Relay).await.unwrap();
    mailbox(&store, "ann@example.com").await;
    let new = |addr: &str| NewMailbox {
        address: a(addr),
        display_name: String::new(),
        enabled: true,
        quota_bytes: None,
        password_hash: PasswordHash::create("a long enough password").unwrap(),
    };
    let err = store.add_mailbox(ACTOR, new("ann@example.com")).await.unwrap_err();
    assert_eq!(err.to_string(), "mailbox ann@example.com already exists");
    let err = store.add_mailbox(ACTOR, new("x@unknown.example")).await.unwrap_err();
    assert_eq!(err.to_string(), "domain unknown.example does not exist");
    let err = store.add_mailbox(ACTOR, new("x@relay.example")).await.unwrap_err();
    assert!(err.to_string().contains("relay domain"), "{err}");
    let err = store
        .add_mailbox(
            ACTOR,
            NewMailbox { display_name: "Evil\r\nBcc: x".into(), ..new("b@example.com") },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("display_name:"), "{err}");
    let err = store
        .add_mailbox(ACTOR, NewMailbox { quota_bytes: Some(0), ..new("b@example.com") })
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("quota:"), "{err}");
    let err = store
        .update_mailbox(ACTOR, &a("nobody@example.com"), MailboxUpdate::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
    assert_eq!(store.list_mailboxes(None).await.unwrap().len(), 1);
}

async fn list_by_domain(store: Store) {
    domain(&store, "a.example").await;
    domain(&store, "b.example").await;
    mailbox(&store, "x@a.example").await;
    mailbox(&store, "y@b.example").await;
    mailbox(&store, "z@b.example").await;
    assert_eq!(store.list_mailboxes(Some(&d("b.example"))).await.unwrap().len(), 2);
    assert_eq!(store.list_mailboxes(None).await.unwrap().len(), 3);
}

async fn pages_by_domain_and_search(store: Store) {
    domain(&store, "a.example").await;
    domain(&store, "b.example").await;
    domain(&store, "c.example").await;
    for addr in [
        "x@a.example",
        "y@a.example",
        "y@b.example",
        "z@b.example",
        "w@c.example",
        "100%_off@c.example",
    ] {
        mailbox(&store, addr).await;
    }
    store
        .update_mailbox(
            ACTOR,
            &a("z@b.example"),
            MailboxUpdate { display_name: Some("Zoë ZED".into()), ..Default::default() },
        )
        .await
        .unwrap();
    let addresses = |page: Vec<crate::model::Mailbox>| {
        page.into_iter().map(|m| m.address.to_string()).collect::<Vec<_>>()
    };
    let all = MailboxFilter::default();
    assert_eq!(
        addresses(store.page_mailboxes(&all, None, 2).await.unwrap()),
        ["100%_off@c.example", "w@c.example"]
    );
    assert_eq!(
        addresses(store.page_mailboxes(&all, Some("w@c.example"), 2).await.unwrap()),
        ["x@a.example", "y@a.example"]
    );
    let scoped =
        MailboxFilter { domains: Some(vec![d("a.example"), d("b.example")]), search: None };
    assert_eq!(
        addresses(store.page_mailboxes(&scoped, Some("x@a.example"), 10).await.unwrap()),
        ["y@a.example", "y@b.example", "z@b.example"]
    );
    let none = MailboxFilter { domains: Some(vec![]), search: None };
    assert!(store.page_mailboxes(&none, None, 10).await.unwrap().is_empty());
    let by_name = MailboxFilter { domains: None, search: Some("zed".into()) };
    assert_eq!(addresses(store.page_mailboxes(&by_name, None, 10).await.unwrap()), ["z@b.example"]);
    let by_address =
        MailboxFilter { domains: Some(vec![d("a.example")]), search: Some("Y@".into()) };
    assert_eq!(
        addresses(store.page_mailboxes(&by_address, None, 10).await.unwrap()),
        ["y@a.example"]
    );
    // `%` and `_` are literal, not wildcards.
    let literal = MailboxFilter { domains: None, search: Some("0%_".into()) };
    assert_eq!(
        addresses(store.page_mailboxes(&literal, None, 10).await.unwrap()),
        ["100%_off@c.example"]
    );
    let wildcard = MailboxFilter { domains: None, search: Some("_".into()) };
    assert_eq!(
        addresses(store.page_mailboxes(&wildcard, None, 10).await.unwrap()),
        ["100%_off@c.example"]
    );
}
