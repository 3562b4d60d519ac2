use super::*;
use crate::StoreError;
use crate::model::{AliasSource, Destination};

fn src(s: &str) -> AliasSource {
    s.parse().unwrap()
}

crate::store_tests!(
    create_extend_and_shrink,
    loops_are_refused_and_nothing_changes,
    sources_need_a_domain_of_ours,
    loaded_config_resolves,
    create_refuses_an_existing_alias_and_set_replaces
);

async fn create_extend_and_shrink(store: Store) {
    domain(&store, "example.com").await;
    mailbox(&store, "ann@example.com").await;
    mailbox(&store, "bob@example.com").await;
    store.add_alias(ACTOR, &src("team@example.com"), &[a("ann@example.com")]).await.unwrap();
    let alias = store
        .add_alias(ACTOR, &src("team@example.com"), &[a("bob@example.com"), a("ext@other.org")])
        .await
        .unwrap();
    assert_eq!(
        alias.destinations,
        vec![a("ann@example.com"), a("bob@example.com"), a("ext@other.org")]
    );
    let err = store
        .add_alias(ACTOR, &src("team@example.com"), &[a("bob@example.com")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err}");

    let left = store
        .remove_alias(ACTOR, &src("team@example.com"), &[a("ann@example.com")])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left.destinations, vec![a("bob@example.com"), a("ext@other.org")]);
    assert!(store.remove_alias(ACTOR, &src("team@example.com"), &[]).await.unwrap().is_none());
    assert!(store.get_alias(&src("team@example.com")).await.unwrap().is_none());
}

async fn loops_are_refused_and_nothing_changes(store: Store) {
    domain(&store, "example.com").await;
    store.add_alias(ACTOR, &src("a@example.com"), &[a("b@example.com")]).await.unwrap();
    let before = store.revision().await.unwrap();
    let err = store
        .add_alias(ACTOR, &src("b@example.com"), &[a("a@example.com")])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("alias loop"), "{err}");
    assert!(store.get_alias(&src("b@example.com")).await.unwrap().is_none());
    assert_eq!(store.revision().await.unwrap(), before);

    // A catch-all whose target would resolve through the catch-all again.
    mailbox(&store, "postmaster@example.com").await;
    store.add_alias(ACTOR, &src("@example.com"), &[a("postmaster@example.com")]).await.unwrap();
    let err =
        store.remove_mailbox(ACTOR, &a("postmaster@example.com")).await.unwrap_err().to_string();
    assert!(err.contains("alias loop"), "{err}");
    assert!(store.get_mailbox(&a("postmaster@example.com")).await.unwrap().is_some());
}

async fn sources_need_a_domain_of_ours(store: Store) {
    let err =
        store.add_alias(ACTOR, &src("x@nowhere.example"), &[a("y@other.org")]).await.unwrap_err();
    assert_eq!(err.to_string(), "domain nowhere.example does not exist");
    let err = store.add_alias(ACTOR, &src("x@nowhere.example"), &[]).await.unwrap_err();
    assert!(err.to_string().starts_with("destinations:"));
}

async fn loaded_config_resolves(store: Store) {
    domain(&store, "example.com").await;
    mailbox(&store, "ann@example.com").await;
    store.add_alias(ACTOR, &src("@example.com"), &[a("ann@example.com")]).await.unwrap();
    let config = store.load_config().await.unwrap();
    assert_eq!(
        config.resolve(&a("anything@example.com")).unwrap(),
        vec![Destination::Mailbox(a("ann@example.com"))]
    );
    assert!(config.problems().is_empty());
}

async fn create_refuses_an_existing_alias_and_set_replaces(store: Store) {
    domain(&store, "example.com").await;
    mailbox(&store, "ann@example.com").await;
    mailbox(&store, "bob@example.com").await;
    store.create_alias(ACTOR, &src("team@example.com"), &[a("ann@example.com")]).await.unwrap();
    let err = store
        .create_alias(ACTOR, &src("team@example.com"), &[a("bob@example.com")])
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "alias team@example.com already exists");

    let alias = store
        .set_alias_destinations(
            ACTOR,
            &src("team@example.com"),
            &[a("bob@example.com"), a("ext@other.org")],
        )
        .await
        .unwrap();
    assert_eq!(alias.destinations, vec![a("bob@example.com"), a("ext@other.org")]);
    let err = store
        .set_alias_destinations(ACTOR, &src("nobody@example.com"), &[a("bob@example.com")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err = store.set_alias_destinations(ACTOR, &src("team@example.com"), &[]).await.unwrap_err();
    assert!(err.to_string().starts_with("destinations:"), "{err}");

    // A replacement that would loop is refused whole.
    store.create_alias(ACTOR, &src("a@example.com"), &[a("team@example.com")]).await.unwrap();
    let err = store
        .set_alias_destinations(ACTOR, &src("team@example.com"), &[a("a@example.com")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(_)) && err.to_string().contains("alias loop"),
        "{err}"
    );
    let kept = store.get_alias(&src("team@example.com")).await.unwrap().unwrap();
    assert_eq!(kept.destinations, vec![a("bob@example.com"), a("ext@other.org")]);
    assert_eq!(store.list_audit(1, None).await.unwrap()[0].action, "alias.add");
}
