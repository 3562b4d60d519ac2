//! The group-commit writer on SQLite and Postgres: batching, durability of every answer, and
//! errors reaching every waiter.

use std::collections::HashSet;

use postern_store::model::{NewRecipient, Notify, Page, QueueFilter};

use super::*;

const NODE: &str = "mx1.example.test";

fn message(n: usize) -> NewMessage {
    NewMessage {
        sender: format!("sender{n}@example.org"),
        recipients: vec![NewRecipient {
            address: format!("rcpt{n}@example.net"),
            orcpt: None,
            notify: Notify::default(),
        }],
        envid: None,
        ret: None,
        smtputf8: false,
        eight_bit: false,
        received_at: 1_700_000_000,
        client: "client.example.org [192.0.2.7]".into(),
        auth_user: None,
        held: false,
        note: None,
        auth_results: None,
        body: format!("Subject: {n}\r\n\r\nbody {n}\r\n").into_bytes(),
    }
}

/// Enqueues `n` messages at once, each from its own task, as sessions would.
async fn enqueue_many(queue: &Queue, n: usize) -> Vec<(usize, Result<QueueId, QueueError>)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let queue = queue.clone();
            tokio::spawn(async move { (i, queue.enqueue(message(i)).await) })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn reopen(store: &Store) -> Store {
    Store::open(store.database(), store.key_file()).await.unwrap()
}

postern_store::store_tests!(
    concurrent_messages_share_transactions,
    a_failed_commit_answers_every_waiter_and_leaves_nothing,
    a_bad_message_fails_alone,
    a_scheduler_that_falls_behind_slows_the_writer
);

/// Issue 15: the hand-over to the scheduler is bounded. A message committed while the scheduler
/// has not taken the ones before it waits for its `250` (durable already) until it does.
async fn a_scheduler_that_falls_behind_slows_the_writer(store: Store) {
    let shutdown = CancellationToken::new();
    let (fresh_tx, mut fresh_rx) = mpsc::channel(1);
    let (queue, task) = Queue::start(store.clone(), NODE.into(), Some(fresh_tx), shutdown.clone());
    queue.enqueue(message(1)).await.unwrap();
    let second = tokio::spawn({
        let queue = queue.clone();
        async move { queue.enqueue(message(2)).await }
    });
    let filter = QueueFilter::default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.queue_list(&filter, Page::default()).await.unwrap().total < 2 {
        assert!(std::time::Instant::now() < deadline, "the second message is never committed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Committed, but the scheduler still has the first: the second's answer waits.
    assert!(!second.is_finished(), "answered while the scheduler was behind");
    assert_eq!(fresh_rx.recv().await.unwrap().message.sender, "sender1@example.org");
    assert_eq!(fresh_rx.recv().await.unwrap().message.sender, "sender2@example.org");
    second.await.unwrap().unwrap();
    shutdown.cancel();
    task.await.unwrap();
}

async fn concurrent_messages_share_transactions(store: Store) {
    let shutdown = CancellationToken::new();
    let (queue, task) = Queue::start(store.clone(), NODE.into(), None, shutdown.clone());
    let results = enqueue_many(&queue, 300).await;
    let batches = queue.batches();
    assert!(batches >= 2, "300 messages cannot fit one batch of {MAX_BATCH_MESSAGES}");
    assert!(batches <= 30, "300 messages took {batches} transactions");
    let mut ids = HashSet::new();
    for (i, result) in results {
        let id = result.unwrap();
        assert!(ids.insert(id));
        // Answered, so it must be in the store, body and all.
        let m = store.queue_show(id).await.unwrap().unwrap();
        assert_eq!(m.sender, format!("sender{i}@example.org"));
        assert_eq!(m.node, NODE);
        let body = store.queue_body(id).await.unwrap().unwrap();
        assert_eq!(body, format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes());
    }
    assert_eq!(queue.stats().messages.load(Ordering::Relaxed), 300);
    shutdown.cancel();
    task.await.unwrap();
    assert!(matches!(queue.enqueue(message(0)).await, Err(QueueError::Closed)));
}

async fn a_failed_commit_answers_every_waiter_and_leaves_nothing(store: Store) {
    // The envelope and body inserts succeed, the recipients' fail: the whole batch must go.
    sqlx_rename(&store, true).await;
    let shutdown = CancellationToken::new();
    let (queue, task) = Queue::start(store.clone(), NODE.into(), None, shutdown.clone());
    let results = enqueue_many(&queue, 50).await;
    for (_, result) in &results {
        assert!(matches!(result, Err(QueueError::Store(_))), "{result:?}");
    }
    assert!(queue.stats().failed_batches.load(Ordering::Relaxed) >= 1);
    assert_eq!(queue.batches(), 0);
    sqlx_rename(&store, false).await;
    let page = store.queue_list(&QueueFilter::default(), Page::default()).await.unwrap();
    assert_eq!(page.total, 0);
    assert!(store.queue_body(QueueId::next_after(None)).await.unwrap().is_none());

    // A closed store fails every waiter too.
    store.close().await;
    let results = enqueue_many(&queue, 20).await;
    assert!(results.iter().all(|(_, r)| matches!(r, Err(QueueError::Store(_)))));
    shutdown.cancel();
    task.await.unwrap();
    let store = reopen(&store).await;
    assert_eq!(store.queue_list(&QueueFilter::default(), Page::default()).await.unwrap().total, 0);
    store.close().await;
}

async fn a_bad_message_fails_alone(store: Store) {
    let shutdown = CancellationToken::new();
    let (queue, task) = Queue::start(store.clone(), NODE.into(), None, shutdown.clone());
    let mut bad = message(1);
    bad.recipients.clear();
    let (good, bad) = tokio::join!(queue.enqueue(message(0)), queue.enqueue(bad));
    assert!(good.is_ok());
    let err = bad.unwrap_err();
    assert!(err.to_string().contains("recipients"), "{err}");
    shutdown.cancel();
    task.await.unwrap();
}

/// Hides the recipients table (or brings it back), as a broken disk might fail one write.
async fn sqlx_rename(store: &Store, hide: bool) {
    let sql = if hide {
        "ALTER TABLE queue_recipients RENAME TO queue_recipients_hidden"
    } else {
        "ALTER TABLE queue_recipients_hidden RENAME TO queue_recipients"
    };
    postern_store::testing::hand_edit(store, sql).await;
}
