//! The engine's counter samples on a simulated clock: nothing is stored before a minute has
//! passed, each minute's increase is stored once, summed per hour with the other nodes', and
//! the hourly upkeep trims old samples with the delivery log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_server::counters::{SAMPLE_EVERY, Sampler};
use postern_store::testing::TestDb;
use postern_store::{HourCounts, Retention, SimClock, Store};
use tokio_util::sync::CancellationToken;

/// Waits (a bounded time) until the chart's counts satisfy `pred`.
async fn counts_until(store: &Store, pred: impl Fn(&[HourCounts]) -> bool) -> Vec<HourCounts> {
    let start = Instant::now();
    loop {
        let hours = store.metric_counts(0).await.unwrap();
        if pred(&hours) {
            return hours;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never got there: {hours:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Moves the simulated clock on a minute at a time until the counts satisfy `pred`: the
/// sampler registers its next sleep only once its sample is stored, so a single move could come
/// before it and be missed.
async fn advance_until(
    sim: &SimClock,
    store: &Store,
    pred: impl Fn(&[HourCounts]) -> bool,
) -> Vec<HourCounts> {
    let start = Instant::now();
    loop {
        sim.advance(SAMPLE_EVERY);
        for _ in 0..20 {
            let hours = store.metric_counts(0).await.unwrap();
            if pred(&hours) {
                return hours;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the sampler never stored it");
    }
}

fn total(hours: &[HourCounts]) -> (u64, u64, u64) {
    hours.iter().fold((0, 0, 0), |t, h| (t.0 + h.received, t.1 + h.delivered, t.2 + h.rejected))
}

async fn samples_follow_the_stores_clock(db: TestDb) {
    let store = db.open().await;
    // On an hour boundary, so that the minutes below stay in one hour.
    let sim = SimClock::new(1_800_000_000 / 3600 * 3600);
    store.set_clock(sim.clone().into());
    let shutdown = CancellationToken::new();
    let sampler = Sampler::new(store.clone(), "node-a".into());
    let task = tokio::spawn(sampler.clone().run(shutdown.clone()));
    let metrics = Arc::clone(store.metrics());

    metrics.message_received("smtp");
    metrics.message_received("submission");
    metrics.delivered(2);
    metrics.refused("rejected", "rcpt", "access rule 1", 1);
    // Not a minute yet: nothing stored.
    tokio::task::yield_now().await;
    assert!(store.metric_counts(0).await.unwrap().is_empty());
    let hours = advance_until(&sim, &store, |h| total(h) == (2, 2, 1)).await;
    assert_eq!(hours.len(), 1);

    // The next minute adds only what is new; another node's samples add up with ours.
    metrics.delivered(3);
    advance_until(&sim, &store, |h| total(h) == (2, 5, 1)).await;
    let other = postern_store::metrics::CounterTotals { received: 10, ..Default::default() };
    store.record_metric_sample("node-b", sim_now(&store), &other).await.unwrap();
    counts_until(&store, |h| total(h) == (12, 5, 1)).await;

    // What is counted after the shutdown is stored by the final sample (`Mta::join`'s).
    shutdown.cancel();
    task.await.unwrap();
    metrics.bounced(1);
    sampler.sample().await;
    let hours = counts_until(&store, |h| h.iter().map(|h| h.failed).sum::<u64>() == 1).await;
    assert_eq!(total(&hours), (12, 5, 1));

    // Two days on, an upkeep that keeps a day of history trims them all.
    sim.advance_secs(2 * 86_400);
    let keep_a_day =
        Retention { delivery_log: Duration::from_secs(86_400), ..Retention::default() };
    let trimmed = store.trim_history(keep_a_day).await.unwrap();
    // node-a's minutes (two or three: the last sample may share the second's) and node-b's.
    assert!(trimmed.metric_samples >= 3, "{trimmed:?}");
    assert!(store.metric_counts(0).await.unwrap().is_empty());
}

fn sim_now(store: &Store) -> i64 {
    store.clock().now()
}

#[tokio::test]
async fn samples_follow_the_stores_clock_sqlite() {
    samples_follow_the_stores_clock(TestDb::sqlite()).await;
}

#[tokio::test]
async fn samples_follow_the_stores_clock_postgres() {
    let Some(db) = TestDb::postgres("counters::samples_follow_the_stores_clock_postgres").await
    else {
        return;
    };
    samples_follow_the_stores_clock(db).await;
}
