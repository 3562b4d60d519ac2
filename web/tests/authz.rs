//! The authorization matrix: every API operation in the OpenAPI document and every console
//! section in the navigation, against every kind of caller. Routes added later are covered
//! without touching this file.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use postern_store::Store;
use postern_store::model::{Access, DomainKind, Role};
use support::*;

/// A path of the document with its parameters filled in with values of the right shape.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|part| match part {
            "{name}" | "{domain}" => "a.test".to_string(),
            "{address}" | "{source}" => "user@a.test".to_string(),
            p if p.starts_with('{') => "x".to_string(),
            p => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn operations(doc: &serde_json::Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// The global-only resources: what a domain-admin may never reach.
fn global_only(path: &str) -> bool {
    [
        "/transports",
        "/networks",
        "/nodes",
        "/admins",
        "/audit",
        "/policy",
        "/certificates",
        "/mailauth",
        "/rate-limits",
        "/dnsbl",
        "/greylisting",
        "/backups",
        "/milters",
        "/content-checks",
        "/policy-services",
    ]
    .iter()
    .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

postern_store::store_tests!(
    every_api_operation_against_every_caller,
    every_console_section_against_every_caller
);

async fn every_api_operation_against_every_caller(store: Store) {
    store.add_domain("test", &"a.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let doc =
        send(&app, Request::get("/api/v1/openapi.json").body(Body::empty()).unwrap()).await.json();
    let ops = operations(&doc);
    assert!(ops.len() >= 4, "the document lists the API: {ops:?}");
    let reader = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let domain_admin = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let nobody = Api { app: app.clone(), bearer: "pst_nothing_here".into() };
    for (method, path) in &ops {
        let uri = concrete(path);
        let body = (method != "GET" && method != "DELETE").then(|| serde_json::json!({}));
        let anonymous = nobody.call(method, &uri, body.clone()).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{method} {path} without a token");
        assert_eq!(anonymous.json()["error"]["code"], "unauthenticated");

        let read = reader.call(method, &uri, body.clone()).await;
        if method == "GET" {
            assert!(
                !matches!(read.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
                "{method} {path} by a reader: {}",
                read.status
            );
        } else {
            assert_eq!(read.status, StatusCode::FORBIDDEN, "{method} {path} by a read-only token");
        }
        assert!(!read.status.is_server_error(), "{method} {path}: {}", read.body);

        let narrow = domain_admin.call(method, &uri, body.clone()).await;
        if global_only(path) {
            assert_eq!(narrow.status, StatusCode::FORBIDDEN, "{method} {path} by a domain-admin");
        }
        assert!(!narrow.status.is_server_error(), "{method} {path}: {}", narrow.body);
    }
}

async fn every_console_section_against_every_caller(store: Store) {
    store.add_domain("test", &"a.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let admin = Browser::login(&app, "alice").await;
    let home = admin.get("/").await.body;
    let sections: Vec<String> = home
        .split("<nav")
        .nth(1)
        .unwrap()
        .split("href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .filter(|href| href.starts_with('/') && href != "/password")
        .collect();
    assert!(sections.contains(&"/domains".to_string()), "{sections:?}");
    let dora = Browser::login(&app, "dora").await;
    let dora_home = dora.get("/").await.body;
    for section in &sections {
        let anonymous =
            send(&app, Request::get(section.as_str()).body(Body::empty()).unwrap()).await;
        assert_eq!(anonymous.location(), "/login", "{section} without a session");
        assert_eq!(admin.get(section).await.status, StatusCode::OK, "{section} as admin");
        let as_dora = dora.get(section).await;
        if global_only(section) {
            assert_eq!(as_dora.status, StatusCode::FORBIDDEN, "{section} as a domain-admin");
            assert!(
                !dora_home.contains(&format!("href=\"{section}\"")),
                "{section} is not in a domain-admin's navigation"
            );
        } else {
            assert_eq!(as_dora.status, StatusCode::OK, "{section} as a domain-admin");
        }
        // A state change without the session's CSRF token never gets through.
        let forged = post_form(&app, section, Some(&admin.cookie), &[("name", "z.test")]).await;
        assert!(
            matches!(forged.status, StatusCode::FORBIDDEN | StatusCode::METHOD_NOT_ALLOWED),
            "POST {section} without CSRF: {}",
            forged.status
        );
    }
    assert_eq!(store.list_domains().await.unwrap().len(), 1, "nothing changed");
}
