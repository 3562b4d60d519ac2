use super::*;

crate::store_tests!(
    every_change_is_recorded_without_secrets,
    the_trail_filters_by_actor_kind_and_text
);

async fn every_change_is_recorded_without_secrets(store: Store) {
    domain(&store, "example.com").await;
    mailbox(&store, "ann@example.com").await;
    store.remove_mailbox(ACTOR, &a("ann@example.com")).await.unwrap();
    let entries = store.list_audit(10, None).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["mailbox.remove", "mailbox.add", "domain.add"]);
    assert!(entries.iter().all(|e| e.actor == ACTOR));
    assert!(entries[0].before.is_some() && entries[0].after.is_none());
    assert!(entries[1].before.is_none() && entries[1].after.is_some());
    assert!(entries.windows(2).all(|w| w[0].revision > w[1].revision));
    for e in &entries {
        let text = format!("{:?}{:?}", e.before, e.after);
        assert!(!text.contains("argon2"), "no password hash in the audit log: {text}");
    }
    let older = store.list_audit(10, Some(entries[0].id)).await.unwrap();
    assert_eq!(older.len(), 2);
}

async fn the_trail_filters_by_actor_kind_and_text(store: Store) {
    store
        .add_domain(
            "console:alice",
            &"example.com".parse().unwrap(),
            crate::model::DomainKind::Local,
        )
        .await
        .unwrap();
    mailbox(&store, "ann@example.com").await;
    mailbox(&store, "bob_x@example.com").await;
    let find = |actor: Option<&str>, kind: Option<&str>, search: Option<&str>| {
        let store = store.clone();
        let filter = crate::AuditFilter {
            actor: actor.map(str::to_string),
            kind: kind.map(str::to_string),
            search: search.map(str::to_string),
        };
        async move {
            let found = store.search_audit(&filter, 10, None).await.unwrap();
            found.into_iter().map(|e| e.object).collect::<Vec<_>>()
        }
    };
    assert_eq!(find(Some("ALICE"), None, None).await, ["example.com"]);
    assert_eq!(find(None, Some("mailbox"), None).await, ["bob_x@example.com", "ann@example.com"]);
    assert_eq!(find(None, Some("mail"), None).await, Vec::<String>::new(), "a whole kind");
    assert_eq!(find(None, None, Some("ANN@")).await, ["ann@example.com"]);
    assert_eq!(find(None, None, Some("bob_")).await, ["bob_x@example.com"]);
    assert_eq!(find(None, None, Some("b%x")).await, Vec::<String>::new(), "wildcards are literal");
    assert_eq!(find(Some("alice"), Some("mailbox"), None).await, Vec::<String>::new());
    assert_eq!(store.audit_kinds().await.unwrap(), ["domain", "mailbox"]);
}
