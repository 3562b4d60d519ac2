use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;

crate::store_tests!(
    a_commit_reaches_this_process_at_once,
    a_commit_by_another_handle_reaches_the_watcher,
    concurrent_changes_all_land
);

async fn a_commit_reaches_this_process_at_once(store: Store) {
    let mut changes = store.subscribe();
    let start = *changes.borrow();
    domain(&store, "example.com").await;
    tokio::time::timeout(Duration::from_millis(100), changes.changed())
        .await
        .expect("within 100 ms")
        .unwrap();
    assert_eq!(*changes.borrow(), start + 1);
}

async fn a_commit_by_another_handle_reaches_the_watcher(store: Store) {
    // A second handle on the same database plays the other process: its commit reaches
    // this one only through the watcher (revision poll or LISTEN/NOTIFY).
    let other = Store::open(store.database(), store.key_file()).await.unwrap();
    let shutdown = CancellationToken::new();
    let watcher = store.spawn_watcher(shutdown.clone());
    let mut changes = store.subscribe();
    // The first commit is seen once the watcher runs (on Postgres, its first read comes right
    // after LISTEN takes effect); the second then has to come through the feed itself.
    domain(&other, "example.org").await;
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("the watcher starts")
        .unwrap();
    domain(&other, "example.com").await;
    tokio::time::timeout(Duration::from_secs(1), changes.changed())
        .await
        .expect("within a second")
        .unwrap();
    let config = store.load_config().await.unwrap();
    assert_eq!(config.revision, *changes.borrow());
    assert!(config.domains.contains_key(&d("example.com")));
    shutdown.cancel();
    watcher.await.unwrap();
}

async fn concurrent_changes_all_land(store: Store) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { domain(&store, &format!("d{i}.example")).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.list_domains().await.unwrap().len(), 8);
    assert_eq!(store.list_audit(100, None).await.unwrap().len(), 8);
}
