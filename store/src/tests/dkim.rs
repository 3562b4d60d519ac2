//! DKIM keys: generation (Ed25519, RSA sizes), the private key sealed in its row and never in
//! the audit trail, and the rollout states pending -> active -> retiring -> retired.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::StoreError;
use crate::model::{DkimAlgorithm, DkimState, DnsCheck};
use crate::repo::dkim::RETIRE_GRACE_SECS;

crate::store_tests!(
    keys_are_generated_sealed_and_reach_the_configuration,
    a_key_rolls_out_through_every_state,
    keys_rotate_automatically_every_n_days
);

async fn keys_are_generated_sealed_and_reach_the_configuration(store: Store) {
    domain(&store, "example.test").await;
    let ed = store
        .generate_dkim_key(ACTOR, &d("example.test"), DkimAlgorithm::Ed25519, None, None)
        .await
        .unwrap();
    assert!(ed.selector.starts_with('s') && ed.selector.len() == 9, "dated: {}", ed.selector);
    assert_eq!((ed.state, ed.bits), (DkimState::Pending, 256));
    let rsa = store
        .generate_dkim_key(ACTOR, &d("example.test"), DkimAlgorithm::Rsa, Some(3072), Some("Big"))
        .await
        .unwrap();
    assert_eq!((rsa.selector.as_str(), rsa.bits), ("big", 3072));

    let err = store
        .generate_dkim_key(ACTOR, &d("example.test"), DkimAlgorithm::Rsa, Some(1024), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { field: "bits", .. }), "{err}");
    let err = store
        .generate_dkim_key(ACTOR, &d("example.test"), DkimAlgorithm::Ed25519, None, Some("big"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err}");
    let err = store
        .generate_dkim_key(ACTOR, &d("nowhere.test"), DkimAlgorithm::Ed25519, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { what: "domain", .. }), "{err}");

    // Sealed in its row: neither the stored column nor the audit trail holds the key.
    let pkcs8 = STANDARD.encode(rsa.private_key.pkcs8_der());
    let stored: Vec<String> = sqlx::query_scalar("SELECT private_key FROM dkim_keys")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(stored.iter().all(|s| s.starts_with("sealed:v1:") && !s.contains(&pkcs8[..40])));
    let audit: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT after_json FROM audit_log").fetch_all(store.pool()).await.unwrap();
    let audit = format!("{audit:?}");
    assert!(audit.contains("3072") && !audit.contains(&pkcs8[..40]), "{audit}");
    // Moved to another row, a sealed key does not open.
    let ed_sealed: String =
        sqlx::query_scalar("SELECT private_key FROM dkim_keys WHERE selector = $1")
            .bind(&ed.selector)
            .fetch_one(store.pool())
            .await
            .unwrap();
    sqlx::query("UPDATE dkim_keys SET private_key = $1 WHERE selector = 'big'")
        .bind(ed_sealed)
        .execute(store.pool())
        .await
        .unwrap();
    let err = store.list_dkim_keys(Some(&d("example.test"))).await.unwrap_err().to_string();
    assert!(err.contains("big._domainkey.example.test"), "{err}");
}

