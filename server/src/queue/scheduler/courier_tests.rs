//! The scheduler's own rules with a fake courier that answers as each test scripts it: a
//! deferral is tried again on the retry schedule, a failure gives up at once and bounces, a
//! recipient deferred past the queue's lifetime is given up, its sender is warned of the delay
//! once, and a held message waits for its release. No network, no Maildir: only what the
//! scheduler decides, on a simulated clock that the tests move on (minutes and hours of queue
//! time in milliseconds), with the fake noting the time of every attempt.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use postern_store::model::{QueueAction, QueueActor, QueueId, Selection};

use postern_store::SimClock;
use postern_store::model::QueuedRecipient;

use super::testing::{NODE, dsns, message, simulate, until};
use super::*;
use crate::delivery::pool::Key;
use crate::delivery::{ClientOptions, Delivery, DirectConnector, Protocol, Reply, Target};
use crate::queue::courier::{Context, Courier};
use crate::queue::route::Route;

/// Answers each recipient with the next outcome scripted for it, or delivers when none is left,
/// and keeps the recipients it was handed, in order.
#[derive(Default)]
struct Fake {
    script: Mutex<HashMap<String, VecDeque<Outcome>>>,
    calls: Mutex<Vec<String>>,
    /// When each call came, on the scheduler's clock.
    times: Mutex<Vec<i64>>,
    clock: std::sync::OnceLock<Clock>,
    /// An attempt for this recipient says it has begun, then waits for the gate to open.
    gate: Option<Gate>,
    /// Recipients at this domain wait for a turn at this destination of this pool first, as
    /// the MX courier does.
    busy: Option<(String, Arc<Pool>, Key)>,
}

struct Gate {
    recipient: String,
    entered: tokio::sync::Semaphore,
    open: tokio::sync::Semaphore,
}

impl Fake {
    fn scripted(script: &[(&str, Vec<Outcome>)]) -> Arc<Fake> {
        let script = script.iter().map(|(a, o)| (a.to_string(), o.iter().cloned().collect()));
        Arc::new(Fake { script: Mutex::new(script.collect()), ..Fake::default() })
    }

    /// Like `scripted`, with attempts for `recipient` held at a gate until `open`.
    fn gated(recipient: &str, script: &[(&str, Vec<Outcome>)]) -> Arc<Fake> {
        let script = script.iter().map(|(a, o)| (a.to_string(), o.iter().cloned().collect()));
        Arc::new(Fake {
            script: Mutex::new(script.collect()),
            calls: Mutex::default(),
            times: Mutex::default(),
            clock: Default::default(),
            busy: None,
            gate: Some(Gate {
                recipient: recipient.into(),
                entered: tokio::sync::Semaphore::new(0),
                open: tokio::sync::Semaphore::new(0),
            }),
        })
    }

    /// Waits until an attempt is waiting at the gate.
    async fn entered(&self) {
        let gate = self.gate.as_ref().expect("a gated fake");
        tokio::time::timeout(Duration::from_secs(10), gate.entered.acquire())
            .await
            .expect("an attempt reaches the gate")
            .expect("the gate is never closed")
            .forget();
    }

    /// Lets every attempt through the gate from now on.
    fn open(&self) {
        let gate = self.gate.as_ref().expect("a gated fake");
        gate.open.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// When each call came, on the scheduler's clock.
    fn times(&self) -> Vec<i64> {
        self.times.lock().unwrap().clone()
    }
}

impl Courier for Fake {
    fn deliver<'a>(
        &'a self,
        _route: &'a Route,
        delivery: &'a Delivery<'a>,
        _context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Vec<Outcome>> + Send + 'a>> {
        Box::pin(async move {
            let _turn = match &self.busy {
                Some((domain, pool, key))
                    if delivery.recipients.iter().any(|r| r.ends_with(domain.as_str())) =>
                {
                    pool.permit(key).await
                }
                _ => None,
            };
            if let Some(gate) = &self.gate
                && delivery.recipients.contains(&gate.recipient)
            {
                gate.entered.add_permits(1);
                let _ = gate.open.acquire().await;
            }
            self.answer(delivery)
        })
    }
}

impl Fake {
    fn answer(&self, delivery: &Delivery<'_>) -> Vec<Outcome> {
        let mut script = self.script.lock().unwrap();
        let mut calls = self.calls.lock().unwrap();
        let at = self.clock.get().map(Clock::now).unwrap_or_else(postern_store::now);
        delivery
            .recipients
            .iter()
            .map(|rcpt| {
                calls.push(rcpt.clone());
                self.times.lock().unwrap().push(at);
                script.get_mut(rcpt).and_then(VecDeque::pop_front).unwrap_or(Outcome::Delivered {
                    detail: "fake said: 250 2.0.0 Ok".into(),
                    handoff: Handoff::Relayed,
                })
            })
            .collect()
    }
}

