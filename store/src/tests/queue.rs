use crate::Store;
use crate::StoreError;
use crate::model::{
    BOUNCED_BY_ADMIN, DeliveryResult, DsnRet, NewMessage, NewRecipient, Notify, Outcome, Page,
    QueueAction, QueueActor, QueueFilter, QueueId, RecipientStatus, Selection,
};

const NODE: &str = "mx1.example.test";

pub(crate) fn message(sender: &str, recipients: &[&str]) -> NewMessage {
    NewMessage {
        sender: sender.into(),
        recipients: recipients
            .iter()
            .map(|r| NewRecipient {
                address: (*r).into(),
                orcpt: Some(format!("rfc822;{r}")),
                notify: Notify::FAILURE | Notify::DELAY,
            })
            .collect(),
        envid: Some("env-1".into()),
        ret: Some(DsnRet::Headers),
        smtputf8: false,
        eight_bit: true,
        received_at: 1_700_000_000,
        client: "mx.example.org [192.0.2.1]".into(),
        auth_user: None,
        held: false,
        note: None,
        auth_results: None,
        body: b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
    }
}

fn result(id: QueueId, recipient: u32, outcome: Outcome) -> DeliveryResult {
    DeliveryResult { id, recipient, at: 1_700_000_100, outcome }
}

/// The command line: every recipient.
pub(crate) fn root() -> QueueActor {
    QueueActor::global(crate::tests::ACTOR)
}

fn all() -> QueueFilter {
    QueueFilter::default()
}

crate::store_tests!(
    a_delay_warning_is_recorded_and_can_be_taken_back,
    insert_load_and_body,
    a_bad_message_queues_nothing_of_its_batch,
    results_are_recorded_and_finished_messages_removed,
    list_filters_and_pages,
    a_domain_set_and_a_search_narrow_lists_and_actions,
    the_delivery_log_keeps_a_domain_set_literal,
    administrator_actions_leave_events,
    damaged_rows_are_set_aside,
    orphaned_entries_are_set_aside,
    actions_from_another_process_reach_the_watcher,
    a_message_history_outlives_the_queue_and_keeps_to_a_scope,
    a_recipient_twice_in_one_batch_is_written_in_turn,
    sender_and_recipient_match_whole_or_part_of_an_address
);

async fn a_delay_warning_is_recorded_and_can_be_taken_back(store: Store) {
    let ids =
        store.queue_insert(NODE, &[message("a@x.test", &["b@y.test", "c@y.test"])]).await.unwrap();
    let warned = |store: crate::Store| async move {
        let work = store.queue_load_work(NODE).await.unwrap();
        work.messages[0].recipients.iter().map(|r| r.delay_warned_at).collect::<Vec<_>>()
    };
    assert_eq!(warned(store.clone()).await, [None, None]);
    store.queue_note_delay_warning(ids[0], &[1], Some(1_700_014_400)).await.unwrap();
    assert_eq!(warned(store.clone()).await, [None, Some(1_700_014_400)]);
    let shown = store.queue_show(ids[0]).await.unwrap().unwrap();
    assert_eq!(shown.recipients[1].delay_warned_at, Some(1_700_014_400));
    store.queue_note_delay_warning(ids[0], &[1], None).await.unwrap();
    assert_eq!(warned(store).await, [None, None]);
}

async fn insert_load_and_body(store: Store) {
    let revision = store.revision().await.unwrap();
    let ids = store
        .queue_insert(
            NODE,
            &[message("a@x.test", &["b@Y.test", "c@z.test"]), message("", &["d@y.test"])],
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1]);
    // Queue writes are not configuration changes.
    assert_eq!(store.revision().await.unwrap(), revision);
    assert!(store.list_audit(10, None).await.unwrap().is_empty());

    let work = store.queue_load_work(NODE).await.unwrap();
    assert!(work.damaged.is_empty());
    assert_eq!(work.messages.len(), 2);
    let m = &work.messages[0];
    assert_eq!((m.id, m.sender.as_str(), m.size), (ids[0], "a@x.test", 22));
    assert_eq!(
        (m.ret, m.envid.as_deref(), m.eight_bit, m.smtputf8),
        (Some(DsnRet::Headers), Some("env-1"), true, false)
    );
    assert_eq!(m.recipients.len(), 2);
    assert_eq!(m.recipients[1].address, "c@z.test");
    assert_eq!(m.recipients[1].index, 1);
    assert_eq!(m.recipients[0].notify, Notify::FAILURE | Notify::DELAY);
    assert_eq!(m.recipients[0].status, RecipientStatus::Pending);
    assert_eq!(work.messages[1].sender, "");
    assert!(store.queue_load_work("other.node").await.unwrap().messages.is_empty());

    assert_eq!(store.queue_body(ids[0]).await.unwrap().unwrap(), b"Subject: hi\r\n\r\nhello\r\n");
    assert_eq!(store.queue_body(QueueId::next_after(None)).await.unwrap(), None);
}

