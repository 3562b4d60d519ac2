//! The engine's counters into the store: every [`SAMPLE_EVERY`] on the store's clock, and once
//! more when the engine stops, what the Prometheus counters that the dashboard charts
//! (received, delivered, deferred, bounced, rejected) grew by since the previous sample is added
//! to this node's row for the minute (`Store::record_metric_sample`). The console, which never
//! calls into an engine, sums the nodes' rows per hour: the chart and `/metrics` count the same
//! events.
//!
//! Deltas rather than totals: a restart starts the counters again from 0, and the new
//! process's sampler starts from there, so nothing is lost or counted twice across it (at most
//! the last minute of a process killed without a drain).

use std::sync::Arc;
use std::time::Duration;

use postern_store::Store;
use postern_store::metrics::CounterTotals;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// How often the counters are sampled: the rows are per minute.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// One node's sampler: what its counters showed at the last sample that was stored.
pub struct Sampler {
    store: Store,
    node: String,
    last: Mutex<CounterTotals>,
}

impl Sampler {
    /// Starts from the counters' values now, so that an engine started again on the same
    /// `Store` (tests) does not count its predecessor's events twice.
    pub fn new(store: Store, node: String) -> Arc<Sampler> {
        let last = Mutex::new(store.metrics().totals());
        Arc::new(Sampler { store, node, last })
    }

    /// Stores what was counted since the last sample. On failure the increase is kept for the
    /// next one.
    pub async fn sample(&self) {
        let mut last = self.last.lock().await;
        let now = self.store.metrics().totals();
        let delta = now.since(&last);
        let at = self.store.clock().now();
        match self.store.record_metric_sample(&self.node, at, &delta).await {
            Ok(()) => *last = now,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record the counters' sample; retrying at the next one")
            }
        }
    }

    /// Samples every [`SAMPLE_EVERY`] until `shutdown` (the last sample is taken by whoever
    /// waits for the engine's tasks: `Mta::join`).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            // Read each time: a test may give the store a simulated clock after the start.
            let clock = self.store.clock();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = clock.sleep(SAMPLE_EVERY) => {}
            }
            self.sample().await;
        }
    }
}
