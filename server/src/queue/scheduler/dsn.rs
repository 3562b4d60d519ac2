//! The scheduler's DSN work, run as tasks off its event loop: read the original from the store
//! when it is not in memory, queue the report (failures, delay warnings, success notices), and
//! say what may now be recorded. A failure is recorded only once its DSN is queued, since
//! recording the last one removes the message.

use std::sync::Arc;

use postern_store::Store;
use postern_store::model::{
    BOUNCE_REPORTED, BOUNCED_BY_ADMIN, DeliveryResult, DsnRet, Outcome, QueueId, QueuedMessage,
    RecipientStatus,
};

use super::{Entry, Rcpt, Recorded, Scheduler, SchedulerConfig, bounce_owed, log_attempt};
use crate::queue::Queue;
use crate::queue::bounce::{self, Action, Notice, Original};

/// What one DSN task reports back to the scheduler.
pub(super) struct Settled {
    pub id: QueueId,
    /// The outcomes to record, failures included, once `sent`.
    pub results: Vec<DeliveryResult>,
    /// The DSN is queued, or none was owed. When not, the failures among `results` must stay
    /// unrecorded, so that the message (and its body) stays for another try.
    pub sent: bool,
    /// The recipients whose delay warning the DSN carried: owed again when it was not sent.
    pub warned: Vec<u32>,
    /// From a bounce handled outside the work list (`bounce_stored`): its results are recorded,
    /// and the message's entry, if it has one, is left alone.
    pub outside: bool,
}

impl Settled {
    /// Nothing to record, nothing sent.
    pub fn new(id: QueueId) -> Settled {
        Settled { id, results: Vec::new(), sent: false, warned: Vec::new(), outside: false }
    }
}

impl Scheduler {
    /// Queues the DSN for `notices` in a task, the message staying busy meanwhile; `settle`
    /// records `results` when it is done.
    pub(super) fn report(
        &mut self,
        id: QueueId,
        results: Vec<DeliveryResult>,
        notices: Vec<Notice>,
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
        let warned: Vec<u32> =
            notices.iter().filter(|n| n.action == Action::Delayed).map(|n| n.index).collect();
        self.bounces.spawn(async move {
            let at = config.clock.now();
            let sent =
                send(&store, &config.bounces, &config.hostname, &original, &notices, body, at).await;
            if let Err(e) = &sent {
                tracing::warn!(queue_id = %id, error = %e, "cannot queue a DSN; its failures and delay warnings wait for another try, its success notices are lost");
            }
            Settled { results, sent: sent.is_ok(), warned, ..Settled::new(id) }
        });
    }

    /// Sends, from the store, the DSN of recipients an administrator bounced (`only` these, or
    /// every one whose DSN is owed), out of the work list; a message with nothing left to do is
    /// then removed.
    pub(super) fn bounce_stored(
        &mut self,
        id: QueueId,
        message: Option<QueuedMessage>,
        only: Option<Vec<u32>>,
    ) {
        let store = self.store.clone();
        let config = self.config.clone();
        self.bounces.spawn(async move {
            let mut settled = admin_bounced(store, &config, id, message, only).await;
            settled.outside = true;
            settled
        });
    }
}

/// Queues the DSN for `notices` of `original`, if anyone is owed one. `body` is the original
/// when the scheduler still has it; otherwise it is read from the store.
pub(super) async fn send(
    store: &Store,
    queue: &Queue,
    hostname: &str,
    original: &Original,
    notices: &[Notice],
    body: Option<Arc<Vec<u8>>>,
    at: i64,
) -> Result<(), String> {
    let owed = |n: &&Notice| bounce::owed(&original.sender, n.notify, n.action);
    if !notices.iter().any(|n| owed(&n)) {
        return Ok(());
    }
    let body = match body {
        Some(body) => body,
        // Never more than a DSN returns (`bounce::MAX_RETURNED_BODY`, else the header block):
        // a large original is not read whole.
        None => match store.queue_body_head(original.id, bounce::MAX_RETURNED_BODY + 1).await {
            Ok(Some(body)) => Arc::new(body),
            // Deleted by the administrator meanwhile: that asks for no DSN.
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("cannot read the original: {e}")),
        },
    };
    let Some(dsn) = bounce::build(hostname, original, notices, Some(&body[..])) else {
        return Ok(());
    };
    // A delay warning is recorded before it is queued: after a crash in between, the sender
    // misses one warning, where the other order would warn twice.
    let delayed: Vec<u32> = notices
        .iter()
        .filter(|n| n.action == Action::Delayed && owed(n))
        .map(|n| n.index)
        .collect();
    if !delayed.is_empty() {
        store
            .queue_note_delay_warning(original.id, &delayed, Some(at))
            .await
            .map_err(|e| format!("cannot record the delay warning: {e}"))?;
    }
    let dsn_id = match queue.enqueue(dsn).await {
        Ok(dsn_id) => dsn_id,
        Err(e) => {
            if !delayed.is_empty()
                && let Err(undo) = store.queue_note_delay_warning(original.id, &delayed, None).await
            {
                tracing::warn!(queue_id = %original.id, error = %undo, "a delay warning not sent stays recorded as sent");
            }
            return Err(e.to_string());
        }
    };
    let actions: Vec<&str> = [Action::Failed, Action::Delayed, Action::Delivered, Action::Relayed]
        .into_iter()
        .filter(|a| notices.iter().any(|n| n.action == *a && owed(&n)))
        .map(Action::as_str)
        .collect();
    tracing::info!(queue_id = %original.id, dsn = %dsn_id, recipients = notices.len(), actions = %actions.join(","), "delivery status notification to the sender");
    Ok(())
}

