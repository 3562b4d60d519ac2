use super::*;
use crate::StoreError;
use crate::model::{SmtpCredentials, TlsPolicy, Transport, TransportPattern, parse_cidr};

fn pat(s: &str) -> TransportPattern {
    s.parse().unwrap()
}

crate::store_tests!(
    transports_set_replace_remove,
    networks_default_add_remove,
    an_open_relay_range_needs_a_confirmation
);

async fn an_open_relay_range_needs_a_confirmation(store: Store) {
    for open in ["0.0.0.0/0", "::/0", "8.0.0.0/8"] {
        let err = store.add_network(ACTOR, parse_cidr(open).unwrap(), "").await.unwrap_err();
        match err {
            StoreError::Invalid { field: "cidr", message } => {
                assert!(message.contains("open relay"), "{message}");
            }
            other => panic!("{open}: {other}"),
        }
    }
    assert!(store.load_config().await.unwrap().open_relay_problems().is_empty());
    store.add_network(ACTOR, parse_cidr("10.0.0.0/8").unwrap(), "lan").await.unwrap();
    store.add_network_with(ACTOR, parse_cidr("0.0.0.0/0").unwrap(), "", true).await.unwrap();
    let problems = store.load_config().await.unwrap().open_relay_problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].object, "trusted network 0.0.0.0/0");
    assert!(problems[0].fix.contains("postern network remove 0.0.0.0/0"), "{problems:?}");
    // Reported, not a consistency problem: other changes still go through.
    domain(&store, "example.com").await;
}

async fn transports_set_replace_remove(store: Store) {
    let creds = SmtpCredentials { username: "relayuser".into(), password: "relay-secret".into() };
    store
        .set_transport(
            ACTOR,
            &pat("*"),
            "smtp:[relay.example.net]:587".parse().unwrap(),
            TlsPolicy::Encrypt,
            Some(creds),
        )
        .await
        .unwrap();
    store
        .set_transport(
            ACTOR,
            &pat("lists.example.com"),
            "lmtp:127.0.0.1:24".parse().unwrap(),
            TlsPolicy::May,
            None,
        )
        .await
        .unwrap();
    store
        .set_transport(ACTOR, &pat("lists.example.com"), Transport::Discard, TlsPolicy::None, None)
        .await
        .unwrap();
    let rules = store.list_transports().await.unwrap();
    assert_eq!(rules.len(), 2);
    let config = store.load_config().await.unwrap();
    assert_eq!(
        config.transport_for(&d("lists.example.com")).unwrap().transport,
        Transport::Discard
    );
    let default = config.transport_for(&d("gmail.com")).unwrap();
    assert_eq!(default.transport.to_string(), "smtp:[relay.example.net]:587");
    assert_eq!(default.auth.as_ref().unwrap().password, "relay-secret");
    assert!(!format!("{default:?}").contains("relay-secret"));
    assert!(!serde_json::to_string(default).unwrap().contains("relay-secret"));

    let audit = store.list_audit(10, None).await.unwrap();
    assert!(
        audit
            .iter()
            .all(|e| !e.after.as_ref().is_some_and(|v| v.to_string().contains("relay-secret")))
    );

    store.remove_transport(ACTOR, &pat("*")).await.unwrap();
    let err = store.remove_transport(ACTOR, &pat("*")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
    let err = store
        .set_transport(
            ACTOR,
            &pat("*"),
            Transport::Local,
            TlsPolicy::May,
            Some(SmtpCredentials { username: "u".into(), password: "p".into() }),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("auth:"), "{err}");
}

async fn networks_default_add_remove(store: Store) {
    let defaults: Vec<String> =
        store.list_networks().await.unwrap().iter().map(|n| n.cidr.to_string()).collect();
    assert_eq!(defaults, vec!["127.0.0.1/32", "::1/128"]);
    store.add_network(ACTOR, parse_cidr("192.0.2.0/24").unwrap(), "office").await.unwrap();
    let err = store.add_network(ACTOR, parse_cidr("192.0.2.0/24").unwrap(), "").await.unwrap_err();
    assert_eq!(err.to_string(), "trusted network 192.0.2.0/24 already exists");
    let config = store.load_config().await.unwrap();
    assert!(config.is_trusted("192.0.2.77".parse().unwrap()));
    assert!(!config.is_trusted("198.51.100.1".parse().unwrap()));
    store.remove_network(ACTOR, &parse_cidr("127.0.0.1").unwrap()).await.unwrap();
    assert_eq!(store.list_networks().await.unwrap().len(), 2);
}