fn deferred() -> Outcome {
    Outcome::deferred(Reply::new(451, [4, 4, 1], "connection refused by fake"))
}

fn to(address: &str) -> NewMessage {
    message("ann@example.org", &[address], &format!("to {address}"))
}

/// Retries after five minutes, then ten, twenty, forty, about an hour at most; gives up after
/// two hours. On the simulated clock a test never waits for it.
fn retries() -> RetryPolicy {
    RetryPolicy {
        first: Duration::from_secs(300),
        max: Duration::from_secs(4000),
        give_up: Duration::from_secs(2 * 3600),
        delay_warning: None,
    }
}

/// A scheduler running with `courier`, its DSNs queued for another node so that they stay in
/// the store to be read.
struct Running {
    /// The scheduler's clock (the store's).
    sim: SimClock,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(store: &Store, retry: RetryPolicy, courier: Arc<Fake>) -> Running {
        Running::start_with(store, retry, courier, 4).await
    }

    /// As [`Running::start`], with `concurrency` delivery slots.
    async fn start_with(
        store: &Store,
        retry: RetryPolicy,
        courier: Arc<Fake>,
        concurrency: usize,
    ) -> Running {
        let sim = match store.clock().simulated() {
            Some(sim) => sim.clone(),
            None => simulate(store),
        };
        let _ = courier.clock.set(store.clock());
        let shutdown = CancellationToken::new();
        let (engine, _task) = Engine::start(store.clone(), "test", shutdown.clone()).await.unwrap();
        let (bounces, writer) =
            Queue::start(store.clone(), "dsn.test".into(), None, shutdown.clone());
        let config = SchedulerConfig {
            node: NODE.into(),
            hostname: NODE.into(),
            mail_root: std::env::temp_dir().join("postern-unused-maildir"),
            retry,
            concurrency,
            outbound: Default::default(),
            connector: Arc::new(DirectConnector::default()),
            extra_roots: Vec::new(),
            resolver: Arc::new(crate::dns::ScriptedResolver::new()),
            mta_sts: None,
            bounces,
            courier: Some(courier),
            clock: store.clock(),
        };
        let (_fresh, fresh_rx) = mpsc::channel(1);
        let task =
            tokio::spawn(Scheduler::run(store.clone(), engine, config, fresh_rx, shutdown.clone()));
        Running { sim, shutdown, task, writer }
    }

    /// Waits until the first recipient of `id` has had `attempts` attempts recorded, or the
    /// message has left the queue; returns the recipient if it is still queued.
    async fn attempted_or_gone(
        &self,
        store: &Store,
        id: QueueId,
        attempts: u32,
    ) -> Option<QueuedRecipient> {
        let first = |m: Option<postern_store::model::QueuedMessage>| {
            m.and_then(|m| m.recipients.into_iter().next())
        };
        until(&format!("attempt {attempts} of {id} is recorded"), || async {
            let r = first(store.queue_show(id).await.unwrap());
            r.is_none_or(|r| r.attempts >= attempts)
        })
        .await;
        first(store.queue_show(id).await.unwrap())
    }

    /// Waits until the first recipient of `id` has had `attempts` attempts recorded.
    async fn attempted(&self, store: &Store, id: QueueId, attempts: u32) -> QueuedRecipient {
        self.attempted_or_gone(store, id, attempts).await.expect("still queued")
    }

    /// Moves the clock to `at`.
    fn to(&self, at: i64) {
        self.sim.set(at);
    }

    fn now(&self) -> i64 {
        Clock::from(self.sim.clone()).now()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
        self.writer.await.unwrap();
    }
}

async fn gone(store: &Store, id: QueueId) -> bool {
    store.queue_show(id).await.unwrap().is_none()
}

