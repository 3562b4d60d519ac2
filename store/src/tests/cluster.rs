use super::queue::message;
use crate::model::{QueueAction, Selection};
use crate::tests::ACTOR;
use crate::{Clock, Heartbeat, Membership, NodeState, Store, StoreError};

crate::store_tests!(
    a_node_is_alive_while_it_renews_and_dead_after,
    a_lapsed_nodes_queue_is_claimed_in_batches,
    a_drain_is_asked_for_and_gives_the_lease_up,
    only_a_dead_or_drained_node_without_mail_is_forgotten,
    a_drain_and_a_removal_are_audited_with_who_asked,
    a_delivery_recorded_at_once_is_not_recorded_twice,
    the_prompt_and_the_attempt_records_never_deadlock
);

fn member(node: &str) -> Membership {
    Membership {
        node: node.into(),
        smtp: true,
        console: true,
        dead_after: 3,
        version: "test".into(),
    }
}

/// A store on a simulated clock at a fixed time.
fn simulated(store: &Store) -> Clock {
    let clock = Clock::manual(1_800_000_000);
    store.set_clock(clock.clone());
    clock
}

fn state(nodes: &[crate::NodeInfo], name: &str) -> (NodeState, i64) {
    let n = nodes.iter().find(|n| n.node == name).unwrap();
    (n.state, n.messages)
}

async fn a_node_is_alive_while_it_renews_and_dead_after(store: Store) {
    let clock = simulated(&store);
    store.node_register(&member("n1")).await.unwrap();
    assert_eq!(state(&store.node_list().await.unwrap(), "n1"), (NodeState::Alive, 0));
    clock.advance(2);
    assert_eq!(store.node_heartbeat("n1", 3).await.unwrap(), Heartbeat::Held { drain: false });
    clock.advance(3);
    assert_eq!(state(&store.node_list().await.unwrap(), "n1").0, NodeState::Alive);
    clock.advance(1);
    assert_eq!(state(&store.node_list().await.unwrap(), "n1").0, NodeState::Dead);
    // Back from the dead, it is told so rather than renewed: others may have its mail now.
    assert_eq!(store.node_heartbeat("n1", 3).await.unwrap(), Heartbeat::Lapsed);
    store.node_register(&member("n1")).await.unwrap();
    assert_eq!(store.node_heartbeat("n1", 3).await.unwrap(), Heartbeat::Held { drain: false });
    assert_eq!(store.node_heartbeat("gone", 3).await.unwrap(), Heartbeat::Missing);
}

async fn a_lapsed_nodes_queue_is_claimed_in_batches(store: Store) {
    let clock = simulated(&store);
    store.node_register(&member("n1")).await.unwrap();
    store.node_register(&member("n2")).await.unwrap();
    let batch: Vec<_> = (0..5).map(|_| message("a@example.org", &["b@example.net"])).collect();
    let ids = store.queue_insert("n2", &batch).await.unwrap();
    // One held: it moves too, but is not handed to the scheduler.
    store
        .queue_act(&super::queue::root(), QueueAction::Hold, &Selection::Ids(vec![ids[4]]))
        .await
        .unwrap();
    // Alive: nothing to claim.
    assert!(store.queue_claim("n1", 2).await.unwrap().messages.is_empty());
    clock.advance(10);
    // n1 lapsed too, and comes back; n2 stays dead.
    assert_eq!(store.node_heartbeat("n1", 3).await.unwrap(), Heartbeat::Lapsed);
    store.node_register(&member("n1")).await.unwrap();
    let first = store.queue_claim("n1", 2).await.unwrap();
    let got: Vec<_> = first.messages.iter().map(|m| m.id).collect();
    assert_eq!(got, ids[..2]);
    assert!(first.messages.iter().all(|m| m.node == "n1" && m.recipients.len() == 1));
    let second = store.queue_claim("n1", 10).await.unwrap();
    assert_eq!(second.messages.iter().map(|m| m.id).collect::<Vec<_>>(), ids[2..4]);
    let nodes = store.node_list().await.unwrap();
    assert_eq!(state(&nodes, "n1"), (NodeState::Alive, 5));
    assert_eq!(state(&nodes, "n2"), (NodeState::Dead, 0));
    // Messages of a node with no row at all are claimed too.
    let orphan = store.queue_insert("renamed", &batch[..1]).await.unwrap();
    let third = store.queue_claim("n1", 10).await.unwrap();
    assert_eq!(third.messages.iter().map(|m| m.id).collect::<Vec<_>>(), orphan);
}

