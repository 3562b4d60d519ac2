//! Administrators in the API and the console: global admins only, one-time passwords shown once,
//! no hashes anywhere, and the last admin kept.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, DomainKind, Role};
use serde_json::json;
use support::*;

async fn domains(store: &Store, names: &[&str]) {
    for name in names {
        store.add_domain("test", &name.parse().unwrap(), DomainKind::Local).await.unwrap();
    }
}

fn code(reply: &Reply) -> (StatusCode, String) {
    (reply.status, reply.json()["error"]["code"].as_str().unwrap_or("").to_string())
}

postern_store::store_tests!(
    the_api_manages_administrators,
    the_last_admin_can_be_neither_removed_nor_demoted,
    only_global_admins_with_write_access_manage_administrators,
    the_console_adds_an_administrator_with_a_one_time_password
);

async fn the_api_manages_administrators(store: Store) {
    domains(&store, &["a.test", "b.test"]).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;

    let dora = api
        .call(
            "POST",
            "/admins",
            Some(json!({"name": "dora", "role": "domain-admin", "domains": ["a.test"]})),
        )
        .await;
    assert_eq!(dora.status, StatusCode::CREATED, "{}", dora.body);
    let dora = dora.json();
    let password = dora["password"].as_str().expect("a one-time password").to_string();
    assert!(password.len() >= 16);
    assert_eq!(dora["must_change_password"], true);
    assert_eq!(dora["domains"], json!(["a.test"]));
    // The one-time password works, once, and must be changed at the first login.
    let (admin, hash) = store.admin_credentials(&"dora".parse().unwrap()).await.unwrap().unwrap();
    assert!(admin.must_change_password && hash.verify(&password));

    let bob = api
        .call("POST", "/admins", Some(json!({"name": "bob", "password": "typed password 1"})))
        .await;
    assert_eq!(bob.status, StatusCode::CREATED);
    assert!(bob.json().get("password").is_none(), "a typed password is not echoed");
    assert_eq!(bob.json()["role"], "admin");
    assert_eq!(bob.json()["must_change_password"], false);
    let short =
        api.call("POST", "/admins", Some(json!({"name": "carl", "password": "short"}))).await;
    assert_eq!(
        (code(&short), short.json()["error"]["field"].as_str()),
        ((StatusCode::UNPROCESSABLE_ENTITY, "invalid".into()), Some("password"))
    );
    let dup = api.call("POST", "/admins", Some(json!({"name": "bob"}))).await;
    assert_eq!(code(&dup).1, "duplicate");
    let no_domains =
        api.call("POST", "/admins", Some(json!({"name": "eve", "role": "domain-admin"}))).await;
    assert_eq!(no_domains.json()["error"]["field"], "domains");

    let list = api.call("GET", "/admins?limit=2", None).await;
    assert_eq!(list.json()["items"].as_array().unwrap().len(), 2);
    assert_eq!(list.json()["next"], "bob");
    for reply in [&list, &api.call("GET", "/admins/dora", None).await] {
        assert!(
            !reply.body.contains("argon2")
                && !reply.body.contains("hash")
                && !reply.body.contains(&password),
            "{}",
            reply.body
        );
    }

    let changed = api
        .call(
            "PATCH",
            "/admins/dora",
            Some(json!({"role": "domain-admin", "domains": ["a.test", "b.test"]})),
        )
        .await;
    assert_eq!(changed.json()["domains"], json!(["a.test", "b.test"]), "{}", changed.body);
    let promoted = api.call("PATCH", "/admins/dora", Some(json!({"role": "admin"}))).await;
    assert_eq!(promoted.json()["role"], "admin");
    assert_eq!(api.call("GET", "/admins/nobody", None).await.status, StatusCode::NOT_FOUND);

    let reset = api.call("POST", "/admins/bob/password", None).await;
    let new = reset.json()["password"].as_str().unwrap().to_string();
    let (bob, hash) = store.admin_credentials(&"bob".parse().unwrap()).await.unwrap().unwrap();
    assert!(bob.must_change_password && hash.verify(&new) && !hash.verify("typed password 1"));

    assert_eq!(api.call("DELETE", "/admins/bob", None).await.status, StatusCode::NO_CONTENT);
    assert!(store.get_admin(&"bob".parse().unwrap()).await.unwrap().is_none());
    assert!(store.list_audit(1, None).await.unwrap()[0].actor.starts_with("api:alice/"));
}

async fn the_last_admin_can_be_neither_removed_nor_demoted(store: Store) {
    domains(&store, &["a.test"]).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let demote = api
        .call(
            "PATCH",
            "/admins/alice",
            Some(json!({"role": "domain-admin", "domains": ["a.test"]})),
        )
        .await;
    assert_eq!(code(&demote), (StatusCode::CONFLICT, "conflict".into()), "{}", demote.body);
    assert!(demote.body.contains("last admin"));
    let remove = api.call("DELETE", "/admins/alice", None).await;
    assert_eq!(code(&remove), (StatusCode::CONFLICT, "conflict".into()));
    assert_eq!(
        store.get_admin(&"alice".parse().unwrap()).await.unwrap().unwrap().role,
        Role::Admin
    );

    // In the console the refusal is on the page.
    let browser = Browser::login(&app, "alice").await;
    let page =
        browser.post("/admins/alice", &[("role", "domain-admin"), ("domains", "a.test")]).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.body.contains("alice is the last admin"), "{}", page.body);
    let removed = browser.post("/admins/alice/delete", &[("confirm", "yes")]).await;
    assert_eq!(removed.location(), "/admins/alice");
    let cookie = removed.cookies().into_iter().find(|c| c.starts_with("postern_flash=")).unwrap();
    let shown = Browser {
        app: app.clone(),
        cookie: format!("{}; {}", browser.cookie, cookie.split(';').next().unwrap()),
    }
    .get("/admins/alice")
    .await;
    assert!(shown.body.contains("alice is the last admin"), "{}", shown.body);
    assert!(store.get_admin(&"alice".parse().unwrap()).await.unwrap().is_some());
}

