//! The running scheduler and a domain-admin's actions on its own recipients of messages that
//! also go to another domain: held, deleted or bounced, its recipient is not delivered; the
//! other domain's recipient still is. Both while the messages wait in the work list and while
//! they are out of it (held whole).

use std::path::Path;

use postern_store::model::{
    DomainKind, NewMailbox, PasswordHash, QueueAction, QueueActor, QueueFilter, QueueId,
    RecipientStatus, Selection, TlsPolicy, TransportPattern,
};

use super::testing::{NODE, dsns, message, until};
use super::*;
use crate::delivery::DirectConnector;
use crate::queue::route::{Route, route};

fn to_both(subject: &str) -> NewMessage {
    message("zed@example.org", &["u@a.test", "v@b.test"], subject)
}

fn dora() -> QueueActor {
    QueueActor { actor: "console:dora".into(), domains: Some(vec!["a.test".parse().unwrap()]) }
}

fn root() -> QueueActor {
    QueueActor::global("cli:root")
}

async fn mailboxes(store: &Store) {
    // c.test only to tell that the scheduler runs (see `Running::start`).
    for domain in ["a.test", "b.test", "c.test"] {
        store.add_domain("test", &domain.parse().unwrap(), DomainKind::Local).await.unwrap();
    }
    for (domain, local) in [("a.test", "u"), ("b.test", "v"), ("c.test", "ready")] {
        let new = NewMailbox {
            address: format!("{local}@{domain}").parse().unwrap(),
            display_name: String::new(),
            enabled: true,
            quota_bytes: None,
            password_hash: PasswordHash::create("not used here").unwrap(),
        };
        store.add_mailbox("test", new).await.unwrap();
    }
}

