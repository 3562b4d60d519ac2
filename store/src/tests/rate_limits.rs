use super::*;
use crate::RateCounter;
use crate::StoreError;
use crate::model::{NewRateLimit, RateKey, RateMeasure};

crate::store_tests!(
    rate_limits_come_with_defaults_and_change_live,
    rate_counters_are_replaced_per_node_and_sorted
);

fn new(key: RateKey, measure: RateMeasure, threshold: i64, window: i64) -> NewRateLimit {
    NewRateLimit { key, measure, threshold, window_secs: window, description: "t".into() }
}

async fn rate_limits_come_with_defaults_and_change_live(store: Store) {
    // A fresh install is protected: AUTH failures per address, connections per address,
    // recipients per user.
    let defaults = store.list_rate_limits().await.unwrap();
    let summary: Vec<String> = defaults.iter().map(|l| l.summary()).collect();
    assert_eq!(
        summary,
        [
            "30 auth-failures per client-ip per 1h",
            "60 connections per client-ip per 1m",
            "1000 recipients per user per 1h"
        ]
    );
    let before = store.revision().await.unwrap();
    let added = store
        .add_rate_limit(ACTOR, new(RateKey::SenderDomain, RateMeasure::Messages, 100, 3600))
        .await
        .unwrap();
    assert_eq!(added.id, 4);
    assert!(store.revision().await.unwrap() > before, "a change is a new revision");
    let config = store.load_config().await.unwrap();
    assert_eq!(config.rate_limits.len(), 4);
    assert_eq!(config.rate_limits[3], added);

    let changed = store
        .update_rate_limit(ACTOR, 4, new(RateKey::SenderDomain, RateMeasure::Recipients, 5, 60))
        .await
        .unwrap();
    assert_eq!(
        (changed.measure, changed.threshold, changed.created_at),
        (RateMeasure::Recipients, 5, added.created_at)
    );
    let err = store
        .add_rate_limit(ACTOR, new(RateKey::User, RateMeasure::Connections, 1, 60))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { field: "key", .. }), "{err}");
    let err = store
        .update_rate_limit(ACTOR, 99, new(RateKey::User, RateMeasure::Messages, 1, 60))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    store.remove_rate_limit(ACTOR, 1).await.unwrap();
    assert!(matches!(store.remove_rate_limit(ACTOR, 1).await, Err(StoreError::NotFound { .. })));
    let ids: Vec<i64> = store.list_rate_limits().await.unwrap().iter().map(|l| l.id).collect();
    assert_eq!(ids, [2, 3, 4]);
    let audit = store.list_audit(10, None).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "rate_limit.update"), "changes are audited");
}

async fn rate_counters_are_replaced_per_node_and_sorted(store: Store) {
    let later = crate::clock::now() + 600;
    let counter = |node: &str, subject: &str, count, threshold| RateCounter {
        node: node.into(),
        limit_id: 1,
        subject: subject.into(),
        count,
        threshold,
        resets_at: later,
        updated_at: 0,
    };
    store
        .publish_rate_counters(
            "a",
            &[counter("a", "192.0.2.1", 5, 10), counter("a", "192.0.2.2", 9, 10)],
        )
        .await
        .unwrap();
    store.publish_rate_counters("b", &[counter("b", "192.0.2.3", 2, 3)]).await.unwrap();
    let got = store.rate_counters(10).await.unwrap();
    let order: Vec<&str> = got.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(order, ["192.0.2.2", "192.0.2.3", "192.0.2.1"], "nearest the threshold first");
    // A node's next publication replaces all of its rows.
    store.publish_rate_counters("a", &[]).await.unwrap();
    let got = store.rate_counters(10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(store.rate_counters(0).await.unwrap().len(), 0);
    // An engine that stopped publishing: its rows are deleted by the next one that publishes,
    // not only hidden; so are rows whose window has ended.
    store.publish_rate_counters("c", &[counter("c", "192.0.2.4", 1, 3)]).await.unwrap();
    crate::testing::hand_edit(
        &store,
        "UPDATE rate_counters SET updated_at = updated_at - 121 WHERE node = 'b'",
    )
    .await;
    crate::testing::hand_edit(&store, "UPDATE rate_counters SET resets_at = 1 WHERE node = 'c'")
        .await;
    store.publish_rate_counters("a", &[counter("a", "192.0.2.1", 1, 10)]).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rate_counters")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1, "only a's fresh row is left");
}
