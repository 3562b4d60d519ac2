use super::*;
use crate::StoreError;
use crate::model::{DirectoryPassword, DirectoryUpdate};

crate::store_tests!(directories_set_show_remove_and_load_sealed);

fn update() -> DirectoryUpdate {
    DirectoryUpdate {
        url: "ldaps://dc1.corp.test".into(),
        bind_dn: "cn=svc,dc=corp,dc=test".into(),
        bind_password: Some(DirectoryPassword("hunter2-ldap".into())),
        base_dn: "dc=corp,dc=test".into(),
        user_filter: "(objectClass=person)".into(),
        attributes: vec!["mail".into(), "proxyAddresses".into()],
        ..DirectoryUpdate::default()
    }
}

async fn directories_set_show_remove_and_load_sealed(store: Store) {
    domain(&store, "corp.test").await;
    store.add_domain(ACTOR, &d("relay.test"), DomainKind::Relay).await.unwrap();
    assert!(matches!(
        store.set_directory(ACTOR, &d("nowhere.test"), update()).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.set_directory(ACTOR, &d("relay.test"), update()).await,
        Err(StoreError::Invalid { field: "domain", .. })
    ));
    let bad = DirectoryUpdate { url: "ldap://dc1.corp.test".into(), ..update() };
    assert!(matches!(
        store.set_directory(ACTOR, &d("corp.test"), bad).await,
        Err(StoreError::Invalid { field: "url", .. })
    ));
    let set = store.set_directory(ACTOR, &d("corp.test"), update()).await.unwrap();
    assert_eq!(set.bind_password.expose(), "hunter2-ldap");
    // Sealed at rest, and never in the audit trail.
    let raw: String = sqlx::query_scalar("SELECT bind_password FROM directories")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(crate::secrets::is_sealed(&raw) && !raw.contains("hunter2"), "{raw}");
    let trail: Vec<String> = sqlx::query_scalar("SELECT COALESCE(after_json, '') FROM audit_log")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(trail.iter().any(|t| t.contains("cn=svc")), "audited: {trail:?}");
    assert!(trail.iter().all(|t| !t.contains("hunter2")), "{trail:?}");
    // A change without a password keeps the stored one.
    let edit = DirectoryUpdate { bind_password: None, cache_ttl_secs: 60, ..update() };
    let edited = store.set_directory(ACTOR, &d("corp.test"), edit).await.unwrap();
    assert_eq!(edited.bind_password.expose(), "hunter2-ldap");
    assert_eq!(edited.cache_ttl_secs, 60);
    let config = store.load_config().await.unwrap();
    assert_eq!(config.directories.get(&d("corp.test")), Some(&edited));
    assert_eq!(store.get_directory(&d("corp.test")).await.unwrap(), Some(edited.clone()));
    assert_eq!(store.list_directories().await.unwrap(), vec![edited]);
    store.remove_directory(ACTOR, &d("corp.test")).await.unwrap();
    assert!(store.get_directory(&d("corp.test")).await.unwrap().is_none());
    assert!(matches!(
        store.remove_directory(ACTOR, &d("corp.test")).await,
        Err(StoreError::NotFound { .. })
    ));
    // Removing the domain removes its directory.
    store.set_directory(ACTOR, &d("corp.test"), update()).await.unwrap();
    store.remove_domain(ACTOR, &d("corp.test"), false).await.unwrap();
    assert!(store.load_config().await.unwrap().directories.is_empty());
}