async fn a_bad_message_queues_nothing_of_its_batch(store: Store) {
    let mut empty = message("a@x.test", &[]);
    empty.recipients.clear();
    let err =
        store.queue_insert(NODE, &[message("a@x.test", &["b@y.test"]), empty]).await.unwrap_err();
    assert!(err.to_string().starts_with("recipients:"), "{err}");
    assert_eq!(store.queue_list(&all(), Page::default()).await.unwrap().total, 0);
}

async fn results_are_recorded_and_finished_messages_removed(store: Store) {
    let ids = store
        .queue_insert(
            NODE,
            &[message("a@x.test", &["b@y.test", "c@y.test"]), message("a@x.test", &["d@y.test"])],
        )
        .await
        .unwrap();
    let removed = store
        .queue_record_results(&[
            result(ids[0], 0, Outcome::Delivered { reply: "250 2.0.0 ok".into() }),
            result(
                ids[0],
                1,
                Outcome::Deferred {
                    reply: "451 4.7.1 try later".into(),
                    next_attempt_at: 1_700_000_400,
                },
            ),
            result(ids[1], 0, Outcome::Failed { reply: "550 5.1.1 no such user".into() }),
        ])
        .await
        .unwrap();
    assert_eq!(removed, vec![ids[1]]);
    assert_eq!(store.queue_body(ids[1]).await.unwrap(), None);
    assert!(store.queue_show(ids[1]).await.unwrap().is_none());

    let m = store.queue_show(ids[0]).await.unwrap().unwrap();
    let (b, c) = (&m.recipients[0], &m.recipients[1]);
    assert_eq!(
        (b.status, b.attempts, b.last_error.as_deref()),
        (RecipientStatus::Delivered, 1, Some("250 2.0.0 ok"))
    );
    assert_eq!(
        (c.status, c.next_attempt_at, c.last_attempt_at),
        (RecipientStatus::Deferred, 1_700_000_400, Some(1_700_000_100))
    );
    assert_eq!(c.last_error.as_deref(), Some("451 4.7.1 try later"));

    let removed = store
        .queue_record_results(&[result(ids[0], 1, Outcome::Delivered { reply: "250 ok".into() })])
        .await
        .unwrap();
    assert_eq!(removed, vec![ids[0]]);
    assert!(store.queue_load_work(NODE).await.unwrap().messages.is_empty());
}