async fn a_key_rolls_out_through_every_state(store: Store) {
    domain(&store, "example.test").await;
    let dom = d("example.test");
    let first = store
        .generate_dkim_key(ACTOR, &dom, DkimAlgorithm::Ed25519, None, Some("one"))
        .await
        .unwrap();
    assert_eq!(store.load_config().await.unwrap().active_dkim_keys(&dom).count(), 0);
    let err = store.rotate_dkim_key(ACTOR, &dom, None).await.unwrap_err().to_string();
    assert!(err.contains("no active DKIM key"), "{err}");

    // Not seen yet: stays pending, the check recorded.
    let k = store.record_dkim_check(ACTOR, &dom, "one", &DnsCheck::Missing).await.unwrap();
    assert_eq!((k.state, k.dns.clone()), (DkimState::Pending, Some(DnsCheck::Missing)));
    assert!(k.dns_checked_at.is_some());
    let other = DnsCheck::Different("v=DKIM1; k=ed25519; p=AAAA".into());
    let k = store.record_dkim_check(ACTOR, &dom, "one", &other).await.unwrap();
    assert_eq!((k.state, k.dns), (DkimState::Pending, Some(other)));
    // Seen: active, and in the engine's configuration.
    let k = store.record_dkim_check(ACTOR, &dom, "one", &DnsCheck::Published).await.unwrap();
    assert_eq!(k.state, DkimState::Active);
    let config = store.load_config().await.unwrap();
    let active: Vec<_> = config.active_dkim_keys(&dom).collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].private_key, first.private_key, "opened from its seal");

    // Rotation: the next key waits for its record, the old one keeps signing.
    let next = store.rotate_dkim_key(ACTOR, &dom, None).await.unwrap();
    assert_eq!((next.state, next.algorithm), (DkimState::Pending, DkimAlgorithm::Ed25519));
    let err = store.rotate_dkim_key(ACTOR, &dom, None).await.unwrap_err().to_string();
    assert!(err.contains("already pending"), "{err}");
    let config = store.load_config().await.unwrap();
    assert_eq!(config.active_dkim_keys(&dom).map(|k| &k.selector).collect::<Vec<_>>(), ["one"]);
    // A forced activation switches at once; the old key retires after the grace period.
    let before = crate::now();
    store.activate_dkim_key(ACTOR, &dom, &next.selector).await.unwrap();
    let keys = store.list_dkim_keys(Some(&dom)).await.unwrap();
    let old = keys.iter().find(|k| k.selector == "one").unwrap();
    assert_eq!(old.state, DkimState::Retiring);
    let until = old.retire_after.unwrap();
    assert!(until >= before + RETIRE_GRACE_SECS && until <= crate::now() + RETIRE_GRACE_SECS);
    let config = store.load_config().await.unwrap();
    let signing: Vec<_> = config.active_dkim_keys(&dom).map(|k| k.selector.clone()).collect();
    assert_eq!(signing, std::slice::from_ref(&next.selector));
    let err = store.activate_dkim_key(ACTOR, &dom, "one").await.unwrap_err().to_string();
    assert!(err.contains("does not come back"), "{err}");

    // Nothing is due before the grace period ends; at its end the old key is retired.
    assert!(store.retire_due_dkim_keys(ACTOR, until - 1).await.unwrap().is_empty());
    let retired = store.retire_due_dkim_keys(ACTOR, until).await.unwrap();
    assert_eq!(retired.len(), 1);
    assert_eq!(retired[0].state, DkimState::Retired);
    let config = store.load_config().await.unwrap();
    assert_eq!(config.dkim.len(), 1, "retired keys leave the engine's configuration");
    assert_eq!(store.list_dkim_keys(None).await.unwrap().len(), 2, "and stay listed");

    // An RSA key may be active beside the Ed25519 one; each rotates on its own.
    store.generate_dkim_key(ACTOR, &dom, DkimAlgorithm::Rsa, None, Some("r1")).await.unwrap();
    store.activate_dkim_key(ACTOR, &dom, "r1").await.unwrap();
    assert_eq!(store.load_config().await.unwrap().active_dkim_keys(&dom).count(), 2);
    let err = store.rotate_dkim_key(ACTOR, &dom, None).await.unwrap_err().to_string();
    assert!(err.contains("say which"), "{err}");
    let next_rsa = store.rotate_dkim_key(ACTOR, &dom, Some(DkimAlgorithm::Rsa)).await.unwrap();
    assert_eq!((next_rsa.algorithm, next_rsa.bits), (DkimAlgorithm::Rsa, 2048));

    // Removing the domain removes its keys.
    store.remove_domain(ACTOR, &dom, true).await.unwrap();
    assert!(store.list_dkim_keys(None).await.unwrap().is_empty());
}

/// Automatic rotation (`dkim_settings`, migration 0014): off by default; once set, an active key
/// that has signed for the period gets a pending successor of the same algorithm and size, and
/// only one; the settings reach the configuration and go with their domain.
async fn keys_rotate_automatically_every_n_days(store: Store) {
    use crate::model::DkimSettings;
    domain(&store, "example.test").await;
    let name = d("example.test");
    assert_eq!(store.dkim_settings(&name).await.unwrap(), DkimSettings::default());
    let key = store
        .generate_dkim_key(ACTOR, &name, DkimAlgorithm::Rsa, Some(3072), Some("one"))
        .await
        .unwrap();
    store.activate_dkim_key(ACTOR, &name, "one").await.unwrap();
    let later = crate::now() + 100 * 86_400;
    assert!(store.auto_rotate_dkim_keys(ACTOR, later).await.unwrap().is_empty(), "off");

    let too_often = DkimSettings { rotate_days: Some(3), sign_relayed: false };
    let err = store.set_dkim_settings(ACTOR, &name, too_often).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { field: "rotate_days", .. }), "{err}");
    let err = store
        .set_dkim_settings(ACTOR, &d("nowhere.test"), DkimSettings::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let every_90 = DkimSettings { rotate_days: Some(90), sign_relayed: true };
    store.set_dkim_settings(ACTOR, &name, every_90).await.unwrap();
    assert_eq!(store.dkim_settings(&name).await.unwrap(), every_90);
    let config = store.load_config().await.unwrap();
    assert!(config.signs_relayed(&name) && !config.signs_relayed(&d("other.test")));

    // Not yet due: 89 days after activation.
    let activated = store.list_dkim_keys(Some(&name)).await.unwrap()[0].activated_at.unwrap();
    let early = activated + 89 * 86_400;
    assert!(store.auto_rotate_dkim_keys(ACTOR, early).await.unwrap().is_empty());
    let due = activated + 90 * 86_400;
    let made = store.auto_rotate_dkim_keys(ACTOR, due).await.unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!(
        (made[0].state, made[0].algorithm, made[0].bits),
        (DkimState::Pending, key.algorithm, 3072)
    );
    // One successor is enough: the next pass waits for its record.
    assert!(store.auto_rotate_dkim_keys(ACTOR, due + 3600).await.unwrap().is_empty());
    let audit = store.list_audit(100, None).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "dkim.settings"), "{audit:?}");

    store.set_dkim_settings(ACTOR, &name, DkimSettings::default()).await.unwrap();
    assert!(store.list_dkim_settings().await.unwrap().is_empty());
    store.set_dkim_settings(ACTOR, &name, every_90).await.unwrap();
    store.remove_domain(ACTOR, &name, true).await.unwrap();
    assert!(store.list_dkim_settings().await.unwrap().is_empty(), "gone with the domain");
}