async fn only_global_admins_with_write_access_manage_administrators(store: Store) {
    domains(&store, &["a.test"]).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let narrow = Api::new(&store, &app, "alice", Access::Write, &["a.test"]).await;
    for api in [&dora, &narrow] {
        assert_eq!(code(&api.call("GET", "/admins", None).await).0, StatusCode::FORBIDDEN);
        assert_eq!(api.call("GET", "/admins/alice", None).await.status, StatusCode::FORBIDDEN);
        assert_eq!(
            api.call("POST", "/admins", Some(json!({"name": "x"}))).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            api.call("PATCH", "/admins/dora", Some(json!({"role": "admin"}))).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            api.call("POST", "/admins/alice/password", None).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(api.call("DELETE", "/admins/alice", None).await.status, StatusCode::FORBIDDEN);
    }
    let reader = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    assert_eq!(reader.call("GET", "/admins", None).await.status, StatusCode::OK);
    assert_eq!(
        reader.call("POST", "/admins", Some(json!({"name": "x"}))).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        reader.call("POST", "/admins/dora/password", None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(reader.call("DELETE", "/admins/dora", None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(store.list_admins().await.unwrap().len(), 2, "nothing changed");

    let browser = Browser::login(&app, "dora").await;
    assert_eq!(browser.get("/admins").await.status, StatusCode::FORBIDDEN);
    assert!(
        !browser.get("/").await.body.contains("href=\"/admins\""),
        "not in a domain-admin's navigation"
    );
    assert_eq!(
        browser.post("/admins", &[("name", "x"), ("role", "admin")]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(browser.post("/admins/alice/delete", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.post("/admins/alice/password", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(store.list_admins().await.unwrap().len(), 2, "nothing changed");
}

async fn the_console_adds_an_administrator_with_a_one_time_password(store: Store) {
    domains(&store, &["a.test"]).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let list = browser.get("/admins").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("href=\"/admins\" aria-current=\"page\""));

    let bad = browser
        .post(
            "/admins",
            &[("name", "Not Valid"), ("role", "admin"), ("domains", ""), ("password", "")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("value=\"Not Valid\"") && bad.body.contains("class=\"field-error\""));
    // A password typed beside a bad name is put back, in this response only.
    let typed = "chosen with care 42";
    let fields = [("name", "Not Valid"), ("role", "admin"), ("domains", ""), ("password", typed)];
    let bad = browser.post("/admins", &fields).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains(&format!("value=\"{typed}\"")), "{}", bad.body);
    assert!(!browser.get("/admins").await.body.contains(typed));
    let missing = browser
        .post(
            "/admins",
            &[
                ("name", "dora"),
                ("role", "domain-admin"),
                ("domains", "nowhere.test"),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(missing.body.contains("nowhere.test"), "{}", missing.body);

    let created = browser
        .post(
            "/admins",
            &[("name", "dora"), ("role", "domain-admin"), ("domains", "a.test"), ("password", "")],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let at = created
        .body
        .find("id=\"one-time\" class=\"secret\" value=\"")
        .expect("the password is shown")
        + "id=\"one-time\" class=\"secret\" value=\"".len();
    let password = created.body[at..].split('"').next().unwrap().to_string();
    let (dora, hash) = store.admin_credentials(&"dora".parse().unwrap()).await.unwrap().unwrap();
    assert!(dora.must_change_password && hash.verify(&password));
    let login = post_form(&app, "/login", None, &[("name", "dora"), ("password", &password)]).await;
    assert_eq!(login.location(), "/password", "the first login asks for a new password");

    let list = browser.get("/admins").await;
    assert!(list.body.contains("href=\"/admins/dora\"") && !list.body.contains(&password));
    let shown = browser.get("/admins/dora").await;
    assert!(!shown.body.contains("argon2") && !shown.body.contains(&password));

    let typed = browser
        .post(
            "/admins",
            &[("name", "bob"), ("role", "admin"), ("domains", ""), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(typed.location(), "/admins");
    let (bob, _) = store.admin_credentials(&"bob".parse().unwrap()).await.unwrap().unwrap();
    assert!(!bob.must_change_password);

    let change =
        browser.post("/admins/bob", &[("role", "domain-admin"), ("domains", "a.test")]).await;
    assert_eq!(change.location(), "/admins/bob");
    assert_eq!(
        store.get_admin(&"bob".parse().unwrap()).await.unwrap().unwrap().role,
        Role::DomainAdmin
    );

    let bobs = Browser::login(&app, "bob").await;
    let reset = browser.post("/admins/bob/password", &[]).await;
    assert_eq!(reset.status, StatusCode::OK);
    assert!(reset.body.contains("id=\"one-time\""));
    assert_eq!(bobs.get("/").await.location(), "/login", "a reset ends their sessions");

    let removed = browser.post("/admins/bob/delete", &[("confirm", "yes")]).await;
    assert_eq!(removed.location(), "/admins");
    assert!(store.get_admin(&"bob".parse().unwrap()).await.unwrap().is_none());
}
