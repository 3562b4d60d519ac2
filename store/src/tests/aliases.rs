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
    create_refuses_an_existing_alias_and_set_replaces,
    an_alias_over_a_mailbox_needs_a_choice,
    an_alias_to_itself_alone_is_refused,
    targets_that_are_not_there_yet_are_warned_about,
    the_aliases_to_a_mailbox_are_listed
);

async fn an_alias_over_a_mailbox_needs_a_choice(store: Store) {
    domain(&store, "example.com").await;
    mailbox(&store, "ann@example.com").await;
    let before = store.revision().await.unwrap();
    for result in [
        store.create_alias(ACTOR, &src("ann@example.com"), &[a("boss@other.org")]).await,
        store.add_alias(ACTOR, &src("ann@example.com"), &[a("boss@other.org")]).await,
    ] {
        match result.unwrap_err() {
            StoreError::Invalid { field: "source", message } => {
                assert!(message.contains("ann@example.com is a mailbox"), "{message}");
                assert!(message.contains("also deliver to the mailbox"), "{message}");
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(store.revision().await.unwrap(), before, "nothing changed");
    let config = store.load_config().await.unwrap();
    assert_eq!(
        config.resolve(&a("ann@example.com")).unwrap(),
        vec![Destination::Mailbox(a("ann@example.com"))]
    );

    // "Also deliver to the mailbox": the source among the destinations keeps a copy.
    store
        .create_alias(ACTOR, &src("ann@example.com"), &[a("ann@example.com"), a("boss@other.org")])
        .await
        .unwrap();
    let config = store.load_config().await.unwrap();
    assert_eq!(
        config.resolve(&a("ann@example.com")).unwrap(),
        vec![Destination::Mailbox(a("ann@example.com")), Destination::Forward(a("boss@other.org"))]
    );
    // Dropping the copy later needs the choice again.
    let err = store
        .set_alias_destinations(ACTOR, &src("ann@example.com"), &[a("boss@other.org")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { field: "source", .. }), "{err}");

    // "Instead of the mailbox", chosen explicitly.
    let choice = crate::AliasChoice { divert_mailbox: true };
    store
        .set_alias_destinations_with(ACTOR, &src("ann@example.com"), &[a("boss@other.org")], choice)
        .await
        .unwrap();
    let config = store.load_config().await.unwrap();
    assert_eq!(
        config.resolve(&a("ann@example.com")).unwrap(),
        vec![Destination::Forward(a("boss@other.org"))]
    );
    // An alias that diverts already may be changed without asking again.
    store
        .set_alias_destinations(ACTOR, &src("ann@example.com"), &[a("chief@other.org")])
        .await
        .unwrap();
    // A catch-all never takes a mailbox's mail (mailboxes come first): no choice needed.
    store.create_alias(ACTOR, &src("@example.com"), &[a("ann@example.com")]).await.unwrap();
}

async fn an_alias_to_itself_alone_is_refused(store: Store) {
    domain(&store, "example.com").await;
    mailbox(&store, "ann@example.com").await;
    for source in ["self@example.com", "ann@example.com"] {
        let err = store.create_alias(ACTOR, &src(source), &[a(source)]).await.unwrap_err();
        match err {
            StoreError::Invalid { field: "destinations", message } => {
                assert!(message.contains("cannot point only at itself"), "{message}");
            }
            other => panic!("{source}: {other}"),
        }
        assert!(store.get_alias(&src(source)).await.unwrap().is_none());
    }
    // Replacing the list of an existing alias with itself alone is refused the same way.
    store.create_alias(ACTOR, &src("self@example.com"), &[a("x@other.org")]).await.unwrap();
    let err = store
        .set_alias_destinations(ACTOR, &src("self@example.com"), &[a("self@example.com")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { field: "destinations", .. }), "{err}");
}

async fn targets_that_are_not_there_yet_are_warned_about(store: Store) {
    domain(&store, "example.com").await;
    store.add_domain(ACTOR, &d("relay.example"), DomainKind::Relay).await.unwrap();
    mailbox(&store, "ann@example.com").await;
    let alias = store
        .create_alias(
            ACTOR,
            &src("team@example.com"),
            &[
                a("ann@example.com"),
                a("ann+lists@example.com"),
                a("nobody@example.com"),
                a("someone@relay.example"),
                a("ext@other.org"),
            ],
        )
        .await
        .expect("a target that is not there yet is accepted");
    let warnings = store.alias_warnings(&alias).await.unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("nobody@example.com is not a mailbox or alias yet"));
    mailbox(&store, "nobody@example.com").await;
    assert!(store.alias_warnings(&alias).await.unwrap().is_empty());
}

async fn the_aliases_to_a_mailbox_are_listed(store: Store) {
    domain(&store, "example.com").await;
    mailbox(&store, "ann@example.com").await;
    store.create_alias(ACTOR, &src("team@example.com"), &[a("ann@example.com")]).await.unwrap();
    store.create_alias(ACTOR, &src("other@example.com"), &[a("x@other.org")]).await.unwrap();
    let to: Vec<String> = store
        .aliases_to(&a("ann@example.com"))
        .await
        .unwrap()
        .iter()
        .map(|a| a.source.to_string())
        .collect();
    assert_eq!(to, ["team@example.com"]);
}

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
