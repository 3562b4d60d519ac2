use super::*;
use crate::StoreError;
use crate::model::{MilterDefault, MilterListeners, MilterTimeouts, NewMilter};

crate::store_tests!(milters_add_move_disable_remove_and_load);

fn new(name: &str) -> NewMilter {
    NewMilter {
        name: name.into(),
        address: "inet:127.0.0.1:8891".parse().unwrap(),
        default_action: MilterDefault::Tempfail,
        timeouts: MilterTimeouts::default(),
        listeners: MilterListeners::default(),
        enabled: true,
    }
}

async fn milters_add_move_disable_remove_and_load(store: Store) {
    let a = store.add_milter(ACTOR, new("opendkim"), None).await.unwrap();
    let b = store.add_milter(ACTOR, new("clamav"), Some(1)).await.unwrap();
    assert!(matches!(
        store.add_milter(ACTOR, new("clamav"), None).await,
        Err(StoreError::Duplicate { .. })
    ));
    let mut bad = new("x");
    bad.timeouts.command_ms = 0;
    assert!(matches!(store.add_milter(ACTOR, bad, None).await, Err(StoreError::Invalid { .. })));
    let names = |ms: &[crate::model::Milter]| {
        ms.iter().map(|m| (m.name.clone(), m.position)).collect::<Vec<_>>()
    };
    assert_eq!(
        names(&store.list_milters().await.unwrap()),
        [("clamav".to_string(), 1), ("opendkim".to_string(), 2)]
    );
    store.move_milter(ACTOR, a.id, 1).await.unwrap();
    store.set_milter_enabled(ACTOR, b.id, false).await.unwrap();
    let config = store.load_config().await.unwrap();
    assert_eq!(names(&config.milters), [("opendkim".to_string(), 1), ("clamav".to_string(), 2)]);
    assert!(!config.milters[1].enabled);
    assert_eq!(config.milters[0].address.to_string(), "inet:127.0.0.1:8891");
    assert_eq!(config.milters[0], store.get_milter(a.id).await.unwrap());
    store.remove_milter(ACTOR, a.id).await.unwrap();
    assert_eq!(names(&store.list_milters().await.unwrap()), [("clamav".to_string(), 1)]);
    assert!(matches!(store.remove_milter(ACTOR, a.id).await, Err(StoreError::NotFound { .. })));
}
