//! Queue actions by an actor limited to some domains: only its recipients of a message that
//! also goes elsewhere are touched, and the event and the audit record say which.

use super::queue::{message, root};
use crate::Store;
use crate::StoreError;
use crate::model::{
    BOUNCED_BY_ADMIN, DeliveryResult, Outcome, Page, QueueAction, QueueActor, QueueFilter, QueueId,
    QueuedMessage, RecipientStatus, Selection,
};

const NODE: &str = "mx1.example.test";

fn admin_of(name: &str, domains: &[&str]) -> QueueActor {
    QueueActor {
        actor: format!("console:{name}"),
        domains: Some(domains.iter().map(|d| d.parse().unwrap()).collect()),
    }
}

async fn shown(store: &crate::Store, id: QueueId) -> QueuedMessage {
    store.queue_show(id).await.unwrap().expect("still queued")
}

/// Each recipient's address, status and own hold, and the message's hold.
async fn state(store: &crate::Store, id: QueueId) -> (bool, Vec<(String, RecipientStatus, bool)>) {
    let m = shown(store, id).await;
    (m.held, m.recipients.into_iter().map(|r| (r.address, r.status, r.held)).collect())
}

fn r(address: &str, status: RecipientStatus, held: bool) -> (String, RecipientStatus, bool) {
    (address.to_string(), status, held)
}

crate::store_tests!(
    a_domain_admin_acts_only_on_its_own_recipients,
    a_scoped_delete_removes_a_message_with_nothing_left_to_do,
    a_scoped_retry_and_flush_touch_only_the_actors_recipients
);

