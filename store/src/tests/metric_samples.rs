//! The engines' counter samples: deltas added per node and minute, summed per hour over the
//! nodes for the dashboard's chart, and trimmed with the delivery log.

use std::time::Duration;

use super::*;
use crate::metrics::CounterTotals;
use crate::{Clock, Retention};

crate::store_tests!(samples_add_up_per_hour_over_nodes_and_are_trimmed);

const HOUR: i64 = 3600;

async fn samples_add_up_per_hour_over_nodes_and_are_trimmed(store: Store) {
    let start = 1_700_000_000 / HOUR * HOUR;
    let clock = Clock::manual(start + 10 * HOUR);
    store.set_clock(clock.clone());
    let d = |received, delivered, rejected| CounterTotals {
        received,
        delivered,
        rejected,
        ..CounterTotals::default()
    };
    // Two samples of node a in the same minute add up; node b in the same hour; a later hour.
    store.record_metric_sample("a", start + 5, &d(2, 1, 0)).await.unwrap();
    store.record_metric_sample("a", start + 50, &d(1, 2, 1)).await.unwrap();
    store.record_metric_sample("b", start + 1800, &d(4, 4, 0)).await.unwrap();
    store.record_metric_sample("a", start + HOUR + 61, &d(0, 0, 3)).await.unwrap();
    // An idle minute writes nothing.
    store.record_metric_sample("a", start + 2 * HOUR, &CounterTotals::default()).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metric_samples")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 3);

    let hours = store.metric_counts(start).await.unwrap();
    assert_eq!(hours.len(), 2, "{hours:?}");
    assert_eq!(
        (hours[0].hour, hours[0].received, hours[0].delivered, hours[0].rejected),
        (start, 7, 7, 1)
    );
    assert_eq!((hours[1].hour, hours[1].rejected, hours[1].received), (start + HOUR, 3, 0));
    assert_eq!(store.metric_counts(start + HOUR).await.unwrap().len(), 1);

    // Kept as long as the delivery log: 9 hours back from start + 10 h leaves the second hour.
    let retention =
        Retention { delivery_log: Duration::from_secs(9 * HOUR as u64), ..Retention::default() };
    let trimmed = store.trim_history(retention).await.unwrap();
    assert_eq!(trimmed.metric_samples, 2);
    let hours = store.metric_counts(0).await.unwrap();
    assert_eq!(hours.len(), 1);
    assert_eq!(hours[0].hour, start + HOUR);
}
