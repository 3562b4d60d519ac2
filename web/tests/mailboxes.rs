//! Mailboxes in the console and the API: add, list, change, remove; domain scoping; nothing
//! secret shown.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, Role};
use serde_json::json;
use support::*;

/// A form's fields, as `Browser::post` takes them.
type Fields<'a> = &'a [(&'a str, &'a str)];

postern_store::store_tests!(
    a_mailbox_is_added_in_the_console_and_its_hash_never_shown,
    a_bad_mailbox_form_says_what_is_wrong_and_keeps_what_was_typed,
    a_mailbox_is_changed_and_removed_on_its_page,
    the_list_filters_by_domain_and_search_and_pages,
    a_domain_admin_sees_and_touches_only_its_domains_mailboxes,
    a_display_name_is_shown_escaped,
    a_token_manages_mailboxes,
    a_read_only_token_cannot_change_mailboxes,
    the_openapi_document_has_the_mailbox_endpoints
);

async fn a_mailbox_is_added_in_the_console_and_its_hash_never_shown(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let form = browser.get("/mailboxes").await;
    assert_eq!(form.status, StatusCode::OK);
    for needle in [
        "action=\"/mailboxes\"",
        "name=\"address\"",
        "name=\"password\" type=\"password\"",
        "name=\"display_name\"",
        "name=\"quota\"",
        "Add mailbox",
    ] {
        assert!(form.body.contains(needle), "{needle}: {}", form.body);
    }
    let reply = browser
        .post(
            "/mailboxes",
            &[
                ("address", "Ann@A.test"),
                ("password", "mailbox password"),
                ("display_name", "Ann"),
                ("quota", "500"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), "/mailboxes");
    assert!(
        flash_text(&reply).contains("Mailbox ann@a.test added; no engine has applied it yet"),
        "{}",
        flash_text(&reply)
    );
    let stored = store.get_mailbox(&"ann@a.test".parse().unwrap()).await.unwrap().unwrap();
    assert!(stored.password_hash.verify("mailbox password"));
    assert_eq!((stored.display_name.as_str(), stored.quota_bytes), ("Ann", Some(500 << 20)));

    let list = browser.get("/mailboxes").await;
    assert!(list.body.contains("ann@a.test") && list.body.contains("500 MB"), "{}", list.body);
    let page = browser.get("/mailboxes/ann%40a.test").await;
    assert_eq!(page.status, StatusCode::OK);
    for body in [&list.body, &page.body] {
        assert!(!body.contains("$argon2"), "a hash on a page");
        assert!(!body.contains("mailbox password"));
    }
}

async fn a_bad_mailbox_form_says_what_is_wrong_and_keeps_what_was_typed(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let cases: [(Fields, &str, &str); 5] = [
        (
            &[("address", "no at sign"), ("password", "long enough!"), ("quota", "")],
            "address",
            "has no @domain",
        ),
        (
            &[("address", "x@a.test"), ("password", "short"), ("quota", "")],
            "password",
            "at least 8 characters",
        ),
        (
            &[("address", "x@a.test"), ("password", "long enough!"), ("quota", "lots")],
            "quota",
            "not a whole number of MB",
        ),
        (
            &[("address", "x@nowhere.test"), ("password", "long enough!"), ("quota", "")],
            "address",
            "does not exist",
        ),
        (
            &[("address", "x@relay.test"), ("password", "long enough!"), ("quota", "")],
            "address",
            "relay domain",
        ),
    ];
    for (fields, field, message) in cases {
        let mut all = fields.to_vec();
        all.push(("display_name", "Typed <Name>"));
        let reply = browser.post("/mailboxes", &all).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}: {}", reply.body);
        let error = format!("<p class=\"field-error\" id=\"e-{field}\">");
        let at = reply.body.find(&error).unwrap_or_else(|| panic!("{field} error: {}", reply.body));
        assert!(
            reply.body[at..].split("</p>").next().unwrap().contains(message),
            "{message}: {}",
            reply.body
        );
        assert!(reply.body.contains("value=\"Typed &#60;Name&#62;\""), "kept: {}", reply.body);
        // The password is kept too, in this response only, unless it was what was wrong.
        let password = fields.iter().find(|(k, _)| *k == "password").unwrap().1;
        let kept = reply.body.contains(&format!(
            "type=\"password\" autocomplete=\"new-password\" value=\"{password}\""
        ));
        assert_eq!(kept, field != "password", "{field}: {}", reply.body);
    }
    let page = browser.get("/mailboxes").await.body;
    assert!(!page.contains("long enough!"), "a password on a page of its own: {page}");
    add_mailbox(&store, "taken@a.test").await;
    let dup = browser
        .post(
            "/mailboxes",
            &[
                ("address", "taken@a.test"),
                ("password", "long enough!"),
                ("display_name", ""),
                ("quota", ""),
            ],
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert!(
        dup.body.contains("id=\"e-address\">mailbox taken@a.test already exists"),
        "{}",
        dup.body
    );
    assert_eq!(store.list_mailboxes(None).await.unwrap().len(), 1);
}

async fn a_mailbox_is_changed_and_removed_on_its_page(store: Store) {
    add_test_domains(&store).await;
    add_mailbox(&store, "ann@a.test").await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let reply =
        browser.post("/mailboxes/ann@a.test", &[("display_name", "Ann A."), ("quota", "")]).await;
    assert_eq!(reply.location(), "/mailboxes/ann@a.test", "{}", reply.body);
    let got = store.get_mailbox(&"ann@a.test".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (got.display_name.as_str(), got.enabled, got.quota_bytes),
        ("Ann A.", false, None),
        "an unticked box disables"
    );

    let bad = browser
        .post(
            "/mailboxes/ann@a.test",
            &[("display_name", "Ann"), ("quota", "0"), ("enabled", "on")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("id=\"e-quota\"") && bad.body.contains("value=\"0\""),
        "{}",
        bad.body
    );

    let enable = browser.post("/mailboxes/ann@a.test/enabled", &[("enabled", "true")]).await;
    assert_eq!(enable.location(), "/mailboxes");
    assert!(store.get_mailbox(&"ann@a.test".parse().unwrap()).await.unwrap().unwrap().enabled);

    let short = browser.post("/mailboxes/ann@a.test/password", &[("password", "short")]).await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.body.contains("id=\"e-password\""), "{}", short.body);
    let reset =
        browser.post("/mailboxes/ann@a.test/password", &[("password", "a new password")]).await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER);
    assert!(
        store
            .get_mailbox(&"ann@a.test".parse().unwrap())
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .verify("a new password")
    );

    let removed = browser.post("/mailboxes/ann@a.test/delete", &[("confirm", "yes")]).await;
    assert_eq!(removed.location(), "/mailboxes");
    assert!(store.get_mailbox(&"ann@a.test".parse().unwrap()).await.unwrap().is_none());
    assert_eq!(browser.get("/mailboxes/ann@a.test").await.status, StatusCode::NOT_FOUND);
}

