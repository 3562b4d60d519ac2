//! The scheduler's DSNs in-process against a real store: a failure is recorded only once its
//! DSN is queued, and the null sender gets none.

use postern_store::model::{
    NewRecipient, Page, QueueFilter, RecipientStatus, Selection, TlsPolicy, TransportPattern,
};

use super::*;
use crate::delivery::DirectConnector;

const NODE: &str = "mx1.example.test";

fn to_refused(sender: &str) -> NewMessage {
    NewMessage {
        sender: sender.into(),
        recipients: vec![NewRecipient {
            address: "bob@refused.test".into(),
            orcpt: Some("rfc822;bob@refused.test".into()),
            notify: Notify::default(),
        }],
        envid: None,
        ret: None,
        smtputf8: false,
        eight_bit: false,
        received_at: now(),
        client: "client.example.org [192.0.2.7]".into(),
        auth_user: None,
        body: b"Subject: doomed\r\n\r\nbody\r\n".to_vec(),
    }
}

/// Runs a scheduler over the store's queue until `done` holds (or 10 s pass), then stops it.
async fn schedule_until<F, Fut>(store: &Store, bounces: Queue, done: F)
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
        retry: RetryPolicy::default(),
        concurrency: 4,
        outbound: Default::default(),
        connector: Arc::new(DirectConnector::default()),
        extra_roots: Vec::new(),
        resolver: Arc::new(crate::dns::ScriptedResolver::new()),
        mta_sts: None,
        bounces,
    };
    let (_fresh, fresh_rx) = mpsc::unbounded_channel();
    let task =
        tokio::spawn(Scheduler::run(store.clone(), engine, config, fresh_rx, shutdown.clone()));
    let start = std::time::Instant::now();
    while !done().await {
        assert!(start.elapsed() < Duration::from_secs(10), "the scheduler did not get there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    task.await.unwrap();
}

postern_store::store_tests! {
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
        let ids = store
            .queue_insert(NODE, &[to_refused("ann@example.org"), to_refused("")])
            .await
            .unwrap();
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
        store.queue_act(QueueAction::Retry, &Selection::Ids(vec![owed])).await.unwrap();
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
}