/// A message whose recipients an administrator bounced (`postern queue bounce`, or a
/// domain-admin's bounce of its own recipients): the store has already failed them with
/// [`BOUNCED_BY_ADMIN`]. Sends the DSN of those (`only` these, when given) and records them as
/// reported ([`BOUNCE_REPORTED`]), so that no later pass sends it again. When every recipient
/// is final and none owed a DSN, re-records them so that the store removes the message.
/// `message` is the message if already read.
pub(super) async fn admin_bounced(
    store: Store,
    config: &SchedulerConfig,
    id: QueueId,
    message: Option<QueuedMessage>,
    only: Option<Vec<u32>>,
) -> Settled {
    let (queue, hostname, node) = (&config.bounces, &config.hostname, &config.node);
    let at = config.clock.now();
    let nothing = |sent| Settled { sent, ..Settled::new(id) };
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
    if m.node != *node {
        return nothing(true);
    }
    let original = Original {
        id,
        sender: m.sender.clone(),
        envid: m.envid.clone(),
        ret: m.ret,
        received_at: m.received_at,
    };
    let mut failures = Vec::new();
    let mut results = Vec::new();
    let asked = |index: u32| only.as_ref().is_none_or(|only| only.contains(&index));
    for r in m.recipients.iter().filter(|r| bounce_owed(r) && asked(r.index)) {
        failures.push(Notice {
            action: Action::Failed,
            index: r.index,
            address: r.address.clone(),
            orcpt: r.orcpt.clone(),
            notify: r.notify,
            reply: BOUNCED_BY_ADMIN.into(),
            remote: None,
            at: r.updated_at,
        });
        let outcome = Outcome::Failed { reply: BOUNCE_REPORTED.into() };
        results.push(DeliveryResult { id, recipient: r.index, at, outcome });
    }
    let finished = m.recipients.iter().all(|r| r.status.is_final());
    if results.is_empty() && finished && !m.recipients.iter().any(bounce_owed) {
        for r in &m.recipients {
            let reply = r.last_error.clone().unwrap_or_default();
            let outcome = match r.status {
                RecipientStatus::Delivered => Outcome::Delivered { reply },
                _ => Outcome::Failed { reply },
            };
            results.push(DeliveryResult { id, recipient: r.index, at, outcome });
        }
    }
    match send(&store, queue, hostname, &original, &failures, None, at).await {
        Ok(()) => Settled { results, sent: true, ..Settled::new(id) },
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
pub(super) fn failure(rcpt: &Rcpt, reply: &str, remote: Option<String>, at: i64) -> Notice {
    notice(rcpt, Action::Failed, reply, remote, at)
}

/// A recipient as a DSN reports it.
pub(super) fn notice(
    rcpt: &Rcpt,
    action: Action,
    reply: &str,
    remote: Option<String>,
    at: i64,
) -> Notice {
    Notice {
        action,
        index: rcpt.index,
        address: rcpt.address.clone(),
        orcpt: rcpt.orcpt.clone(),
        notify: rcpt.notify,
        reply: reply.to_string(),
        remote,
        at,
    }
}

/// The administrator bounced the message, or some of its recipients: each of those not yet done
/// fails (the store has already recorded so), replacing any deferral of the attempt that was
/// running, and is recorded as reported once its DSN is queued.
pub(super) fn fail_the_rest(
    entry: &mut Entry,
    at: i64,
    results: &mut Vec<DeliveryResult>,
    failures: &mut Vec<Notice>,
) {
    let all = entry.bounced;
    for rcpt in entry.rcpts.iter_mut().filter(|r| !r.done && (all || r.bounced)) {
        rcpt.done = true;
        rcpt.bounced = false;
        results.retain(|r| r.recipient != rcpt.index);
        log_attempt(
            &entry.id,
            &rcpt.address,
            "none",
            at - entry.received_at,
            "bounced",
            [5, 0, 0],
            BOUNCED_BY_ADMIN,
        );
        failures.push(failure(rcpt, BOUNCED_BY_ADMIN, None, at));
        results.push(DeliveryResult {
            id: entry.id,
            recipient: rcpt.index,
            at,
            outcome: Recorded::Failed { reply: BOUNCE_REPORTED.into() },
        });
    }
}
