//! The scheduler: the engine's in-memory work list (the store is the record), due times, and the
//! dispatch of each due message to its delivery agents, grouped by route. Fresh messages arrive
//! from the writer with their bodies, so a first attempt reads nothing back from the store.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use postern_store::Clock;
use postern_store::Store;
use postern_store::model::{
    BOUNCE_REPORTED, BOUNCED_BY_ADMIN, DeliveryResult, DsnRet, NewMessage, Notify,
    Outcome as Recorded, QueueId, QueuedMessage, RecipientStatus, WorkSet,
};
use rustls_pki_types::CertificateDer;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Queue;
use super::bounce::{self, Action};
use super::courier::{Courier, Couriers};
use super::retry::RetryPolicy;
use crate::delivery::{Connector, Handoff, Maildir, MtaSts, Outcome, Pool, PoolSettings};
use crate::dns::Resolver;
use crate::engine::Engine;
use body_cache::CachedBody;
use dsn::{Settled, fail_the_rest, failure, notice};
use job::{Job, Shared};

/// Batches of delivery results the bookkeeper has not written yet. Bounded: when the store is
/// slow, the scheduler waits for it instead of holding every result in memory.
const RESULT_BACKLOG: usize = 256;

mod body_cache;
mod dsn;
mod events;
mod job;
mod receipts;
pub(crate) use receipts::HANDOFF;

/// How the scheduler runs.
#[derive(Clone)]
pub struct SchedulerConfig {
    /// This machine's name: its queue entries are ours.
    pub node: String,
    /// Our name in EHLO/LHLO and in Maildir file names.
    pub hostname: String,
    /// Maildirs live below `<mail_root>/<domain>/<local part>/`.
    pub mail_root: PathBuf,
    pub retry: RetryPolicy,
    /// Deliveries in progress at once.
    pub concurrency: usize,
    /// Outbound session reuse, and the sessions one destination gets at once.
    pub outbound: PoolSettings,
    pub connector: Arc<dyn Connector>,
    /// DNS, for delivery to MX hosts.
    pub resolver: Arc<dyn Resolver>,
    /// MTA-STS policies (RFC 8461) for the `mx` transport; `None` ignores them.
    pub mta_sts: Option<Arc<MtaSts>>,
    /// Trusted besides the web PKI for `verify` (a private CA; tests).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Where DSNs to senders are queued.
    pub bounces: Queue,
    /// Who carries messages; `None` for the real couriers ([`Couriers`]). Tests of the
    /// scheduler's own rules give a fake one.
    pub courier: Option<Arc<dyn Courier>>,
    /// What the retry schedule, give-up, delay warnings, holds and releases go by: the system
    /// clock, or a simulated one in tests.
    pub clock: Clock,
}

/// What the node's membership task (`crate::cluster`) tells the scheduler.
pub enum Control {
    /// The node drains: start nothing more, let the attempts in progress end and their results
    /// be written, then stop, and answer.
    Release(oneshot::Sender<()>),
    /// The node's lease lapsed and others may have claimed some of its messages: let the
    /// attempts in progress end, forget the work list, load what the store says is ours, and
    /// answer.
    Reload(oneshot::Sender<()>),
}

/// The scheduler's end of the node's membership: messages claimed from dead or drained nodes,
/// and [`Control`]s.
pub struct ClusterLink {
    pub claimed: mpsc::Receiver<WorkSet>,
    pub control: mpsc::Receiver<Control>,
}

/// A message the writer has just committed, with its body.
pub struct Fresh {
    pub id: QueueId,
    pub message: NewMessage,
    /// The body is in the spool (`message.body` is then none of it, or only its prefix): it
    /// is read as a stream when delivered, never kept here.
    pub spooled: bool,
}

struct Rcpt {
    index: u32,
    address: String,
    orcpt: Option<String>,
    notify: Notify,
    attempts: u32,
    done: bool,
    next_at: i64,
    /// The sender has had this recipient's one delay warning.
    warned: bool,
    /// Held on its own by an administrator (see the message's hold for the whole message).
    held: bool,
    /// Bounced by an administrator while an attempt was running: unless that attempt delivers
    /// it, it fails when the attempt ends, and the sender gets a DSN.
    bounced: bool,
}

