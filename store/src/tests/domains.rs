use super::*;
use crate::StoreError;

crate::store_tests!(
    add_list_remove,
    duplicates_and_unknowns_are_refused,
    removing_a_domain_in_use_needs_cascade
);

async fn add_list_remove(store: Store) {
    store.add_domain(ACTOR, &d("example.com"), DomainKind::Local).await.unwrap();
    store.add_domain(ACTOR, &d("relay.example"), DomainKind::Relay).await.unwrap();
    let names: Vec<_> = store
        .list_domains()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.name.to_string(), d.kind))
        .collect();
    assert_eq!(
        names,
        vec![
            ("example.com".into(), DomainKind::Local),
            ("relay.example".into(), DomainKind::Relay)
        ]
    );
    store.remove_domain(ACTOR, &d("relay.example"), false).await.unwrap();
    assert_eq!(store.list_domains().await.unwrap().len(), 1);
}

async fn duplicates_and_unknowns_are_refused(store: Store) {
    domain(&store, "example.com").await;
    let before = store.revision().await.unwrap();
    let err = store.add_domain(ACTOR, &d("EXAMPLE.com"), DomainKind::Relay).await.unwrap_err();
    assert_eq!(err.to_string(), "domain example.com already exists");
    let err = store.remove_domain(ACTOR, &d("nowhere.example"), false).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert_eq!(
        store.revision().await.unwrap(),
        before,
        "a refused change leaves no revision behind"
    );
}

async fn removing_a_domain_in_use_needs_cascade(store: Store) {
    domain(&store, "example.com").await;
    mailbox(&store, "ann@example.com").await;
    store
        .add_alias(ACTOR, &"info@example.com".parse().unwrap(), &[a("ann@example.com")])
        .await
        .unwrap();
    let err = store.remove_domain(ACTOR, &d("example.com"), false).await.unwrap_err().to_string();
    assert!(err.contains("1 mailbox(es) and 1 alias(es)") && err.contains("--cascade"), "{err}");
    assert_eq!(store.list_mailboxes(None).await.unwrap().len(), 1, "nothing removed");
    let removed = store.remove_domain(ACTOR, &d("example.com"), true).await.unwrap();
    assert_eq!((removed.mailboxes, removed.aliases), (1, 1));
    assert!(store.list_mailboxes(None).await.unwrap().is_empty());
    assert!(store.list_aliases(None).await.unwrap().is_empty());
}
