//! Recording delivery outcomes in the store, many at a time: one transaction for whatever has
//! piled up while the previous one was written, so bookkeeping never costs an fsync per
//! recipient (ARCHITECTURE.md: durability).
//!
//! Under load the next transaction also waits until [`GATHER`] has passed since the last one,
//! taking what comes meanwhile. On SQLite these transactions share one write lock with the
//! group commit of new messages, whose sessions are waiting for their `250`; measured with
//! 2 KB messages, the writes of outcomes held that lock for about a third of the time, in
//! transactions of some 35 outcomes each, and the sessions' commits waited on them. Fewer,
//! larger ones leave it to the sessions (1–21 % more messages a second, in five pairs of runs).
//! Idle, an outcome is written at once.
//!
//! A batch that cannot be written is kept and written again, with what came meanwhile: its
//! record is what removes finished messages, and a message whose `250`s were recorded at once
//! (`scheduler/receipts.rs`) but whose attempt record is lost has nothing left to try, so
//! nothing else would remove it before the next start.

use std::time::Duration;

use postern_store::Store;
use postern_store::model::DeliveryResult;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::scheduler::HANDOFF;

/// Most results one transaction takes.
const MAX_BATCH: usize = 4096;

/// The least time between two transactions while results keep coming. A delivered message
/// stays queued this much longer at most: what a crash in that window makes us send again.
const GATHER: Duration = Duration::from_millis(50);

/// The wait before writing a failed batch again: doubled each time, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Tries once the channel is closed (the engine is stopping): results not written by then are
/// written at the next start, when the engine settles what it finds finished.
const TRIES_AT_SHUTDOWN: u32 = 5;

