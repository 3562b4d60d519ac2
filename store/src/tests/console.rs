use super::{ACTOR, d, domain};
use crate::Store;
use crate::model::{
    Access, DeliveryResult, Outcome, PasswordHash, QueueFilter, Role, parse_domain_list,
};
use crate::tests::queue::message;
use crate::{LogFilter, NewRefusal, RefusalStatus, Retention, StoreError, secret_hash};

fn hash() -> PasswordHash {
    PasswordHash::create("a long enough password").unwrap()
}

crate::store_tests!(
    admins_keep_their_last_admin,
    sessions_end_with_a_password_change,
    idle_sessions_end_and_use_is_recorded_sparingly,
    tokens_are_kept_hashed_and_scoped,
    the_delivery_log_follows_the_queue,
    the_delivery_log_keeps_refusals,
    engines_say_which_revision_is_live
);

async fn admins_keep_their_last_admin(store: Store) {
    domain(&store, "a.test").await;
    let alice = "alice".parse().unwrap();
    let dora = "dora".parse().unwrap();
    store.create_admin(ACTOR, &alice, Role::Admin, &[], &hash(), false).await.unwrap();
    let grant = parse_domain_list("a.test").unwrap();
    store.create_admin(ACTOR, &dora, Role::DomainAdmin, &grant, &hash(), true).await.unwrap();
    let missing = parse_domain_list("b.test").unwrap();
    let refused = store.update_admin(ACTOR, &dora, Role::DomainAdmin, &missing).await;
    assert!(matches!(refused, Err(StoreError::NotFound { .. })), "{refused:?}");
    let refused = store.update_admin(ACTOR, &alice, Role::DomainAdmin, &grant).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "the last admin stays: {refused:?}");
    assert!(matches!(store.remove_admin(ACTOR, &alice).await, Err(StoreError::Conflict(_))));
    let (admin, stored) = store.admin_credentials(&dora).await.unwrap().unwrap();
    assert!(admin.must_change_password && stored.verify("a long enough password"));
    assert_eq!(store.list_admins().await.unwrap().len(), 2);
    store.remove_admin(ACTOR, &dora).await.unwrap();
    assert!(store.get_admin(&dora).await.unwrap().is_none());
}

async fn sessions_end_with_a_password_change(store: Store) {
    let alice = "alice".parse().unwrap();
    store.create_admin(ACTOR, &alice, Role::Admin, &[], &hash(), false).await.unwrap();
    store.create_session(&secret_hash("s1"), &alice, "csrf", 3600, 1800).await.unwrap();
    store.create_session(&secret_hash("old"), &alice, "csrf", -1, 1800).await.unwrap();
    assert_eq!(store.session(&secret_hash("s1"), 1800).await.unwrap().unwrap().csrf, "csrf");
    assert!(store.session(&secret_hash("old"), 1800).await.unwrap().is_none(), "expired");
    store.set_admin_password(ACTOR, &alice, &hash(), false).await.unwrap();
    assert!(store.session(&secret_hash("s1"), 1800).await.unwrap().is_none());
}

async fn idle_sessions_end_and_use_is_recorded_sparingly(store: Store) {
    let alice = "alice".parse().unwrap();
    store.create_admin(ACTOR, &alice, Role::Admin, &[], &hash(), false).await.unwrap();
    store.create_session(&secret_hash("s1"), &alice, "csrf", 3600, 1800).await.unwrap();
    let first = store.session(&secret_hash("s1"), 1800).await.unwrap().unwrap().last_seen;
    // Used 10 s ago: not written again. Used 5 minutes ago: written now.
    crate::testing::hand_edit(&store, "UPDATE console_sessions SET last_seen = last_seen - 10")
        .await;
    let seen = store.session(&secret_hash("s1"), 1800).await.unwrap().unwrap().last_seen;
    assert_eq!(seen, first - 10, "a use within a minute of the last is not written");
    crate::testing::hand_edit(&store, "UPDATE console_sessions SET last_seen = last_seen - 300")
        .await;
    let seen = store.session(&secret_hash("s1"), 1800).await.unwrap().unwrap().last_seen;
    assert!(seen >= first, "written again after a minute: {seen} < {first}");
    // Idle for 31 minutes: gone, and deleted.
    crate::testing::hand_edit(&store, "UPDATE console_sessions SET last_seen = last_seen - 1860")
        .await;
    assert!(store.session(&secret_hash("s1"), 1800).await.unwrap().is_none(), "idle");
    crate::testing::hand_edit(&store, "UPDATE console_sessions SET last_seen = last_seen + 100000")
        .await;
    assert!(store.session(&secret_hash("s1"), 1800).await.unwrap().is_none(), "deleted");
}

