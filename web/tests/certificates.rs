//! Certificates in the console and the API: upload with validation (a key that does not match is
//! refused, saying so, and never echoed), what each certificate is used for, ACME orders and the
//! CA's error text, the dashboard's expiry warning; global administrators only.

mod support;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, CertificateSource, OrderState, Role};
use postern_store::testing::certs::TestCa;
use postern_web::{AppState, Settings, app};
use serde_json::json;
use support::*;

const HOST: &str = "mail.example.test";

fn console_with(store: &Store, acme: bool) -> Router {
    let settings = Settings {
        hostname: HOST.into(),
        live_wait: Duration::ZERO,
        acme,
        tls_listeners: vec!["smtp 0.0.0.0:25".into(), "console-tls 0.0.0.0:443".into()],
        ..Settings::default()
    };
    app(AppState::new(store.clone(), settings))
}

postern_store::store_tests!(
    certificates_are_imported_shown_and_deleted_in_the_console,
    orders_show_their_progress_and_the_cas_error,
    the_api_manages_certificates_for_global_admins_only,
    the_dashboard_warns_of_a_certificate_in_use_expiring_soon,
    mta_sts_is_published_from_the_console_and_the_api
);

async fn certificates_are_imported_shown_and_deleted_in_the_console(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console_with(&store, false);
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get("/certificates").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No stored certificate yet"), "{}", page.body);
    assert!(page.body.contains("ACME is off"), "{}", page.body);

    let ca = TestCa::new("Console Test CA");
    let (chain, key) = ca.issue_now(&[HOST]);
    let (_, wrong_key) = ca.issue_now(&[HOST]);
    let refused =
        browser.post("/certificates", &[("cert_pem", &chain), ("key_pem", &wrong_key)]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("the private key does not match the certificate"),
        "{}",
        refused.body
    );
    let key_body = wrong_key.lines().nth(1).unwrap();
    assert!(!refused.body.contains(key_body), "the key is never echoed");
    assert!(refused.body.contains("BEGIN CERTIFICATE"), "the chain is kept in the form");
    assert!(store.list_certificates().await.unwrap().is_empty());

    let stored = browser.post("/certificates", &[("cert_pem", &chain), ("key_pem", &key)]).await;
    assert_eq!(stored.location(), "/certificates", "{}", stored.body);
    assert!(flash_text(&stored).starts_with("Certificate 1 for mail.example.test stored"));
    let page = browser.get("/certificates").await.body;
    assert!(page.contains("CN=Console Test CA") && page.contains(">upload<"), "{page}");
    assert!(page.contains("smtp 0.0.0.0:25, console-tls 0.0.0.0:443: the default, and by name for mail.example.test"), "{page}");
    assert!(!page.contains(key.lines().nth(1).unwrap()), "no key on the page");
    assert!(!page.contains("Renew now"), "no renewal without ACME");
    assert_eq!(store.list_audit(1, None).await.unwrap()[0].actor, "console:alice");

    let ordered = browser.post("/certificates/order", &[("names", "mx.example.test")]).await;
    assert_eq!(ordered.status, StatusCode::CONFLICT);
    assert!(ordered.body.contains("ACME is off: add an [acme] section"), "{}", ordered.body);

    let says = "Remove the certificate for mail.example.test";
    let removed = browser.confirmed("/certificates/delete", &[("id", "1")], says).await;
    assert_eq!(removed.location(), "/certificates");
    assert!(store.list_certificates().await.unwrap().is_empty());
    let again = browser.post("/certificates/delete", &[("id", "1")]).await;
    assert!(flash_text(&again).contains("does not exist"));
}