async fn a_drain_is_asked_for_and_gives_the_lease_up(store: Store) {
    let _clock = simulated(&store);
    store.node_register(&member("n1")).await.unwrap();
    store.node_register(&member("n3")).await.unwrap();
    let ids =
        store.queue_insert("n3", &[message("a@example.org", &["b@example.net"])]).await.unwrap();
    let asked = store.node_request_drain("n3", ACTOR).await.unwrap();
    assert_eq!(asked.state, NodeState::Draining);
    assert_eq!(store.node_heartbeat("n3", 3).await.unwrap(), Heartbeat::Held { drain: true });
    // Still holding its lease while it drains.
    assert!(store.queue_claim("n1", 10).await.unwrap().messages.is_empty());
    store.node_drained("n3").await.unwrap();
    assert_eq!(store.node_heartbeat("n3", 3).await.unwrap(), Heartbeat::Drained);
    // Given up: claimed at once, without waiting for the dead time.
    let claimed = store.queue_claim("n1", 10).await.unwrap();
    assert_eq!(claimed.messages.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    assert_eq!(state(&store.node_list().await.unwrap(), "n3"), (NodeState::Drained, 0));
    // A restart brings it back.
    store.node_register(&member("n3")).await.unwrap();
    assert_eq!(state(&store.node_list().await.unwrap(), "n3").0, NodeState::Alive);
    assert!(matches!(
        store.node_request_drain("nobody", ACTOR).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn only_a_dead_or_drained_node_without_mail_is_forgotten(store: Store) {
    let clock = simulated(&store);
    store.node_register(&member("n1")).await.unwrap();
    store.node_register(&member("n2")).await.unwrap();
    store.queue_insert("n2", &[message("a@example.org", &["b@example.net"])]).await.unwrap();
    assert!(matches!(store.node_remove("n2", ACTOR).await, Err(StoreError::Conflict(_))));
    clock.advance(10);
    // Dead, but still holding mail.
    assert!(matches!(store.node_remove("n2", ACTOR).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.node_request_drain("n2", ACTOR).await, Err(StoreError::Conflict(_))));
    store.node_register(&member("n1")).await.unwrap();
    store.queue_claim("n1", 10).await.unwrap();
    store.node_remove("n2", ACTOR).await.unwrap();
    assert_eq!(store.node_list().await.unwrap().len(), 1);
}

/// The audit log's node entries, oldest first: who, what, which node.
async fn node_audit(store: &Store) -> Vec<(String, String, String)> {
    let audit = store.list_audit(20, None).await.unwrap();
    audit
        .iter()
        .rev()
        .filter(|e| e.action.starts_with("node."))
        .map(|e| (e.actor.clone(), e.action.clone(), e.object.clone()))
        .collect()
}

async fn a_drain_and_a_removal_are_audited_with_who_asked(store: Store) {
    let clock = simulated(&store);
    store.node_register(&member("n1")).await.unwrap();
    store.node_register(&member("n2")).await.unwrap();
    store.node_request_drain("n2", "api:alice").await.unwrap();
    // Asked again: nothing changes, nothing more is recorded.
    store.node_request_drain("n2", "api:alice").await.unwrap();
    store.node_drained("n2").await.unwrap();
    clock.advance(1);
    store.node_remove("n2", "cli:root").await.unwrap();
    // Refused: not recorded.
    assert!(store.node_remove("n1", "cli:root").await.is_err());
    assert_eq!(
        node_audit(&store).await,
        vec![
            ("api:alice".to_string(), "node.drain".to_string(), "n2".to_string()),
            ("cli:root".to_string(), "node.remove".to_string(), "n2".to_string()),
        ]
    );
    let kinds = store.audit_kinds().await.unwrap();
    assert!(kinds.contains(&"node".to_string()), "{kinds:?}");
}

async fn a_delivery_recorded_at_once_is_not_recorded_twice(store: Store) {
    use crate::model::{DeliveryResult, Outcome};
    let _clock = simulated(&store);
    let ids = store
        .queue_insert("n1", &[message("a@example.org", &["b@example.net", "c@example.net"])])
        .await
        .unwrap();
    let delivered = |recipient: u32| DeliveryResult {
        id: ids[0],
        recipient,
        at: 1_800_000_000,
        outcome: Outcome::Delivered { reply: "250 2.0.0 queued".into() },
    };
    // The next hop said 250 for the first: recorded at once, the message stays.
    store.queue_record_delivered(&[delivered(0)]).await.unwrap();
    let work = store.queue_load_work("n1").await.unwrap();
    assert_eq!(work.messages.len(), 1);
    let first = &work.messages[0].recipients[0];
    assert_eq!((first.status, first.attempts), (crate::model::RecipientStatus::Delivered, 1));
    // A node that claims it now sends only the other recipient.
    assert!(!work.messages[0].recipients[1].status.is_final());
    // The attempt's own record comes later, with both: the first is neither counted nor logged
    // again, and the message goes.
    let removed = store.queue_record_results(&[delivered(0), delivered(1)]).await.unwrap();
    assert_eq!(removed, ids);
    let filter = crate::LogFilter { search: Some(ids[0].to_string()), ..Default::default() };
    let log = store.delivery_log(&filter, None, 10).await.unwrap();
    assert_eq!(log.iter().filter(|e| e.status == "delivered").count(), 2, "{log:?}");
}

/// The prompt record of `250`s and the attempt's record run at once in two transactions over
/// the same recipients, each batch in its own order. Postgres aborted one as deadlocked when
/// they locked rows in opposite orders, and an aborted attempt record left its messages queued
/// with nothing to try (the cluster benchmark then waited forever for an empty queue).
async fn the_prompt_and_the_attempt_records_never_deadlock(store: Store) {
    use crate::model::{DeliveryResult, Outcome};
    let _clock = simulated(&store);
    for round in 0..4 {
        let batch: Vec<_> = (0..100)
            .map(|_| message("a@example.org", &["b@example.net", "c@example.net"]))
            .collect();
        let ids = store.queue_insert("n1", &batch).await.unwrap();
        let results: Vec<DeliveryResult> = ids
            .iter()
            .flat_map(|id| (0..2).map(move |recipient| (*id, recipient)))
            .map(|(id, recipient)| DeliveryResult {
                id,
                recipient,
                at: 1_800_000_000,
                outcome: Outcome::Delivered { reply: "250 2.0.0 queued".into() },
            })
            .collect();
        let mut reversed = results.clone();
        reversed.reverse();
        let (prompt, attempts) = tokio::join!(
            store.queue_record_delivered(&results),
            store.queue_record_results(&reversed)
        );
        prompt.unwrap_or_else(|e| panic!("round {round}: the prompt record failed: {e}"));
        let removed =
            attempts.unwrap_or_else(|e| panic!("round {round}: the attempts' record failed: {e}"));
        // Whichever came second, every message is gone once the attempts are recorded.
        assert_eq!(removed.len(), ids.len(), "round {round}");
    }
    assert!(store.queue_load_work("n1").await.unwrap().messages.is_empty());
}
