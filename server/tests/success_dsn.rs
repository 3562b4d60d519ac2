//! Success notices through the scheduler against real smtp-sink peers (RFC 3461 §5.2.2, §6.2):
//! a recipient with NOTIFY=SUCCESS relayed to a next hop without DSN gets its sender a DSN saying
//! `relayed`; one relayed to a next hop that offers DSN has NOTIFY and ORCPT passed on, and we
//! send nothing.
//!
//! Needs the Debian package `postfix` (for smtp-sink).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use postern_server::Engine;
use postern_server::delivery::DirectConnector;
use postern_server::dns::ScriptedResolver;
use postern_server::queue::{Queue, RetryPolicy, Scheduler, SchedulerConfig};
use postern_store::Store;
use postern_store::model::{NewMessage, NewRecipient, Notify, Page, QueueFilter, TlsPolicy};
use postern_store::testing::TestDb;
use support::peers::sink;
use tokio_util::sync::CancellationToken;

fn recipient(address: &str, notify: Notify) -> NewRecipient {
    NewRecipient { address: address.into(), orcpt: Some(format!("rfc822;{address}")), notify }
}

/// The text of what a dumping sink wrote, once it has written something.
async fn dump(dir: &Path) -> String {
    for _ in 0..100 {
        let files: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        if let Some(file) = files.iter().find(|f| f.path().is_file()) {
            return std::fs::read_to_string(file.path()).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the sink dumped nothing");
}

/// The DSNs queued so far.
async fn dsns(store: &Store) -> Vec<String> {
    let filter = QueueFilter { sender: Some(String::new()), ..QueueFilter::default() };
    let page = store.queue_list(&filter, Page::default()).await.unwrap();
    let mut bodies = Vec::new();
    for m in page.messages {
        let body = store.queue_body(m.id).await.unwrap().unwrap();
        bodies.push(String::from_utf8(body).unwrap());
    }
    bodies
}

#[tokio::test]
async fn relayed_without_dsn_is_reported_and_with_dsn_is_passed_on() {
    let dir = tempfile::tempdir().unwrap();
    let (plain_dir, dsn_dir) = (dir.path().join("plain"), dir.path().join("dsn"));
    std::fs::create_dir(&plain_dir).unwrap();
    std::fs::create_dir(&dsn_dir).unwrap();
    // -N: no DSN in the EHLO reply.
    let Some((_plain, plain)) = sink("success_dsn::plain", &plain_dir, &["-N"]) else { return };
    let template = format!("{}/%M.", dsn_dir.display());
    let Some((_dsn, dsn)) = sink("success_dsn::dsn", &dsn_dir, &["-d", &template]) else {
        return;
    };
    let db = TestDb::sqlite();
    let store = db.open().await;
    for (domain, port) in [("nodsn.test", plain), ("dsn.test", dsn)] {
        let transport = format!("smtp:[127.0.0.1]:{port}").parse().unwrap();
        let pattern = domain.parse().unwrap();
        store.set_transport("test", &pattern, transport, TlsPolicy::None, None).await.unwrap();
    }
    let shutdown = CancellationToken::new();
    let (engine, _task) =
        Engine::start(store.clone(), "node.test", shutdown.clone()).await.unwrap();
    let revision = store.revision().await.unwrap();
    while engine.snapshot().revision() < revision {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (fresh_tx, fresh_rx) = tokio::sync::mpsc::channel(postern_server::queue::FRESH_BACKLOG);
    let (queue, _writer) =
        Queue::start(store.clone(), "node.test".into(), Some(fresh_tx), shutdown.clone());
    // DSNs go to another node's queue: they stay in the store to be read.
    let (bounces, _bounce_writer) =
        Queue::start(store.clone(), "elsewhere.test".into(), None, shutdown.clone());
    let config = SchedulerConfig {
        node: "node.test".into(),
        hostname: "node.test".into(),
        mail_root: db.dir().join("mail"),
        retry: RetryPolicy::default(),
        concurrency: 4,
        outbound: Default::default(),
        connector: Arc::new(DirectConnector::default()),
        resolver: Arc::new(ScriptedResolver::new()),
        mta_sts: None,
        extra_roots: Vec::new(),
        bounces,
        courier: None,
        clock: Default::default(),
    };
    tokio::spawn(Scheduler::run(store.clone(), engine, config, fresh_rx, shutdown.clone()));

    let message = NewMessage {
        sender: "ann@example.org".into(),
        recipients: vec![
            recipient("bob@nodsn.test", Notify::SUCCESS | Notify::FAILURE),
            recipient("cy@dsn.test", Notify::SUCCESS),
            recipient("dee@nodsn.test", Notify::default()),
        ],
        envid: Some("env-7".into()),
        ret: None,
        smtputf8: false,
        eight_bit: false,
        received_at: 0,
        client: "client.example.org [192.0.2.7]".into(),
        auth_user: None,
        held: false,
        note: None,
        auth_results: None,
        body: b"Subject: tell me\r\n\r\nhello\r\n".to_vec(),
    };
    let id = queue.enqueue(message).await.unwrap();
    for _ in 0..200 {
        if store.queue_show(id).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.queue_show(id).await.unwrap().is_none(), "delivered mail leaves the queue");

    // The DSN-capable hop got the parameters (RFC 3461 §4.1, §4.2) in the RCPT command.
    let dumped = dump(&dsn_dir).await;
    assert!(dumped.contains("NOTIFY=SUCCESS"), "{dumped}");
    assert!(dumped.contains("ORCPT=rfc822;cy@dsn.test"), "{dumped}");
    assert!(dumped.contains("ENVID=env-7"), "{dumped}");

    let dsns = dsns(&store).await;
    assert_eq!(dsns.len(), 1, "{dsns:#?}");
    let report = &dsns[0];
    assert!(report.contains("Subject: Successful Mail Delivery Report"), "{report}");
    assert!(report.contains("Final-Recipient: rfc822; bob@nodsn.test"), "{report}");
    assert!(report.contains("Action: relayed"), "{report}");
    assert!(report.contains("Original-Envelope-Id: env-7"), "{report}");
    assert!(!report.contains("cy@dsn.test"), "the DSN-capable hop reports cy: {report}");
    assert!(!report.contains("Final-Recipient: rfc822; dee@"), "dee asked for none: {report}");
    shutdown.cancel();
}