/// Issue 15: a message held while an attempt runs and released before it ends must stay in the
/// work list, and be tried again when its retry is due.
async fn a_message_held_and_released_during_an_attempt_is_tried_again(store: Store) {
    let ids = store
        .queue_insert(NODE, &[to("busy@remote.test"), to("marker@remote.test")])
        .await
        .unwrap();
    let (busy, marker) = (ids[0], ids[1]);
    let root = QueueActor::global("test");
    store.queue_act(&root, QueueAction::Hold, &Selection::Ids(vec![marker])).await.unwrap();
    let fake = Fake::gated("busy@remote.test", &[("busy@remote.test", vec![deferred()])]);
    let run = Running::start(&store, retries(), fake.clone()).await;
    fake.entered().await;

    store.queue_act(&root, QueueAction::Hold, &Selection::Ids(vec![busy])).await.unwrap();
    store.queue_act(&root, QueueAction::Release, &Selection::Ids(vec![busy])).await.unwrap();
    // Events apply in order: once the marker's release is seen, so were the two before it.
    store.queue_act(&root, QueueAction::Release, &Selection::Ids(vec![marker])).await.unwrap();
    until("the marker is delivered", || gone(&store, marker)).await;

    fake.open();
    let deferred = run.attempted(&store, busy, 1).await;
    assert!(deferred.next_attempt_at >= run.now() + 270, "{deferred:?}");
    run.to(deferred.next_attempt_at);
    until("the released message is delivered", || gone(&store, busy)).await;
    run.stop().await;
    // The gated attempt answers after the marker's; the second is the retry after the release.
    assert_eq!(fake.calls(), ["marker@remote.test", "busy@remote.test", "busy@remote.test"]);
    assert_eq!(fake.times()[2], deferred.next_attempt_at, "tried again when due");
}

postern_store::store_tests!(
    a_message_held_and_released_during_an_attempt_is_tried_again,
    a_deferral_is_tried_again_on_the_retry_schedule,
    a_failure_gives_up_at_once_and_bounces,
    a_recipient_deferred_past_the_queue_lifetime_is_given_up,
    a_delayed_recipient_warns_its_sender_once_after_the_warning_time,
    a_held_message_waits_for_its_release,
    a_message_held_while_deferred_is_not_retried_until_released
);

/// Retries follow the schedule, to the second of the simulated clock: not before the delay
/// (five minutes, then about twice that), and as soon as it is due.
async fn a_deferral_is_tried_again_on_the_retry_schedule(store: Store) {
    let sim = simulate(&store);
    let start = Clock::from(sim).now();
    let id = store.queue_insert(NODE, &[to("bob@remote.test")]).await.unwrap()[0];
    let fake = Fake::scripted(&[("bob@remote.test", vec![deferred(), deferred()])]);
    let run = Running::start(&store, retries(), fake.clone()).await;

    let first = run.attempted(&store, id, 1).await;
    let wait = first.next_attempt_at - start;
    assert!((270..=330).contains(&wait), "the first retry comes after 5 min ± 10 %: {wait}");
    // Each attempt comes when it is due, not before (the fake notes the time of each).
    run.to(first.next_attempt_at);
    let second = run.attempted(&store, id, 2).await;
    let wait = second.next_attempt_at - first.next_attempt_at;
    assert!((540..=660).contains(&wait), "then twice that: {wait}");
    run.to(second.next_attempt_at);
    until("the third attempt delivers", || gone(&store, id)).await;
    run.stop().await;
    assert_eq!(fake.calls(), ["bob@remote.test"; 3]);
    assert_eq!(fake.times(), [start, first.next_attempt_at, second.next_attempt_at]);
    assert!(dsns(&store).await.is_empty(), "no DSN for a delivery");
}

async fn a_failure_gives_up_at_once_and_bounces(store: Store) {
    let id = store.queue_insert(NODE, &[to("bob@remote.test")]).await.unwrap()[0];
    let refused = Outcome::failed(Reply::new(550, [5, 1, 1], "<bob@remote.test>: no such user"));
    let fake = Fake::scripted(&[("bob@remote.test", vec![refused])]);
    let run = Running::start(&store, retries(), fake.clone()).await;
    until("the message is done", || gone(&store, id)).await;
    run.stop().await;
    assert_eq!(fake.calls(), ["bob@remote.test"], "never tried again");
    let dsns = dsns(&store).await;
    assert_eq!(dsns.len(), 1);
    assert!(dsns[0].contains("Final-Recipient: rfc822; bob@remote.test"), "{}", dsns[0]);
    assert!(dsns[0].contains("Status: 5.1.1"), "{}", dsns[0]);
}

/// Steps the clock from retry to retry of `id`'s first recipient until it leaves the queue,
/// calling `each` with the recipient as recorded after every attempt.
async fn retry_until_gone(
    run: &Running,
    store: &Store,
    id: QueueId,
    mut each: impl AsyncFnMut(&QueuedRecipient),
) {
    for attempts in 1.. {
        assert!(attempts < 50, "{id} never left the queue");
        let Some(r) = run.attempted_or_gone(store, id, attempts).await else { return };
        each(&r).await;
        run.to(r.next_attempt_at);
    }
}

