//! Aliases in the console and the API: add, list, change destinations, remove; loops refused
//! next to the field; domain scoping.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, Role};
use serde_json::json;
use support::*;

fn src(s: &str) -> postern_store::model::AliasSource {
    s.parse().unwrap()
}

postern_store::store_tests!(
    an_alias_is_added_changed_and_removed_in_the_console,
    refusals_show_next_to_the_field_with_what_was_typed,
    a_domain_admin_sees_and_touches_only_its_domains_aliases,
    a_token_manages_aliases
);

async fn an_alias_is_added_changed_and_removed_in_the_console(store: Store) {
    add_test_domains(&store).await;
    add_mailbox(&store, "ann@a.test").await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let reply = browser
        .post(
            "/aliases",
            &[("source", "Team@A.test"), ("destinations", "ann@a.test,\r\nout@elsewhere.example")],
        )
        .await;
    assert_eq!(reply.location(), "/aliases", "{}", reply.body);
    assert!(
        flash_text(&reply).starts_with("Alias team@a.test added; no engine has applied it yet")
    );
    let alias = store.get_alias(&src("team@a.test")).await.unwrap().unwrap();
    let destinations: Vec<String> = alias.destinations.iter().map(ToString::to_string).collect();
    assert_eq!(destinations, ["ann@a.test", "out@elsewhere.example"]);

    let catch_all =
        browser.post("/aliases", &[("source", "@a.test"), ("destinations", "ann@a.test")]).await;
    assert_eq!(catch_all.status, StatusCode::SEE_OTHER, "{}", catch_all.body);
    let list = browser.get("/aliases").await;
    assert!(
        list.body.contains("href=\"/aliases/@a.test\"")
            && list.body.contains("out@elsewhere.example"),
        "{}",
        list.body
    );

    let page = browser.get("/aliases/team@a.test").await;
    assert!(page.body.contains("ann@a.test\nout@elsewhere.example</textarea>"), "{}", page.body);
    let changed =
        browser.post("/aliases/team@a.test", &[("destinations", "other@elsewhere.example")]).await;
    assert_eq!(changed.location(), "/aliases/team@a.test");
    let alias = store.get_alias(&src("team@a.test")).await.unwrap().unwrap();
    assert_eq!(alias.destinations, vec!["other@elsewhere.example".parse().unwrap()]);

    let removed = browser.post("/aliases/team@a.test/delete", &[("confirm", "yes")]).await;
    assert_eq!(removed.location(), "/aliases");
    assert!(store.get_alias(&src("team@a.test")).await.unwrap().is_none());
    assert_eq!(browser.get("/aliases/team@a.test").await.status, StatusCode::NOT_FOUND);
}

async fn refusals_show_next_to_the_field_with_what_was_typed(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    for (source, destinations, status, field, message) in [
        (
            "not an address",
            "x@y.test",
            StatusCode::UNPROCESSABLE_ENTITY,
            "source",
            "has no @domain",
        ),
        (
            "x@nowhere.test",
            "x@y.test",
            StatusCode::UNPROCESSABLE_ENTITY,
            "source",
            "does not exist",
        ),
        (
            "x@a.test",
            "good@y.test\n<bad>",
            StatusCode::UNPROCESSABLE_ENTITY,
            "destinations",
            "&#60;bad&#62;",
        ),
        ("x@a.test", " , ", StatusCode::UNPROCESSABLE_ENTITY, "destinations", "at least one"),
    ] {
        let reply =
            browser.post("/aliases", &[("source", source), ("destinations", destinations)]).await;
        assert_eq!(reply.status, status, "{source}: {}", reply.body);
        let error = format!("<p class=\"field-error\" id=\"e-{field}\">");
        let at = reply.body.find(&error).unwrap_or_else(|| panic!("{field}: {}", reply.body));
        assert!(
            reply.body[at..].split("</p>").next().unwrap().contains(message),
            "{message}: {}",
            reply.body
        );
        assert!(
            reply.body.contains(&format!("value=\"{}\"", source.replace('<', "&#60;"))),
            "kept: {}",
            reply.body
        );
    }

    browser.post("/aliases", &[("source", "a@a.test"), ("destinations", "b@a.test")]).await;
    let dup =
        browser.post("/aliases", &[("source", "a@a.test"), ("destinations", "c@a.test")]).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert!(dup.body.contains("id=\"e-source\">alias a@a.test already exists"), "{}", dup.body);

    let looped =
        browser.post("/aliases", &[("source", "b@a.test"), ("destinations", "a@a.test")]).await;
    assert_eq!(looped.status, StatusCode::CONFLICT);
    let at =
        looped.body.find("id=\"e-destinations\">").expect("the loop is shown at the destinations");
    assert!(looped.body[at..].contains("alias loop"), "{}", looped.body);
    assert!(looped.body.contains(">a@a.test</textarea>"), "kept: {}", looped.body);
    assert!(store.get_alias(&src("b@a.test")).await.unwrap().is_none());

    browser.post("/aliases", &[("source", "c@a.test"), ("destinations", "a@a.test")]).await;
    let change = browser.post("/aliases/a@a.test", &[("destinations", "c@a.test")]).await;
    assert_eq!(change.status, StatusCode::CONFLICT);
    assert!(change.body.contains("id=\"e-destinations\">"), "{}", change.body);
    assert!(change.body.contains(">c@a.test</textarea>"), "kept: {}", change.body);
    assert_eq!(
        store.get_alias(&src("a@a.test")).await.unwrap().unwrap().destinations,
        vec!["b@a.test".parse().unwrap()]
    );
}

