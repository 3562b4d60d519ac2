//! The scheduler's DSNs in-process against a real store: a failure is recorded only once its
//! DSN is queued, and the null sender gets none; a delayed recipient warns its sender once,
//! across restarts; a local delivery asked for with NOTIFY=SUCCESS is reported.

use postern_store::model::{
    DomainKind, NewMailbox, NewRecipient, Page, PasswordHash, QueueAction, QueueActor, QueueFilter,
    RecipientStatus, Selection, TlsPolicy, TransportPattern,
};

use super::testing::{self, NODE, dsns, simulate};
use super::*;
use crate::delivery::DirectConnector;

fn to_refused(sender: &str) -> NewMessage {
    testing::message(sender, &["bob@refused.test"], "doomed")
}

/// Runs a scheduler over the store's queue until `done` holds (or 10 s pass), then stops it. On
/// a store with a simulated clock, the clock moves a minute on at every look.
async fn schedule_until<F, Fut>(store: &Store, bounces: Queue, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    schedule_with(store, bounces, RetryPolicy::default(), done).await
}

/// As [`schedule_until`], with a retry schedule of the test's.
async fn schedule_with<F, Fut>(store: &Store, bounces: Queue, retry: RetryPolicy, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let shutdown = CancellationToken::new();
    let (engine, _engine_task) =
        Engine::start(store.clone(), "test", shutdown.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = SchedulerConfig {
        node: NODE.into(),
        hostname: NODE.into(),
        mail_root: dir.path().into(),
        retry,
        concurrency: 4,
        outbound: Default::default(),
        connector: Arc::new(DirectConnector::default()),
        extra_roots: Vec::new(),
        resolver: Arc::new(crate::dns::ScriptedResolver::new()),
        mta_sts: None,
        bounces,
        courier: None,
        clock: store.clock(),
    };
    let (_fresh, fresh_rx) = mpsc::channel(1);
    let task =
        tokio::spawn(Scheduler::run(store.clone(), engine, config, fresh_rx, shutdown.clone()));
    let start = std::time::Instant::now();
    while !done().await {
        assert!(start.elapsed() < Duration::from_secs(10), "the scheduler did not get there");
        if let Some(sim) = store.clock().simulated() {
            sim.advance(Duration::from_secs(60));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    task.await.unwrap();
}

postern_store::store_tests!(a_failure_waits_for_its_dsn_to_be_queued);

async fn a_failure_waits_for_its_dsn_to_be_queued(store: Store) {
    store
        .set_transport(
            "test",
            &"refused.test".parse::<TransportPattern>().unwrap(),
            "error:no such user".parse().unwrap(),
            TlsPolicy::default(),
            None,
        )
        .await
        .unwrap();
    let ids =
        store.queue_insert(NODE, &[to_refused("ann@example.org"), to_refused("")]).await.unwrap();
    let (owed, null) = (ids[0], ids[1]);

    // A queue that takes nothing: the DSN cannot be queued, so the failure stays
    // unrecorded and the message stays, deferred.
    let stopped = CancellationToken::new();
    stopped.cancel();
    let (closed, writer) = Queue::start(store.clone(), NODE.into(), None, stopped);
    writer.await.unwrap();
    schedule_until(&store, closed, || async {
        let m = store.queue_show(owed).await.unwrap().unwrap();
        m.recipients[0].status == RecipientStatus::Deferred
    })
    .await;
    let m = store.queue_show(owed).await.unwrap().unwrap();
    let error = m.recipients[0].last_error.clone().unwrap();
    assert!(error.contains("no such user") && error.contains("DSN not sent yet"), "{error}");
    assert!(store.queue_body(owed).await.unwrap().is_some());

    // With a working queue, the next attempt fails it again, queues the DSN, and only then
    // is the message removed. The null sender's message goes without one.
    store
        .queue_act(&QueueActor::global("test"), QueueAction::Retry, &Selection::Ids(vec![owed]))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let (queue, writer) = Queue::start(store.clone(), NODE.into(), None, shutdown.clone());
    schedule_until(&store, queue, || async {
        store.queue_show(owed).await.unwrap().is_none()
            && store.queue_show(null).await.unwrap().is_none()
    })
    .await;
    shutdown.cancel();
    writer.await.unwrap();
    let page = store.queue_list(&QueueFilter::default(), Page::default()).await.unwrap();
    assert_eq!(page.total, 1, "only the DSN is left: {page:?}");
    let dsn = &page.messages[0];
    assert_eq!(dsn.sender, "");
    assert_eq!(dsn.recipients[0].address, "ann@example.org");
    let body = String::from_utf8(store.queue_body(dsn.id).await.unwrap().unwrap()).unwrap();
    assert!(body.contains("Final-Recipient: rfc822; bob@refused.test"), "{body}");
    assert!(body.contains("Subject: doomed"), "{body}");
}

/// A queue whose messages go to another node: DSNs land in the store, and this node's
/// scheduler leaves them there to be counted.
fn dsn_queue(store: &Store) -> (Queue, CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let (queue, writer) = Queue::start(store.clone(), "dsn.test".into(), None, shutdown.clone());
    (queue, shutdown, writer)
}

fn message_to(sender: &str, to: &str, notify: Notify, received_at: i64) -> NewMessage {
    NewMessage {
        recipients: vec![NewRecipient {
            address: to.into(),
            orcpt: Some(format!("rfc822;{to}")),
            notify,
        }],
        received_at,
        ..to_refused(sender)
    }
}

postern_store::store_tests!(
    a_delayed_recipient_warns_its_sender_once,
    a_local_delivery_with_notify_success_is_reported
);

async fn a_delayed_recipient_warns_its_sender_once(store: Store) {
    // Nobody listens on the port: every attempt is deferred, "connection refused".
    let port = postern_store::testing::free_port();
    store
        .set_transport(
            "test",
            &"slow.test".parse::<TransportPattern>().unwrap(),
            format!("smtp:[127.0.0.1]:{port}").parse().unwrap(),
            TlsPolicy::default(),
            None,
        )
        .await
        .unwrap();
    // Five hours in the queue, with warnings after four; retries every five minutes, on a
    // simulated clock.
    let sim = simulate(&store);
    let arrived = Clock::from(sim).now() - 5 * 3600;
    let batch = [
        message_to("ann@example.org", "bob@slow.test", Notify::default(), arrived),
        message_to("cat@example.org", "dan@slow.test", Notify::FAILURE, arrived),
        message_to("", "eve@slow.test", Notify::default(), arrived),
    ];
    let ids = store.queue_insert(NODE, &batch).await.unwrap();
    let retry = RetryPolicy {
        first: Duration::from_secs(300),
        max: Duration::from_secs(300),
        delay_warning: Some(Duration::from_secs(4 * 3600)),
        ..RetryPolicy::default()
    };
    let (queue, stop, writer) = dsn_queue(&store);
    let first = ids[0];
    let attempts = |n: u32| {
        let store = store.clone();
        async move {
            let m = store.queue_show(first).await.unwrap().unwrap();
            m.recipients[0].attempts >= n
        }
    };
    schedule_with(&store, queue.clone(), retry.clone(), || attempts(2)).await;
    let m = store.queue_show(ids[0]).await.unwrap().unwrap();
    assert!(m.recipients[0].delay_warned_at.is_some(), "{m:?}");
    // A restart reads that the warning was sent: another attempt after it warns no more.
    let next = m.recipients[0].attempts + 1;
    schedule_with(&store, queue, retry, || attempts(next)).await;
    stop.cancel();
    writer.await.unwrap();

    let dsns = dsns(&store).await;
    assert_eq!(dsns.len(), 1, "one warning, to ann only: {dsns:#?}");
    let dsn = &dsns[0];
    assert!(dsn.contains("To: <ann@example.org>") || dsn.contains("To: ann@example.org"), "{dsn}");
    assert!(dsn.contains("Action: delayed"), "{dsn}");
    assert!(dsn.contains("Final-Recipient: rfc822; bob@slow.test"), "{dsn}");
    assert!(dsn.contains("connection refused"), "{dsn}");
    // Still queued: a warning is not a failure.
    let m = store.queue_show(ids[0]).await.unwrap().unwrap();
    assert_eq!(m.recipients[0].status, RecipientStatus::Deferred);
    let unwarned = store.queue_show(ids[1]).await.unwrap().unwrap();
    assert_eq!(unwarned.recipients[0].delay_warned_at, None, "NOTIFY=FAILURE asks for none");
}

async fn a_local_delivery_with_notify_success_is_reported(store: Store) {
    let domain = "example.test".parse().unwrap();
    store.add_domain("test", &domain, DomainKind::Local).await.unwrap();
    let new = NewMailbox {
        address: "ann@example.test".parse().unwrap(),
        display_name: String::new(),
        enabled: true,
        quota_bytes: None,
        password_hash: PasswordHash::create("not used here").unwrap(),
    };
    store.add_mailbox("test", new).await.unwrap();
    let batch = [
        message_to("zed@example.org", "ann@example.test", Notify::SUCCESS, postern_store::now()),
        message_to("yan@example.org", "ann@example.test", Notify::default(), postern_store::now()),
        message_to("", "ann@example.test", Notify::SUCCESS, postern_store::now()),
    ];
    let ids = store.queue_insert(NODE, &batch).await.unwrap();
    let (queue, stop, writer) = dsn_queue(&store);
    schedule_until(&store, queue, || async {
        for id in &ids {
            if store.queue_show(*id).await.unwrap().is_some() {
                return false;
            }
        }
        true
    })
    .await;
    stop.cancel();
    writer.await.unwrap();
    let dsns = dsns(&store).await;
    assert_eq!(dsns.len(), 1, "only zed asked, and has a sender: {dsns:#?}");
    let dsn = &dsns[0];
    assert!(dsn.contains("zed@example.org"), "{dsn}");
    assert!(dsn.contains("Subject: Successful Mail Delivery Report"), "{dsn}");
    assert!(dsn.contains("Action: delivered"), "{dsn}");
    assert!(dsn.contains("Final-Recipient: rfc822; ann@example.test"), "{dsn}");
    assert!(dsn.contains("Original-Recipient: rfc822;ann@example.test"), "{dsn}");
}

// The probe's case: a sender whose local part needs quotes gets a DSN addressed to it quoted
// (RFC 5322 §3.4.1), naming the recipient quoted too, with the ORCPT that RCPT kept.
postern_store::store_tests!(a_bounce_to_a_quoted_local_part_quotes_it);

async fn a_bounce_to_a_quoted_local_part_quotes_it(store: Store) {
    store
        .set_transport(
            "test",
            &"refused.test".parse::<TransportPattern>().unwrap(),
            "error:no such user".parse().unwrap(),
            TlsPolicy::default(),
            None,
        )
        .await
        .unwrap();
    let mut doomed = to_refused("a b|c;d@ext.test");
    doomed.recipients[0].address = "x y@refused.test".into();
    doomed.recipients[0].orcpt = Some("rfc822;\"x y\"@refused.test".into());
    let ids = store.queue_insert(NODE, &[doomed]).await.unwrap();
    let (queue, stop, writer) = dsn_queue(&store);
    schedule_until(&store, queue, || async { store.queue_show(ids[0]).await.unwrap().is_none() })
        .await;
    stop.cancel();
    writer.await.unwrap();
    let bodies = dsns(&store).await;
    assert_eq!(bodies.len(), 1);
    for needed in [
        "\r\nTo: <\"a b|c;d\"@ext.test>\r\n",
        "<\"x y\"@refused.test>: 550 5.0.0",
        "Original-Recipient: rfc822;\"x y\"@refused.test\r\n",
        "Final-Recipient: rfc822; \"x y\"@refused.test\r\n",
    ] {
        assert!(bodies[0].contains(needed), "{needed:?} missing from:\n{}", bodies[0]);
    }
    assert!(!bodies[0].contains("<a b|c;d@ext.test>"), "{}", bodies[0]);
}
