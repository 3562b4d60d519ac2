//! The scheduler's DSN work, run as tasks off its event loop: read the original from the store
//! when it is not in memory, queue the report, and say what may now be recorded. A failure is
//! recorded only once its DSN is queued, since recording the last one removes the message.

use std::sync::Arc;

use postern_store::Store;
use postern_store::model::{
    BOUNCED_BY_ADMIN, DeliveryResult, DsnRet, Outcome, QueueId, QueuedMessage, RecipientStatus,
};

use super::{Entry, Rcpt, Recorded, Scheduler, log_attempt};
use crate::queue::Queue;
use crate::queue::bounce::{self, Failure, Original};

/// What one DSN task reports back to the scheduler.
pub(super) struct Settled {
    pub id: QueueId,
    /// The outcomes to record, failures included, once `sent`.
    pub results: Vec<DeliveryResult>,
    /// The DSN is queued, or none was owed. When not, the failures among `results` must stay
    /// unrecorded, so that the message (and its body) stays for another try.
    pub sent: bool,
}

impl Scheduler {
    /// Queues the DSN for `failures` in a task, the message staying busy meanwhile; `settle`
    /// records `results` when it is done.
    pub(super) fn report(
        &mut self,
        id: QueueId,
        results: Vec<DeliveryResult>,
        failures: Vec<Failure>,
        body: Option<Arc<Vec<u8>>>,
    ) {
        let Some(entry) = self.entries.get_mut(&id) else { return };
        entry.busy = true;
        let original = Original {
            id,
            sender: entry.sender.clone(),
            envid: entry.envid.clone(),
            ret: entry.ret_full.map(|full| if full { DsnRet::Full } else { DsnRet::Headers }),
            received_at: entry.received_at,
        };
        // Held or deleted meanwhile: read the body from the store, where a deleted message
        // has none, and so gets no DSN.
        let body = if entry.dropped { None } else { body };
        let store = self.store.clone();
        let config = self.config.clone();
        self.bounces.spawn(async move {
            let sent =
                send(&store, &config.bounces, &config.hostname, &original, &failures, body)
                    .await;
            if let Err(e) = &sent {
                tracing::warn!(queue_id = %id, error = %e, "cannot queue a DSN; its failures wait for another try");
            }
            Settled { id, results, sent: sent.is_ok() }
        });
    }

    /// Sends the DSN of a message the administrator bounced that is not in the work list, and
    /// then has it removed.
    pub(super) fn bounce_stored(&mut self, id: QueueId, message: Option<QueuedMessage>) {
        let store = self.store.clone();
        let config = self.config.clone();
        self.bounces.spawn(async move {
            let (queue, hostname, node) =
                (config.bounces.clone(), config.hostname.clone(), config.node.clone());
            admin_bounced(store, queue, hostname, node, id, message).await
        });
    }
}

/// Queues the DSN for `failures` of `original`, if anyone is owed one. `body` is the original
/// when the scheduler still has it; otherwise it is read from the store.
pub(super) async fn send(
    store: &Store,
    queue: &Queue,
    hostname: &str,
    original: &Original,
    failures: &[Failure],
    body: Option<Arc<Vec<u8>>>,
) -> Result<(), String> {
    if !failures.iter().any(|f| bounce::owed(&original.sender, f.notify)) {
        return Ok(());
    }
    let body = match body {
        Some(body) => body,
        None => match store.queue_body(original.id).await {
            Ok(Some(body)) => Arc::new(body),
            // Deleted by the administrator meanwhile: that asks for no DSN.
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("cannot read the original: {e}")),
        },
    };
    let Some(dsn) = bounce::build(hostname, original, failures, Some(&body[..])) else {
        return Ok(());
    };
    let dsn_id = queue.enqueue(dsn).await.map_err(|e| e.to_string())?;
    tracing::info!(queue_id = %original.id, dsn = %dsn_id, recipients = failures.len(), "sender non-delivery notification");
    Ok(())
}