/// Writes results until the channel closes, then writes what is left.
pub async fn run(store: Store, mut results: mpsc::Receiver<Vec<DeliveryResult>>) {
    let mut batch: Vec<DeliveryResult> = Vec::new();
    let mut failures = 0u32;
    let mut last_write: Option<Instant> = None;
    loop {
        if batch.is_empty() {
            match results.recv().await {
                Some(first) => batch = first,
                None => return,
            }
        }
        // Taking what comes until GATHER has passed since the last write, never sleeping on
        // it: the scheduler waits when this channel is full.
        if let Some(last) = last_write {
            gather(&mut batch, &mut results, last + GATHER).await;
        }
        // While a batch is failing the channel fills, and the couriers wait: back-pressure,
        // not memory.
        while batch.len() < MAX_BATCH {
            match results.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        match store.queue_record_results(&batch).await {
            Ok(_) => {
                last_write = Some(Instant::now());
                // Counted once recorded, so that the counters agree with the delivery log.
                count(store.metrics(), &batch);
                log_recorded(&batch);
                batch.clear();
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                let closing = results.is_closed() && results.is_empty();
                if closing && failures >= TRIES_AT_SHUTDOWN {
                    tracing::error!(error = %e, results = batch.len(), "cannot record delivery results; they are settled at the next start");
                    return;
                }
                let wait = backoff(failures);
                tracing::error!(error = %e, results = batch.len(), retry_in_ms = wait.as_millis() as u64, "cannot record delivery results; trying again");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Adds to `batch` what comes on `results` until `deadline`, the channel closes or the batch
/// reaches [`MAX_BATCH`].
async fn gather<T>(batch: &mut Vec<T>, results: &mut mpsc::Receiver<Vec<T>>, deadline: Instant) {
    while batch.len() < MAX_BATCH {
        match tokio::time::timeout_at(deadline, results.recv()).await {
            Ok(Some(more)) => batch.extend(more),
            Ok(None) | Err(_) => return,
        }
    }
}

/// The hand-off log's line for each attempt recorded (`scheduler/receipts.rs`): a transfer
/// followed by it, or by a `delivery recorded`, is safe from a crash.
fn log_recorded(batch: &[DeliveryResult]) {
    if !tracing::enabled!(target: HANDOFF, tracing::Level::DEBUG) {
        return;
    }
    let ids: std::collections::BTreeSet<_> = batch.iter().map(|r| r.id).collect();
    for id in ids {
        tracing::debug!(target: HANDOFF, queue_id = %id, "attempt recorded");
    }
}

fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(10)).min(MAX_BACKOFF)
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

#[cfg(test)]
mod tests {
    use postern_store::model::Outcome;
    use postern_store::testing::TestDb;

    use super::*;
    use crate::queue::scheduler::testing::{message, until};

    /// A failed write is tried again: the attempt record is what removes a finished message.
    /// Postgres is where it failed for real (a deadlock with the prompt record of `250`s);
    /// here a trigger refuses the delivery log's rows, counting each refusal in a sequence
    /// (which no rollback undoes), until the test drops it.
    #[tokio::test]
    async fn a_batch_that_cannot_be_written_is_written_again() {
        let test = "queue::bookkeeper::tests::a_batch_that_cannot_be_written_is_written_again";
        let Some(db) = TestDb::postgres(test).await else { return };
        let store = db.open().await;
        let message = message("a@example.org", &["b@example.net"], "s");
        let ids = store.queue_insert("n1", &[message]).await.unwrap();
        db.execute(
            "CREATE SEQUENCE refusals; \
             CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN \
             PERFORM nextval('refusals'); RAISE EXCEPTION 'refused by the test'; END $$ \
             LANGUAGE plpgsql; \
             CREATE TRIGGER refuse BEFORE INSERT ON delivery_log \
             FOR EACH ROW EXECUTE FUNCTION refuse();",
        )
        .await;
        let (tx, rx) = mpsc::channel(8);
        let bookkeeper = tokio::spawn(run(store.clone(), rx));
        let outcome = Outcome::Delivered { reply: "250 2.0.0 queued".into() };
        let result = DeliveryResult { id: ids[0], recipient: 0, at: postern_store::now(), outcome };
        tx.send(vec![result]).await.unwrap();
        let refusals = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM refusals";
        until("two refused writes", || async { db.fetch_i64(refusals).await >= 2 }).await;
        assert_eq!(store.queue_load_work("n1").await.unwrap().messages.len(), 1);

        db.execute("DROP TRIGGER refuse ON delivery_log").await;
        until("the message removed", || async {
            store.queue_load_work("n1").await.unwrap().messages.is_empty()
        })
        .await;
        assert_eq!(store.metrics().totals().delivered, 1, "counted once, when written");
        drop(tx);
        bookkeeper.await.unwrap();
        store.close().await;
    }

    /// Under load, what comes before the deadline joins the batch; then the write goes ahead.
    #[tokio::test(start_paused = true)]
    async fn results_are_gathered_until_the_deadline() {
        let start = Instant::now();
        let (tx, mut rx) = mpsc::channel(8);
        tokio::spawn(async move {
            for (at, n) in [(10, 2), (30, 3), (80, 4)] {
                tokio::time::sleep_until(start + Duration::from_millis(at)).await;
                let _ = tx.send(vec![n]).await;
            }
        });
        let mut batch = vec![1];
        gather(&mut batch, &mut rx, start + GATHER).await;
        assert_eq!(batch, [1, 2, 3], "the result sent after the deadline waits");
        assert_eq!(Instant::now(), start + GATHER);

        // A closing channel (the engine stopping) ends the wait at once.
        let (tx, mut rx) = mpsc::channel(8);
        tx.send(vec![5]).await.unwrap();
        drop(tx);
        let mut batch = vec![4];
        let before = Instant::now();
        gather(&mut batch, &mut rx, before + GATHER).await;
        assert_eq!(batch, [4, 5]);
        assert_eq!(Instant::now(), before);
    }

    #[test]
    fn the_wait_doubles_up_to_its_bound() {
        let waits: Vec<u128> = (1..=9).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
