//! The durable queue: `enqueue` returns once the message is committed. One writer task commits
//! whatever sessions are waiting in a single transaction (group commit), so that many messages
//! share one fsync; it then hands them to the scheduler, which delivers them.

mod bookkeeper;
mod bounce;
pub mod courier;
mod local;
mod outbound;
mod retry;
mod route;
mod scheduler;
mod sink;
mod writer;

pub use retry::RetryPolicy;
pub use route::{Route, route};
pub use scheduler::{ClusterLink, Control};
pub use scheduler::{Fresh, Scheduler, SchedulerConfig};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use postern_store::model::{NewMessage, QueueId};
use postern_store::spool::SpooledBody;
use postern_store::{Store, StoreError};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Committed messages, bodies and all, waiting for the scheduler to take them. Bounded so that
/// when delivery falls behind, accepting slows down rather than memory growing without end.
pub const FRESH_BACKLOG: usize = 1024;
use tokio_util::sync::CancellationToken;

/// Most messages one transaction takes.
pub const MAX_BATCH_MESSAGES: usize = 256;
/// A batch stops taking more once its bodies reach this size (the last may cross it).
pub const MAX_BATCH_BYTES: usize = 8 << 20;
/// Sessions waiting beyond this many messages wait to hand theirs over: back-pressure.
const CHANNEL_DEPTH: usize = 4 * MAX_BATCH_MESSAGES;

/// Why a message was not queued. Either way nothing of it is stored, and the session answers
/// `451 4.3.0`.
#[derive(Debug, Clone, Error)]
pub enum QueueError {
    /// The store refused the message or the transaction failed; shared by every message of
    /// the batch.
    #[error("queue write failed: {0}")]
    Store(Arc<StoreError>),

    #[error("the queue is shutting down")]
    Closed,
}

/// What the writer has committed so far, for metrics and tests.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Transactions committed.
    pub batches: AtomicU64,
    pub messages: AtomicU64,
    /// Transactions that failed.
    pub failed_batches: AtomicU64,
}

struct Job {
    message: NewMessage,
    /// Where the body is when it is too large to stay inline (`postern_store::spool`): stored
    /// whole by `enqueue`, or streamed there by the session; `None` keeps it in the envelope's
    /// transaction.
    place: Option<SpooledBody>,
    reply: oneshot::Sender<Result<QueueId, QueueError>>,
}

/// A cheap, cloneable handle on the queue writer.
#[derive(Clone)]
pub struct Queue {
    jobs: mpsc::Sender<Job>,
    stats: Arc<QueueStats>,
    store: Store,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("stats", &self.stats).finish()
    }
}

impl Queue {
    /// Starts the writer for `node` (this machine's hostname). On `shutdown` it stops taking
    /// messages, commits those already handed over, and ends.
    ///
    /// With `fresh`, each committed message is also handed over there, body and all (to the
    /// [`Scheduler`]).
    pub fn start(
        store: Store,
        node: String,
        fresh: Option<mpsc::Sender<Fresh>>,
        shutdown: CancellationToken,
    ) -> (Queue, JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(CHANNEL_DEPTH);
        let stats = Arc::new(QueueStats::default());
        let task =
            tokio::spawn(writer::run(store.clone(), node, rx, stats.clone(), fresh, shutdown));
        (Queue { jobs, stats, store }, task)
    }

    /// Queues `m` and returns its ID once it is durable; only then may the session say `250`.
    pub async fn enqueue(&self, m: NewMessage) -> Result<QueueId, QueueError> {
        // Refused here, a bad message fails alone instead of failing its whole batch.
        m.check().map_err(|e| QueueError::Store(Arc::new(e)))?;
        // A large body is written and fsynced here, by each session at once, rather than one
        // after another by the writer; the writer then makes the spool directory durable once
        // for its whole batch, before the envelopes' commit.
        let body_ref =
            self.store.spool_body(&m.body).await.map_err(|e| QueueError::Store(Arc::new(e)))?;
        let len = m.body.len() as u64;
        let place = body_ref.map(|body_ref| SpooledBody { body_ref, len, prefix: false });
        self.hand_over(m, place).await
    }

    /// Queues `m` whose body the session streamed to the spool and made durable (`spooled`,
    /// with `m.body` the header fields Postern put in front); returns its ID once the envelope
    /// is committed too. On a failure the spooled body is removed.
    pub async fn enqueue_spooled(
        &self,
        m: NewMessage,
        spooled: SpooledBody,
    ) -> Result<QueueId, QueueError> {
        if let Err(e) = m.check() {
            self.store.spool_discard(std::slice::from_ref(&spooled.body_ref)).await;
            return Err(QueueError::Store(Arc::new(e)));
        }
        self.hand_over(m, Some(spooled)).await
    }

    async fn hand_over(
        &self,
        m: NewMessage,
        place: Option<SpooledBody>,
    ) -> Result<QueueId, QueueError> {
        let (reply, answer) = oneshot::channel();
        let body_ref: Vec<String> = place.iter().map(|p| p.body_ref.clone()).collect();
        let job = Job { message: m, place, reply };
        if self.jobs.send(job).await.is_err() {
            self.store.spool_discard(&body_ref).await;
            return Err(QueueError::Closed);
        }
        // A writer that ends without answering (a panic) never committed the message; a body
        // it leaves behind is an orphan for the next sweep.
        answer.await.unwrap_or(Err(QueueError::Closed))
    }

    pub fn stats(&self) -> &QueueStats {
        &self.stats
    }

    /// Transactions committed so far.
    pub fn batches(&self) -> u64 {
        self.stats.batches.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
