//! The group-commit writer task: takes everything waiting, commits it with one `queue_insert`,
//! then answers each waiting session, never before the commit.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use postern_store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Fresh, Job, MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, QueueError, QueueStats};

pub(super) async fn run(
    store: Store,
    node: String,
    mut jobs: mpsc::Receiver<Job>,
    stats: Arc<QueueStats>,
    fresh: Option<mpsc::Sender<Fresh>>,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            // Sessions still hand over messages until shutdown, so these come first.
            biased;
            job = jobs.recv() => job,
            _ = shutdown.cancelled() => {
                // Sessions that handed a message over are waiting for their answer: refuse new
                // ones, and commit what is already in the channel.
                jobs.close();
                while let Some(job) = jobs.recv().await {
                    let batch = take_batch(job, &mut jobs);
                    commit(&store, &node, batch, &stats, fresh.as_ref()).await;
                }
                return;
            }
        };
        let Some(first) = first else { return };
        let batch = take_batch(first, &mut jobs);
        commit(&store, &node, batch, &stats, fresh.as_ref()).await;
    }
}

/// `first` and whatever else is already waiting, up to the batch caps.
fn take_batch(first: Job, jobs: &mut mpsc::Receiver<Job>) -> Vec<Job> {
    let mut bytes = first.message.body.len();
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH_MESSAGES && bytes < MAX_BATCH_BYTES {
        match jobs.try_recv() {
            Ok(job) => {
                bytes += job.message.body.len();
                batch.push(job);
            }
            Err(_) => break,
        }
    }
    batch
}

async fn commit(
    store: &Store,
    node: &str,
    batch: Vec<Job>,
    stats: &QueueStats,
    fresh: Option<&mpsc::Sender<Fresh>>,
) {
    let count = batch.len();
    let mut messages = Vec::with_capacity(count);
    let mut places = Vec::with_capacity(count);
    let mut replies = Vec::with_capacity(count);
    for job in batch {
        messages.push(job.message);
        places.push(job.place);
        replies.push(job.reply);
    }
    let spooled: Vec<String> = places.iter().flatten().map(|p| p.body_ref.clone()).collect();
    // One directory fsync for every spooled body of the batch: their files were fsynced by
    // the sessions, their names become durable here, before the envelopes that name them.
    let synced = match spooled.is_empty() {
        true => Ok(()),
        false => store.spool_sync().await,
    };
    let started = std::time::Instant::now();
    let inserted = match synced {
        Ok(()) => store.queue_insert_streamed(node, &messages, &places).await,
        Err(e) => Err(e),
    };
    store.metrics().queue_commit_took(started.elapsed());
    match inserted {
        Ok(ids) => {
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats.messages.fetch_add(count as u64, Ordering::Relaxed);
            if let Some(fresh) = fresh {
                // Waits while the scheduler is behind: the sessions' 250s wait with it, so a
                // flood slows the senders instead of piling bodies up in memory.
                for ((&id, message), place) in ids.iter().zip(messages).zip(&places) {
                    let spooled = place.is_some();
                    let _ = fresh.send(Fresh { id, message, spooled }).await;
                }
            }
            for (reply, id) in replies.into_iter().zip(ids) {
                // A session that has gone away no longer needs its answer; the message is
                // queued all the same, as a Postfix message is when the client drops after DATA.
                let _ = reply.send(Ok(id));
            }
        }
        Err(e) => {
            store.spool_discard(&spooled).await;
            stats.failed_batches.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, messages = count, "cannot write to the queue");
            let e = QueueError::Store(Arc::new(e));
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
