//! Transports and relay settings in the console and the API: global only; the AUTH password is
//! write-only, never shown or returned.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, Role, TlsPolicy, TransportPattern};
use serde_json::json;
use support::*;

const SECRET: &str = "smarthost-secret-42";

fn pat(s: &str) -> TransportPattern {
    s.parse().unwrap()
}

async fn rule(
    store: &postern_store::Store,
    pattern: &str,
) -> Option<postern_store::model::TransportRule> {
    store.list_transports().await.unwrap().into_iter().find(|r| r.pattern == pat(pattern))
}

postern_store::store_tests!(
    a_smarthost_is_set_in_the_console_and_its_password_never_shown,
    a_bad_transport_says_what_is_wrong_and_keeps_what_was_typed,
    transports_are_for_global_admins_only,
    a_token_manages_transports_and_never_reads_a_password
);

async fn a_smarthost_is_set_in_the_console_and_its_password_never_shown(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let reply = browser
        .post(
            "/transports",
            &[
                ("pattern", "*"),
                ("transport", "smtp:[relay.example.net]:587"),
                ("tls", "verify"),
                ("username", "postern"),
                ("password", SECRET),
            ],
        )
        .await;
    assert_eq!(reply.location(), "/transports", "{}", reply.body);
    assert!(flash_text(&reply).starts_with("Transport for * saved; no engine has applied it yet"));
    let saved = rule(&store, "*").await.unwrap();
    assert_eq!(
        (saved.transport.to_string().as_str(), saved.tls),
        ("smtp:[relay.example.net]:587", TlsPolicy::Verify)
    );
    assert_eq!(saved.auth.as_ref().unwrap().password, SECRET);

    let page = browser.get("/transports").await;
    assert!(
        page.body.contains("smtp:[relay.example.net]:587")
            && page.body.contains("postern, password set"),
        "{}",
        page.body
    );
    let edit = browser.get("/transports?edit=%2A").await;
    assert!(
        edit.body.contains("name=\"replace\" value=\"1\"")
            && edit.body.contains("value=\"postern\""),
        "{}",
        edit.body
    );
    for body in [&page.body, &edit.body] {
        assert!(!body.contains(SECRET), "the password on a page");
    }

    // Replacing with the same user name and no password keeps the stored password.
    let replaced = browser
        .post(
            "/transports",
            &[
                ("pattern", "*"),
                ("transport", "smtp:[relay.example.net]:465"),
                ("tls", "encrypt"),
                ("username", "postern"),
                ("password", ""),
                ("replace", "1"),
            ],
        )
        .await;
    assert_eq!(replaced.status, StatusCode::SEE_OTHER, "{}", replaced.body);
    let saved = rule(&store, "*").await.unwrap();
    assert_eq!((saved.tls, saved.auth.unwrap().password.as_str()), (TlsPolicy::Encrypt, SECRET));
    // Another user name needs its password.
    let other = browser
        .post(
            "/transports",
            &[
                ("pattern", "*"),
                ("transport", "smtp:[relay.example.net]:465"),
                ("tls", "encrypt"),
                ("username", "someone"),
                ("password", ""),
                ("replace", "1"),
            ],
        )
        .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(other.body.contains("id=\"e-password\">give the password"), "{}", other.body);
    // No user name: no AUTH.
    browser
        .post(
            "/transports",
            &[
                ("pattern", "*"),
                ("transport", "smtp:[relay.example.net]:25"),
                ("tls", "may"),
                ("username", ""),
                ("password", ""),
                ("replace", "1"),
            ],
        )
        .await;
    assert!(rule(&store, "*").await.unwrap().auth.is_none());
    let page = browser.get("/transports").await;
    assert!(page.body.contains("<td>none</td>"), "{}", page.body);

    let audit = store.list_audit(10, None).await.unwrap();
    assert!(audit.iter().all(|e| !format!("{:?}", e.after).contains(SECRET)
        && !format!("{:?}", e.before).contains(SECRET)));

    // The text of an error: transport is shown inert.
    let xss = browser
        .post(
            "/transports",
            &[
                ("pattern", "gone.example"),
                ("transport", "error:<script>alert(1)</script>"),
                ("tls", "may"),
                ("username", ""),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(xss.status, StatusCode::SEE_OTHER, "{}", xss.body);
    let page = browser.get("/transports").await;
    assert!(
        page.body.contains("error:&#60;script&#62;alert(1)&#60;/script&#62;")
            && !page.body.contains("<script>alert"),
        "{}",
        page.body
    );

    let removed = browser.post("/transports/delete", &[("pattern", "*"), ("confirm", "yes")]).await;
    assert_eq!(removed.location(), "/transports");
    assert!(rule(&store, "*").await.is_none());
}

async fn a_bad_transport_says_what_is_wrong_and_keeps_what_was_typed(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    for (fields, field, message) in [
        (
            [
                ("pattern", "not a domain"),
                ("transport", "mx"),
                ("tls", "may"),
                ("username", ""),
                ("password", ""),
            ],
            "pattern",
            "no spaces in a domain name",
        ),
        (
            [
                ("pattern", "lists.example"),
                ("transport", "pipe:/bin/sh"),
                ("tls", "may"),
                ("username", ""),
                ("password", ""),
            ],
            "transport",
            "is not a transport",
        ),
        (
            [
                ("pattern", "lists.example"),
                ("transport", "mx"),
                ("tls", "sometimes"),
                ("username", ""),
                ("password", ""),
            ],
            "tls",
            "not a TLS policy",
        ),
        (
            [
                ("pattern", "lists.example"),
                ("transport", "discard"),
                ("tls", "may"),
                ("username", "u"),
                ("password", SECRET),
            ],
            "username",
            "credentials apply to smtp",
        ),
        (
            [
                ("pattern", "lists.example"),
                ("transport", "mx"),
                ("tls", "may"),
                ("username", ""),
                ("password", SECRET),
            ],
            "username",
            "give the user name",
        ),
    ] {
        let reply = browser.post("/transports", &fields).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}: {}", reply.body);
        let at = reply
            .body
            .find(&format!("id=\"e-{field}\">"))
            .unwrap_or_else(|| panic!("{field}: {}", reply.body));
        assert!(
            reply.body[at..].split("</p>").next().unwrap().contains(message),
            "{message}: {}",
            reply.body
        );
        assert!(reply.body.contains(&format!("value=\"{}\"", fields[0].1)), "kept: {}", reply.body);
        // The password was not what was wrong: it is put back into this response, so that
        // it need not be typed again (issue 16), and into no other page.
        let typed = fields[4].1;
        if !typed.is_empty() {
            assert!(reply.body.contains(&format!("value=\"{typed}\"")), "{}", reply.body);
        }
        assert!(!browser.get("/transports").await.body.contains(SECRET), "a password shown");
    }
    browser
        .post(
            "/transports",
            &[
                ("pattern", "lists.example"),
                ("transport", "lmtp:127.0.0.1:24"),
                ("tls", "may"),
                ("username", ""),
                ("password", ""),
            ],
        )
        .await;
    let dup = browser
        .post(
            "/transports",
            &[
                ("pattern", "lists.example"),
                ("transport", "mx"),
                ("tls", "may"),
                ("username", ""),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert!(
        dup.body.contains("id=\"e-pattern\">a transport for lists.example already exists"),
        "{}",
        dup.body
    );
    assert_eq!(
        rule(&store, "lists.example").await.unwrap().transport.to_string(),
        "lmtp:127.0.0.1:24"
    );
}

async fn transports_are_for_global_admins_only(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "dora").await;
    assert!(!browser.get("/").await.body.contains("href=\"/transports\""));
    assert_eq!(browser.get("/transports").await.status, StatusCode::FORBIDDEN);
    let add = browser
        .post(
            "/transports",
            &[
                ("pattern", "a.test"),
                ("transport", "discard"),
                ("tls", "may"),
                ("username", ""),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(add.status, StatusCode::FORBIDDEN);
    store
        .set_transport("test", &pat("b.test"), "mx".parse().unwrap(), TlsPolicy::May, None)
        .await
        .unwrap();
    assert_eq!(
        browser.post("/transports/delete", &[("pattern", "b.test")]).await.status,
        StatusCode::FORBIDDEN
    );

    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let narrow = Api::new(&store, &app, "alice", Access::Write, &["a.test"]).await;
    for api in [&dora, &narrow] {
        assert_eq!(api.call("GET", "/transports", None).await.status, StatusCode::FORBIDDEN);
        assert_eq!(api.call("GET", "/transports/b.test", None).await.status, StatusCode::FORBIDDEN);
        assert_eq!(
            api.call(
                "POST",
                "/transports",
                Some(json!({"pattern": "a.test", "transport": "discard"}))
            )
            .await
            .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            api.call("PUT", "/transports/b.test", Some(json!({"transport": "discard"})))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            api.call("DELETE", "/transports/b.test", None).await.status,
            StatusCode::FORBIDDEN
        );
    }
    let reader = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    assert_eq!(reader.call("GET", "/transports", None).await.status, StatusCode::OK);
    for (method, path, body) in [
        ("POST", "/transports", Some(json!({"pattern": "a.test", "transport": "discard"}))),
        ("PUT", "/transports/b.test", Some(json!({"transport": "discard"}))),
        ("DELETE", "/transports/b.test", None),
    ] {
        let reply = reader.call(method, path, body).await;
        assert_eq!(
            (reply.status, reply.json()["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{method} {path}"
        );
    }
    assert_eq!(store.list_transports().await.unwrap().len(), 1);
    assert_eq!(rule(&store, "b.test").await.unwrap().transport.to_string(), "mx");
}

async fn a_token_manages_transports_and_never_reads_a_password(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let created = api.call("POST", "/transports", Some(json!({"pattern": "*", "transport": "smtp:[relay.example.net]:587", "tls": "verify", "username": "postern", "password": SECRET}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let view = created.json();
    assert_eq!(
        (view["tls"].as_str(), view["username"].as_str(), view["password_set"].as_bool()),
        (Some("verify"), Some("postern"), Some(true))
    );
    assert!(
        !created.body.contains(SECRET) && !created.body.contains("\"password\""),
        "{}",
        created.body
    );
    let dup =
        api.call("POST", "/transports", Some(json!({"pattern": "*", "transport": "mx"}))).await;
    assert_eq!(
        (dup.status, dup.json()["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate"))
    );

    let put = api
        .call("PUT", "/transports/.example.org", Some(json!({"transport": "lmtp:127.0.0.1:24"})))
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(
        (put.json()["tls"].as_str(), put.json()["password_set"].as_bool()),
        (Some("may"), Some(false))
    );
    api.call(
        "PUT",
        "/transports/lists.example",
        Some(json!({"transport": "discard", "tls": "none"})),
    )
    .await;
    let kept = api.call("PUT", "/transports/%2A", Some(json!({"transport": "smtp:[relay.example.net]:465", "tls": "encrypt", "username": "postern"}))).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    assert_eq!(
        rule(&store, "*").await.unwrap().auth.unwrap().password,
        SECRET,
        "the stored password stays"
    );
    let needs = api
        .call(
            "PUT",
            "/transports/*",
            Some(json!({"transport": "smtp:[relay.example.net]:465", "username": "other"})),
        )
        .await;
    assert_eq!(
        (needs.status, needs.json()["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("password"))
    );
    let bad =
        api.call("PUT", "/transports/x.example", Some(json!({"transport": "pipe:/bin/sh"}))).await;
    assert_eq!(
        (bad.status, bad.json()["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("transport"))
    );
    let unknown = api
        .call("PUT", "/transports/x.example", Some(json!({"transport": "mx", "secret": 1})))
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_tls = api
        .call(
            "POST",
            "/transports",
            Some(json!({"pattern": "y.example", "transport": "mx", "tls": "sometimes"})),
        )
        .await;
    assert_eq!(bad_tls.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Text order: "*" < ".example.org" < "lists.example".
    let page = api.call("GET", "/transports?limit=2", None).await;
    assert!(!page.body.contains(SECRET));
    let page = page.json();
    assert_eq!(page["items"][0]["pattern"], "*");
    assert_eq!(page["items"][1]["pattern"], ".example.org");
    assert_eq!(page["next"], ".example.org");
    let rest = api.call("GET", "/transports?limit=2&after=.example.org", None).await.json();
    assert_eq!(rest["items"][0]["pattern"], "lists.example");
    assert!(rest["next"].is_null());
    let one = api.call("GET", "/transports/*", None).await;
    assert_eq!(one.json()["transport"], "smtp:[relay.example.net]:465");
    assert!(!one.body.contains(SECRET));

    assert_eq!(
        api.call("DELETE", "/transports/.example.org", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("DELETE", "/transports/.example.org", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("GET", "/transports/.example.org", None).await.status,
        StatusCode::NOT_FOUND
    );

    let doc = send(
        &app,
        axum::http::Request::get("/api/v1/openapi.json").body(axum::body::Body::empty()).unwrap(),
    )
    .await;
    let doc = doc.json();
    for (path, method) in [
        ("/transports", "get"),
        ("/transports", "post"),
        ("/transports/{pattern}", "get"),
        ("/transports/{pattern}", "put"),
        ("/transports/{pattern}", "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    let view = &doc["components"]["schemas"]["TransportView"]["properties"];
    assert!(view["password_set"].is_object() && view["password"].is_null(), "{view}");
}
