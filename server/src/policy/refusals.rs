//! The SMTP sessions' refusals in the delivery log: which access rule, rate limit, blocklist,
//! greylisting, header or body check, policy service or milter refused (or silently dropped)
//! what, at which stage, for which client.
//!
//! A hostile client can cause thousands of refusals a second, and a session must never wait on
//! the store for one. So a session only `try_send`s its refusal into a bounded channel
//! ([`BACKLOG`]); one writer task takes whatever has piled up and writes it in one statement
//! per batch. When the channel is full the refusal is dropped and counted (the count is logged
//! by the writer), the same trade Postfix's logging makes under a flood: the service log still
//! has every refusal, the delivery log has what it can keep up with.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use postern_store::{NewRefusal, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Refusals waiting for the writer, at most. Each is bounded (the store cuts every field to
/// 512 bytes), so this is a few MiB at worst.
pub const BACKLOG: usize = 4096;

/// Refusals per write.
const BATCH: usize = 1000;

/// A session's handle on the writer: cheap to clone, never waits.
#[derive(Clone)]
pub struct RefusalLog {
    tx: Option<mpsc::Sender<NewRefusal>>,
    dropped: Arc<AtomicU64>,
}

impl RefusalLog {
    /// Starts the writer into `store`; it ends once `drained` is cancelled (the sessions are
    /// gone: cancel it only after they have drained, not at the shutdown signal) and what they
    /// sent is written, or once every handle is dropped and the channel is empty.
    pub fn start(
        store: Store,
        drained: CancellationToken,
    ) -> (RefusalLog, impl Future<Output = ()> + Send + 'static) {
        let (log, rx) = RefusalLog::channel(BACKLOG);
        let dropped = log.dropped.clone();
        (log, write(store, rx, dropped, drained))
    }

    fn channel(capacity: usize) -> (RefusalLog, mpsc::Receiver<NewRefusal>) {
        let (tx, rx) = mpsc::channel(capacity);
        (RefusalLog { tx: Some(tx), dropped: Arc::new(AtomicU64::new(0)) }, rx)
    }

    /// Records nothing: for sessions without a store to write to.
    pub fn off() -> RefusalLog {
        RefusalLog { tx: None, dropped: Arc::new(AtomicU64::new(0)) }
    }

    /// Hands one refusal to the writer, or drops and counts it when the writer is behind.
    pub fn record(&self, refusal: NewRefusal) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(refusal) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // Shutting down: nothing is written any more.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Refusals dropped so far because the writer was behind (or the store failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The writer: one batch at a time, whatever piled up while the last one was written.
async fn write(
    store: Store,
    mut rx: mpsc::Receiver<NewRefusal>,
    dropped: Arc<AtomicU64>,
    drained: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut reported = 0;
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n,
            () = drained.cancelled() => {
                // The sessions are gone: take what they sent, then stop.
                rx.close();
                rx.recv_many(&mut batch, BATCH).await
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = store.record_refusals(&batch).await {
            tracing::warn!(error = %e, count = batch.len(), "cannot write refusals to the delivery log");
            dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        batch.clear();
        let now = dropped.load(Ordering::Relaxed);
        if now > reported {
            tracing::warn!(
                dropped = now - reported,
                total = now,
                "refusals left out of the delivery log: too many at once (the service log has them)"
            );
            reported = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use postern_store::RefusalStatus;
    use postern_store::testing::TestDb;

    use super::*;

    fn refusal(n: usize) -> NewRefusal {
        NewRefusal {
            at: 1_700_000_000,
            status: RefusalStatus::Rejected,
            stage: "rcpt".into(),
            client: "192.0.2.1".into(),
            sender: String::new(),
            recipient: format!("r{n}@example.test"),
            reply: "554 5.7.1 no".into(),
            reason: "access rule 1".into(),
        }
    }

    /// A flood never waits and never grows the backlog: past it, refusals are counted and
    /// dropped; what was taken is written once the writer runs.
    #[tokio::test]
    async fn a_flood_is_bounded_and_never_waits() {
        let db = TestDb::sqlite();
        let store = db.open().await;
        let (log, rx) = RefusalLog::channel(3);
        for n in 0..10 {
            log.record(refusal(n));
        }
        assert_eq!(log.dropped(), 7);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        // Cancelled before it starts: it still writes what was sent, then ends.
        write(store.clone(), rx, log.dropped.clone(), shutdown).await;
        let logged =
            store.delivery_log(&postern_store::LogFilter::default(), None, 100).await.unwrap();
        assert_eq!(logged.len(), 3);
        assert_eq!(logged[2].recipient, "r0@example.test");
        // After the writer is gone, recording is a no-op, not an error.
        log.record(refusal(11));
        RefusalLog::off().record(refusal(12));
    }
}
