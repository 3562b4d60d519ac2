//! The prompt record of what a next hop accepted. A remote `250` is recorded here as soon as
//! it arrives, a group commit at a time, instead of waiting for the rest of the attempt (the
//! message's other routes, its DSNs) and the bookkeeper's batch. A node that dies after the
//! `250` and before this commit leaves the recipient to the node that claims its queue, which
//! sends it again (at least once, docs/cluster.md): this keeps that window to about one commit.
//! The attempt's own record comes later and does not count the delivery twice
//! (`Store::queue_record_results`). An attempt with nothing between its `250`s and its own
//! record (one route, every recipient accepted, no success DSN) skips this one: its own record
//! is as prompt, and the common case then costs one commit instead of two.
//!
//! With `[log] level` including `postern::handoff=debug`, every remote transfer's start
//! (`transfer started`, with the queue ID and sender) and its records (`delivery recorded`
//! here, `attempt recorded` by the bookkeeper) are logged, so that the messages in transfer at
//! a crash can be named: those started and not recorded.

use postern_store::Store;
use postern_store::model::DeliveryResult;
use tokio::sync::mpsc;

/// The target of the hand-off log lines.
pub(crate) const HANDOFF: &str = "postern::handoff";

/// Receipts waiting for their commit. Bounded: a slow store slows the deliveries down.
const BACKLOG: usize = 256;

/// Most receipts one transaction takes.
const MAX_BATCH: usize = 1024;

pub(super) fn start(
    store: Store,
) -> (mpsc::Sender<Vec<DeliveryResult>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(BACKLOG);
    (tx, tokio::spawn(run(store, rx)))
}

async fn run(store: Store, mut receipts: mpsc::Receiver<Vec<DeliveryResult>>) {
    while let Some(first) = receipts.recv().await {
        let mut batch = first;
        while batch.len() < MAX_BATCH {
            match receipts.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        match store.queue_record_delivered(&batch).await {
            Ok(()) => {
                let mut ids: Vec<_> = batch.iter().map(|r| r.id).collect();
                ids.dedup();
                for id in ids {
                    tracing::debug!(target: HANDOFF, queue_id = %id, "delivery recorded");
                }
            }
            // The attempt's own record still comes: only the window grows.
            Err(e) => tracing::warn!(
                error = %e,
                results = batch.len(),
                "cannot record deliveries at once; they are recorded with their attempts"
            ),
        }
    }
}