async fn a_domain_admin_sees_and_touches_only_its_domains_aliases(store: Store) {
    add_test_domains(&store).await;
    store.add_alias("test", &src("x@a.test"), &["y@out.test".parse().unwrap()]).await.unwrap();
    store.add_alias("test", &src("x@b.test"), &["y@out.test".parse().unwrap()]).await.unwrap();
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "dora").await;
    let list = browser.get("/aliases").await;
    assert!(list.body.contains("x@a.test") && !list.body.contains("x@b.test"), "{}", list.body);
    assert_eq!(browser.get("/aliases?domain=b.test").await.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.get("/aliases/x@b.test").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        browser
            .post("/aliases", &[("source", "@b.test"), ("destinations", "me@out.test")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        browser.post("/aliases/x@b.test", &[("destinations", "me@out.test")]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(browser.post("/aliases/x@b.test/delete", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        store.get_alias(&src("x@b.test")).await.unwrap().unwrap().destinations,
        vec!["y@out.test".parse().unwrap()]
    );
    assert!(store.get_alias(&src("@b.test")).await.unwrap().is_none());

    let api = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let listed = api.call("GET", "/aliases", None).await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["source"], "x@a.test");
    for (method, path, body) in [
        ("GET", "/aliases/x@b.test", None),
        ("GET", "/aliases?domain=b.test", None),
        ("POST", "/aliases", Some(json!({"source": "@b.test", "destinations": ["me@out.test"]}))),
        ("PUT", "/aliases/x@b.test", Some(json!({"destinations": ["me@out.test"]}))),
        ("DELETE", "/aliases/x@b.test", None),
    ] {
        let reply = api.call(method, path, body).await;
        assert_eq!(
            (reply.status, reply.json()["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{method} {path}"
        );
    }
    assert!(store.get_alias(&src("x@b.test")).await.unwrap().is_some());
}

async fn a_token_manages_aliases(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let created = api
        .call(
            "POST",
            "/aliases",
            Some(json!({"source": "@A.test", "destinations": ["Boss@Out.test"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.json()["source"], "@a.test");
    assert_eq!(created.json()["destinations"], json!(["boss@out.test"]));
    api.call(
        "POST",
        "/aliases",
        Some(json!({"source": "a@a.test", "destinations": ["x@out.test"]})),
    )
    .await;
    api.call(
        "POST",
        "/aliases",
        Some(json!({"source": "b@b.test", "destinations": ["x@out.test"]})),
    )
    .await;

    let page = api.call("GET", "/aliases?limit=2", None).await.json();
    assert_eq!(page["items"][0]["source"], "@a.test");
    assert_eq!(page["next"], "a@a.test");
    let rest = api.call("GET", "/aliases?limit=2&after=a@a.test", None).await.json();
    assert_eq!(rest["items"][0]["source"], "b@b.test");
    assert!(rest["next"].is_null());
    assert_eq!(
        api.call("GET", "/aliases?domain=b.test", None).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.call("GET", "/aliases/@a.test", None).await.json()["destinations"][0],
        "boss@out.test"
    );

    let dup = api
        .call(
            "POST",
            "/aliases",
            Some(json!({"source": "a@a.test", "destinations": ["y@out.test"]})),
        )
        .await;
    assert_eq!(
        (dup.status, dup.json()["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate"))
    );
    let bad = api
        .call("POST", "/aliases", Some(json!({"source": "c@a.test", "destinations": ["nope"]})))
        .await;
    assert_eq!(
        (bad.status, bad.json()["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("destinations"))
    );
    let empty =
        api.call("POST", "/aliases", Some(json!({"source": "c@a.test", "destinations": []}))).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);

    let replaced = api
        .call(
            "PUT",
            "/aliases/a@a.test",
            Some(json!({"destinations": ["y@out.test", "z@out.test"]})),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.json()["destinations"], json!(["y@out.test", "z@out.test"]));
    api.call("POST", "/aliases", Some(json!({"source": "c@a.test", "destinations": ["a@a.test"]})))
        .await;
    let looped =
        api.call("PUT", "/aliases/a@a.test", Some(json!({"destinations": ["c@a.test"]}))).await;
    assert_eq!(
        (looped.status, looped.json()["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    assert_eq!(
        api.call("PUT", "/aliases/none@a.test", Some(json!({"destinations": ["x@out.test"]})))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    assert_eq!(api.call("DELETE", "/aliases/c@a.test", None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.call("DELETE", "/aliases/c@a.test", None).await.status, StatusCode::NOT_FOUND);

    let reader = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    assert_eq!(reader.call("GET", "/aliases", None).await.status, StatusCode::OK);
    for (method, path, body) in [
        ("POST", "/aliases", Some(json!({"source": "r@a.test", "destinations": ["x@out.test"]}))),
        ("PUT", "/aliases/a@a.test", Some(json!({"destinations": ["r@out.test"]}))),
        ("DELETE", "/aliases/a@a.test", None),
    ] {
        let reply = reader.call(method, path, body).await;
        assert_eq!(
            (reply.status, reply.json()["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{method} {path}"
        );
    }
    assert_eq!(store.get_alias(&src("a@a.test")).await.unwrap().unwrap().destinations.len(), 2);

    let doc = send(
        &app,
        axum::http::Request::get("/api/v1/openapi.json").body(axum::body::Body::empty()).unwrap(),
    )
    .await
    .json();
    for (path, method) in [
        ("/aliases", "get"),
        ("/aliases", "post"),
        ("/aliases/{source}", "get"),
        ("/aliases/{source}", "put"),
        ("/aliases/{source}", "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
}
