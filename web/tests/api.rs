//! The REST API in process: tokens, scopes, errors as JSON, the OpenAPI document.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use postern_store::Store;
use postern_store::model::{Access, DomainKind, Role};
use serde_json::json;
use support::*;

postern_store::store_tests!(
    a_token_manages_domains,
    errors_are_json_with_a_code,
    no_token_or_a_bad_one_is_refused,
    scopes_limit_what_a_token_does,
    the_openapi_document_describes_the_api
);

async fn a_token_manages_domains(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let created = api.call("POST", "/domains", Some(json!({"name": "a.test"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.json()["kind"], "local");
    api.call("POST", "/domains", Some(json!({"name": "b.test", "kind": "relay"}))).await;
    let list = api.call("GET", "/domains?limit=1", None).await.json();
    assert_eq!(list["items"][0]["name"], "a.test");
    assert_eq!(list["next"], "a.test");
    let rest = api.call("GET", "/domains?limit=1&after=a.test", None).await.json();
    assert_eq!(rest["items"][0]["name"], "b.test");
    assert!(rest["next"].is_null());
    assert_eq!(api.call("GET", "/domains/b.test", None).await.json()["kind"], "relay");
    assert_eq!(api.call("DELETE", "/domains/b.test", None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.call("GET", "/domains/b.test", None).await.status, StatusCode::NOT_FOUND);
    assert!(store.list_audit(1, None).await.unwrap()[0].actor.starts_with("api:alice/"));
}

async fn errors_are_json_with_a_code(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let bad = api.call("POST", "/domains", Some(json!({"name": "not a domain"}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["error"]["code"], "invalid");
    let unknown_field = api.call("POST", "/domains", Some(json!({"name": "a.test", "x": 1}))).await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    let request = Request::post("/api/v1/domains")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.bearer))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let broken = send(&app, request).await;
    assert!(broken.status.is_client_error());
    assert_eq!(broken.json()["error"]["code"], "invalid");
    // serde reads a struct from an array field by field: a body of all-optional fields must not
    // pass as `[null, null]`.
    let array = api.call("PUT", "/mailauth/policy", Some(json!([null, null]))).await;
    assert_eq!(array.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(array.json()["error"]["message"], "the request body must be a JSON object");
    let request = Request::post("/api/v1/domains")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.bearer))
        .body(Body::from(r#"{"name": "a.test"}"#))
        .unwrap();
    let untyped = send(&app, request).await;
    assert_eq!(untyped.status, StatusCode::UNPROCESSABLE_ENTITY);
    api.call("POST", "/domains", Some(json!({"name": "a.test"}))).await;
    let dup = api.call("POST", "/domains", Some(json!({"name": "a.test"}))).await;
    assert_eq!(
        (dup.status, dup.json()["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate"))
    );
    let limit = api.call("GET", "/domains?limit=0", None).await;
    assert_eq!(limit.status, StatusCode::UNPROCESSABLE_ENTITY);
    let nowhere = api.call("GET", "/nowhere", None).await;
    assert_eq!(nowhere.json()["error"]["code"], "not_found");
}

async fn no_token_or_a_bad_one_is_refused(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let none = send(&app, Request::get("/api/v1/domains").body(Body::empty()).unwrap()).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.json()["error"]["code"], "unauthenticated");
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let forged = Api { app: app.clone(), bearer: format!("{}x", api.bearer) };
    assert_eq!(forged.call("GET", "/domains", None).await.status, StatusCode::UNAUTHORIZED);
    let expired = store
        .create_token(
            "test",
            &"alice".parse().unwrap(),
            "soon",
            Access::Write,
            &[],
            Some(postern_store_now() + 1),
        )
        .await
        .unwrap();
    // Its hour comes without waiting: the clock is the stored expiry, moved into the past.
    postern_store::testing::hand_edit(
        &store,
        "UPDATE api_tokens SET expires_at = 1 WHERE name = 'soon'",
    )
    .await;
    let expired = Api { app: app.clone(), bearer: expired.bearer };
    assert_eq!(expired.call("GET", "/domains", None).await.status, StatusCode::UNAUTHORIZED);
}

async fn scopes_limit_what_a_token_does(store: Store) {
    store.add_domain("test", &"a.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    store.add_domain("test", &"b.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let reader = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    assert_eq!(reader.call("GET", "/domains", None).await.status, StatusCode::OK);
    let refused = reader.call("POST", "/domains", Some(json!({"name": "c.test"}))).await;
    assert_eq!(
        (refused.status, refused.json()["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let list = dora.call("GET", "/domains", None).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(dora.call("GET", "/domains/b.test", None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(dora.call("DELETE", "/domains/a.test", None).await.status, StatusCode::FORBIDDEN);
    let narrow = Api::new(&store, &app, "alice", Access::Write, &["b.test"]).await;
    let r = narrow.call("GET", "/domains", None).await;
    assert_eq!(r.json()["items"][0]["name"], "b.test", "{}", r.body);
    assert_eq!(
        narrow.call("POST", "/domains", Some(json!({"name": "c.test"}))).await.status,
        StatusCode::FORBIDDEN
    );
    // A domain-admin's token cannot reach beyond its owner.
    let err = store
        .create_token(
            "test",
            &"dora".parse().unwrap(),
            "wide",
            Access::Write,
            &["b.test".parse().unwrap()],
            None,
        )
        .await;
    assert!(err.is_err());
}

async fn the_openapi_document_describes_the_api(store: Store) {
    let app = console(&store);
    let doc = send(&app, Request::get("/api/v1/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/domains"]["get"].is_object());
    assert!(doc["paths"]["/domains/{name}"]["delete"].is_object());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // Every reference resolves: a schema used only as a parameter must be a component too.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "{r} does not resolve");
    }
}

/// Every `$ref` in `value`.
fn collect_refs(value: &serde_json::Value, refs: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v.as_str()) {
                    ("$ref", Some(r)) => refs.push(r.to_string()),
                    _ => collect_refs(v, refs),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

fn postern_store_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