async fn a_domain_admin_acts_only_on_its_own_recipients(store: Store) {
    use RecipientStatus::{Failed, Pending};
    let ids = store
        .queue_insert(
            NODE,
            &[
                message("x@x.test", &["u@a.test", "v@b.test"]),
                message("x@x.test", &["w@a.test"]),
                message("x@x.test", &["y@b.test"]),
            ],
        )
        .await
        .unwrap();
    let (shared, mine, theirs) = (ids[0], ids[1], ids[2]);
    let dora = admin_of("dora", &["a.test"]);
    let bob = admin_of("bob", &["b.test"]);
    let start = store.queue_last_event().await.unwrap();

    // Another domain's message is as good as absent, and refuses the whole action.
    let err = store
        .queue_act(&dora, QueueAction::Delete, &Selection::Ids(vec![mine, theirs]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(
        store.queue_show(mine).await.unwrap().is_some()
            && store.queue_show(theirs).await.unwrap().is_some()
    );

    // Hold: her recipient only, on its own; a message wholly hers is held whole.
    store.queue_act(&dora, QueueAction::Hold, &Selection::Ids(vec![shared, mine])).await.unwrap();
    assert_eq!(
        state(&store, shared).await,
        (false, vec![r("u@a.test", Pending, true), r("v@b.test", Pending, false)])
    );
    assert!(shown(&store, mine).await.held);
    let held = |actor: &QueueActor| QueueFilter {
        held: Some(true),
        domains: actor.domains.clone(),
        ..QueueFilter::default()
    };
    let listed = |filter: QueueFilter| {
        let store = store.clone();
        async move {
            store
                .queue_list(&filter, Page::default())
                .await
                .unwrap()
                .messages
                .iter()
                .map(|m| m.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(held(&dora)).await, vec![shared, mine], "held, as dora sees them");
    assert_eq!(listed(held(&bob)).await, Vec::<QueueId>::new(), "bob's recipient is not held");
    let not_held = QueueFilter { held: Some(false), ..held(&bob) };
    assert_eq!(listed(not_held).await, vec![shared, theirs]);
    // The engine's start-up load still has the message, with the hold on the recipient.
    let work = store.queue_load_work(NODE).await.unwrap();
    let loaded = work.messages.iter().find(|m| m.id == shared).expect("loaded");
    assert_eq!(loaded.recipients.iter().map(|r| r.held).collect::<Vec<_>>(), [true, false]);

    // A whole-message hold by a global admin, then bob releases his: dora's stays held.
    store.queue_act(&root(), QueueAction::Hold, &Selection::Ids(vec![shared])).await.unwrap();
    store.queue_act(&bob, QueueAction::Release, &Selection::Ids(vec![shared])).await.unwrap();
    assert_eq!(
        state(&store, shared).await,
        (false, vec![r("u@a.test", Pending, true), r("v@b.test", Pending, false)])
    );
    store.queue_act(&root(), QueueAction::Hold, &Selection::Ids(vec![shared])).await.unwrap();
    store.queue_act(&root(), QueueAction::Release, &Selection::Ids(vec![shared])).await.unwrap();
    assert_eq!(
        state(&store, shared).await,
        (false, vec![r("u@a.test", Pending, false), r("v@b.test", Pending, false)]),
        "a global release frees every recipient"
    );

    // Bounce: hers fails (the DSN still owed), his stays to be delivered.
    store
        .queue_act(&dora, QueueAction::Bounce, &Selection::Matching(QueueFilter::default()))
        .await
        .unwrap();
    assert_eq!(
        state(&store, shared).await.1,
        vec![r("u@a.test", Failed, false), r("v@b.test", Pending, false)]
    );
    assert_eq!(
        shown(&store, shared).await.recipients[0].last_error.as_deref(),
        Some(BOUNCED_BY_ADMIN)
    );
    assert!(
        store
            .queue_show(mine)
            .await
            .unwrap()
            .unwrap()
            .recipients
            .iter()
            .all(|r| r.status == Failed)
    );
    assert_eq!(
        shown(&store, theirs).await.recipients[0].status,
        Pending,
        "all that match stays in her scope"
    );

    // Delete: his recipient goes; the message stays while her bounce is owed.
    store.queue_act(&bob, QueueAction::Delete, &Selection::Ids(vec![shared])).await.unwrap();
    assert_eq!(state(&store, shared).await.1, vec![r("u@a.test", Failed, false)]);

    let events = store.queue_events_after(start, 100).await.unwrap();
    let seen: Vec<_> = events.iter().map(|e| (e.message, e.action, e.recipients.clone())).collect();
    assert_eq!(
        seen,
        vec![
            (shared, QueueAction::Hold, Some(vec![0])),
            (mine, QueueAction::Hold, None),
            (shared, QueueAction::Hold, None),
            (shared, QueueAction::Release, Some(vec![1])),
            (shared, QueueAction::Hold, None),
            (shared, QueueAction::Release, None),
            (shared, QueueAction::Bounce, Some(vec![0])),
            (mine, QueueAction::Bounce, None),
            (shared, QueueAction::Delete, Some(vec![1])),
        ]
    );
    let audit = store.list_audit(20, None).await.unwrap();
    let last = &audit[0];
    assert_eq!(
        (last.actor.as_str(), last.action.as_str(), last.object.clone()),
        ("console:bob", "queue.delete", shared.to_string())
    );
    assert_eq!(
        last.after,
        Some(serde_json::json!({"whole_message": false, "recipients": ["v@b.test"]}))
    );
    assert_eq!(audit.len(), 9, "one record per message acted on, none for the refused action");
}

async fn a_scoped_delete_removes_a_message_with_nothing_left_to_do(store: Store) {
    let ids = store
        .queue_insert(
            NODE,
            &[
                message("x@x.test", &["p@a.test", "q@b.test"]),
                message("x@x.test", &["r@a.test", "s@b.test"]),
            ],
        )
        .await
        .unwrap();
    let dora = admin_of("dora", &["a.test"]);
    let bob = admin_of("bob", &["b.test"]);
    // Bob's recipient goes; dora's is still to deliver.
    store.queue_act(&bob, QueueAction::Delete, &Selection::Ids(vec![ids[0]])).await.unwrap();
    assert_eq!(shown(&store, ids[0]).await.recipients.len(), 1);
    // Now every recipient left is hers: the message goes whole, body and all.
    store.queue_act(&dora, QueueAction::Delete, &Selection::Ids(vec![ids[0]])).await.unwrap();
    assert!(store.queue_show(ids[0]).await.unwrap().is_none());
    assert_eq!(store.queue_body(ids[0]).await.unwrap(), None);

    // Bob's recipient was delivered: when dora deletes hers, nothing is left to do.
    let delivered = DeliveryResult {
        id: ids[1],
        recipient: 1,
        at: 1_700_000_100,
        outcome: Outcome::Delivered { reply: "250 ok".into() },
    };
    store.queue_record_results(&[delivered]).await.unwrap();
    store.queue_act(&dora, QueueAction::Delete, &Selection::Ids(vec![ids[1]])).await.unwrap();
    assert!(store.queue_show(ids[1]).await.unwrap().is_none());
    assert_eq!(store.queue_body(ids[1]).await.unwrap(), None);
}

async fn a_scoped_retry_and_flush_touch_only_the_actors_recipients(store: Store) {
    let ids =
        store.queue_insert(NODE, &[message("x@x.test", &["u@a.test", "v@b.test"])]).await.unwrap();
    let later = 4_000_000_000;
    let deferred = |recipient| DeliveryResult {
        id: ids[0],
        recipient,
        at: 1_700_000_100,
        outcome: Outcome::Deferred { reply: "451 later".into(), next_attempt_at: later },
    };
    store.queue_record_results(&[deferred(0), deferred(1)]).await.unwrap();
    store.queue_flush(&admin_of("dora", &["a.test"])).await.unwrap();
    let next: Vec<i64> =
        shown(&store, ids[0]).await.recipients.iter().map(|r| r.next_attempt_at).collect();
    assert!(next[0] < later && next[1] == later, "{next:?}");
    // No domain at all: nothing to see, nothing done.
    assert!(store.queue_flush(&admin_of("nobody", &[])).await.unwrap().is_empty());
}

crate::store_tests!(scoped_lists_at_scale);

// Timings, not a check, run only with POSTERN_SCALE set: `POSTERN_SCALE=1 cargo test -p
// postern-store --lib scoped_lists_at_scale -- --nocapture`. 100,000 messages, a tenth of
// them shared between a.test and b.test; a domain-admin of a.test lists, filters, searches
// and acts in bulk.

async fn scoped_lists_at_scale(store: Store) {
    if std::env::var_os("POSTERN_SCALE").is_none() {
        return;
    }
    let domains = ["a.test", "b.test", "c.test", "d.test", "e.test"];
    for chunk in 0..100 {
        let batch: Vec<_> = (0..1000)
            .map(|i| {
                let n = chunk * 1000 + i;
                let first = format!("r{n}@{}", domains[n % 5]);
                if n % 10 == 0 {
                    message("x@x.test", &[&first, &format!("s{n}@b.test")])
                } else {
                    message("x@x.test", &[&first])
                }
            })
            .collect();
        store.queue_insert(NODE, &batch).await.unwrap();
    }
    let dora = admin_of("dora", &["a.test"]);
    let scoped = |f: QueueFilter| QueueFilter { domains: dora.domains.clone(), ..f };
    let cases = [
        ("page", scoped(QueueFilter::default())),
        (
            "recipient",
            scoped(QueueFilter { recipient: Some("r500@a.test".into()), ..QueueFilter::default() }),
        ),
        ("domain", scoped(QueueFilter { domain: Some("b.test".into()), ..QueueFilter::default() })),
        ("search", scoped(QueueFilter { search: Some("s50".into()), ..QueueFilter::default() })),
        ("held", scoped(QueueFilter { held: Some(true), ..QueueFilter::default() })),
    ];
    for (name, filter) in cases {
        let started = std::time::Instant::now();
        let page = store.queue_list(&filter, Page::default()).await.unwrap();
        eprintln!("{name}: {:?} ({} match)", started.elapsed(), page.total);
    }
    let started = std::time::Instant::now();
    let done = store
        .queue_act(
            &dora,
            QueueAction::Hold,
            &Selection::Matching(QueueFilter {
                search: Some("0@".into()),
                ..QueueFilter::default()
            }),
        )
        .await
        .unwrap();
    eprintln!("bulk hold as dora: {:?} ({} messages)", started.elapsed(), done.len());
    let started = std::time::Instant::now();
    let done = store
        .queue_act(
            &root(),
            QueueAction::Release,
            &Selection::Matching(QueueFilter {
                search: Some("0@".into()),
                ..QueueFilter::default()
            }),
        )
        .await
        .unwrap();
    eprintln!("bulk release as root: {:?} ({} messages)", started.elapsed(), done.len());
}
