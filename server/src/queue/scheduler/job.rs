//! One attempt at one message, run as its own task: its recipients grouped by route, each
//! group handed to the courier, after a turn at a busy destination. The groups go at once, so
//! that one slow destination does not hold up the others.

use std::sync::Arc;

use postern_store::Store;
use postern_store::model::{DeliveryResult, Notify, Outcome as Recorded, QueueId};
use postern_store::spool::QueuedBody;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use super::receipts::HANDOFF;
use super::{Attempt, Entry, SchedulerConfig};
use crate::delivery::pool::{WAITING, Waiting};
use crate::delivery::{BodyStream, Delivery, Outcome, Pool, RcptDsn, Reply};
use crate::engine::Snapshot;
use crate::queue::courier::{self, Context, Courier};
use crate::queue::outbound::{self, Slot};
use crate::queue::route::{Route, route};

/// What every attempt started in one pass shares.
pub(super) struct Shared {
    pub(super) store: Store,
    pub(super) snapshot: Arc<Snapshot>,
    pub(super) courier: Arc<dyn Courier>,
    pub(super) config: Arc<SchedulerConfig>,
    pub(super) pool: Arc<Pool>,
    pub(super) receipts: mpsc::Sender<Vec<DeliveryResult>>,
}

/// One attempt at one message: everything a delivery task needs, owned.
pub(super) struct Job {
    id: QueueId,
    at: i64,
    sender: String,
    envid: Option<String>,
    ret_full: Option<bool>,
    smtputf8: bool,
    eight_bit: bool,
    /// The recipients due, grouped by route: each group goes to its courier on its own.
    groups: Vec<(Route, Vec<(u32, String)>)>,
    /// Each recipient's NOTIFY and ORCPT, by address, for a next hop that takes them.
    dsn: Vec<(String, Notify, Option<String>)>,
    /// Read from the store by the first group that needs it, when not kept from intake: the
    /// whole message, or for a spooled one its first part and where to stream it from.
    body: OnceCell<(Arc<Vec<u8>>, Option<BodyStream>)>,
    recovered: bool,
    store: Store,
    snapshot: Arc<Snapshot>,
    courier: Arc<dyn Courier>,
    config: Arc<SchedulerConfig>,
    pool: Arc<Pool>,
    receipts: mpsc::Sender<Vec<DeliveryResult>>,
    /// Whether anything stands between a recipient's `250` and the attempt's record (another
    /// route's transfer, a success DSN to queue first), so that the `250` is worth a record of
    /// its own ([`super::receipts`]).
    prompt: bool,
    slot: Arc<Slot>,
}

impl Job {
    pub(super) fn new(
        entry: &Entry,
        now: i64,
        s: &Shared,
        permit: OwnedSemaphorePermit,
        slots: Arc<Semaphore>,
    ) -> Job {
        let snapshot = s.snapshot.clone();
        // Recipients with the same route go together, in the order they came.
        let mut groups: Vec<(Route, Vec<(u32, String)>)> = Vec::new();
        for r in entry.rcpts.iter().filter(|r| r.waiting() && r.next_at <= now) {
            let to = route(&snapshot.config, &r.address);
            match groups.iter_mut().find(|(g, _)| *g == to) {
                Some((_, members)) => members.push((r.index, r.address.clone())),
                None => groups.push((to, vec![(r.index, r.address.clone())])),
            }
        }
        let slot = Arc::new(Slot::new(slots, permit, groups.len()));
        let prompt = groups.len() > 1
            || entry
                .rcpts
                .iter()
                .any(|r| r.waiting() && r.next_at <= now && r.notify.contains(Notify::SUCCESS));
        Job {
            id: entry.id,
            at: now,
            sender: entry.sender.clone(),
            envid: entry.envid.clone(),
            ret_full: entry.ret_full,
            smtputf8: entry.smtputf8,
            eight_bit: entry.eight_bit,
            groups,
            dsn: entry
                .rcpts
                .iter()
                .filter(|r| r.waiting() && r.next_at <= now)
                .map(|r| (r.address.clone(), r.notify, r.orcpt.clone()))
                .collect(),
            body: OnceCell::new_with(entry.body.as_ref().map(|b| (b.data.clone(), None))),
            recovered: entry.recovered,
            store: s.store.clone(),
            snapshot,
            courier: s.courier.clone(),
            config: s.config.clone(),
            pool: s.pool.clone(),
            receipts: s.receipts.clone(),
            prompt,
            slot,
        }
    }

    pub(super) async fn run(mut self) -> Attempt {
        let groups = std::mem::take(&mut self.groups);
        let (id, at) = (self.id, self.at);
        let job = Arc::new(self);
        // Each group as its own task, so that one waiting for a slow destination (or a
        // busy one's turn) does not hold up the rest; aborted with this task at shutdown.
        let mut running = JoinSet::new();
        for (n, (route, members)) in groups.iter().cloned().enumerate() {
            let job = job.clone();
            let waiting: Arc<dyn Waiting> = job.slot.clone();
            running.spawn(WAITING.scope(waiting, async move {
                let results = job.deliver(&route, &members).await;
                job.slot.leave();
                (n, results)
            }));
        }
        let mut results: Vec<Option<Vec<Outcome>>> = vec![None; groups.len()];
        while let Some(done) = running.join_next().await {
            match done {
                Ok((n, outcomes)) => results[n] = Some(outcomes),
                Err(e) => tracing::error!(queue_id = %id, error = %e, "a delivery group failed"),
            }
        }
        let mut outcomes = Vec::new();
        for ((route, members), results) in groups.into_iter().zip(results) {
            let relay = route.relay();
            // A group whose task failed is tried again later, like any deferral.
            let results = results.unwrap_or_else(|| {
                let reply = Reply::new(451, [4, 3, 0], "internal error during delivery");
                vec![Outcome::deferred(reply); members.len()]
            });
            outcomes.extend(
                members
                    .iter()
                    .zip(results)
                    .map(|((index, _), outcome)| (*index, relay.clone(), outcome)),
            );
        }
        Attempt { id, at, outcomes }
    }