async fn tokens_are_kept_hashed_and_scoped(store: Store) {
    domain(&store, "a.test").await;
    let alice = "alice".parse().unwrap();
    store.create_admin(ACTOR, &alice, Role::Admin, &[], &hash(), false).await.unwrap();
    let issued =
        store.create_token(ACTOR, &alice, "ci", Access::Read, &[d("a.test")], None).await.unwrap();
    assert!(issued.bearer.starts_with(&format!("pst_{}_", issued.token.id)));
    assert!(!format!("{issued:?}").contains(&issued.bearer), "Debug hides the bearer");
    let (token, owner) = store.authenticate_token(&issued.bearer).await.unwrap().unwrap();
    assert_eq!((token.access, owner.name.as_str()), (Access::Read, "alice"));
    assert!(store.authenticate_token(&format!("{}x", issued.bearer)).await.unwrap().is_none());
    assert!(store.authenticate_token("pst_nothing").await.unwrap().is_none());
    assert!(store.list_tokens(Some(&alice)).await.unwrap()[0].last_used_at.is_some());
    store.revoke_token(ACTOR, &issued.token.id).await.unwrap();
    assert!(store.authenticate_token(&issued.bearer).await.unwrap().is_none());
    let past = store.create_token(ACTOR, &alice, "old", Access::Read, &[], Some(1)).await;
    assert!(matches!(past, Err(StoreError::Invalid { field: "expires_at", .. })));
}

async fn the_delivery_log_follows_the_queue(store: Store) {
    let ids =
        store.queue_insert("n1", &[message("s@x.test", &["r@a.test", "r@b.test"])]).await.unwrap();
    let at = crate::store::now();
    let results = [
        DeliveryResult {
            id: ids[0],
            recipient: 0,
            at,
            outcome: Outcome::Delivered { reply: "250 ok".into() },
        },
        DeliveryResult {
            id: ids[0],
            recipient: 1,
            at,
            outcome: Outcome::Failed { reply: "550 no".into() },
        },
    ];
    store.queue_record_results(&results).await.unwrap();
    assert_eq!(
        store.queue_list(&QueueFilter::default(), Default::default()).await.unwrap().total,
        0
    );
    let all = store.delivery_log(&LogFilter::default(), None, 100).await.unwrap();
    let statuses: Vec<&str> = all.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["failed", "delivered", "received", "received"]);
    assert_eq!(all[0].reply, "550 no");
    let only_a = LogFilter { domains: Some(vec![d("a.test")]), ..LogFilter::default() };
    let a = store.delivery_log(&only_a, None, 100).await.unwrap();
    assert!(a.iter().all(|e| e.domain == "a.test") && a.len() == 2);
    let search = LogFilter {
        search: Some("R@B.TEST".into()),
        status: Some("failed".into()),
        ..LogFilter::default()
    };
    assert_eq!(store.delivery_log(&search, None, 100).await.unwrap().len(), 1);
    let page = store.delivery_log(&LogFilter::default(), Some(all[1].id), 100).await.unwrap();
    assert_eq!(page.len(), 2, "older than the second entry");
    let hours = store.delivery_counts(at - 3600, &None).await.unwrap();
    let sum: u64 = hours.iter().map(|h| h.received + h.delivered + h.failed).sum();
    assert_eq!(sum, 4);
    let kept = Retention { delivery_log: std::time::Duration::ZERO, ..Retention::default() };
    // Age the entries instead of waiting for the clock to pass them.
    crate::testing::hand_edit(&store, "UPDATE delivery_log SET at = at - 10").await;
    assert_eq!(store.trim_history(kept).await.unwrap().delivery_log, 4);
}