/// The subjects of the mail in `dir/new`, sorted.
fn subjects(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir.join("new"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter_map(|m| {
                    m.lines().find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// A running scheduler over the store, with DSNs queued for another node (so that they stay
/// in the store to be read).
struct Running {
    engine: Engine,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
    mail: tempfile::TempDir,
}

impl Running {
    async fn start(store: &Store, retry: RetryPolicy) -> Running {
        // A message of its own, queued before the start so that the scheduler loads it, and
        // delivered once it has loaded the queue and follows its events.
        let mut ready = to_both("ready");
        ready.recipients.truncate(1);
        ready.recipients[0].address = "ready@c.test".into();
        store.queue_insert(NODE, &[ready]).await.unwrap();
        let shutdown = CancellationToken::new();
        let (engine, _task) = Engine::start(store.clone(), "test", shutdown.clone()).await.unwrap();
        let (bounces, writer) =
            Queue::start(store.clone(), "dsn.test".into(), None, shutdown.clone());
        let mail = tempfile::tempdir().unwrap();
        let config = SchedulerConfig {
            node: NODE.into(),
            hostname: NODE.into(),
            mail_root: mail.path().into(),
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
        let task = tokio::spawn(Scheduler::run(
            store.clone(),
            engine.clone(),
            config,
            fresh_rx,
            shutdown.clone(),
        ));
        let run = Running { engine, shutdown, task, writer, mail };
        let dir = run.maildir("ready@c.test");
        until("the scheduler runs", || async { !subjects(&dir).is_empty() }).await;
        run
    }

    fn maildir(&self, address: &str) -> std::path::PathBuf {
        let (local, domain) = address.split_once('@').unwrap();
        self.mail.path().join(domain).join(local)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
        self.writer.await.unwrap();
    }
}

async fn status(store: &Store, id: QueueId) -> Option<Vec<(String, RecipientStatus)>> {
    let m = store.queue_show(id).await.unwrap()?;
    Some(m.recipients.into_iter().map(|r| (r.address, r.status)).collect())
}

postern_store::store_tests!(
    the_engine_delivers_only_the_recipients_a_domain_admin_left,
    actions_during_an_attempt_take_effect_when_it_ends,
    a_message_held_whole_keeps_a_domain_admins_actions
);

async fn the_engine_delivers_only_the_recipients_a_domain_admin_left(store: Store) {
    mailboxes(&store).await;
    // Both domains through a next hop that is down, retried only in an hour: every
    // recipient waits in the work list, deferred.
    let closed = postern_store::testing::free_port();
    for domain in ["a.test", "b.test"] {
        let transport = format!("smtp:[127.0.0.1]:{closed}").parse().unwrap();
        store
            .set_transport(
                "test",
                &domain.parse::<TransportPattern>().unwrap(),
                transport,
                TlsPolicy::None,
                None,
            )
            .await
            .unwrap();
    }
    let ids = store
        .queue_insert(NODE, &[to_both("held"), to_both("deleted"), to_both("bounced")])
        .await
        .unwrap();
    let (held, deleted, bounced) = (ids[0], ids[1], ids[2]);
    let retry = RetryPolicy { first: Duration::from_secs(3600), ..RetryPolicy::default() };
    let run = Running::start(&store, retry).await;
    until("every recipient deferred", || async {
        for id in &ids {
            let s = status(&store, *id).await.unwrap();
            if s.iter().any(|(_, st)| *st != RecipientStatus::Deferred) {
                return false;
            }
        }
        true
    })
    .await;

    // Dora acts on her recipient of each, the way the console and the API do.
    let one = |id| Selection::Ids(vec![id]);
    store.queue_act(&dora(), QueueAction::Hold, &one(held)).await.unwrap();
    store.queue_act(&dora(), QueueAction::Delete, &one(deleted)).await.unwrap();
    store.queue_act(&dora(), QueueAction::Bounce, &one(bounced)).await.unwrap();
    // Her bounce reaches the sender, for her recipient only.
    until("the DSN of dora's bounce", || async { !dsns(&store).await.is_empty() }).await;

    // The next hop comes back (local delivery), and everything is retried now.
    for domain in ["a.test", "b.test"] {
        store.remove_transport("test", &domain.parse::<TransportPattern>().unwrap()).await.unwrap();
    }
    until("the engine routes both domains locally", || async {
        let snapshot = run.engine.snapshot();
        route(&snapshot.config, "u@a.test") == Route::Local
            && route(&snapshot.config, "v@b.test") == Route::Local
    })
    .await;
    store
        .queue_act(&root(), QueueAction::Retry, &Selection::Matching(QueueFilter::default()))
        .await
        .unwrap();

    until("v@b.test has all three", || async { subjects(&run.maildir("v@b.test")).len() == 3 })
        .await;
    until("the deleted and bounced messages are done", || async {
        status(&store, deleted).await.is_none() && status(&store, bounced).await.is_none()
    })
    .await;
    assert_eq!(subjects(&run.maildir("v@b.test")), ["bounced", "deleted", "held"]);
    assert!(subjects(&run.maildir("u@a.test")).is_empty(), "dora's recipient got nothing");
    // The Maildir file comes before the bookkeeper records the delivery: wait for the record.
    let recorded = Some(vec![
        ("u@a.test".to_string(), RecipientStatus::Deferred),
        ("v@b.test".to_string(), RecipientStatus::Delivered),
    ]);
    until("her held recipient waits, the other is recorded delivered", || async {
        status(&store, held).await == recorded
    })
    .await;
    let dsns = dsns(&store).await;
    assert_eq!(dsns.len(), 1, "{dsns:#?}");
    assert!(
        dsns[0].contains("Final-Recipient: rfc822; u@a.test") && !dsns[0].contains("v@b.test"),
        "{}",
        dsns[0]
    );
    assert!(
        dsns[0].contains("Subject: bounced") && dsns[0].contains("bounced by the administrator"),
        "{}",
        dsns[0]
    );

    // She releases and retries hers: now it is delivered, and the message is done.
    store.queue_act(&dora(), QueueAction::Release, &one(held)).await.unwrap();
    store.queue_act(&dora(), QueueAction::Retry, &one(held)).await.unwrap();
    until("u@a.test has the held one", || async { subjects(&run.maildir("u@a.test")) == ["held"] })
        .await;
    until("the held message is done", || async { status(&store, held).await.is_none() }).await;
    assert_eq!(subjects(&run.maildir("v@b.test")).len(), 3, "nothing twice");
    run.stop().await;
}

async fn actions_during_an_attempt_take_effect_when_it_ends(store: Store) {
    mailboxes(&store).await;
    // A next hop that takes the connection and says nothing: the attempts wait on it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    for domain in ["a.test", "b.test"] {
        let transport = format!("smtp:[127.0.0.1]:{port}").parse().unwrap();
        store
            .set_transport(
                "test",
                &domain.parse::<TransportPattern>().unwrap(),
                transport,
                TlsPolicy::None,
                None,
            )
            .await
            .unwrap();
    }
    let ids = store
        .queue_insert(NODE, &[to_both("held"), to_both("deleted"), to_both("bounced")])
        .await
        .unwrap();
    let (held, deleted, bounced) = (ids[0], ids[1], ids[2]);
    let retry = RetryPolicy { first: Duration::from_secs(3600), ..RetryPolicy::default() };
    let run = Running::start(&store, retry).await;
    // All three are dispatched at once; the first to connect shows the attempts are on.
    let (first, _) =
        tokio::time::timeout(Duration::from_secs(10), silent.accept()).await.unwrap().unwrap();

    let one = |id| Selection::Ids(vec![id]);
    store.queue_act(&dora(), QueueAction::Hold, &one(held)).await.unwrap();
    store.queue_act(&dora(), QueueAction::Delete, &one(deleted)).await.unwrap();
    store.queue_act(&dora(), QueueAction::Bounce, &one(bounced)).await.unwrap();
    // The next hop hangs up on every attempt: each is deferred.
    drop(first);
    let hang_up = tokio::spawn(async move {
        while let Ok((conn, _)) = silent.accept().await {
            drop(conn);
        }
    });
    until("the attempts are over", || async {
        let v_tried = |id| {
            let store = store.clone();
            async move {
                store.queue_show(id).await.unwrap().is_some_and(|m| {
                    m.recipients.iter().any(|r| r.address == "v@b.test" && r.attempts > 0)
                })
            }
        };
        v_tried(held).await && v_tried(deleted).await && v_tried(bounced).await
    })
    .await;
    hang_up.abort();
    until("the DSN of dora's bounce", || async { dsns(&store).await.len() == 1 }).await;
    assert_eq!(
        status(&store, bounced).await.unwrap()[0],
        ("u@a.test".into(), RecipientStatus::Failed),
        "it failed rather than wait"
    );
    assert_eq!(status(&store, deleted).await.unwrap().len(), 1, "her deleted recipient stays gone");

    // The next hop comes back; everything is retried now: only v@b.test gets mail.
    for domain in ["a.test", "b.test"] {
        store.remove_transport("test", &domain.parse::<TransportPattern>().unwrap()).await.unwrap();
    }
    until("the engine routes both domains locally", || async {
        let snapshot = run.engine.snapshot();
        route(&snapshot.config, "u@a.test") == Route::Local
            && route(&snapshot.config, "v@b.test") == Route::Local
    })
    .await;
    store
        .queue_act(&root(), QueueAction::Retry, &Selection::Matching(QueueFilter::default()))
        .await
        .unwrap();
    until("v@b.test has all three", || async { subjects(&run.maildir("v@b.test")).len() == 3 })
        .await;
    until("the deleted and bounced messages are done", || async {
        status(&store, deleted).await.is_none() && status(&store, bounced).await.is_none()
    })
    .await;
    assert!(subjects(&run.maildir("u@a.test")).is_empty(), "dora's recipient got nothing");
    let dsns = dsns(&store).await;
    assert_eq!(dsns.len(), 1, "{dsns:#?}");
    assert!(
        dsns[0].contains("Final-Recipient: rfc822; u@a.test") && !dsns[0].contains("v@b.test"),
        "{}",
        dsns[0]
    );
    until("her held recipient waits, the other is recorded delivered", || async {
        let m = store.queue_show(held).await.unwrap().expect("her held recipient waits");
        (m.recipients[0].held, m.recipients[1].status) == (true, RecipientStatus::Delivered)
    })
    .await;
    run.stop().await;
}

async fn a_message_held_whole_keeps_a_domain_admins_actions(store: Store) {
    mailboxes(&store).await;
    let ids = store
        .queue_insert(NODE, &[to_both("held"), to_both("deleted"), to_both("bounced")])
        .await
        .unwrap();
    let (held, deleted, bounced) = (ids[0], ids[1], ids[2]);
    // Held whole before the engine starts: out of its work list.
    store.queue_act(&root(), QueueAction::Hold, &Selection::Ids(ids.clone())).await.unwrap();
    let run = Running::start(&store, RetryPolicy::default()).await;
    let one = |id| Selection::Ids(vec![id]);
    store.queue_act(&dora(), QueueAction::Delete, &one(deleted)).await.unwrap();
    store.queue_act(&dora(), QueueAction::Bounce, &one(bounced)).await.unwrap();
    until("the DSN of dora's bounce", || async { dsns(&store).await.len() == 1 }).await;
    // Her release of the held message frees only her recipient: v@b.test stays held.
    store.queue_act(&dora(), QueueAction::Release, &one(held)).await.unwrap();
    until("u@a.test has the held one", || async { subjects(&run.maildir("u@a.test")) == ["held"] })
        .await;
    assert!(subjects(&run.maildir("v@b.test")).is_empty(), "bob's recipient stays held");

    // The global release sends the rest.
    store.queue_act(&root(), QueueAction::Release, &Selection::Ids(ids.clone())).await.unwrap();
    until("v@b.test has all three", || async { subjects(&run.maildir("v@b.test")).len() == 3 })
        .await;
    until("the queue has only the DSN", || async {
        let mut left = Vec::new();
        for id in &ids {
            left.push(status(&store, *id).await);
        }
        left.iter().all(Option::is_none)
    })
    .await;
    assert_eq!(
        subjects(&run.maildir("u@a.test")),
        ["held"],
        "neither the deleted nor the bounced one"
    );
    let dsns = dsns(&store).await;
    assert_eq!(dsns.len(), 1, "one DSN, not sent again: {dsns:#?}");
    assert!(
        dsns[0].contains("Final-Recipient: rfc822; u@a.test") && !dsns[0].contains("v@b.test"),
        "{}",
        dsns[0]
    );
    run.stop().await;
}