/// A recipient still deferred two hours after the message arrived fails at the first attempt
/// past that, with a DSN saying so; not at an attempt before it.
async fn a_recipient_deferred_past_the_queue_lifetime_is_given_up(store: Store) {
    simulate(&store);
    let id = store.queue_insert(NODE, &[to("bob@remote.test")]).await.unwrap()[0];
    let received = store.queue_show(id).await.unwrap().unwrap().received_at;
    let fake = Fake::scripted(&[("bob@remote.test", vec![deferred(); 20])]);
    let run = Running::start(&store, retries(), fake.clone()).await;
    retry_until_gone(&run, &store, id, async |_| {}).await;
    run.stop().await;

    let times = fake.times();
    let (last, before) = times.split_last().unwrap();
    assert!(*last >= received + 2 * 3600, "given up at {} s", last - received);
    assert!(before.iter().all(|t| *t < received + 2 * 3600), "tried on past the lifetime");
    // 0, 5, 15, 35, 75 minutes, then about an hour later: past two hours.
    assert!((5..=7).contains(&times.len()), "attempts at {times:?}");
    let dsns = dsns(&store).await;
    assert_eq!(dsns.len(), 1);
    assert!(dsns[0].contains("gave up: in the queue too long"), "{}", dsns[0]);
}

/// With warnings after an hour, the sender gets one delay DSN, at the first attempt past the
/// hour, and no other while the recipient stays deferred.
async fn a_delayed_recipient_warns_its_sender_once_after_the_warning_time(store: Store) {
    simulate(&store);
    let id = store.queue_insert(NODE, &[to("bob@remote.test")]).await.unwrap()[0];
    let received = store.queue_show(id).await.unwrap().unwrap().received_at;
    let fake = Fake::scripted(&[("bob@remote.test", vec![deferred(); 20])]);
    let policy = RetryPolicy { delay_warning: Some(Duration::from_secs(3600)), ..retries() };
    let run = Running::start(&store, policy, fake.clone()).await;
    let mut warned_at = None;
    retry_until_gone(&run, &store, id, async |r: &QueuedRecipient| {
        let at = r.last_attempt_at.unwrap();
        let queued = dsns(&store).await;
        if at < received + 3600 {
            assert!(r.delay_warned_at.is_none() && queued.is_empty(), "warned too early: {r:?}");
        } else {
            assert!(r.delay_warned_at.is_some(), "not warned at {} s: {r:?}", at - received);
            warned_at.get_or_insert(at);
            assert_eq!(queued.len(), 1, "one warning only");
        }
    })
    .await;
    run.stop().await;
    let warned_at = warned_at.expect("an attempt past the warning time");
    let earlier = fake.times().into_iter().filter(|t| *t < warned_at).count();
    assert!(earlier >= 4, "the warning came at the first attempt past an hour");
    let dsns = dsns(&store).await;
    // The warning, then the failure when the queue gave up.
    assert_eq!(dsns.len(), 2, "{dsns:#?}");
    assert!(dsns.iter().any(|d| d.contains("Action: delayed")), "{dsns:#?}");
}

async fn a_held_message_waits_for_its_release(store: Store) {
    let ids =
        store.queue_insert(NODE, &[to("held@remote.test"), to("free@remote.test")]).await.unwrap();
    let (held, free) = (ids[0], ids[1]);
    let root = QueueActor::global("test");
    store.queue_act(&root, QueueAction::Hold, &Selection::Ids(vec![held])).await.unwrap();
    let fake = Fake::scripted(&[]);
    let run = Running::start(&store, retries(), fake.clone()).await;
    until("the other message is delivered", || gone(&store, free)).await;
    assert_eq!(fake.calls(), ["free@remote.test"], "the held message is not handed over");

    store.queue_act(&root, QueueAction::Release, &Selection::Ids(vec![held])).await.unwrap();
    until("the released message is delivered", || gone(&store, held)).await;
    run.stop().await;
    assert_eq!(fake.calls(), ["free@remote.test", "held@remote.test"]);
}

