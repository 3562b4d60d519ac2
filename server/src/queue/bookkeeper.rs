//! Recording delivery outcomes in the store, many at a time: one transaction for whatever has
//! piled up while the previous one was written, so bookkeeping never costs an fsync per
//! recipient (ARCHITECTURE.md: durability).

use postern_store::Store;
use postern_store::model::DeliveryResult;
use tokio::sync::mpsc;

/// Writes results until the channel closes, then writes what is left.
pub async fn run(store: Store, mut results: mpsc::Receiver<Vec<DeliveryResult>>) {
    while let Some(first) = results.recv().await {
        let mut batch = first;
        while let Ok(more) = results.try_recv() {
            batch.extend(more);
            if batch.len() >= 4096 {
                break;
            }
        }
        // A failure here means a delivered recipient may be tried again after a restart: at
        // least once, never lost.
        match store.queue_record_results(&batch).await {
            // Counted once recorded, so that the counters agree with the delivery log.
            Ok(_) => count(store.metrics(), &batch),
            Err(e) => {
                tracing::error!(error = %e, results = batch.len(), "cannot record delivery results")
            }
        }
    }
}

fn count(metrics: &postern_store::metrics::Metrics, batch: &[DeliveryResult]) {
    use postern_store::model::Outcome;
    let (mut delivered, mut deferred, mut failed) = (0, 0, 0);
    for result in batch {
        match result.outcome {
            Outcome::Delivered { .. } => delivered += 1,
            Outcome::Deferred { .. } => deferred += 1,
            Outcome::Failed { .. } => failed += 1,
        }
    }
    metrics.delivered(delivered);
    metrics.deferred(deferred);
    metrics.bounced(failed);
}