async fn list_filters_and_pages(store: Store) {
    let mut batch = Vec::new();
    for i in 0..25 {
        let mut m = message(
            if i % 5 == 0 { "boss@x.test" } else { "a@x.test" },
            &[if i % 2 == 0 { "r@even.test" } else { "r@odd.test" }],
        );
        m.received_at = 1_700_000_000 + i;
        batch.push(m);
    }
    let ids = store.queue_insert(NODE, &batch).await.unwrap();

    let mut seen = Vec::new();
    let mut page = Page { after: None, limit: 10 };
    loop {
        let got = store.queue_list(&all(), page).await.unwrap();
        assert_eq!(got.total, 25);
        seen.extend(got.messages.iter().map(|m| m.id));
        assert!(got.messages.iter().all(|m| m.recipients.len() == 1));
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let count = |filter: QueueFilter| {
        let store = store.clone();
        async move { store.queue_list(&filter, Page { after: None, limit: 100 }).await.unwrap().total }
    };
    assert_eq!(count(QueueFilter { sender: Some("boss@x.test".into()), ..all() }).await, 5);
    assert_eq!(count(QueueFilter { domain: Some("ODD.test".into()), ..all() }).await, 12);
    assert_eq!(count(QueueFilter { recipient: Some("r@even.test".into()), ..all() }).await, 13);
    assert_eq!(count(QueueFilter { older_than: Some(1_700_000_010), ..all() }).await, 10);
    assert_eq!(count(QueueFilter { newer_than: Some(1_700_000_020), ..all() }).await, 5);
    assert_eq!(count(QueueFilter { status: Some(RecipientStatus::Pending), ..all() }).await, 25);
    assert_eq!(count(QueueFilter { status: Some(RecipientStatus::Deferred), ..all() }).await, 0);
    assert_eq!(count(QueueFilter { held: Some(true), ..all() }).await, 0);
    let page = store
        .queue_list(
            &QueueFilter { sender: Some("boss@x.test".into()), ..all() },
            Page { after: None, limit: 2 },
        )
        .await
        .unwrap();
    assert_eq!((page.messages.len(), page.total, page.next), (2, 5, Some(ids[5])));
}

async fn a_domain_set_and_a_search_narrow_lists_and_actions(store: Store) {
    let batch = [
        message("a@x.test", &["b@a.test", "c@other.test"]),
        message("Boss@x.test", &["d@b.test"]),
        message("a@x.test", &["e@other.test"]),
        // Wildcards in a recipient's domain must not widen a domain-admin's scope.
        message("a@x.test", &["f@%", "g@a_test"]),
        // An address without a domain is in no one's scope.
        message("a@x.test", &["postmaster"]),
    ];
    let ids = store.queue_insert(NODE, &batch).await.unwrap();
    let scoped = |domains: &[&str]| QueueFilter {
        domains: Some(domains.iter().map(|d| d.parse().unwrap()).collect()),
        ..all()
    };
    let listed = |filter: QueueFilter| {
        let store = store.clone();
        async move {
            let page = store.queue_list(&filter, Page::default()).await.unwrap();
            assert_eq!(page.total as usize, page.messages.len());
            page.messages.iter().map(|m| m.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(scoped(&["a.test"])).await, vec![ids[0]]);
    assert_eq!(listed(scoped(&["a.test", "b.test"])).await, vec![ids[0], ids[1]]);
    assert_eq!(listed(scoped(&[])).await, Vec::<QueueId>::new());
    // Filters test only the recipients in scope: a domain-admin cannot confirm, by guessing,
    // who else a message of its domains goes to.
    assert_eq!(
        listed(QueueFilter { domain: Some("other.test".into()), ..scoped(&["a.test"]) }).await,
        Vec::<QueueId>::new()
    );
    assert_eq!(
        listed(QueueFilter { recipient: Some("c@other.test".into()), ..scoped(&["a.test"]) }).await,
        Vec::<QueueId>::new()
    );
    assert_eq!(
        listed(QueueFilter { recipient: Some("b@a.test".into()), ..scoped(&["a.test"]) }).await,
        vec![ids[0]]
    );
    assert_eq!(
        listed(QueueFilter { domain: Some("other.test".into()), ..all() }).await,
        vec![ids[0], ids[2]]
    );
    assert_eq!(
        listed(QueueFilter { domain: Some("b.test".into()), ..scoped(&["a.test"]) }).await,
        Vec::<QueueId>::new()
    );

    let search = |text: &str| QueueFilter { search: Some(text.into()), ..all() };
    assert_eq!(listed(search("boss")).await, vec![ids[1]]);
    assert_eq!(listed(search("E@OTHER")).await, vec![ids[2]]);
    assert_eq!(listed(search(&ids[3].to_string().to_lowercase())).await, vec![ids[3]]);
    assert_eq!(listed(search("%")).await, vec![ids[3]], "a LIKE wildcard is searched for as text");
    assert_eq!(listed(search("  ")).await.len(), 5, "a blank search matches all");
    assert_eq!(
        listed(QueueFilter { search: Some("c@other".into()), ..scoped(&["a.test"]) }).await,
        Vec::<QueueId>::new()
    );
    assert_eq!(
        listed(QueueFilter { search: Some("b@a.t".into()), ..scoped(&["a.test"]) }).await,
        vec![ids[0]]
    );
    assert_eq!(listed(QueueFilter { search: Some("c@other".into()), ..all() }).await, vec![ids[0]]);

    // A bulk action on "all that match" stays within the scope.
    let done = store
        .queue_act(&root(), QueueAction::Hold, &Selection::Matching(scoped(&["b.test"])))
        .await
        .unwrap();
    assert_eq!(done, vec![ids[1]]);
    assert_eq!(listed(QueueFilter { held: Some(true), ..all() }).await, vec![ids[1]]);
}

async fn the_delivery_log_keeps_a_domain_set_literal(store: Store) {
    store
        .queue_insert(NODE, &[message("a@x.test", &["b@a.test", "c@%", "d@a_test", "postmaster"])])
        .await
        .unwrap();
    let scoped = |domains: &[&str]| crate::LogFilter {
        domains: Some(domains.iter().map(|d| d.parse().unwrap()).collect()),
        ..crate::LogFilter::default()
    };
    let logged = store.delivery_log(&scoped(&["a.test"]), None, 100).await.unwrap();
    assert_eq!(logged.iter().map(|e| e.recipient.as_str()).collect::<Vec<_>>(), ["b@a.test"]);
    assert!(store.delivery_log(&scoped(&[]), None, 100).await.unwrap().is_empty());
    assert_eq!(store.delivery_log(&crate::LogFilter::default(), None, 100).await.unwrap().len(), 4);
    let counts = store.delivery_counts(0, &scoped(&["a.test"]).domains).await.unwrap();
    assert_eq!(counts.iter().map(|h| h.received).sum::<u64>(), 1);
    assert!(store.delivery_counts(0, &Some(Vec::new())).await.unwrap().is_empty());
}

async fn administrator_actions_leave_events(store: Store) {
    let mut events = store.queue_subscribe();
    let ids = store
        .queue_insert(
            NODE,
            &[
                message("a@x.test", &["b@y.test", "c@y.test"]),
                message("a@x.test", &["d@y.test"]),
                message("a@x.test", &["e@y.test"]),
            ],
        )
        .await
        .unwrap();
    store
        .queue_record_results(&[result(
            ids[0],
            0,
            Outcome::Deferred { reply: "421 busy".into(), next_attempt_at: 4_000_000_000 },
        )])
        .await
        .unwrap();
    let start = store.queue_last_event().await.unwrap();
    let revision = store.revision().await.unwrap();

    assert_eq!(
        store
            .queue_act(&root(), QueueAction::Hold, &Selection::Ids(vec![ids[1], ids[1]]))
            .await
            .unwrap(),
        vec![ids[1]]
    );
    let work = store.queue_load_work(NODE).await.unwrap();
    assert_eq!(work.messages.iter().map(|m| m.id).collect::<Vec<_>>(), vec![ids[0], ids[2]]);
    let held = QueueFilter { held: Some(true), ..all() };
    assert_eq!(store.queue_list(&held, Page::default()).await.unwrap().total, 1);
    store
        .queue_act(&root(), QueueAction::Release, &Selection::Matching(held.clone()))
        .await
        .unwrap();
    assert_eq!(store.queue_list(&held, Page::default()).await.unwrap().total, 0);

    assert_eq!(store.queue_flush(&root()).await.unwrap(), vec![ids[0]]);
    let m = store.queue_show(ids[0]).await.unwrap().unwrap();
    assert!(m.recipients[0].next_attempt_at < 4_000_000_000);

    store.queue_act(&root(), QueueAction::Bounce, &Selection::Ids(vec![ids[0]])).await.unwrap();
    let m = store.queue_show(ids[0]).await.unwrap().unwrap();
    assert!(m.recipients.iter().all(|r| r.status == RecipientStatus::Failed));
    assert_eq!(m.recipients[1].last_error.as_deref(), Some(BOUNCED_BY_ADMIN));
    // Kept until the engine has sent the DSN, and so still in the engine's work.
    assert_eq!(store.queue_load_work(NODE).await.unwrap().messages.len(), 3);

    store.queue_act(&root(), QueueAction::Delete, &Selection::Ids(vec![ids[2]])).await.unwrap();
    assert!(store.queue_show(ids[2]).await.unwrap().is_none());
    assert_eq!(store.queue_body(ids[2]).await.unwrap(), None);

    let missing = QueueId::next_after(Some(ids[2]));
    let err = store
        .queue_act(&root(), QueueAction::Delete, &Selection::Ids(vec![ids[1], missing]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert_eq!(err.to_string(), format!("queued message {missing} does not exist"));
    assert!(store.queue_show(ids[1]).await.unwrap().is_some(), "a refused action changes nothing");

    let got = store.queue_events_after(start, 100).await.unwrap();
    let seen: Vec<_> = got.iter().map(|e| (e.message, e.action)).collect();
    assert_eq!(
        seen,
        vec![
            (ids[1], QueueAction::Hold),
            (ids[1], QueueAction::Release),
            (ids[0], QueueAction::Retry),
            (ids[0], QueueAction::Bounce),
            (ids[2], QueueAction::Delete),
        ]
    );
    assert_eq!(*events.borrow_and_update(), got[4].id);
    assert_eq!(store.queue_events_after(got[1].id, 2).await.unwrap().len(), 2);
    assert_eq!(store.queue_last_event().await.unwrap(), got[4].id);
    // Each action is in the audit log, with who did it and to which recipients.
    let audit = store.list_audit(10, None).await.unwrap();
    let logged: Vec<_> = audit
        .iter()
        .rev()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.object.clone()))
        .collect();
    assert_eq!(
        logged,
        vec![
            (crate::tests::ACTOR, "queue.hold", ids[1].to_string()),
            (crate::tests::ACTOR, "queue.release", ids[1].to_string()),
            (crate::tests::ACTOR, "queue.retry", ids[0].to_string()),
            (crate::tests::ACTOR, "queue.bounce", ids[0].to_string()),
            (crate::tests::ACTOR, "queue.delete", ids[2].to_string()),
        ]
    );
    assert_eq!(
        audit[1].after,
        Some(serde_json::json!({"whole_message": true, "recipients": ["b@y.test", "c@y.test"]}))
    );
    assert!(got.iter().all(|e| e.recipients.is_none()), "the CLI acts on whole messages");
    assert_eq!(
        store.revision().await.unwrap(),
        revision,
        "queue actions are not configuration changes"
    );
}

async fn damaged_rows_are_set_aside(store: Store) {
    let ids = store
        .queue_insert(
            NODE,
            &[message("a@x.test", &["b@y.test"]), message("a@x.test", &["c@y.test"])],
        )
        .await
        .unwrap();
    sqlx::query("UPDATE queue_recipients SET notify = 99 WHERE address = 'c@y.test'")
        .execute(store.pool())
        .await
        .unwrap();
    let work = store.queue_load_work(NODE).await.unwrap();
    assert_eq!(work.messages.iter().map(|m| m.id).collect::<Vec<_>>(), vec![ids[0]]);
    assert_eq!(work.damaged.len(), 1);
    assert_eq!(work.damaged[0].id, ids[1].to_string());
    assert!(work.damaged[0].problem.contains("notify"), "{}", work.damaged[0].problem);
    let page = store.queue_list(&all(), Page::default()).await.unwrap();
    assert_eq!((page.messages.len(), page.damaged.len(), page.total), (1, 1, 2));
}

async fn orphaned_entries_are_set_aside(store: Store) {
    let batch = [
        message("a@x.test", &["b@y.test"]),
        message("a@x.test", &["c@y.test"]),
        message("a@x.test", &["d@y.test"]),
    ];
    let ids = store.queue_insert(NODE, &batch).await.unwrap();
    // Hand edits: one message loses its body, another its recipients.
    sqlx::query("DELETE FROM queue_bodies WHERE message_id = (SELECT message_id FROM queue_recipients WHERE address = 'c@y.test')")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM queue_recipients WHERE address = 'd@y.test'")
        .execute(store.pool())
        .await
        .unwrap();
    let work = store.queue_load_work(NODE).await.unwrap();
    assert_eq!(work.messages.iter().map(|m| m.id).collect::<Vec<_>>(), vec![ids[0]]);
    let mut damaged: Vec<(String, String)> =
        work.damaged.into_iter().map(|d| (d.id, d.problem)).collect();
    damaged.sort();
    let mut expected = vec![
        (ids[1].to_string(), "its body is missing".to_string()),
        (ids[2].to_string(), "it has no recipients".to_string()),
    ];
    expected.sort();
    assert_eq!(damaged, expected);
}

async fn actions_from_another_process_reach_the_watcher(store: Store) {
    let other = crate::Store::open(store.database(), store.key_file()).await.unwrap();
    let ids = other.queue_insert(NODE, &[message("a@x.test", &["b@y.test"])]).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let watcher = store.spawn_queue_watcher(shutdown.clone());
    let mut events = store.queue_subscribe();
    let start = *events.borrow_and_update();
    other.queue_act(&root(), QueueAction::Hold, &Selection::Ids(vec![ids[0]])).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(3), events.changed())
        .await
        .expect("the watcher sees the other process's action")
        .unwrap();
    let got = store.queue_events_after(start, 10).await.unwrap();
    assert_eq!((got[0].message, got[0].action), (ids[0], QueueAction::Hold));
    shutdown.cancel();
    watcher.await.unwrap();
    other.close().await;
}

async fn a_message_history_outlives_the_queue_and_keeps_to_a_scope(store: Store) {
    let ids =
        store.queue_insert(NODE, &[message("a@x.test", &["b@a.test", "c@b.test"])]).await.unwrap();
    let id = ids[0];
    let deferred =
        Outcome::Deferred { reply: "451 4.4.1 later".into(), next_attempt_at: 1_700_000_400 };
    store.queue_record_results(&[result(id, 0, deferred)]).await.unwrap();
    store
        .queue_record_results(&[
            result(id, 0, Outcome::Delivered { reply: "250 ok".into() }),
            result(id, 1, Outcome::Failed { reply: "550 5.1.1 no".into() }),
        ])
        .await
        .unwrap();
    assert!(store.queue_show(id).await.unwrap().is_none());
    let all = store.message_history(&id.to_string(), &None).await.unwrap();
    let seen: Vec<(&str, &str)> =
        all.iter().map(|e| (e.recipient.as_str(), e.status.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("b@a.test", "received"),
            ("c@b.test", "received"),
            ("b@a.test", "deferred"),
            ("b@a.test", "delivered"),
            ("c@b.test", "failed")
        ]
    );
    let mine = store
        .message_history(&id.to_string(), &Some(vec!["b.test".parse().unwrap()]))
        .await
        .unwrap();
    assert!(mine.iter().all(|e| e.recipient == "c@b.test") && mine.len() == 2);
    assert!(store.message_history("nope", &None).await.unwrap().is_empty());
}

/// Attempts that piled up while the store was failing reach it in one batch: a recipient
/// deferred and then delivered is written in that order, each once, and the prompt record of a
/// `250` is neither logged nor counted again by the attempt's record.
async fn a_recipient_twice_in_one_batch_is_written_in_turn(store: Store) {
    let ids = store
        .queue_insert(
            NODE,
            &[message("a@x.test", &["b@y.test"]), message("a@x.test", &["c@y.test"])],
        )
        .await
        .unwrap();
    let deferred =
        Outcome::Deferred { reply: "451 4.4.1 later".into(), next_attempt_at: 1_700_000_400 };
    let delivered = Outcome::Delivered { reply: "250 ok".into() };
    // The second message's 250, recorded at once, twice (a repeated receipt).
    let prompt = result(ids[1], 0, delivered.clone());
    store.queue_record_delivered(&[prompt.clone(), prompt.clone()]).await.unwrap();
    let removed = store
        .queue_record_results(&[result(ids[0], 0, deferred), prompt, result(ids[0], 0, delivered)])
        .await
        .unwrap();
    assert_eq!(removed, ids, "both messages are done");
    let first = store.message_history(&ids[0].to_string(), &None).await.unwrap();
    let seen: Vec<&str> = first.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(seen, ["received", "deferred", "delivered"]);
    let second = store.message_history(&ids[1].to_string(), &None).await.unwrap();
    let seen: Vec<&str> = second.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(seen, ["received", "delivered"], "the 250 logged once");
}

async fn sender_and_recipient_match_whole_or_part_of_an_address(store: Store) {
    store
        .queue_insert(
            NODE,
            &[
                message("Boss@x.test", &["one@y.test"]),
                message("", &["two@y.test"]),
                message("a_b@x.test", &["100%@z.test"]),
            ],
        )
        .await
        .unwrap();
    let count = |filter: QueueFilter| {
        let store = store.clone();
        async move { store.queue_list(&filter, Page { after: None, limit: 100 }).await.unwrap().total }
    };
    let part = |sender: Option<&str>, recipient: Option<&str>| QueueFilter {
        sender: sender.map(str::to_string),
        recipient: recipient.map(str::to_string),
        partial: true,
        ..all()
    };
    assert_eq!(
        count(QueueFilter { sender: Some(String::new()), ..all() }).await,
        1,
        "the null sender, whole"
    );
    assert_eq!(count(QueueFilter { sender: Some("boss@x.test".into()), ..all() }).await, 1);
    assert_eq!(
        count(QueueFilter { sender: Some("boss".into()), ..all() }).await,
        0,
        "whole, not part"
    );
    assert_eq!(count(part(Some("BOSS"), None)).await, 1);
    assert_eq!(count(part(Some("@x.test"), None)).await, 2);
    assert_eq!(count(part(Some("a_b"), None)).await, 1);
    assert_eq!(count(part(Some("_"), None)).await, 1, "a wildcard is taken literally");
    assert_eq!(count(part(None, Some("@y.test"))).await, 2);
    assert_eq!(count(part(None, Some("%"))).await, 1);
    assert_eq!(count(part(Some(""), None)).await, 3, "blank means any");
}