async fn orders_show_their_progress_and_the_cas_error(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console_with(&store, true);
    let browser = Browser::login(&app, "alice").await;
    let bad = browser.post("/certificates/order", &[("names", "*.example.test")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("wildcards need a DNS-01 challenge"), "{}", bad.body);

    let ordered = browser
        .post(
            "/certificates/order",
            &[("names", "mx.example.test mta-sts.example.test"), ("challenge", "tls-alpn-01")],
        )
        .await;
    assert_eq!(ordered.location(), "/certificates", "{}", ordered.body);
    assert!(
        flash_text(&ordered)
            .starts_with("Order 1 for mx.example.test mta-sts.example.test is pending")
    );
    let order = &store.list_acme_orders().await.unwrap()[0];
    assert_eq!(order.challenge.as_str(), "tls-alpn-01");
    let ca_error = "urn:ietf:params:acme:error:connection: Connection refused to 127.0.0.1:5001";
    store
        .update_acme_order(
            order.id,
            OrderState::Pending,
            Some(ca_error),
            1,
            postern_store::now() + 60,
            None,
        )
        .await
        .unwrap();
    let page = browser.get("/certificates").await.body;
    assert!(page.contains("id=\"order-1\"") && page.contains(ca_error), "{page}");
    assert!(page.contains("id=\"auto-refresh\""), "the page follows open orders: {page}");

    // A renewal from the certificate's row, which then shows the order's state.
    let ca = TestCa::new("Console Test CA");
    let (chain, key) = ca.issue_now(&[HOST]);
    let cert = store
        .import_certificate("engine", &chain, &key, CertificateSource::Acme, Some("https://ca/dir"))
        .await
        .unwrap();
    let page = browser.get("/certificates").await.body;
    assert!(page.contains("Renew now") && page.contains(">acme<"), "{page}");
    let renewed = browser.post("/certificates/renew", &[("id", &cert.id.to_string())]).await;
    assert!(
        flash_text(&renewed).starts_with("Renewal ordered (order 2, pending)"),
        "{}",
        flash_text(&renewed)
    );
    store
        .update_acme_order(
            2,
            OrderState::Failed,
            Some("urn:ietf:params:acme:error:unauthorized: no"),
            5,
            0,
            None,
        )
        .await
        .unwrap();
    let page = browser.get("/certificates").await.body;
    assert!(
        page.contains("order 2: failed — urn:ietf:params:acme:error:unauthorized: no"),
        "{page}"
    );
}

async fn the_api_manages_certificates_for_global_admins_only(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    store
        .add_domain("test", &"a.test".parse().unwrap(), postern_store::model::DomainKind::Local)
        .await
        .unwrap();
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console_with(&store, false);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let reader = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;

    let ca = TestCa::new("API Test CA");
    let (chain, key) = ca.issue_now(&["mx.example.test", "*.example.org"]);
    let (_, wrong_key) = ca.issue_now(&["mx.example.test"]);
    let refused = api
        .call("POST", "/certificates", Some(json!({"cert_pem": chain, "key_pem": wrong_key})))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.json();
    assert_eq!(body["error"]["field"], "certificate");
    assert!(body["error"]["message"].as_str().unwrap().contains("does not match"), "{body}");

    let created =
        api.call("POST", "/certificates", Some(json!({"cert_pem": chain, "key_pem": key}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let view = created.json();
    assert_eq!(view["names"], json!(["mx.example.test", "*.example.org"]));
    assert_eq!(view["served_for"], json!(["mx.example.test", "*.example.org"]));
    assert_eq!(view["default"], false, "not the host name's");
    assert_eq!(view["source"], "upload");
    assert!(!created.body.contains("PRIVATE KEY") && !created.body.contains("key_pem"));
    let id = view["id"].as_i64().unwrap();

    let list = reader.call("GET", "/certificates", None).await.json();
    assert_eq!(list["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(list["acme"], false);
    assert_eq!(reader.call("GET", &format!("/certificates/{id}"), None).await.json()["id"], id);
    assert_eq!(
        reader.call("DELETE", &format!("/certificates/{id}"), None).await.status,
        StatusCode::FORBIDDEN
    );
    for (method, path) in
        [("GET", "/certificates"), ("GET", "/certificates/1"), ("DELETE", "/certificates/1")]
    {
        assert_eq!(
            dora.call(method, path, None).await.status,
            StatusCode::FORBIDDEN,
            "{method} {path}"
        );
    }
    let order =
        api.call("POST", "/certificates/orders", Some(json!({"names": ["mx.example.test"]}))).await;
    assert_eq!(order.status, StatusCode::CONFLICT);
    assert!(order.json()["error"]["message"].as_str().unwrap().starts_with("ACME is off"));
    assert_eq!(
        api.call("POST", "/certificates/x", None).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        api.call("GET", "/certificates/x", None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // With ACME on: orders and renewals are requested, once.
    let app = console_with(&store, true);
    let api = Api { app, bearer: api.bearer.clone() };
    let order = api
        .call(
            "POST",
            "/certificates/orders",
            Some(json!({"names": ["mx.example.test"], "challenge": "tls-alpn-01"})),
        )
        .await;
    assert_eq!(order.status, StatusCode::ACCEPTED, "{}", order.body);
    assert_eq!(order.json()["state"], "pending");
    let renew = api.call("POST", &format!("/certificates/{id}/renew"), None).await;
    assert_eq!(renew.status, StatusCode::UNPROCESSABLE_ENTITY, "a wildcard cannot be renewed here");
    let bad = api
        .call("POST", "/certificates/orders", Some(json!({"names": [], "challenge": "dns-01"})))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    let (chain, key) = ca.issue_now(&["mx.example.test"]);
    let second = api
        .call("POST", "/certificates", Some(json!({"cert_pem": chain, "key_pem": key})))
        .await
        .json();
    let renew = api.call("POST", &format!("/certificates/{}/renew", second["id"]), None).await;
    assert_eq!(renew.status, StatusCode::ACCEPTED, "{}", renew.body);
    assert_eq!(renew.json()["id"], order.json()["id"], "the open order for the same names");
    let listed = api.call("GET", "/certificates", None).await.json();
    assert_eq!(listed["orders"].as_array().unwrap().len(), 1);
    assert_eq!(
        api.call("DELETE", &format!("/certificates/{id}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("DELETE", &format!("/certificates/{id}"), None).await.status,
        StatusCode::NOT_FOUND
    );

    let doc = api.call("GET", "/openapi.json", None).await.json();
    for path in
        ["/certificates", "/certificates/{id}", "/certificates/orders", "/certificates/{id}/renew"]
    {
        assert!(doc["paths"][path].is_object(), "{path} in the OpenAPI document");
    }
}

async fn the_dashboard_warns_of_a_certificate_in_use_expiring_soon(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console_with(&store, false);
    let browser = Browser::login(&app, "alice").await;
    assert!(!browser.get("/").await.body.contains("renew it or import"), "nothing to warn of");
    let ca = TestCa::new("Dashboard CA");
    let now = postern_store::now();
    let (chain, key) = ca.issue(&[HOST], now - 80 * 86_400, now + 5 * 86_400 + 3600);
    store.import_certificate("test", &chain, &key, CertificateSource::Upload, None).await.unwrap();
    // Not in use: a later certificate for another name only.
    let (chain, key) = ca.issue(&["unused.example.test"], now - 86_400, now + 3 * 86_400);
    let unused = store
        .import_certificate("test", &chain, &key, CertificateSource::Upload, None)
        .await
        .unwrap();
    let (chain, key) = ca.issue(&["unused.example.test"], now - 86_400, now + 60 * 86_400);
    store.import_certificate("test", &chain, &key, CertificateSource::Upload, None).await.unwrap();
    let page = browser.get("/").await.body;
    assert!(page.contains("The certificate for mail.example.test expires on"), "{page}");
    assert!(page.contains("in 5 days: renew it or import a new one"), "{page}");
    assert!(!page.contains(&format!("The certificate for {}", unused.names[0])), "{page}");
}

async fn mta_sts_is_published_from_the_console_and_the_api(store: Store) {
    use axum::body::Body;
    use axum::http::Request;
    for d in ["a.test", "b.test"] {
        store
            .add_domain("test", &d.parse().unwrap(), postern_store::model::DomainKind::Local)
            .await
            .unwrap();
    }
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console_with(&store, false);
    let fetch = |host: &'static str, path: &'static str| {
        let app = app.clone();
        async move {
            send(&app, Request::get(path).header("host", host).body(Body::empty()).unwrap()).await
        }
    };
    assert_eq!(
        fetch("mta-sts.a.test", "/.well-known/mta-sts.txt").await.status,
        StatusCode::NOT_FOUND
    );

    let browser = Browser::login(&app, "dora").await;
    let page = browser.get("/domains/a.test/mta-sts").await;
    assert!(page.body.contains("No policy is published for a.test"), "{}", page.body);
    assert!(page.body.contains("No stored certificate covers mta-sts.a.test"), "{}", page.body);
    let bad = browser
        .post(
            "/domains/a.test/mta-sts",
            &[("mode", "enforce"), ("max_age", "0"), ("mx", ""), ("report_to", "")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"e-max_age\">must be between"), "{}", bad.body);
    let set = browser
        .post(
            "/domains/a.test/mta-sts",
            &[("mode", "enforce"), ("max_age", "86400"), ("mx", ""), ("report_to", "")],
        )
        .await;
    assert_eq!(set.location(), "/domains/a.test/mta-sts", "{}", set.body);
    let page = browser.get("/domains/a.test/mta-sts").await.body;
    let policy = store.mta_sts_policy(&"a.test".parse().unwrap()).await.unwrap().unwrap();
    assert!(page.contains(&format!("v=STSv1; id={}", policy.id)), "{page}");
    assert!(page.contains("v=TLSRPTv1; rua=mailto:postmaster@a.test"), "{page}");
    assert_eq!(browser.get("/domains/b.test/mta-sts").await.status, StatusCode::FORBIDDEN);

    // Served for mta-sts.a.test, and that name reaches nothing else of the console.
    let served = fetch("mta-sts.a.test", "/.well-known/mta-sts.txt").await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(
        served.body,
        format!("version: STSv1\r\nmode: enforce\r\nmx: {HOST}\r\nmax_age: 86400\r\n")
    );
    assert_eq!(fetch("mta-sts.a.test", "/login").await.status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(
        fetch("mta-sts.b.test", "/.well-known/mta-sts.txt").await.status,
        StatusCode::NOT_FOUND
    );

    let api = Api::new(&store, &app, "dora", Access::Write, &["a.test"]).await;
    let got = api.call("GET", "/domains/a.test/mta-sts", None).await.json();
    assert_eq!(got["txt_value"], format!("v=STSv1; id={}", policy.id));
    let changed = api
        .call(
            "PUT",
            "/domains/a.test/mta-sts",
            Some(json!({"mode": "testing", "mx": ["mx.a.test"]})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_ne!(changed.json()["id"], json!(policy.id), "a new id for a new policy");
    assert_eq!(changed.json()["mx"], json!(["mx.a.test"]));
    assert_eq!(
        api.call("PUT", "/domains/b.test/mta-sts", Some(json!({"mode": "testing"}))).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call("DELETE", "/domains/a.test/mta-sts", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("GET", "/domains/a.test/mta-sts", None).await.status,
        StatusCode::NOT_FOUND
    );

    // In the console, the removal asks first (JavaScript off).
    let fields = [("mode", "testing"), ("max_age", "86400"), ("mx", ""), ("report_to", "")];
    browser.post("/domains/a.test/mta-sts", &fields).await;
    let says = "Remove the MTA-STS policy of a.test?";
    let removed = browser.confirmed("/domains/a.test/mta-sts/delete", &[], says).await;
    assert_eq!(removed.location(), "/domains/a.test/mta-sts", "{}", removed.body);
    assert!(store.mta_sts_policy(&"a.test".parse().unwrap()).await.unwrap().is_none());
}