    /// The message, read from the store when the attempt first needs it: after any wait for
    /// a busy destination, so that waiting attempts do not all hold their bodies.
    async fn body(&self) -> Result<(Arc<Vec<u8>>, Option<BodyStream>), Reply> {
        let read = || async {
            match self.store.queue_body_open(self.id).await {
                Ok(Some(QueuedBody::Whole(body))) => Ok((Arc::new(body), None)),
                Ok(Some(QueuedBody::Spooled { head, size })) => {
                    Ok((Arc::new(head), Some(BodyStream::new(self.store.clone(), self.id, size))))
                }
                Ok(None) => {
                    Err(Reply::new(451, [4, 3, 0], "the message body is missing from the queue"))
                }
                Err(e) => {
                    Err(Reply::new(451, [4, 3, 0], format!("cannot read the message body: {e}")))
                }
            }
        };
        self.body.get_or_try_init(read).await.cloned()
    }

    async fn deliver(&self, route: &Route, members: &[(u32, String)]) -> Vec<Outcome> {
        let addresses: Vec<String> = members.iter().map(|(_, a)| a.clone()).collect();
        let n = addresses.len();
        if let Some(outcomes) = courier::settled(route, n) {
            return outcomes;
        }
        // A fixed next hop is a destination with a limit on sessions: wait for its turn
        // before reading the body, so that waiting attempts do not all hold theirs.
        let _permit = match route {
            Route::Next { protocol, target, tls, credentials } => {
                let options =
                    courier::next_hop_options(&self.config, *protocol, *tls, credentials.as_ref());
                Some(outbound::turn(&self.pool, target, &options).await)
            }
            _ => None,
        };
        let (body, stream) = match self.body().await {
            Ok(body) => body,
            Err(reply) => return vec![Outcome::deferred(reply); n],
        };
        let id = self.id.to_string();
        let rcpt_dsn: Vec<RcptDsn<'_>> = self
            .dsn
            .iter()
            .map(|(address, notify, orcpt)| RcptDsn {
                address,
                notify: *notify,
                orcpt: orcpt.as_deref(),
            })
            .collect();
        let delivery = Delivery {
            queue_id: &id,
            sender: &self.sender,
            recipients: &addresses,
            body: &body,
            stream: stream.as_ref(),
            smtputf8: self.smtputf8,
            eight_bit: self.eight_bit,
            envid: self.envid.as_deref(),
            ret_full: self.ret_full,
            rcpt_dsn: &rcpt_dsn,
        };
        let context = Context { config: &self.snapshot.config, recovered: self.recovered };
        let transport = match route {
            Route::Local => Some("maildir"),
            Route::Next { protocol: crate::delivery::Protocol::Lmtp, .. } => Some("lmtp"),
            Route::Next { .. } | Route::Mx { .. } => Some("smtp"),
            _ => None,
        };
        let remote = matches!(transport, Some("smtp" | "lmtp"));
        if remote {
            tracing::debug!(target: HANDOFF, queue_id = %id, from = %self.sender, relay = %route.relay(), "transfer started");
        }
        let started = std::time::Instant::now();
        let outcomes = self.courier.deliver(route, &delivery, context).await;
        if let Some(transport) = transport {
            self.store.metrics().delivery_took(transport, started.elapsed());
        }
        if remote {
            self.receipt(members, &outcomes).await;
        }
        outcomes
    }

    /// Hands what the next hop accepted to the prompt record ([`super::receipts`]), so that a
    /// crash from now on does not send it again once the store has it. Not when the attempt's
    /// own record comes next anyway: one route, every recipient accepted, no DSN to queue first.
    /// That record is as prompt (one commit), and a second commit of the same rows would slow
    /// every delivery down.
    async fn receipt(&self, members: &[(u32, String)], outcomes: &[Outcome]) {
        let all_accepted = outcomes.iter().all(|o| matches!(o, Outcome::Delivered { .. }));
        if !self.prompt && all_accepted {
            return;
        }
        let accepted: Vec<DeliveryResult> = members
            .iter()
            .zip(outcomes)
            .filter_map(|((index, _), outcome)| match outcome {
                Outcome::Delivered { detail, .. } => Some(DeliveryResult {
                    id: self.id,
                    recipient: *index,
                    at: self.at,
                    outcome: Recorded::Delivered { reply: detail.clone() },
                }),
                _ => None,
            })
            .collect();
        if !accepted.is_empty() {
            // Closed only at shutdown: the attempt's own record still comes.
            let _ = self.receipts.send(accepted).await;
        }
    }
}
