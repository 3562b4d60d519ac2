//! The API's answers to reads of domains, mailboxes and aliases are kept in memory at the
//! configuration revision: served again without reading the store, never across scopes, and
//! gone with the next change, whoever makes it.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, DomainKind, Role};
use serde_json::json;
use support::*;
use tokio_util::sync::CancellationToken;

postern_store::store_tests!(
    a_list_is_served_from_memory_until_the_revision_moves,
    a_domain_admin_never_gets_an_admins_cached_answer,
    a_revoked_token_fails_on_its_next_request,
    only_successful_reads_are_kept,
    if_none_match_gets_304_until_the_answer_changes,
);

fn names(reply: &Reply, field: &str) -> Vec<String> {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.json()["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {}", reply.body))
        .iter()
        .map(|i| i[field].as_str().unwrap().to_string())
        .collect()
}

/// Waits (at most 20 s) until this process's change feed has heard of `revision`, as it does
/// for a change made by another process.
async fn hear_of(store: &Store, revision: i64) {
    let shutdown = CancellationToken::new();
    let watcher = store.spawn_watcher(shutdown.clone());
    let mut feed = store.subscribe();
    tokio::time::timeout(Duration::from_secs(20), feed.wait_for(|r| *r >= revision))
        .await
        .expect("the change feed brings the other process's revision")
        .unwrap();
    shutdown.cancel();
    let _ = watcher.await;
}

/// A second handle on the same database: another process (the command line, another node).
async fn other_process(store: &Store) -> Store {
    Store::open(store.database(), store.key_file()).await.unwrap()
}