impl Rcpt {
    /// Still to be tried, and not held.
    fn waiting(&self) -> bool {
        !self.done && !self.held
    }
}

struct Entry {
    id: QueueId,
    sender: String,
    envid: Option<String>,
    ret_full: Option<bool>,
    smtputf8: bool,
    eight_bit: bool,
    received_at: i64,
    rcpts: Vec<Rcpt>,
    /// Kept for the first attempt only; later attempts read it from the store.
    body: Option<CachedBody>,
    busy: bool,
    /// Held, deleted or bounced while an attempt was running: forget it when it ends.
    dropped: bool,
    /// Bounced by the administrator while an attempt was running: what that attempt leaves
    /// unfinished fails, and the sender gets a DSN.
    bounced: bool,
    /// Found in the store at start-up: an attempt before a crash may have delivered it
    /// without recording so.
    recovered: bool,
    due: i64,
}

impl Entry {
    fn from_fresh(f: Fresh, now: i64, budget: &Arc<AtomicUsize>) -> Entry {
        let m = f.message;
        // Held at intake (an access rule's HOLD): in the work list only until the scheduler
        // sees that nothing is left to try; a release brings it back from the store.
        let held = m.held;
        let body = if f.spooled { None } else { CachedBody::keep(m.body, budget) };
        Entry {
            id: f.id,
            rcpts: m
                .recipients
                .into_iter()
                .enumerate()
                .map(|(i, r)| Rcpt {
                    index: i as u32,
                    address: r.address,
                    orcpt: r.orcpt,
                    notify: r.notify,
                    attempts: 0,
                    done: false,
                    next_at: now,
                    warned: false,
                    held,
                    bounced: false,
                })
                .collect(),
            sender: m.sender,
            envid: m.envid,
            ret_full: m.ret.map(|r| r == DsnRet::Full),
            smtputf8: m.smtputf8,
            eight_bit: m.eight_bit,
            received_at: m.received_at,
            body,
            busy: false,
            dropped: false,
            bounced: false,
            recovered: false,
            due: now,
        }
    }

    fn from_stored(m: QueuedMessage) -> Entry {
        let rcpts: Vec<Rcpt> = m
            .recipients
            .into_iter()
            .map(|r| Rcpt {
                index: r.index,
                address: r.address,
                orcpt: r.orcpt,
                notify: r.notify,
                attempts: r.attempts,
                done: r.status.is_final(),
                next_at: r.next_attempt_at,
                warned: r.delay_warned_at.is_some(),
                held: r.held,
                bounced: false,
            })
            .collect();
        let due = rcpts.iter().filter(|r| r.waiting()).map(|r| r.next_at).min().unwrap_or(0);
        Entry {
            id: m.id,
            sender: m.sender,
            envid: m.envid,
            ret_full: m.ret.map(|r| r == DsnRet::Full),
            smtputf8: m.smtputf8,
            eight_bit: m.eight_bit,
            received_at: m.received_at,
            rcpts,
            body: None,
            busy: false,
            dropped: false,
            bounced: false,
            recovered: true,
            due,
        }
    }
}

/// What one delivery task reports back.
struct Attempt {
    id: QueueId,
    at: i64,
    outcomes: Vec<(u32, String, Outcome)>,
}

pub struct Scheduler {
    store: Store,
    engine: Engine,
    config: Arc<SchedulerConfig>,
    courier: Arc<dyn Courier>,
    entries: HashMap<QueueId, Entry>,
    due: BinaryHeap<Reverse<(i64, QueueId)>>,
    running: JoinSet<Attempt>,
    /// DSN tasks; their messages stay busy until the failures are recorded.
    bounces: JoinSet<Settled>,
    slots: Arc<Semaphore>,
    /// Idle outbound sessions, and each destination's concurrency gate.
    pool: Arc<Pool>,
    results: mpsc::Sender<Vec<DeliveryResult>>,
    /// Remote deliveries, recorded as soon as the next hop accepts them ([`receipts`]).
    receipts: mpsc::Sender<Vec<DeliveryResult>>,
    last_event: i64,
    /// Bytes of bodies kept for first attempts (see [`body_cache::BODY_CACHE_BYTES`]).
    cached_bytes: Arc<AtomicUsize>,
}

