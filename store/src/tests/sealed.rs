//! Secrets at rest: smarthost passwords are sealed in the database under the key file, opened
//! only with the right key and in their own row.

use super::*;
use crate::StoreError;
use crate::model::{SmtpCredentials, TlsPolicy, TransportPattern};
use crate::testing::hand_edit;

const PASSWORD: &str = "smarthost-pass-7f3a";

fn pat(s: &str) -> TransportPattern {
    s.parse().unwrap()
}

async fn set_relay(store: &Store, pattern: &str, password: &str) {
    let creds = SmtpCredentials { username: "relayuser".into(), password: password.into() };
    let transport = "smtp:[relay.example.net]:587".parse().unwrap();
    store
        .set_transport(ACTOR, &pat(pattern), transport, TlsPolicy::Encrypt, Some(creds))
        .await
        .unwrap();
}

async fn stored_password(store: &Store, pattern: &str) -> String {
    sqlx::query_scalar("SELECT auth_password FROM transports WHERE pattern = $1")
        .bind(pattern)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Every text column of every audit record, as one string.
async fn audit_text(store: &Store) -> String {
    let rows: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT before_json, after_json FROM audit_log")
            .fetch_all(store.pool())
            .await
            .unwrap();
    format!("{rows:?}")
}

crate::store_tests!(
    smarthost_passwords_are_sealed_and_stay_in_their_row,
    plaintext_from_an_older_version_is_sealed_at_open,
    a_missing_or_wrong_key_is_refused_at_open
);

async fn smarthost_passwords_are_sealed_and_stay_in_their_row(store: Store) {
    set_relay(&store, "*", PASSWORD).await;
    let stored = stored_password(&store, "*").await;
    assert!(stored.starts_with("sealed:v1:") && !stored.contains(PASSWORD), "{stored}");
    assert!(!audit_text(&store).await.contains(PASSWORD));
    let rules = store.list_transports().await.unwrap();
    assert_eq!(rules[0].auth.as_ref().unwrap().password, PASSWORD);
    let config = store.load_config().await.unwrap();
    assert_eq!(
        config.transport_for(&d("gmail.com")).unwrap().auth.as_ref().unwrap().password,
        PASSWORD
    );

    // Re-sealed on every write: a replaced password is sealed too.
    set_relay(&store, "*", "another-pass-91c2").await;
    assert_ne!(stored_password(&store, "*").await, stored);
    assert_eq!(
        store.list_transports().await.unwrap()[0].auth.as_ref().unwrap().password,
        "another-pass-91c2"
    );

    // A sealed value copied into another row does not open there, loudly.
    set_relay(&store, "x.example.com", "x-pass-55aa").await;
    hand_edit(
        &store,
        "UPDATE transports SET auth_password = \
        (SELECT auth_password FROM transports WHERE pattern = '*') WHERE pattern = 'x.example.com'",
    )
    .await;
    let err = store.list_transports().await.unwrap_err();
    assert!(matches!(err, StoreError::SecretKey { .. }), "{err}");
    let err = err.to_string();
    assert!(
        err.contains(&store.key_file().display().to_string()) && err.contains("x.example.com"),
        "{err}"
    );
    assert!(store.load_config().await.is_err(), "never a config with a wrong password");
}

async fn plaintext_from_an_older_version_is_sealed_at_open(store: Store) {
    hand_edit(&store, "INSERT INTO transports (pattern, transport, tls, auth_username, auth_password, updated_at) \
        VALUES ('*', 'smtp:[relay.example.net]:587', 'encrypt', 'relayuser', 'smarthost-pass-7f3a', 0)").await;
    // Still read as it is until then.
    assert_eq!(store.list_transports().await.unwrap()[0].auth.as_ref().unwrap().password, PASSWORD);
    let revision = store.revision().await.unwrap();
    let reopened = Store::open(store.database(), store.key_file()).await.unwrap();
    let stored = stored_password(&reopened, "*").await;
    assert!(stored.starts_with("sealed:v1:") && !stored.contains(PASSWORD), "{stored}");
    assert_eq!(
        reopened.list_transports().await.unwrap()[0].auth.as_ref().unwrap().password,
        PASSWORD
    );
    assert_eq!(reopened.revision().await.unwrap(), revision, "the configuration is unchanged");
    // Once: the next open finds nothing to seal and leaves the value as it is.
    let again = Store::open(store.database(), store.key_file()).await.unwrap();
    assert_eq!(stored_password(&again, "*").await, stored);
    again.close().await;
    reopened.close().await;
}

async fn a_missing_or_wrong_key_is_refused_at_open(store: Store) {
    set_relay(&store, "*", PASSWORD).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let missing = elsewhere.path().join("secret.key");
    let err = Store::open(store.database(), &missing).await.unwrap_err().to_string();
    assert!(err.contains(&missing.display().to_string()) && err.contains("is missing"), "{err}");
    assert!(!missing.exists(), "no new key is made for a database with sealed secrets");

    let wrong = elsewhere.path().join("wrong.key");
    crate::SecretKey::create(&wrong).unwrap();
    let err = Store::open(store.database(), &wrong).await.unwrap_err().to_string();
    assert!(
        err.contains(&wrong.display().to_string())
            && err.contains("not the key it was sealed with"),
        "{err}"
    );
    assert_eq!(store.list_transports().await.unwrap()[0].auth.as_ref().unwrap().password, PASSWORD);
}
