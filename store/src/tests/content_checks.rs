use std::time::Duration;

use super::*;
use crate::StoreError;
use crate::model::{ContentDecision, NewContentCheck, NewPolicyService, OnFailure, ServiceStage};

crate::store_tests!(content_checks_add_move_remove_and_load, policy_services_add_list_remove);

fn new(part: &str, pattern: &str, action: &str) -> NewContentCheck {
    NewContentCheck::parse(part, pattern, action, "t").unwrap()
}

async fn content_checks_add_move_remove_and_load(store: Store) {
    let a = store.add_content_check(ACTOR, new("header", "^Subject:.*pills", "REJECT"), None);
    let a = a.await.unwrap();
    let b = store
        .add_content_check(ACTOR, new("header", "^Subject:", "WARN subject seen"), Some(1))
        .await
        .unwrap();
    let c = store.add_content_check(ACTOR, new("body", "casino", "HOLD"), None).await.unwrap();
    let order = |rules: &[crate::model::ContentCheck]| {
        rules.iter().map(|r| (r.id, r.position)).collect::<Vec<_>>()
    };
    assert_eq!(
        order(&store.list_content_checks().await.unwrap()),
        [(b.id, 1), (a.id, 2), (c.id, 3)]
    );
    let message = b"Subject: pills\r\n\r\ncasino\r\n";
    // The loaded configuration applies them in that order, patterns compiled: WARN first.
    let config = store.load_config().await.unwrap();
    let v = config.content_checks.check(message);
    assert_eq!(v.decision, ContentDecision::Accept);
    assert_eq!(v.hold, Some(c.id));

    store.move_content_check(ACTOR, a.id, 1).await.unwrap();
    let config = store.load_config().await.unwrap();
    assert!(matches!(
        config.content_checks.check(message).decision,
        ContentDecision::Reject { rule, .. } if rule == a.id
    ));
    assert_eq!(order(&config.content_checks.rules), [(a.id, 1), (b.id, 2), (c.id, 3)]);

    store.remove_content_check(ACTOR, b.id).await.unwrap();
    assert_eq!(order(&store.list_content_checks().await.unwrap()), [(a.id, 1), (c.id, 2)]);
    assert!(matches!(
        store.remove_content_check(ACTOR, b.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.move_content_check(ACTOR, 999, 1).await,
        Err(StoreError::NotFound { .. })
    ));
    let audit = store.list_audit(10, None).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "content_check.move"));
}

async fn policy_services_add_list_remove(store: Store) {
    let grey = NewPolicyService::parse(
        "grey",
        "inet:127.0.0.1:10023",
        "rcpt",
        "1500ms",
        "defer",
        true,
        "postgrey",
    )
    .unwrap();
    store.add_policy_service(ACTOR, grey.clone()).await.unwrap();
    assert!(matches!(
        store.add_policy_service(ACTOR, grey).await,
        Err(StoreError::Duplicate { .. })
    ));
    let spf =
        NewPolicyService::parse("a-spf", "unix:/run/spf.sock", "data", "", "", false, "").unwrap();
    store.add_policy_service(ACTOR, spf).await.unwrap();
    let config = store.load_config().await.unwrap();
    let names: Vec<&str> = config.policy_services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a-spf", "grey"]);
    let grey = &config.policy_services[1];
    assert_eq!(grey.timeout, Duration::from_millis(1500));
    assert_eq!(
        (grey.stage, grey.on_failure, grey.enabled),
        (ServiceStage::Rcpt, OnFailure::Defer, true)
    );
    assert_eq!(grey.address.to_string(), "inet:127.0.0.1:10023");
    assert!(!config.policy_services[0].enabled);

    store.remove_policy_service(ACTOR, "grey").await.unwrap();
    assert_eq!(store.list_policy_services().await.unwrap().len(), 1);
    assert!(matches!(
        store.remove_policy_service(ACTOR, "grey").await,
        Err(StoreError::NotFound { .. })
    ));
}
