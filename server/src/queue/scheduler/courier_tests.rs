//! The scheduler's own rules with a fake courier that answers as each test scripts it: a
//! deferral is tried again, a failure gives up at once and bounces, a recipient deferred past
//! the queue's lifetime is given up, and a held message waits for its release. No network, no
//! Maildir: only what the scheduler decides.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use postern_store::model::{QueueAction, QueueActor, QueueId, Selection};

use super::testing::{NODE, dsns, message, until};
use super::*;
use crate::delivery::{Delivery, DirectConnector, Reply};
use crate::queue::courier::{Context, Courier};
use crate::queue::route::Route;

/// Answers each recipient with the next outcome scripted for it, or delivers when none is left,
/// and keeps the recipients it was handed, in order.
#[derive(Default)]
struct Fake {
    script: Mutex<HashMap<String, VecDeque<Outcome>>>,
    calls: Mutex<Vec<String>>,
    /// An attempt for this recipient says it has begun, then waits for the gate to open.
    gate: Option<Gate>,
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
}

impl Courier for Fake {
    fn deliver<'a>(
        &'a self,
        _route: &'a Route,
        delivery: &'a Delivery<'a>,
        _context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Vec<Outcome>> + Send + 'a>> {
        Box::pin(async move {
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
        delivery
            .recipients
            .iter()
            .map(|rcpt| {
                calls.push(rcpt.clone());
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

/// Retries after a second, gives up after an hour: a test never waits long.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        first: Duration::from_secs(1),
        max: Duration::from_secs(1),
        give_up: Duration::from_secs(3600),
        delay_warning: None,
    }
}

/// A scheduler running with `courier`, its DSNs queued for another node so that they stay in
/// the store to be read.
struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(store: &Store, retry: RetryPolicy, courier: Arc<Fake>) -> Running {
        let shutdown = CancellationToken::new();
        let (engine, _task) = Engine::start(store.clone(), "test", shutdown.clone()).await.unwrap();
        let (bounces, writer) =
            Queue::start(store.clone(), "dsn.test".into(), None, shutdown.clone());
        let config = SchedulerConfig {
            node: NODE.into(),
            hostname: NODE.into(),
            mail_root: std::env::temp_dir().join("postern-unused-maildir"),
            retry,
            concurrency: 4,
            outbound: Default::default(),
            connector: Arc::new(DirectConnector::default()),
            extra_roots: Vec::new(),
            resolver: Arc::new(crate::dns::ScriptedResolver::new()),
            mta_sts: None,
            bounces,
            courier: Some(courier),
        };
        let (_fresh, fresh_rx) = mpsc::channel(1);
        let task =
            tokio::spawn(Scheduler::run(store.clone(), engine, config, fresh_rx, shutdown.clone()));
        Running { shutdown, task, writer }
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
/// work list, and be tried again.
async fn a_message_held_and_released_during_an_attempt_is_tried_again(store: Store) {
    let ids = store
        .queue_insert(NODE, &[to("busy@remote.test"), to("marker@remote.test")])
        .await
        .unwrap();
    let (busy, marker) = (ids[0], ids[1]);
    let root = QueueActor::global("test");
    store.queue_act(&root, QueueAction::Hold, &Selection::Ids(vec![marker])).await.unwrap();
    let fake = Fake::gated("busy@remote.test", &[("busy@remote.test", vec![deferred()])]);
    let run = Running::start(&store, quick_retries(), fake.clone()).await;
    fake.entered().await;

    store.queue_act(&root, QueueAction::Hold, &Selection::Ids(vec![busy])).await.unwrap();
    store.queue_act(&root, QueueAction::Release, &Selection::Ids(vec![busy])).await.unwrap();
    // Events apply in order: once the marker's release is seen, so were the two before it.
    store.queue_act(&root, QueueAction::Release, &Selection::Ids(vec![marker])).await.unwrap();
    until("the marker is delivered", || gone(&store, marker)).await;

    fake.open();
    until("the released message is delivered", || gone(&store, busy)).await;
    run.stop().await;
    // The gated attempt answers after the marker's; the second is the retry after the release.
    assert_eq!(fake.calls(), ["marker@remote.test", "busy@remote.test", "busy@remote.test"]);
}

postern_store::store_tests!(
    a_message_held_and_released_during_an_attempt_is_tried_again,
    a_deferral_is_tried_again_until_it_is_delivered,
    a_failure_gives_up_at_once_and_bounces,
    a_recipient_deferred_past_the_queue_lifetime_is_given_up,
    a_held_message_waits_for_its_release
);

async fn a_deferral_is_tried_again_until_it_is_delivered(store: Store) {
    let id = store.queue_insert(NODE, &[to("bob@remote.test")]).await.unwrap()[0];
    let fake = Fake::scripted(&[("bob@remote.test", vec![deferred(), deferred()])]);
    let run = Running::start(&store, quick_retries(), fake.clone()).await;
    until("the third attempt delivers", || gone(&store, id)).await;
    run.stop().await;
    assert_eq!(fake.calls(), ["bob@remote.test"; 3]);
    assert!(dsns(&store).await.is_empty(), "no DSN for a delivery");
}

async fn a_failure_gives_up_at_once_and_bounces(store: Store) {
    let id = store.queue_insert(NODE, &[to("bob@remote.test")]).await.unwrap()[0];
    let refused = Outcome::failed(Reply::new(550, [5, 1, 1], "<bob@remote.test>: no such user"));
    let fake = Fake::scripted(&[("bob@remote.test", vec![refused])]);
    let run = Running::start(&store, quick_retries(), fake.clone()).await;
    until("the message is done", || gone(&store, id)).await;
    run.stop().await;
    assert_eq!(fake.calls(), ["bob@remote.test"], "never tried again");
    let dsns = dsns(&store).await;
    assert_eq!(dsns.len(), 1);
    assert!(dsns[0].contains("Final-Recipient: rfc822; bob@remote.test"), "{}", dsns[0]);
    assert!(dsns[0].contains("Status: 5.1.1"), "{}", dsns[0]);
}

async fn a_recipient_deferred_past_the_queue_lifetime_is_given_up(store: Store) {
    let id = store.queue_insert(NODE, &[to("bob@remote.test")]).await.unwrap()[0];
    let fake = Fake::scripted(&[("bob@remote.test", vec![deferred()])]);
    let expired = RetryPolicy { give_up: Duration::ZERO, ..quick_retries() };
    let run = Running::start(&store, expired, fake.clone()).await;
    until("the message is done", || gone(&store, id)).await;
    run.stop().await;
    assert_eq!(fake.calls(), ["bob@remote.test"]);
    let dsns = dsns(&store).await;
    assert_eq!(dsns.len(), 1);
    assert!(dsns[0].contains("gave up: in the queue too long"), "{}", dsns[0]);
}

async fn a_held_message_waits_for_its_release(store: Store) {
    let ids =
        store.queue_insert(NODE, &[to("held@remote.test"), to("free@remote.test")]).await.unwrap();
    let (held, free) = (ids[0], ids[1]);
    let root = QueueActor::global("test");
    store.queue_act(&root, QueueAction::Hold, &Selection::Ids(vec![held])).await.unwrap();
    let fake = Fake::scripted(&[]);
    let run = Running::start(&store, quick_retries(), fake.clone()).await;
    until("the other message is delivered", || gone(&store, free)).await;
    assert_eq!(fake.calls(), ["free@remote.test"], "the held message is not handed over");

    store.queue_act(&root, QueueAction::Release, &Selection::Ids(vec![held])).await.unwrap();
    until("the released message is delivered", || gone(&store, held)).await;
    run.stop().await;
    assert_eq!(fake.calls(), ["free@remote.test", "held@remote.test"]);
}
