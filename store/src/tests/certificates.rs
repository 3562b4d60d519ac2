//! Certificates, ACME accounts and orders: imported after validation, keys sealed and never
//! shown, changes announced on the revision feed.

use super::*;
use crate::StoreError;
use crate::model::{CertificateSource, Challenge, OrderState};
use crate::testing::certs::TestCa;

crate::store_tests!(
    certificates_import_list_serve_remove,
    a_key_that_does_not_match_is_refused,
    acme_accounts_are_sealed_per_directory,
    acme_orders_are_requested_once_and_tracked
);

/// Every text column of every audit record, and the stored key column, as one string.
async fn stored_text(store: &Store) -> String {
    let audit: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT before_json, after_json FROM audit_log")
            .fetch_all(store.pool())
            .await
            .unwrap();
    let keys: Vec<String> = sqlx::query_scalar("SELECT key_pem FROM certificates")
        .fetch_all(store.pool())
        .await
        .unwrap();
    format!("{audit:?}{keys:?}")
}

async fn certificates_import_list_serve_remove(store: Store) {
    let ca = TestCa::new("Store Test CA");
    let (chain, key) = ca.issue_now(&["mail.example.com", "*.example.org"]);
    let mut revisions = store.subscribe();
    let before = *revisions.borrow_and_update();
    let info = store
        .import_certificate(ACTOR, &chain, &key, CertificateSource::Upload, None)
        .await
        .unwrap();
    assert!(*revisions.borrow() > before, "the import is announced");
    assert_eq!(info.names, vec!["mail.example.com", "*.example.org"]);
    assert_eq!(info.source, CertificateSource::Upload);
    assert!(info.covers("a.example.org") && !info.covers("example.org"));

    let listed = store.list_certificates().await.unwrap();
    assert_eq!(listed, vec![info.clone()]);
    assert_eq!(store.certificate(info.id).await.unwrap(), Some(info.clone()));

    // The key comes back whole for the listeners, and nowhere else.
    let serving = store.serving_certificates().await.unwrap();
    assert_eq!(serving.len(), 1);
    assert_eq!(serving[0].info, info);
    let key_body = key.lines().nth(1).unwrap();
    assert!(serving[0].key_pem.expose().contains(key_body));
    assert!(serving[0].chain_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(!format!("{serving:?}").contains(key_body), "Debug shows no key");
    assert!(!serde_json::to_string(&info).unwrap().contains("PRIVATE"));
    let stored = stored_text(&store).await;
    assert!(!stored.contains(key_body) && stored.contains("sealed:v1:"), "{stored}");
    let audit = store.list_audit(5, None).await.unwrap();
    assert_eq!(audit[0].action, "certificate.import");
    assert_eq!(audit[0].object, format!("certificate {}", info.id));

    // A store opened again with the same key file checks and opens the sealed key.
    let reopened = Store::open(store.database(), store.key_file()).await.unwrap();
    let again = reopened.serving_certificates().await.unwrap();
    assert_eq!(again[0].key_pem, serving[0].key_pem);
    reopened.close().await;
    let removed = store.remove_certificate(ACTOR, info.id).await.unwrap();
    assert_eq!(removed, info);
    assert!(store.list_certificates().await.unwrap().is_empty());
    let err = store.remove_certificate(ACTOR, info.id).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

async fn a_key_that_does_not_match_is_refused(store: Store) {
    let ca = TestCa::new("Store Test CA");
    let (chain, _) = ca.issue_now(&["mail.example.com"]);
    let (_, other_key) = ca.issue_now(&["mail.example.com"]);
    let revision = store.revision().await.unwrap();
    let err = store
        .import_certificate(ACTOR, &chain, &other_key, CertificateSource::Upload, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { field: "certificate", .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("the private key does not match the certificate"), "{text}");
    assert!(!text.contains("PRIVATE KEY-----"), "the message quotes no key: {text}");
    assert_eq!(store.revision().await.unwrap(), revision, "nothing was written");
    assert!(store.list_certificates().await.unwrap().is_empty());
}

async fn acme_accounts_are_sealed_per_directory(store: Store) {
    let staging = "https://acme-staging-v02.api.letsencrypt.org/directory";
    assert_eq!(store.acme_account(staging).await.unwrap(), None);
    let credentials = r#"{"id":"https://ca/acct/1","key_pkcs8":"c2VjcmV0LWtleQ"}"#;
    store.save_acme_account(staging, Some("mailto:admin@example.com"), credentials).await.unwrap();
    assert_eq!(store.acme_account(staging).await.unwrap().as_deref(), Some(credentials));
    assert_eq!(store.acme_account("https://other/directory").await.unwrap(), None);
    let raw: String = sqlx::query_scalar("SELECT credentials FROM acme_accounts")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(raw.starts_with("sealed:v1:") && !raw.contains("key_pkcs8"), "{raw}");
    store.save_acme_account(staging, None, "{}").await.unwrap();
    assert_eq!(store.acme_account(staging).await.unwrap().as_deref(), Some("{}"));
}

async fn acme_orders_are_requested_once_and_tracked(store: Store) {
    let names = [d("mail.example.com"), d("mta-sts.example.com")];
    let mut revisions = store.subscribe();
    let before = *revisions.borrow_and_update();
    let order = store.request_acme_order(ACTOR, &names, Challenge::TlsAlpn01, None).await.unwrap();
    assert!(*revisions.borrow() > before, "engines hear of the order");
    assert_eq!(order.names, vec!["mail.example.com", "mta-sts.example.com"]);
    assert_eq!(
        (order.state, order.challenge, order.attempts),
        (OrderState::Pending, Challenge::TlsAlpn01, 0)
    );

    // The same names in another order: the open order, not a second one.
    let reversed = [d("mta-sts.example.com"), d("mail.example.com")];
    let again = store.request_acme_order(ACTOR, &reversed, Challenge::Http01, None).await.unwrap();
    assert_eq!(again.id, order.id);
    assert_eq!(store.list_acme_orders().await.unwrap().len(), 1);

    let now = crate::now();
    assert_eq!(store.due_acme_orders(now).await.unwrap(), vec![order.clone()]);
    store
        .update_acme_order(
            order.id,
            OrderState::Pending,
            Some("urn:ietf:params:acme:error:connection: refused"),
            1,
            now + 600,
            None,
        )
        .await
        .unwrap();
    assert!(store.due_acme_orders(now).await.unwrap().is_empty(), "waits for its next attempt");
    assert_eq!(store.due_acme_orders(now + 600).await.unwrap().len(), 1);
    let listed = store.list_acme_orders().await.unwrap();
    assert_eq!(listed[0].error.as_deref(), Some("urn:ietf:params:acme:error:connection: refused"));
    assert_eq!(listed[0].attempts, 1);

    let ca = TestCa::new("Store Test CA");
    let (chain, key) = ca.issue_now(&["mail.example.com", "mta-sts.example.com"]);
    let cert = store
        .import_certificate("engine", &chain, &key, CertificateSource::Acme, Some("https://ca/dir"))
        .await
        .unwrap();
    assert_eq!(cert.acme_directory.as_deref(), Some("https://ca/dir"));
    store
        .update_acme_order(order.id, OrderState::Issued, None, 2, now, Some(cert.id))
        .await
        .unwrap();
    assert!(store.due_acme_orders(now + 600).await.unwrap().is_empty());

    // Once issued, the same names may be ordered again (a renewal of that certificate).
    let renewal =
        store.request_acme_order(ACTOR, &names, Challenge::Http01, Some(cert.id)).await.unwrap();
    assert_ne!(renewal.id, order.id);
    assert_eq!(renewal.replaces, Some(cert.id));
    let listed = store.list_acme_orders().await.unwrap();
    assert_eq!(listed.iter().map(|o| o.id).collect::<Vec<_>>(), vec![renewal.id, order.id]);
    assert_eq!(listed[1].certificate_id, Some(cert.id));

    let err = store.request_acme_order(ACTOR, &[], Challenge::Http01, None).await.unwrap_err();
    assert!(err.to_string().contains("at least one"), "{err}");
    let err = store
        .request_acme_order(ACTOR, &[d("other.example.com")], Challenge::Http01, Some(9999))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err =
        store.update_acme_order(9999, OrderState::Failed, None, 0, 0, None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

crate::store_tests!(mta_sts_policies_are_set_changed_and_removed);

async fn mta_sts_policies_are_set_changed_and_removed(store: Store) {
    use crate::model::StsMode;
    let example = d("example.com");
    let err =
        store.set_mta_sts(ACTOR, &example, StsMode::Testing, 86_400, &[], "").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    domain(&store, "example.com").await;
    let first =
        store.set_mta_sts(ACTOR, &example, StsMode::Testing, 86_400, &[], "").await.unwrap();
    assert_eq!(first.mx_or("mail.example.net"), ["mail.example.net"]);
    assert_eq!(store.mta_sts_policy(&example).await.unwrap(), Some(first.clone()));
    let same = store.set_mta_sts(ACTOR, &example, StsMode::Testing, 86_400, &[], "").await.unwrap();
    assert_eq!(same.id, first.id, "the same policy keeps its id");
    let mx = vec!["MX1.example.com".to_string(), "*.example.net".to_string()];
    let second = store
        .set_mta_sts(ACTOR, &example, StsMode::Enforce, 604_800, &mx, "mailto:tls@example.com")
        .await
        .unwrap();
    assert_ne!(second.id, first.id, "a changed policy gets a new id");
    assert_eq!(second.mx, ["mx1.example.com", "*.example.net"]);
    assert_eq!(second.tlsrpt_record().1, "v=TLSRPTv1; rua=mailto:tls@example.com");
    assert_eq!(store.list_mta_sts().await.unwrap(), vec![second.clone()]);
    let err = store.set_mta_sts(ACTOR, &example, StsMode::Enforce, 0, &[], "").await.unwrap_err();
    assert!(err.to_string().starts_with("max_age:"), "{err}");
    assert_eq!(store.list_audit(1, None).await.unwrap()[0].action, "mta_sts.set");

    store.remove_mta_sts(ACTOR, &example).await.unwrap();
    assert_eq!(store.mta_sts_policy(&example).await.unwrap(), None);
    store.set_mta_sts(ACTOR, &example, StsMode::Testing, 86_400, &[], "").await.unwrap();
    store.remove_domain(ACTOR, &example, false).await.unwrap();
    assert!(store.list_mta_sts().await.unwrap().is_empty(), "removed with its domain");
}
