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
}

impl Fake {
    fn scripted(script: &[(&str, Vec<Outcome>)]) -> Arc<Fake> {
        let script = script.iter().map(|(a, o)| (a.to_string(), o.iter().cloned().collect()));
        Arc::new(Fake { script: Mutex::new(script.collect()), calls: Mutex::default() })
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
        let mut script = self.script.lock().unwrap();
        let mut calls = self.calls.lock().unwrap();
        let outcomes = delivery
            .recipients
            .iter()
            .map(|rcpt| {
                calls.push(rcpt.clone());
                script.get_mut(rcpt).and_then(VecDeque::pop_front).unwrap_or(Outcome::Delivered {
                    detail: "fake said: 250 2.0.0 Ok".into(),
                    handoff: Handoff::Relayed,
                })
            })
            .collect();
        Box::pin(std::future::ready(outcomes))
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
        let (_fresh, fresh_rx) = mpsc::unbounded_channel();
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

postern_store::store_tests!(
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