async fn the_list_filters_by_domain_and_search_and_pages(store: Store) {
    add_test_domains(&store).await;
    for i in 0..105 {
        add_mailbox(&store, &format!("user{i:03}@a.test")).await;
    }
    add_mailbox(&store, "bob@b.test").await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let first = browser.get("/mailboxes?domain=a.test").await;
    assert!(first.body.contains("user099@a.test") && !first.body.contains("user100@a.test"));
    assert!(
        first.body.contains("href=\"/mailboxes?domain=a.test&#38;q=&#38;after=user099@a.test\""),
        "{}",
        first.body
    );
    let second = browser.get("/mailboxes?domain=a.test&q=&after=user099%40a.test").await;
    assert!(second.body.contains("user104@a.test") && !second.body.contains("user099@a.test"));
    assert!(!second.body.contains("rel=\"next\""));
    let search = browser.get("/mailboxes?q=BOB").await;
    assert!(
        search.body.contains("bob@b.test") && !search.body.contains("user000"),
        "{}",
        search.body
    );
}

async fn a_domain_admin_sees_and_touches_only_its_domains_mailboxes(store: Store) {
    add_test_domains(&store).await;
    add_mailbox(&store, "ann@a.test").await;
    add_mailbox(&store, "bob@b.test").await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "dora").await;
    let list = browser.get("/mailboxes").await;
    assert!(list.body.contains("ann@a.test") && !list.body.contains("bob@b.test"));
    assert_eq!(browser.get("/mailboxes?domain=b.test").await.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.get("/mailboxes/bob@b.test").await.status, StatusCode::FORBIDDEN);
    let add = browser
        .post(
            "/mailboxes",
            &[
                ("address", "eve@b.test"),
                ("password", "long enough!"),
                ("display_name", ""),
                ("quota", ""),
            ],
        )
        .await;
    assert_eq!(add.status, StatusCode::FORBIDDEN);
    for path in [
        "/mailboxes/bob@b.test",
        "/mailboxes/bob@b.test/password",
        "/mailboxes/bob@b.test/enabled",
        "/mailboxes/bob@b.test/delete",
    ] {
        let reply = browser
            .post(
                path,
                &[("password", "long enough!"), ("display_name", "x"), ("enabled", "false")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
    }
    let bob = store.get_mailbox(&"bob@b.test".parse().unwrap()).await.unwrap().unwrap();
    assert!(bob.enabled && bob.display_name.is_empty() && bob.password_hash.verify(PASSWORD));
    assert!(store.get_mailbox(&"eve@b.test".parse().unwrap()).await.unwrap().is_none());

    let own = browser
        .post(
            "/mailboxes",
            &[
                ("address", "cat@a.test"),
                ("password", "long enough!"),
                ("display_name", ""),
                ("quota", ""),
            ],
        )
        .await;
    assert_eq!(own.status, StatusCode::SEE_OTHER, "{}", own.body);

    let api = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let listed = api.call("GET", "/mailboxes", None).await.json();
    let addresses: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses, ["ann@a.test", "cat@a.test"]);
    assert_eq!(api.call("GET", "/mailboxes/bob@b.test", None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        api.call("GET", "/mailboxes?domain=b.test", None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call("PATCH", "/mailboxes/bob@b.test", Some(json!({"enabled": false}))).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call("DELETE", "/mailboxes/bob@b.test", None).await.status,
        StatusCode::FORBIDDEN
    );
    let create = api
        .call(
            "POST",
            "/mailboxes",
            Some(json!({"address": "eve@b.test", "password": "long enough!"})),
        )
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    assert_eq!(create.json()["error"]["code"], "forbidden");
    assert!(store.get_mailbox(&"bob@b.test".parse().unwrap()).await.unwrap().unwrap().enabled);
}

async fn a_display_name_is_shown_escaped(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let payload = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";
    let reply = browser
        .post(
            "/mailboxes",
            &[
                ("address", "x@a.test"),
                ("password", "long enough!"),
                ("display_name", payload),
                ("quota", ""),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    for path in ["/mailboxes", "/mailboxes/x@a.test"] {
        let page = browser.get(path).await;
        assert!(
            !page.body.contains("<script>alert(1)") && !page.body.contains("<img src=x"),
            "{path}: {}",
            page.body
        );
        assert!(
            page.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}: {}",
            page.body
        );
    }
}

async fn a_token_manages_mailboxes(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let created = api.call("POST", "/mailboxes", Some(json!({"address": "Ann@a.test", "password": "api password", "display_name": "Ann", "quota_bytes": 1048576}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let view = created.json();
    assert_eq!(
        (view["address"].as_str(), view["enabled"].as_bool(), view["quota_bytes"].as_u64()),
        (Some("ann@a.test"), Some(true), Some(1048576))
    );
    assert!(
        !created.body.contains("argon2") && !created.body.contains("password"),
        "{}",
        created.body
    );
    api.call(
        "POST",
        "/mailboxes",
        Some(json!({"address": "bob@a.test", "password": "api password"})),
    )
    .await;
    api.call(
        "POST",
        "/mailboxes",
        Some(json!({"address": "cat@b.test", "password": "api password"})),
    )
    .await;

    let page = api.call("GET", "/mailboxes?limit=2", None).await.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], "bob@a.test");
    let rest = api.call("GET", "/mailboxes?limit=2&after=bob%40a.test", None).await.json();
    assert_eq!(rest["items"][0]["address"], "cat@b.test");
    assert!(rest["next"].is_null());
    let filtered = api.call("GET", "/mailboxes?domain=a.test&q=ANN", None).await.json();
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);

    let changed = api
        .call(
            "PATCH",
            "/mailboxes/ann@a.test",
            Some(json!({"enabled": false, "quota_bytes": null, "password": "another password"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.json()["enabled"], false);
    assert!(changed.json()["quota_bytes"].is_null());
    let got = store.get_mailbox(&"ann@a.test".parse().unwrap()).await.unwrap().unwrap();
    assert!(got.password_hash.verify("another password") && got.display_name == "Ann");
    let kept = api
        .call("PATCH", "/mailboxes/ann@a.test", Some(json!({"display_name": "Ann B"})))
        .await
        .json();
    assert_eq!(
        (kept["display_name"].as_str(), kept["enabled"].as_bool()),
        (Some("Ann B"), Some(false))
    );

    let dup = api
        .call(
            "POST",
            "/mailboxes",
            Some(json!({"address": "ann@a.test", "password": "api password"})),
        )
        .await;
    assert_eq!(
        (dup.status, dup.json()["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate"))
    );
    let short = api
        .call("POST", "/mailboxes", Some(json!({"address": "dan@a.test", "password": "short"})))
        .await;
    assert_eq!(
        (short.status, short.json()["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("password"))
    );
    let zero = api.call("PATCH", "/mailboxes/ann@a.test", Some(json!({"quota_bytes": 0}))).await;
    assert_eq!(zero.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown =
        api.call("PATCH", "/mailboxes/ann@a.test", Some(json!({"password_hash": "x"}))).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);

    assert_eq!(
        api.call("DELETE", "/mailboxes/ann@a.test", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.call("GET", "/mailboxes/ann@a.test", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.call("DELETE", "/mailboxes/ann@a.test", None).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn a_read_only_token_cannot_change_mailboxes(store: Store) {
    add_test_domains(&store).await;
    add_mailbox(&store, "ann@a.test").await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let reader = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    assert_eq!(reader.call("GET", "/mailboxes", None).await.status, StatusCode::OK);
    assert_eq!(reader.call("GET", "/mailboxes/ann@a.test", None).await.status, StatusCode::OK);
    for (method, path, body) in [
        ("POST", "/mailboxes", json!({"address": "bob@a.test", "password": "long enough!"})),
        ("PATCH", "/mailboxes/ann@a.test", json!({"enabled": false})),
        ("DELETE", "/mailboxes/ann@a.test", json!(null)),
    ] {
        let reply = reader.call(method, path, (!body.is_null()).then_some(body)).await;
        assert_eq!(
            (reply.status, reply.json()["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{method} {path}"
        );
    }
    assert_eq!(store.list_mailboxes(None).await.unwrap().len(), 1);
    assert!(store.get_mailbox(&"ann@a.test".parse().unwrap()).await.unwrap().unwrap().enabled);
}

async fn the_openapi_document_has_the_mailbox_endpoints(store: Store) {
    let app = console(&store);
    let doc = send(
        &app,
        axum::http::Request::get("/api/v1/openapi.json").body(axum::body::Body::empty()).unwrap(),
    )
    .await
    .json();
    for (path, method) in [
        ("/mailboxes", "get"),
        ("/mailboxes", "post"),
        ("/mailboxes/{address}", "get"),
        ("/mailboxes/{address}", "patch"),
        ("/mailboxes/{address}", "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    let params: Vec<&str> = doc["paths"]["/mailboxes"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["limit", "after", "domain", "q", "If-None-Match"]);
}