/// The second read of a list comes from memory (a domain added by another process, which this
/// one has not heard of yet, is not in it although the store has it); a change by another
/// process is seen once the change feed brings its revision, and a change through the store
/// handle of this process, the API or the console on the very next request.
async fn a_list_is_served_from_memory_until_the_revision_moves(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_test_domains(&store).await;
    let app = console(&store);
    let read = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let write = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let all = ["a.test", "b.test", "relay.test"];
    assert_eq!(names(&read.call("GET", "/domains", None).await, "name"), all);

    let other = other_process(&store).await;
    other.add_domain("cli:root", &"c.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    let added_at = other.revision().await.unwrap();
    // Not read from the store, which has c.test already: served from memory.
    assert_eq!(names(&read.call("GET", "/domains", None).await, "name"), all);
    hear_of(&store, added_at).await;
    let with_c = ["a.test", "b.test", "c.test", "relay.test"];
    assert_eq!(names(&read.call("GET", "/domains", None).await, "name"), with_c);
    other.close().await;

    // Written straight into the database, the revision moved with it: seen at once.
    postern_store::testing::hand_edit(&store, "DELETE FROM domains WHERE name = 'c.test'").await;
    assert_eq!(names(&read.call("GET", "/domains", None).await, "name"), all);

    // Through this process's store handle.
    store.add_domain("test", &"d.test".parse().unwrap(), DomainKind::Relay).await.unwrap();
    let reply = read.call("GET", "/domains/d.test", None).await;
    assert_eq!(reply.json()["kind"], "relay", "{}", reply.body);
    store.set_domain_kind("test", &"d.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    assert_eq!(read.call("GET", "/domains/d.test", None).await.json()["kind"], "local");

    // Through the API.
    let created = write.call("POST", "/domains", Some(json!({"name": "e.test"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let listed = names(&read.call("GET", "/domains", None).await, "name");
    assert!(listed.contains(&"e.test".to_string()), "{listed:?}");

    // Through the console.
    let browser = Browser::login(&app, "alice").await;
    let added = browser.post("/domains", &[("name", "f.test"), ("kind", "local")]).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let listed = names(&read.call("GET", "/domains", None).await, "name");
    assert!(listed.contains(&"f.test".to_string()), "{listed:?}");

    // Mailboxes and aliases likewise.
    add_mailbox(&store, "x@a.test").await;
    assert_eq!(names(&read.call("GET", "/mailboxes", None).await, "address"), ["x@a.test"]);
    add_mailbox(&store, "y@a.test").await;
    assert_eq!(
        names(&read.call("GET", "/mailboxes", None).await, "address"),
        ["x@a.test", "y@a.test"]
    );
    let alias = json!({"source": "info@a.test", "destinations": ["x@a.test"]});
    assert_eq!(read.call("GET", "/aliases", None).await.json()["items"], json!([]));
    assert_eq!(write.call("POST", "/aliases", Some(alias)).await.status, StatusCode::CREATED);
    assert_eq!(names(&read.call("GET", "/aliases", None).await, "source"), ["info@a.test"]);
    let change = json!({"destinations": ["y@a.test"]});
    let replaced = write.call("PUT", "/aliases/info@a.test", Some(change)).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    let shown = read.call("GET", "/aliases/info@a.test", None).await;
    assert_eq!(shown.json()["destinations"], json!(["y@a.test"]));
}

/// The same paths asked by callers who see different things get different answers, whoever
/// asks first; two callers who see the same things share one.
async fn a_domain_admin_never_gets_an_admins_cached_answer(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    add_mailbox(&store, "x@a.test").await;
    add_mailbox(&store, "x@b.test").await;
    let app = console(&store);
    let admin = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let narrowed = Api::new(&store, &app, "alice", Access::Read, &["b.test"]).await;
    let dora = Api::new(&store, &app, "dora", Access::Read, &[]).await;
    let all = ["a.test", "b.test", "relay.test"];

    // The admin first, then the domain-admin, then both again.
    for _ in 0..2 {
        assert_eq!(names(&admin.call("GET", "/domains", None).await, "name"), all);
        assert_eq!(names(&dora.call("GET", "/domains", None).await, "name"), ["a.test"]);
        assert_eq!(names(&narrowed.call("GET", "/domains", None).await, "name"), ["b.test"]);
    }
    // The domain-admin first.
    for _ in 0..2 {
        let mailboxes = names(&dora.call("GET", "/mailboxes", None).await, "address");
        assert_eq!(mailboxes, ["x@a.test"]);
        let mailboxes = names(&admin.call("GET", "/mailboxes", None).await, "address");
        assert_eq!(mailboxes, ["x@a.test", "x@b.test"]);
    }
    // An item the admin has read (and that is kept) is still refused to the domain-admin.
    for _ in 0..2 {
        assert_eq!(admin.call("GET", "/mailboxes/x@b.test", None).await.status, StatusCode::OK);
        let refused = dora.call("GET", "/mailboxes/x@b.test", None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        let refused = dora.call("GET", "/domains/b.test", None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert_eq!(admin.call("GET", "/domains/b.test", None).await.status, StatusCode::OK);
    }
    // The domain-admin given b.test too (an administrator change, so a new revision) sees it
    // on its next request.
    let name = "dora".parse().unwrap();
    let domains = ["a.test", "b.test"].map(|d| d.parse().unwrap());
    store.update_admin("test", &name, Role::DomainAdmin, &domains).await.unwrap();
    assert_eq!(names(&dora.call("GET", "/domains", None).await, "name"), ["a.test", "b.test"]);
    assert_eq!(dora.call("GET", "/mailboxes/x@b.test", None).await.status, StatusCode::OK);
}

/// A cached answer is never given to a token revoked since: through the API on the very next
/// request, by another process as soon as the change feed brings the revision.
async fn a_revoked_token_fails_on_its_next_request(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_test_domains(&store).await;
    let app = console(&store);
    let write = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let issued = store
        .create_token("test", &"alice".parse().unwrap(), "api", Access::Read, &[], None)
        .await
        .unwrap();
    let read = Api { app: app.clone(), bearer: issued.bearer };
    for _ in 0..2 {
        assert_eq!(read.call("GET", "/domains", None).await.status, StatusCode::OK);
    }
    let path = format!("/tokens/{}", issued.token.id);
    assert_eq!(write.call("DELETE", &path, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(read.call("GET", "/domains", None).await.status, StatusCode::UNAUTHORIZED);

    let issued = store
        .create_token("test", &"alice".parse().unwrap(), "cli", Access::Read, &[], None)
        .await
        .unwrap();
    let read = Api { app: app.clone(), bearer: issued.bearer };
    for _ in 0..2 {
        assert_eq!(read.call("GET", "/domains", None).await.status, StatusCode::OK);
    }
    let other = other_process(&store).await;
    other.revoke_token("cli:root", &issued.token.id).await.unwrap();
    hear_of(&store, other.revision().await.unwrap()).await;
    assert_eq!(read.call("GET", "/domains", None).await.status, StatusCode::UNAUTHORIZED);
    other.close().await;
    // The other token still gets the answer.
    assert_eq!(write.call("GET", "/domains", None).await.status, StatusCode::OK);
}

/// A refusal or an error is not kept: after another process adds what was missing, the store is
/// read again (no new revision is needed for that).
async fn only_successful_reads_are_kept(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_test_domains(&store).await;
    let app = console(&store);
    let read = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let missing = read.call("GET", "/domains/c.test", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    let bad = read.call("GET", "/domains?limit=0", None).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let other = other_process(&store).await;
    other.add_domain("cli:root", &"c.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    other.close().await;
    let found = read.call("GET", "/domains/c.test", None).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    let bad = read.call("GET", "/domains?limit=0", None).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    // A page and the whole list are different answers.
    assert_eq!(names(&read.call("GET", "/domains?limit=1", None).await, "name"), ["a.test"]);
    assert_eq!(names(&read.call("GET", "/domains?limit=2", None).await, "name").len(), 2);
}

/// The answer's ETag comes back as `304 Not Modified` without a body until a change alters the
/// answer.
async fn if_none_match_gets_304_until_the_answer_changes(store: Store) {
    use axum::body::Body;
    use axum::http::{Request, header};

    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_test_domains(&store).await;
    let app = console(&store);
    let read = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let conditional = |etag: String| {
        Request::get("/api/v1/domains")
            .header(header::AUTHORIZATION, format!("Bearer {}", read.bearer))
            .header(header::IF_NONE_MATCH, etag)
            .body(Body::empty())
            .unwrap()
    };
    let first = read.call("GET", "/domains", None).await;
    let etag = first.headers.get(header::ETAG).expect("an ETag").to_str().unwrap().to_string();
    // Whether the answer is made now or comes from memory.
    for _ in 0..2 {
        let again = send(&app, conditional(etag.clone())).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
        assert_eq!(again.body, "");
        assert_eq!(again.headers.get(header::ETAG).unwrap(), etag.as_str());
    }
    let weak = send(&app, conditional(format!("\"x\", W/{etag}"))).await;
    assert_eq!(weak.status, StatusCode::NOT_MODIFIED);
    // A change elsewhere leaves the answer as it was: still 304.
    add_mailbox(&store, "x@a.test").await;
    assert_eq!(send(&app, conditional(etag.clone())).await.status, StatusCode::NOT_MODIFIED);
    store.add_domain("test", &"c.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    let changed = send(&app, conditional(etag.clone())).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.headers.get(header::ETAG).unwrap(), etag.as_str());
    assert_eq!(names(&changed, "name").len(), 4);
}

/// The API's document says which reads answer `304`, and how to ask: `If-None-Match` in, `ETag`
/// out, so that generated clients know both.
#[tokio::test]
async fn the_document_names_the_conditional_reads() {
    let db = postern_store::testing::TestDb::sqlite();
    let store = db.open().await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let doc = api.call("GET", "/openapi.json", None).await.json();
    for path in [
        "/domains",
        "/domains/{name}",
        "/mailboxes",
        "/mailboxes/{address}",
        "/aliases",
        "/aliases/{source}",
    ] {
        let get = &doc["paths"][path]["get"];
        assert!(get["responses"]["304"].is_object(), "{path}: {get}");
        assert!(get["responses"]["200"]["headers"]["ETag"].is_object(), "{path}: {get}");
        let params = get["parameters"].as_array().unwrap();
        assert!(
            params.iter().any(|p| p["name"] == "If-None-Match" && p["in"] == "header"),
            "{path}: {get}"
        );
    }
    store.close().await;
}