async fn engines_say_which_revision_is_live(store: Store) {
    let revision = store.revision().await.unwrap();
    let quick = std::time::Duration::from_millis(10);
    assert_eq!(store.wait_until_live(revision, quick).await.unwrap(), crate::Liveness::Pending);
    store.record_engine_status("n1", revision, None).await.unwrap();
    assert_eq!(store.wait_until_live(revision, quick).await.unwrap(), crate::Liveness::Live);
    // An engine behind holds the change back, until it has been silent too long.
    store.record_engine_status("n2", revision - 1, None).await.unwrap();
    assert_eq!(store.wait_until_live(revision, quick).await.unwrap(), crate::Liveness::Pending);
    sqlx::query("UPDATE engine_status SET seen_at = 0 WHERE node = 'n2'")
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(store.wait_until_live(revision, quick).await.unwrap(), crate::Liveness::Live);
    store.record_engine_status("n1", revision, Some((revision + 1, "loop"))).await.unwrap();
    let refused = store.wait_until_live(revision + 1, quick).await.unwrap();
    assert_eq!(refused, crate::Liveness::Refused { node: "n1".into(), problems: "loop".into() });
}

/// The SMTP sessions' refusals: with their stage, client and reason, filtered by status, found
/// by client or reason, scoped by the recipient's domain, counted per hour, bounded in size.
async fn the_delivery_log_keeps_refusals(store: Store) {
    let at = crate::store::now();
    let refusal = |status, stage: &str, recipient: &str, reason: &str| NewRefusal {
        at,
        status,
        stage: stage.into(),
        client: "192.0.2.7".into(),
        sender: "spam@bad.test".into(),
        recipient: recipient.into(),
        reply: "554 5.7.1 go away".into(),
        reason: reason.into(),
    };
    let long = "x".repeat(2000);
    store
        .record_refusals(&[
            refusal(RefusalStatus::Rejected, "connect", "", "access rule 3"),
            refusal(RefusalStatus::Tempfailed, "rcpt", "r@A.test", "greylisting"),
            refusal(RefusalStatus::Discarded, "data", "r@b.test", &long),
        ])
        .await
        .unwrap();
    let all = store.delivery_log(&LogFilter::default(), None, 100).await.unwrap();
    let statuses: Vec<&str> = all.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["discarded", "tempfailed", "rejected"]);
    let first = &all[2];
    assert_eq!(
        (first.stage.as_str(), first.client.as_str(), first.reason.as_str()),
        ("connect", "192.0.2.7", "access rule 3")
    );
    assert_eq!((first.message_id.as_str(), first.domain.as_str()), ("", ""));
    assert_eq!(all[1].domain, "a.test");
    assert_eq!(all[0].reason.len(), 512, "a field off the wire is cut short");
    let rejected = LogFilter { status: Some("rejected".into()), ..LogFilter::default() };
    assert_eq!(store.delivery_log(&rejected, None, 100).await.unwrap().len(), 1);
    let by_reason = LogFilter { search: Some("ACCESS RULE 3".into()), ..LogFilter::default() };
    assert_eq!(store.delivery_log(&by_reason, None, 100).await.unwrap().len(), 1);
    let by_client = LogFilter { search: Some("192.0.2.7".into()), ..LogFilter::default() };
    assert_eq!(store.delivery_log(&by_client, None, 100).await.unwrap().len(), 3);
    // A domain-admin sees the refusals of its recipients, never a connection's.
    let only_a = LogFilter { domains: Some(vec![d("a.test")]), ..LogFilter::default() };
    let a = store.delivery_log(&only_a, None, 100).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].status, "tempfailed");
    let hours = store.delivery_counts(at - 3600, &None).await.unwrap();
    let counted = hours.iter().fold((0, 0, 0, 0), |t, h| {
        (t.0 + h.rejected, t.1 + h.tempfailed, t.2 + h.discarded, t.3 + h.failed)
    });
    assert_eq!(counted, (1, 1, 1, 0), "refusals are not counted as bounces");
    store.record_refusals(&[]).await.unwrap();
}
