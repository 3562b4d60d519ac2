use super::*;

crate::store_tests!(every_change_is_recorded_without_secrets);

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