/// Whether a stored recipient failed by an administrator's bounce still owes its sender a DSN.
fn bounce_owed(r: &postern_store::model::QueuedRecipient) -> bool {
    r.status == RecipientStatus::Failed && r.last_error.as_deref() == Some(BOUNCED_BY_ADMIN)
}

impl Scheduler {
    /// Loads this node's queue and delivers until `shutdown`; fresh messages come from `fresh`.
    pub async fn run(
        store: Store,
        engine: Engine,
        config: SchedulerConfig,
        fresh: mpsc::Receiver<Fresh>,
        shutdown: CancellationToken,
    ) {
        Scheduler::run_in_cluster(store, engine, config, fresh, shutdown, None).await
    }

    /// [`Scheduler::run`], also taking the messages this node claims from others and its
    /// membership's [`Control`]s.
    pub async fn run_in_cluster(
        store: Store,
        engine: Engine,
        config: SchedulerConfig,
        mut fresh: mpsc::Receiver<Fresh>,
        shutdown: CancellationToken,
        link: Option<ClusterLink>,
    ) {
        let (mut claimed, mut control) = match link {
            Some(link) => (Some(link.claimed), Some(link.control)),
            None => (None, None),
        };
        // A Release or Reload waiting for the attempts in progress to end.
        let mut pending: Option<Control> = None;
        let (results, results_rx) = mpsc::channel(RESULT_BACKLOG);
        let bookkeeper = tokio::spawn(super::bookkeeper::run(store.clone(), results_rx));
        let (receipts, receipts_task) = receipts::start(store.clone());
        let pool = Arc::new(Pool::with_clock(config.outbound, config.clock.clone()));
        let maildir = Maildir::new(config.mail_root.clone(), &config.hostname);
        let config = Arc::new(config);
        let courier = match &config.courier {
            Some(courier) => courier.clone(),
            None => Arc::new(Couriers::new(config.clone(), maildir, pool.clone())),
        };
        let mut s = Scheduler {
            courier,
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            pool,
            store,
            engine,
            config,
            entries: HashMap::new(),
            due: BinaryHeap::new(),
            running: JoinSet::new(),
            bounces: JoinSet::new(),
            results,
            receipts,
            last_event: 0,
            cached_bytes: Arc::new(AtomicUsize::new(0)),
        };
        s.load().await;
        // Administrator actions: this process's at once, other processes' through the store's
        // queue watcher (LISTEN on Postgres, a poll of one number on SQLite).
        let mut events = s.store.queue_subscribe();
        let watcher = s.store.spawn_queue_watcher(shutdown.clone());
        let clock = s.config.clock.clone();
        loop {
            if pending.is_some() && s.running.is_empty() && s.bounces.is_empty() {
                match pending.take() {
                    Some(Control::Reload(done)) => {
                        s.entries.clear();
                        s.due.clear();
                        s.load().await;
                        let _ = done.send(());
                    }
                    Some(Control::Release(done)) => {
                        pending = Some(Control::Release(done));
                        break;
                    }
                    None => {}
                }
            }
            if pending.is_none() {
                s.dispatch_due();
            }
            // Waiting to release or reload, nothing new starts: nothing is due meanwhile.
            let wait = s
                .due
                .peek()
                .filter(|_| pending.is_none())
                .map(|Reverse((at, _))| (*at - clock.now()).clamp(0, 60) as u64)
                .unwrap_or(60);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                // A message committed while `load` ran arrives both ways; replacing the loaded
                // entry, perhaps mid-attempt, would deliver it twice.
                Some(f) = fresh.recv() => if !s.entries.contains_key(&f.id) {
                    let entry = Entry::from_fresh(f, clock.now(), &s.cached_bytes);
                    s.schedule(entry);
                },
                Some(done) = s.running.join_next(), if !s.running.is_empty() => match done {
                    Ok(attempt) => s.finish(attempt).await,
                    Err(e) => tracing::error!(error = %e, "a delivery task failed"),
                },
                Some(done) = s.bounces.join_next(), if !s.bounces.is_empty() => match done {
                    Ok(settled) => s.settle(settled).await,
                    Err(e) => tracing::error!(error = %e, "a DSN task failed"),
                },
                _ = clock.sleep(Duration::from_secs(wait)), if wait > 0 => {}
                // Something is due but every slot is taken: look again once one is free, which
                // may be before any attempt ends (one waiting for a busy destination gives its
                // slot back meanwhile).
                _ = s.slots.clone().acquire_owned(), if wait == 0 && !s.due.is_empty() => {}
                Ok(()) = events.changed() => {
                    let newest = *events.borrow_and_update();
                    s.apply_events(newest).await;
                }
                Some(work) = recv(&mut claimed), if pending.is_none() => s.take_claimed(work),
                Some(c) = recv(&mut control), if pending.is_none() => pending = Some(c),
            }
        }
        // Attempts in progress are abandoned: their recipients stay queued and are tried again.
        s.running.abort_all();
        // So are DSNs not yet queued: their failures stay unrecorded and come back.
        s.bounces.abort_all();
        // Ended, so that what they were told was accepted is recorded below.
        while s.running.join_next().await.is_some() {}
        while s.bounces.join_next().await.is_some() {}
        s.pool.close_all().await;
        drop(s.receipts);
        let _ = receipts_task.await;
        drop(s.results);
        let _ = bookkeeper.await;
        if let Some(Control::Release(done) | Control::Reload(done)) = pending {
            // Released: every result is written; the membership task may hand the queue over.
            let _ = done.send(());
        }
        let _ = watcher.await;
    }

    /// Messages this node has just claimed from a dead or drained node. Found in the store as at
    /// start-up, they are `recovered`: an attempt of the other node may have reached a Maildir
    /// without recording it, and the Maildir agent looks for the queue ID first.
    fn take_claimed(&mut self, work: WorkSet) {
        for damaged in work.damaged {
            tracing::error!(queue_id = %damaged.id, problem = %damaged.problem, "damaged queue entry set aside");
        }
        let count = work.messages.len();
        for m in work.messages {
            if !self.entries.contains_key(&m.id) {
                self.take_stored(m);
            }
        }
        tracing::info!(messages = count, "claimed messages loaded");
    }

    fn take_stored(&mut self, m: QueuedMessage) {
        if m.recipients.iter().all(|r| r.status.is_final()) {
            self.bounce_stored(m.id, Some(m), None);
        } else {
            // Recipients bounced by a domain-admin whose DSN is still owed: sent now, while the
            // rest are delivered.
            if m.recipients.iter().any(bounce_owed) {
                self.bounce_stored(m.id, Some(m.clone()), None);
            }
            self.schedule(Entry::from_stored(m));
        }
    }

    async fn load(&mut self) {
        self.last_event = self.store.queue_last_event().await.unwrap_or(0);
        match self.store.queue_load_work(&self.config.node).await {
            Ok(work) => {
                for damaged in work.damaged {
                    tracing::error!(queue_id = %damaged.id, problem = %damaged.problem, "damaged queue entry set aside");
                }
                let count = work.messages.len();
                for m in work.messages {
                    self.take_stored(m);
                }
                tracing::info!(messages = count, "queue loaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot load the queue; new mail is still accepted")
            }
        }
    }

    fn schedule(&mut self, entry: Entry) {
        // Administrator-bounced messages stay in the store until their DSN is sent
        // (`bounce_stored`); with nothing to deliver they need no place in the work list, nor
        // do messages whose every recipient left is held (a release brings them back).
        if !entry.rcpts.iter().any(Rcpt::waiting) {
            return;
        }
        self.due.push(Reverse((entry.due, entry.id)));
        self.entries.insert(entry.id, entry);
    }

    /// Starts an attempt for every message that is due, as far as delivery slots allow.
    fn dispatch_due(&mut self) {
        let now = self.config.clock.now();
        let shared = Shared {
            store: self.store.clone(),
            snapshot: self.engine.snapshot(),
            courier: self.courier.clone(),
            config: self.config.clone(),
            pool: self.pool.clone(),
            receipts: self.receipts.clone(),
        };
        while let Some(Reverse((at, id))) = self.due.peek().copied() {
            if at > now {
                return;
            }
            let Ok(permit) = self.slots.clone().try_acquire_owned() else { return };
            self.due.pop();
            let Some(entry) = self.entries.get_mut(&id) else { continue };
            // A stale heap item: the entry was rescheduled, or an attempt is running.
            if entry.due != at || entry.busy {
                continue;
            }
            entry.busy = true;
            let job = Job::new(entry, now, &shared, permit, self.slots.clone());
            // The job holds its slot, and lets it go while waiting for a busy destination.
            self.running.spawn(job.run());
        }
    }

    /// Takes an attempt's outcomes. Failures, delay warnings and success notices first go to a
    /// DSN task (`report`); the outcomes are recorded when it is done (`settle`), since
    /// recording the last recipient removes the message and its body.
    async fn finish(&mut self, attempt: Attempt) {
        let Some(entry) = self.entries.get_mut(&attempt.id) else { return };
        let body = entry.body.take().map(|b| b.data.clone());
        entry.recovered = false;
        let mut results = Vec::with_capacity(attempt.outcomes.len());
        let mut notices = Vec::new();
        let sender = entry.sender.clone();
        for (index, relay, outcome) in attempt.outcomes {
            let Some(rcpt) = entry.rcpts.iter_mut().find(|r| r.index == index) else { continue };
            rcpt.attempts += 1;
            let delay = attempt.at - entry.received_at;
            let dsn = outcome.dsn();
            let log = |to: &str, status: &str, text: &str| {
                log_attempt(&entry.id, to, &relay, delay, status, dsn, text)
            };
            let recorded = match outcome {
                Outcome::Delivered { detail, handoff } => {
                    rcpt.done = true;
                    log(&rcpt.address, "sent", &detail);
                    // RFC 3461 §6.2: success is reported by the last MTA that speaks DSN.
                    let action = match handoff {
                        Handoff::Mailbox => Some(Action::Delivered),
                        Handoff::Relayed => Some(Action::Relayed),
                        Handoff::PassedOn | Handoff::Discarded => None,
                    };
                    if let Some(action) = action
                        && bounce::owed(&sender, rcpt.notify, action)
                    {
                        // A mailbox (an LMTP server's included) is no remote MTA to name.
                        let remote = match action {
                            Action::Relayed => dsn::remote_of(&relay),
                            _ => None,
                        };
                        notices.push(notice(rcpt, action, &detail, remote, attempt.at));
                    }
                    Recorded::Delivered { reply: detail }
                }
                Outcome::Failed { reply } => {
                    rcpt.done = true;
                    let reply = reply.to_string();
                    log(&rcpt.address, "bounced", &reply);
                    notices.push(failure(rcpt, &reply, dsn::remote_of(&relay), attempt.at));
                    Recorded::Failed { reply }
                }
                // Left for the administrator's bounce below.
                Outcome::Deferred { .. } if entry.bounced || rcpt.bounced => continue,
                Outcome::Deferred { reply }
                    if self.config.retry.expired(entry.received_at, attempt.at) =>
                {
                    rcpt.done = true;
                    let reply = format!("{reply} (gave up: in the queue too long)");
                    log(&rcpt.address, "expired", &reply);
                    notices.push(failure(rcpt, &reply, dsn::remote_of(&relay), attempt.at));
                    Recorded::Failed { reply }
                }
                Outcome::Deferred { reply } => {
                    rcpt.next_at = attempt.at + self.config.retry.delay(rcpt.attempts) as i64;
                    let reply = reply.to_string();
                    log(&rcpt.address, "deferred", &reply);
                    // One warning per recipient, judged at an attempt: it comes at most one
                    // retry interval after the warning time.
                    if !rcpt.warned
                        && self.config.retry.warning_due(entry.received_at, attempt.at)
                        && bounce::owed(&sender, rcpt.notify, Action::Delayed)
                    {
                        rcpt.warned = true;
                        let remote = dsn::remote_of(&relay);
                        notices.push(notice(rcpt, Action::Delayed, &reply, remote, attempt.at));
                    }
                    Recorded::Deferred { reply, next_attempt_at: rcpt.next_at }
                }
            };
            results.push(DeliveryResult {
                id: entry.id,
                recipient: index,
                at: attempt.at,
                outcome: recorded,
            });
        }
        if entry.rcpts.iter().any(|r| !r.done && (entry.bounced || r.bounced)) {
            fail_the_rest(entry, attempt.at, &mut results, &mut notices);
        }
        if notices.is_empty() {
            let settled = Settled { results, sent: true, ..Settled::new(attempt.id) };
            self.settle(settled).await;
        } else {
            self.report(attempt.id, results, notices, body);
        }
    }

    /// Records what an attempt (and its DSN) came to, and decides what comes next for the
    /// message.
    async fn settle(&mut self, mut settled: Settled) {
        let id = settled.id;
        let found = if settled.outside { None } else { self.entries.get_mut(&id) };
        let Some(entry) = found else {
            // A message the administrator bounced, handled outside the work list.
            if settled.sent {
                let _ = self.results.send(settled.results).await;
            }
            return;
        };
        if !settled.sent {
            // Their warning was not queued: owed again at the next attempt.
            for rcpt in entry.rcpts.iter_mut().filter(|r| settled.warned.contains(&r.index)) {
                rcpt.warned = false;
            }
            // The store keeps the administrator's bounces failed, their DSN owed: the next start
            // sends it.
            let bounced = entry.bounced;
            settled.results.retain(|r| match &r.outcome {
                Recorded::Failed { reply } => !bounced && reply != BOUNCE_REPORTED,
                _ => true,
            });
            if !bounced {
                // Not recorded as failed, so the message stays; the next attempt fails them
                // again and brings their DSN.
                for r in &mut settled.results {
                    let Recorded::Failed { reply } = &r.outcome else { continue };
                    let Some(rcpt) = entry.rcpts.iter_mut().find(|x| x.index == r.recipient) else {
                        continue;
                    };
                    rcpt.done = false;
                    rcpt.next_at = r.at + self.config.retry.delay(rcpt.attempts) as i64;
                    r.outcome = Recorded::Deferred {
                        reply: format!("{reply} (DSN not sent yet)"),
                        next_attempt_at: rcpt.next_at,
                    };
                }
            }
        } else if entry.rcpts.iter().any(|r| !r.done && (entry.bounced || r.bounced)) {
            // Bounced while its DSN was being queued: the rest fail too, with a DSN of theirs.
            let mut notices = Vec::new();
            fail_the_rest(entry, self.config.clock.now(), &mut settled.results, &mut notices);
            return self.report(id, settled.results, notices, None);
        }
        entry.busy = false;
        let _ = self.results.send(settled.results).await;
        if entry.dropped {
            self.entries.remove(&id);
        } else {
            self.reschedule(id);
        }
    }

    /// Puts an entry that is not busy back in the work list at its next due time, or takes it
    /// out when it has nothing left to try (done, or every recipient left held).
    fn reschedule(&mut self, id: QueueId) {
        let Some(entry) = self.entries.get_mut(&id) else { return };
        if entry.busy {
            return;
        }
        match entry.rcpts.iter().filter(|r| r.waiting()).map(|r| r.next_at).min() {
            Some(due) => {
                entry.due = due;
                self.due.push(Reverse((due, id)));
            }
            None => {
                if entry.rcpts.iter().all(|r| r.done) {
                    tracing::info!(queue_id = %id, "removed");
                }
                self.entries.remove(&id);
            }
        }
    }
}

/// One line per delivery attempt, like Postfix's mail log: the queue ID, recipient, next hop,
/// delay, DSN code and status.
/// The next item of a channel the scheduler may not have (a node outside a cluster).
async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn log_attempt(
    id: &QueueId,
    to: &str,
    relay: &str,
    delay: i64,
    status: &str,
    [class, subject, detail]: [u8; 3],
    reply: &str,
) {
    let dsn = format_args!("{class}.{subject}.{detail}");
    tracing::info!(queue_id = %id, to = %to, relay = %relay, delay, dsn = %dsn, status, "{reply}");
}

#[cfg(test)]
mod courier_tests;
#[cfg(test)]
mod scope_tests;
#[cfg(test)]
pub(super) mod testing;
#[cfg(test)]
mod tests;