/// Issue 15: a deferred message put on hold is not tried when its retry comes, however long
/// the hold lasts; released, it is tried at once.
async fn a_message_held_while_deferred_is_not_retried_until_released(store: Store) {
    let ids = store
        .queue_insert(
            NODE,
            &[to("bob@remote.test"), to("marker@remote.test"), to("later@remote.test")],
        )
        .await
        .unwrap();
    let (bob, marker, later) = (ids[0], ids[1], ids[2]);
    let root = QueueActor::global("test");
    let act = async |action: QueueAction, id: QueueId| {
        store.queue_act(&root, action, &Selection::Ids(vec![id])).await.unwrap();
    };
    let hold = async |id: QueueId| act(QueueAction::Hold, id).await;
    let release = async |id: QueueId| act(QueueAction::Release, id).await;
    hold(marker).await;
    hold(later).await;
    let fake = Fake::scripted(&[("bob@remote.test", vec![deferred()])]);
    let run = Running::start(&store, retries(), fake.clone()).await;
    let deferred = run.attempted(&store, bob, 1).await;

    hold(bob).await;
    // Events apply in order: once the marker is delivered, the hold before it was seen.
    release(marker).await;
    until("the marker is delivered", || gone(&store, marker)).await;
    // A day past its retry. Released now, `later` is due at once, with bob long overdue: an
    // engine that ignored the hold would hand bob over first, in the same pass.
    run.to(deferred.next_attempt_at + 86_400);
    release(later).await;
    until("the other message is delivered", || gone(&store, later)).await;
    assert_eq!(
        fake.calls(),
        ["bob@remote.test", "marker@remote.test", "later@remote.test"],
        "the held message is not tried"
    );

    release(bob).await;
    until("the released message is delivered", || gone(&store, bob)).await;
    let released_at = run.now();
    run.stop().await;
    assert_eq!(fake.calls().last().unwrap(), "bob@remote.test");
    assert_eq!(*fake.times().last().unwrap(), released_at, "tried at its release");
}

postern_store::store_tests!(
    a_slow_destination_does_not_hold_up_the_other_routes_of_a_message,
    a_delivery_waiting_for_a_busy_destination_gives_its_slot_back
);

/// Issue 15: a message's route groups go at once: the group for a destination that hangs does
/// not keep the other recipients of the same message waiting.
async fn a_slow_destination_does_not_hold_up_the_other_routes_of_a_message(store: Store) {
    let message = message("ann@example.org", &["slow@slow.test", "fast@fast.test"], "two ways");
    let id = store.queue_insert(NODE, &[message]).await.unwrap()[0];
    let fake = Fake::gated("slow@slow.test", &[]);
    let run = Running::start(&store, retries(), fake.clone()).await;
    fake.entered().await;
    // The fast route's 250 is recorded at once, not when the whole attempt ends
    // (`scheduler/receipts.rs`): a crash now would not send it again.
    until("the other route's delivery is recorded while the slow one hangs", || async {
        let m = store.queue_show(id).await.unwrap().expect("still queued");
        let status = |a: &str| m.recipients.iter().find(|r| r.address == a).unwrap().status;
        status("fast@fast.test") == RecipientStatus::Delivered
            && status("slow@slow.test") == RecipientStatus::Pending
    })
    .await;
    fake.open();
    until("the message is delivered", || gone(&store, id)).await;
    run.stop().await;
    assert_eq!(fake.calls(), ["fast@fast.test", "slow@slow.test"]);
}

/// Issue 15: with one delivery slot, a delivery waiting for its turn at a busy destination
/// gives the slot back meanwhile, so that mail elsewhere goes on; it goes once its turn comes.
async fn a_delivery_waiting_for_a_busy_destination_gives_its_slot_back(store: Store) {
    let pool = Arc::new(Pool::new(PoolSettings { per_destination: 1, ..Default::default() }));
    let host = postern_store::model::Host::Name("mx.busy.test".parse().unwrap());
    let target = Target::Tcp { host, port: 25 };
    let key = Key::new(&target, &ClientOptions::new(Protocol::Smtp, NODE));
    // Someone else's session holds the destination's one turn.
    let elsewhere = pool.try_permit(&key).expect("a free turn");
    let fake =
        Arc::new(Fake { busy: Some(("@busy.test".into(), pool.clone(), key)), ..Fake::default() });
    // Queued first, so tried first, and takes the one slot.
    let waits = store.queue_insert(NODE, &[to("bob@busy.test")]).await.unwrap()[0];
    let free = store.queue_insert(NODE, &[to("ann@free.test")]).await.unwrap()[0];
    let run = Running::start_with(&store, retries(), fake.clone(), 1).await;
    until("mail elsewhere is delivered meanwhile", || gone(&store, free)).await;
    assert_eq!(fake.calls(), ["ann@free.test"]);

    drop(elsewhere);
    until("the waiting delivery goes once its turn comes", || gone(&store, waits)).await;
    run.stop().await;
    assert_eq!(fake.calls(), ["ann@free.test", "bob@busy.test"]);
}
