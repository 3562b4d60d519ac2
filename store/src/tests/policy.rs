use super::*;
use crate::StoreError;
use crate::model::{Matcher, NewPolicyRule, PolicyEnvelope, PolicyMatch, PolicyStage};

crate::store_tests!(
    policy_rules_add_move_remove_and_load,
    a_held_message_is_stored_held_with_its_note
);

fn new(stage: PolicyStage, matches: PolicyMatch, action: &str) -> NewPolicyRule {
    NewPolicyRule { stage, matches, action: action.parse().unwrap(), description: "t".into() }
}

async fn policy_rules_add_move_remove_and_load(store: Store) {
    let to = |t: &str| PolicyMatch {
        recipient: Some(Matcher::parse("recipient", t).unwrap()),
        ..Default::default()
    };
    let a = store
        .add_policy_rule(
            ACTOR,
            new(PolicyStage::Rcpt, to("@spam.test"), "REJECT 550 5.7.1 no"),
            None,
        )
        .await
        .unwrap();
    let b = store
        .add_policy_rule(ACTOR, new(PolicyStage::Rcpt, to("/^vip/"), "OK"), Some(1))
        .await
        .unwrap();
    let c = store
        .add_policy_rule(
            ACTOR,
            new(
                PolicyStage::Mail,
                PolicyMatch { client: Some("192.0.2.0/24".parse().unwrap()), ..Default::default() },
                "HOLD",
            ),
            None,
        )
        .await
        .unwrap();
    let order = |rules: &[crate::model::PolicyRule]| {
        rules.iter().map(|r| (r.id, r.position)).collect::<Vec<_>>()
    };
    assert_eq!(order(&store.list_policy_rules().await.unwrap()), [(b.id, 1), (a.id, 2), (c.id, 3)]);

    // The loaded configuration evaluates them in that order, patterns compiled.
    let config = store.load_config().await.unwrap();
    let env = PolicyEnvelope { recipients: vec!["vip@spam.test"], ..Default::default() };
    assert_eq!(config.policy.evaluate(PolicyStage::Rcpt, &env).unwrap().rule.id, b.id);

    store.move_policy_rule(ACTOR, a.id, 1).await.unwrap();
    let config = store.load_config().await.unwrap();
    assert_eq!(config.policy.evaluate(PolicyStage::Rcpt, &env).unwrap().rule.id, a.id);
    assert_eq!(order(&config.policy.rules), [(a.id, 1), (b.id, 2), (c.id, 3)]);

    store.remove_policy_rule(ACTOR, b.id).await.unwrap();
    assert_eq!(order(&store.list_policy_rules().await.unwrap()), [(a.id, 1), (c.id, 2)]);
    assert!(matches!(
        store.remove_policy_rule(ACTOR, b.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.move_policy_rule(ACTOR, 999, 1).await,
        Err(StoreError::NotFound { .. })
    ));

    // A matcher not known at the stage is refused before anything is written.
    let err = store
        .add_policy_rule(ACTOR, new(PolicyStage::Connect, to("@x.test"), "OK"), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not known yet at the connect stage"), "{err}");
    assert_eq!(store.list_policy_rules().await.unwrap().len(), 2);

    let audit = store.list_audit(10, None).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "policy.rule.move"));
}

/// HOLD and REDIRECT decided in the session reach the queue: the message is stored held, and
/// the delivery log's "received" lines say which rule did what.
async fn a_held_message_is_stored_held_with_its_note(store: Store) {
    let mut m = super::queue::message("a@x.test", &["b@y.test"]);
    m.held = true;
    m.note = Some("held by policy rule 7".into());
    let ids = store.queue_insert("node", &[m]).await.unwrap();
    let shown = store.queue_show(ids[0]).await.unwrap().unwrap();
    assert!(shown.held);
    let log = store
        .delivery_log(&crate::repo::delivery_log::LogFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(log[0].status, "received");
    assert_eq!(log[0].reply, "held by policy rule 7");
    // Nothing held is work to do.
    assert!(store.queue_load_work("node").await.unwrap().messages.is_empty());
}
