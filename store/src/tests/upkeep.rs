//! Issue 14: a day of traffic on a simulated clock, with the hourly upkeep the engine runs
//! (`Store::trim_history`, `spool_sweep`, `compact`), leaves the store bounded: the SQLite file
//! and its WAL no larger at the end of the day than after its second hour, and no queue event
//! or delivery-log entry older than the retention.

use std::time::Duration;

use crate::Store;
use crate::clock::Clock;
use crate::model::{DeliveryResult, Outcome, QueueAction, Selection};
use crate::spool::{CHUNK, INLINE_MAX};
use crate::tests::queue::{message, root};
use crate::{NewRefusal, RefusalStatus, Retention};

const NODE: &str = "mx1.example.test";
const HOUR: i64 = 3600;

crate::store_tests!(a_day_of_traffic_leaves_the_store_bounded);

/// One simulated hour: messages arrive in four batches a quarter of an hour apart (small ones
/// inline, one large one stored apart), half are deferred once and delivered at the next
/// batch, some are held and released, and the sessions refuse a few clients.
async fn an_hour_of_traffic(store: &Store, clock: &Clock, hour: i64) {
    let mut deferred = Vec::new();
    for quarter in 0..4 {
        let mut batch: Vec<_> = (0..30)
            .map(|n| {
                let mut m = message("a@x.test", &["b@y.test"]);
                m.body = format!("Subject: hour {hour}.{quarter}.{n}\r\n\r\n")
                    .into_bytes()
                    .into_iter()
                    .chain(std::iter::repeat_n(b'x', INLINE_MAX / 4))
                    .collect();
                m
            })
            .collect();
        let mut large = message("a@x.test", &["b@y.test"]);
        large.body = vec![b'y'; 2 * CHUNK];
        batch.push(large.clone());
        let body_ref = store.spool_body(&large.body).await.unwrap();
        store.spool_sync().await.unwrap();
        let mut ids = store.queue_insert(NODE, &batch[..batch.len() - 1]).await.unwrap();
        ids.extend(
            store
                .queue_insert_spooled(NODE, &[large], std::slice::from_ref(&body_ref))
                .await
                .unwrap(),
        );
        let now = clock.now();
        store
            .queue_act(&root(), QueueAction::Hold, &Selection::Ids(ids[..3].to_vec()))
            .await
            .unwrap();
        store
            .queue_act(&root(), QueueAction::Release, &Selection::Ids(ids[..3].to_vec()))
            .await
            .unwrap();
        // What was deferred at the last batch goes now, with half of this one; the other half
        // is deferred until the next.
        let mut results: Vec<DeliveryResult> = deferred
            .drain(..)
            .map(|id| DeliveryResult {
                id,
                recipient: 0,
                at: now,
                outcome: Outcome::Delivered { reply: "250 2.0.0 ok".into() },
            })
            .collect();
        for (n, &id) in ids.iter().enumerate() {
            let outcome = if n % 2 == 0 {
                Outcome::Delivered { reply: "250 2.0.0 ok".into() }
            } else {
                deferred.push(id);
                Outcome::Deferred { reply: "451 4.3.0 later".into(), next_attempt_at: now + 900 }
            };
            results.push(DeliveryResult { id, recipient: 0, at: now, outcome });
        }
        store.queue_record_results(&results).await.unwrap();
        let refusals: Vec<NewRefusal> = (0..20)
            .map(|n| NewRefusal {
                at: now,
                status: RefusalStatus::Rejected,
                stage: "rcpt".into(),
                client: format!("192.0.2.{n}"),
                sender: "spam@bad.test".into(),
                recipient: "b@y.test".into(),
                reply: "554 5.7.1 no".into(),
                reason: "access rule 1".into(),
            })
            .collect();
        store.record_refusals(&refusals).await.unwrap();
        clock.advance(15 * 60);
    }
    // The rest goes out before the hour's upkeep.
    let now = clock.now();
    let results: Vec<DeliveryResult> = deferred
        .into_iter()
        .map(|id| DeliveryResult {
            id,
            recipient: 0,
            at: now,
            outcome: Outcome::Delivered { reply: "250 2.0.0 ok".into() },
        })
        .collect();
    store.queue_record_results(&results).await.unwrap();
}

/// The engine's hourly upkeep (`postern serve`'s `upkeep` task), once.
async fn upkeep(store: &Store, retention: Retention) {
    store.trim_history(retention).await.unwrap();
    store.spool_sweep(false).await.unwrap();
    store.compact().await.unwrap();
}

async fn a_day_of_traffic_leaves_the_store_bounded(store: Store) {
    let clock = Clock::manual(1_700_000_000);
    store.set_clock(clock.clone());
    let retention = Retention {
        delivery_log: Duration::from_secs(6 * HOUR as u64),
        queue_events: Duration::from_secs(3 * HOUR as u64),
    };
    let mut after_two_hours = None;
    for hour in 0..24 {
        an_hour_of_traffic(&store, &clock, hour).await;
        upkeep(&store, retention).await;
        if hour == 1 {
            after_two_hours = Some(store.storage_sizes().await.unwrap());
        }
    }
    let after_a_day = store.storage_sizes().await.unwrap();
    let after_two_hours = after_two_hours.unwrap();
    eprintln!("after 2 hours: {after_two_hours:?}\nafter 24 hours: {after_a_day:?}");

    // Nothing older than the retention is left; what is newer is.
    let now = clock.now();
    let oldest_log: Option<i64> = sqlx::query_scalar("SELECT MIN(at) FROM delivery_log")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let oldest_log = oldest_log.expect("the last hours' log is kept");
    assert!(oldest_log >= now - 6 * HOUR, "{} s old", now - oldest_log);
    assert!(oldest_log <= now - 5 * HOUR, "more was trimmed than the retention: {oldest_log}");
    let oldest_event: Option<i64> = sqlx::query_scalar("SELECT MIN(at) FROM queue_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let oldest_event = oldest_event.expect("the last hours' events are kept");
    assert!(oldest_event >= now - 3 * HOUR, "{} s old", now - oldest_event);
    // Per batch: 31 received, 31 first attempts, 16 at most deferred ones delivered and 20
    // refusals. Seven hours' worth at most, where the whole day's would be 24.
    let logged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM delivery_log")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(logged <= 7 * 4 * (31 + 31 + 16 + 20), "{logged} entries kept");
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue_messages")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(queued, 0, "every message was delivered and removed");
    assert_eq!((after_a_day.spooled, after_a_day.spooled_bytes), (0, 0), "{after_a_day:?}");

    if !store.is_postgres() {
        // The SQLite file holds six hours of log at the end of the day, two after the second
        // hour: it may grow by that, and no more (24 hours kept would be twelve times the log).
        let (two, day) = (after_two_hours.database, after_a_day.database);
        assert!(day <= 3 * two, "the file grew from {two} to {day} bytes");
        assert_eq!(after_a_day.free, 0, "freed pages went back: {after_a_day:?}");
        assert_eq!(after_a_day.wal, Some(0), "the WAL was truncated: {after_a_day:?}");
    }
}