/// A message whose recipients an administrator bounced (`postern queue bounce`): the store has
/// already failed them with [`BOUNCED_BY_ADMIN`]. Sends their DSN, then re-records every final
/// recipient so that the store removes the message. `message` is the message if already read.
pub(super) async fn admin_bounced(
    store: Store,
    queue: Queue,
    hostname: String,
    node: String,
    id: QueueId,
    message: Option<QueuedMessage>,
) -> Settled {
    let nothing = |sent| Settled { id, results: Vec::new(), sent };
    let m = match message {
        Some(m) => m,
        None => match store.queue_show(id).await {
            Ok(Some(m)) => m,
            Ok(None) => return nothing(true),
            Err(e) => {
                tracing::warn!(queue_id = %id, error = %e, "cannot read a bounced message");
                return nothing(false);
            }
        },
    };
    // On a shared store, each node bounces its own messages.
    if m.node != node {
        return nothing(true);
    }
    let original = Original {
        id,
        sender: m.sender.clone(),
        envid: m.envid.clone(),
        ret: m.ret,
        received_at: m.received_at,
    };
    let at = now();
    let mut failures = Vec::new();
    let mut results = Vec::new();
    for r in &m.recipients {
        let reply = r.last_error.clone().unwrap_or_default();
        let outcome = match r.status {
            RecipientStatus::Failed => {
                if reply == BOUNCED_BY_ADMIN {
                    failures.push(Failure {
                        index: r.index,
                        address: r.address.clone(),
                        orcpt: r.orcpt.clone(),
                        notify: r.notify,
                        reply: reply.clone(),
                        remote: None,
                        at: r.updated_at,
                    });
                }
                Outcome::Failed { reply }
            }
            RecipientStatus::Delivered => Outcome::Delivered { reply },
            // Not bounced: left to the scheduler.
            RecipientStatus::Pending | RecipientStatus::Deferred => continue,
        };
        results.push(DeliveryResult { id, recipient: r.index, at, outcome });
    }
    match send(&store, &queue, &hostname, &original, &failures, None).await {
        Ok(()) => Settled { id, results, sent: true },
        Err(e) => {
            tracing::warn!(queue_id = %id, error = %e, "cannot queue the DSN of a bounced message; it stays queued until the next start");
            nothing(false)
        }
    }
}

/// The remote MTA behind a next hop as the scheduler names it ([`crate::queue::Route::relay`]), or
/// `None` when the reply was our own (local delivery, a refusal, a discard).
pub(super) fn remote_of(relay: &str) -> Option<String> {
    match relay {
        "local" | "discard" | "none" => return None,
        _ => {}
    }
    if let Some(domain) = relay.strip_prefix("mx:") {
        return Some(domain.to_string());
    }
    let host = match relay.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => relay,
    };
    Some(host.trim_start_matches('[').trim_end_matches(']').to_string())
}

/// A recipient that failed for good, as its DSN describes it.
pub(super) fn failure(rcpt: &Rcpt, reply: &str, remote: Option<String>, at: i64) -> Failure {
    Failure {
        index: rcpt.index,
        address: rcpt.address.clone(),
        orcpt: rcpt.orcpt.clone(),
        notify: rcpt.notify,
        reply: reply.to_string(),
        remote,
        at,
    }
}

/// The administrator bounced the message: every recipient not yet done fails (the store has
/// already recorded so), replacing any deferral of the attempt that was running.
pub(super) fn fail_the_rest(
    entry: &mut Entry,
    at: i64,
    results: &mut Vec<DeliveryResult>,
    failures: &mut Vec<Failure>,
) {
    for rcpt in entry.rcpts.iter_mut().filter(|r| !r.done) {
        rcpt.done = true;
        results.retain(|r| r.recipient != rcpt.index);
        log_attempt(
            &entry.id,
            &rcpt.address,
            "none",
            at - entry.received_at,
            "bounced",
            BOUNCED_BY_ADMIN,
        );
        failures.push(failure(rcpt, BOUNCED_BY_ADMIN, None, at));
        results.push(DeliveryResult {
            id: entry.id,
            recipient: rcpt.index,
            at,
            outcome: Recorded::Failed { reply: BOUNCED_BY_ADMIN.into() },
        });
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
