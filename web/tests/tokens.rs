//! API tokens in the API and the console: shown once, listed without secrets, revoked, and never
//! wider than the credential that creates them.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, DomainKind, DomainName, Role};
use postern_store::now;
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
    a_token_is_shown_once_listed_without_its_secret_and_revoked,
    a_read_only_token_cannot_create_tokens,
    a_limited_token_cannot_create_one_for_other_domains,
    a_token_cannot_outlive_the_token_that_creates_it,
    an_admin_sees_every_token_and_a_domain_admin_its_own,
    a_token_sees_and_revokes_only_tokens_no_wider_than_itself,
    the_console_shows_a_new_token_once_and_revokes_it,
    the_openapi_document_has_tokens_and_admins,
    a_good_token_is_checked_in_memory_until_the_change_feed_says_otherwise,
);

async fn a_token_is_shown_once_listed_without_its_secret_and_revoked(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let created =
        api.call("POST", "/tokens", Some(json!({"name": "backup", "access": "read"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let created = created.json();
    let bearer = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(bearer.starts_with("pst_") && bearer.contains(&id));
    assert_eq!(created["access"], "read");
    assert_eq!(created["owner"], "alice");
    assert!(created["expires_at"].is_null());

    let list = api.call("GET", "/tokens", None).await;
    assert_eq!(list.json()["items"].as_array().unwrap().len(), 2);
    // `pst_<id>_<secret>`; the secret is URL-safe base64 and may hold `_` itself.
    let secret = bearer.strip_prefix("pst_").and_then(|t| t.split_once('_')).unwrap().1;
    assert!(secret.len() >= 32, "{bearer}");
    assert!(!list.body.contains(secret), "the secret is never listed");
    let one = api.call("GET", &format!("/tokens/{id}"), None).await;
    assert_eq!(one.json()["name"], "backup");
    assert!(!one.body.contains(secret) && one.json().get("token").is_none());
    let page = api.call("GET", "/tokens?limit=1", None).await.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let next = page["next"].as_str().unwrap().to_string();
    let rest = api.call("GET", &format!("/tokens?limit=1&after={next}"), None).await.json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["next"].is_null());

    let backup = Api { app: app.clone(), bearer: bearer.clone() };
    assert_eq!(backup.call("GET", "/domains", None).await.status, StatusCode::OK);
    assert_eq!(
        api.call("DELETE", &format!("/tokens/{id}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(backup.call("GET", "/domains", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&api.call("DELETE", &format!("/tokens/{id}"), None).await).1, "not_found");
    let audit = store.list_audit(5, None).await.unwrap();
    assert!(audit.iter().all(|a| !format!("{a:?}").contains(secret)), "no secret in the audit log");
}

async fn a_read_only_token_cannot_create_tokens(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let reader = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    for body in [
        json!({"name": "x"}),
        json!({"name": "x", "access": "read"}),
        json!({"name": "x", "access": "write"}),
    ] {
        let refused = reader.call("POST", "/tokens", Some(body)).await;
        assert_eq!(code(&refused), (StatusCode::FORBIDDEN, "forbidden".into()), "{}", refused.body);
        assert!(
            refused.body.contains("may only read"),
            "the authorization layer refuses it first: {}",
            refused.body
        );
    }
    assert_eq!(store.list_tokens(None).await.unwrap().len(), 1, "nothing was created");
    let other = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let id = other.call("POST", "/tokens", Some(json!({"name": "y"}))).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        code(&reader.call("DELETE", &format!("/tokens/{id}"), None).await).0,
        StatusCode::FORBIDDEN
    );
}

async fn a_limited_token_cannot_create_one_for_other_domains(store: Store) {
    domains(&store, &["a.test", "b.test"]).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let narrow = Api::new(&store, &app, "alice", Access::Write, &["a.test"]).await;
    let wider =
        narrow.call("POST", "/tokens", Some(json!({"name": "w", "domains": ["b.test"]}))).await;
    assert_eq!(code(&wider), (StatusCode::FORBIDDEN, "forbidden".into()), "{}", wider.body);
    let mixed = narrow
        .call("POST", "/tokens", Some(json!({"name": "w", "domains": ["a.test", "b.test"]})))
        .await;
    assert_eq!(mixed.status, StatusCode::FORBIDDEN);
    let same =
        narrow.call("POST", "/tokens", Some(json!({"name": "s", "domains": ["a.test"]}))).await;
    assert_eq!(same.status, StatusCode::CREATED, "{}", same.body);
    // Asking for no domains means "all of mine", which for a limited token is its own few.
    let all = narrow.call("POST", "/tokens", Some(json!({"name": "all"}))).await;
    assert_eq!(all.status, StatusCode::CREATED, "{}", all.body);
    assert_eq!(all.json()["domains"], json!(["a.test"]));
    let made = Api { app: app.clone(), bearer: all.json()["token"].as_str().unwrap().into() };
    let list = made.call("GET", "/domains", None).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // A domain-admin's session or token reaches only its domains.
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let outside =
        dora.call("POST", "/tokens", Some(json!({"name": "x", "domains": ["b.test"]}))).await;
    assert_eq!(outside.status, StatusCode::FORBIDDEN);
    let own = dora.call("POST", "/tokens", Some(json!({"name": "x"}))).await;
    assert_eq!(own.status, StatusCode::CREATED);
    assert_eq!(
        own.json()["domains"],
        json!([]),
        "follows its owner's grants, which are the caller's"
    );
    // An admin naming a domain that does not exist is told so.
    let admin = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let missing = admin
        .call("POST", "/tokens", Some(json!({"name": "m", "domains": ["nowhere.test"]})))
        .await;
    assert_eq!(code(&missing), (StatusCode::UNPROCESSABLE_ENTITY, "invalid".into()));
    let bad = admin
        .call("POST", "/tokens", Some(json!({"name": "m", "domains": ["not a domain"]})))
        .await;
    assert_eq!(bad.json()["error"]["field"], "domains");
}

async fn a_token_cannot_outlive_the_token_that_creates_it(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let expires = now() + 2 * 86_400 + 3600;
    let issued = store
        .create_token("test", &"alice".parse().unwrap(), "short", Access::Write, &[], Some(expires))
        .await
        .unwrap();
    let short = Api { app: app.clone(), bearer: issued.bearer };
    let longer =
        short.call("POST", "/tokens", Some(json!({"name": "l", "expires_in_days": 3}))).await;
    assert_eq!(code(&longer), (StatusCode::FORBIDDEN, "forbidden".into()), "{}", longer.body);
    assert!(longer.body.contains("cannot outlive"));
    let shorter =
        short.call("POST", "/tokens", Some(json!({"name": "s", "expires_in_days": 2}))).await;
    assert_eq!(shorter.status, StatusCode::CREATED, "{}", shorter.body);
    assert!(shorter.json()["expires_at"].as_i64().unwrap() <= expires);
    let unsaid = short.call("POST", "/tokens", Some(json!({"name": "u"}))).await;
    assert_eq!(unsaid.json()["expires_at"].as_i64(), Some(expires), "it expires with its creator");
    let zero =
        short.call("POST", "/tokens", Some(json!({"name": "z", "expires_in_days": 0}))).await;
    assert_eq!(zero.json()["error"]["field"], "expires_in_days");

    // A token without an expiry may create one with any.
    let forever = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let long =
        forever.call("POST", "/tokens", Some(json!({"name": "y", "expires_in_days": 365}))).await;
    assert_eq!(long.status, StatusCode::CREATED);
}

async fn an_admin_sees_every_token_and_a_domain_admin_its_own(store: Store) {
    domains(&store, &["a.test"]).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let alice = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let alices = alice.call("POST", "/tokens", Some(json!({"name": "alices"}))).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doras = dora.call("POST", "/tokens", Some(json!({"name": "doras"}))).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        alice.call("GET", "/tokens", None).await.json()["items"].as_array().unwrap().len(),
        4
    );
    let seen = dora.call("GET", "/tokens", None).await.json();
    assert_eq!(seen["items"].as_array().unwrap().len(), 2);
    assert!(seen["items"].as_array().unwrap().iter().all(|t| t["owner"] == "dora"));
    assert_eq!(
        dora.call("GET", &format!("/tokens/{alices}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        dora.call("DELETE", &format!("/tokens/{alices}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(store.get_token(&alices).await.unwrap().is_some());
    assert_eq!(
        alice.call("DELETE", &format!("/tokens/{doras}"), None).await.status,
        StatusCode::NO_CONTENT
    );
}

async fn a_token_sees_and_revokes_only_tokens_no_wider_than_itself(store: Store) {
    domains(&store, &["a.test", "b.test"]).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test", "b.test"]).await;
    let app = console(&store);
    let token = |access: Access, domains: &[&str], days: Option<i64>| {
        let store = store.clone();
        let domains: Vec<DomainName> = domains.iter().map(|d| d.parse().unwrap()).collect();
        async move {
            let expires = days.map(|d| now() + d * 86_400);
            store
                .create_token("test", &"dora".parse().unwrap(), "t", access, &domains, expires)
                .await
                .unwrap()
        }
    };
    let wide = token(Access::Write, &[], None).await;
    let narrow = token(Access::Write, &["a.test"], None).await;
    let reader = token(Access::Read, &[], None).await;
    let expiring = token(Access::Write, &[], Some(10)).await;
    let narrow_short = token(Access::Write, &["a.test"], Some(5)).await;
    let narrow_read = token(Access::Read, &["a.test"], None).await;
    let api = |issued: &postern_store::model::IssuedToken| Api {
        app: app.clone(),
        bearer: issued.bearer.clone(),
    };
    let listed = |caller: Api| async move {
        let reply = caller.call("GET", "/tokens", None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let mut ids: Vec<String> = reply.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let ids = |tokens: &[&postern_store::model::IssuedToken]| {
        let mut ids: Vec<String> = tokens.iter().map(|t| t.token.id.clone()).collect();
        ids.sort();
        ids
    };

    // The probe: a token limited to a.test listed and revoked its owner's wider tokens.
    assert_eq!(listed(api(&narrow)).await, ids(&[&narrow, &narrow_short, &narrow_read]));
    for wider in [&wide, &reader, &expiring] {
        let id = &wider.token.id;
        assert_eq!(
            code(&api(&narrow).call("GET", &format!("/tokens/{id}"), None).await).0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            code(&api(&narrow).call("DELETE", &format!("/tokens/{id}"), None).await),
            (StatusCode::NOT_FOUND, "not_found".into())
        );
        assert_eq!(
            api(wider).call("GET", "/domains", None).await.status,
            StatusCode::OK,
            "{id} still works"
        );
    }
    // No more access: a read-only token sees only read-only ones.
    assert_eq!(listed(api(&reader)).await, ids(&[&reader, &narrow_read]));
    // No later expiry: an expiring token sees only tokens that expire no later.
    assert_eq!(listed(api(&expiring)).await, ids(&[&expiring, &narrow_short]));
    assert_eq!(
        api(&expiring).call("GET", &format!("/tokens/{}", narrow.token.id), None).await.status,
        StatusCode::NOT_FOUND
    );
    // The widest sees them all, and a narrow one may still revoke what is no wider.
    assert_eq!(listed(api(&wide)).await.len(), 6);
    let id = &narrow_read.token.id;
    assert_eq!(
        api(&narrow).call("DELETE", &format!("/tokens/{id}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(store.get_token(id).await.unwrap().is_none());
    // An admin's read-only token sees everyone's read-only tokens, and no other.
    let alices_reader = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let seen = alices_reader.call("GET", "/tokens", None).await.json();
    assert!(seen["items"].as_array().unwrap().iter().all(|t| t["access"] == "read"), "{seen}");
    assert!(seen.to_string().contains(&reader.token.id), "{seen}");
    // A console session has no token of its own to be narrower than: dora sees all hers.
    let browser = Browser::login(&app, "dora").await;
    let page = browser.get("/tokens").await.body;
    assert!(
        [&wide, &narrow, &reader, &expiring, &narrow_short]
            .iter()
            .all(|t| page.contains(&t.token.id)),
        "{page}"
    );
}

async fn the_console_shows_a_new_token_once_and_revokes_it(store: Store) {
    domains(&store, &["a.test", "b.test"]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let alices = store
        .create_token("test", &"alice".parse().unwrap(), "alices", Access::Write, &[], None)
        .await
        .unwrap();
    let browser = Browser::login(&app, "dora").await;
    let page = browser.get("/tokens").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(&alices.token.id), "a domain-admin sees only its own tokens");
    let other =
        browser.post(&format!("/tokens/{}/delete", alices.token.id), &[("confirm", "yes")]).await;
    assert_eq!(other.location(), "/tokens");
    assert!(store.get_token(&alices.token.id).await.unwrap().is_some(), "nor revokes others'");
    assert!(
        Browser::login(&app, "alice").await.get("/tokens").await.body.contains(&alices.token.id),
        "an admin sees all"
    );
    assert!(page.body.contains("href=\"/tokens\" aria-current=\"page\""), "the section is ready");

    let refused = browser
        .post(
            "/tokens",
            &[
                ("name", "wide"),
                ("access", "write"),
                ("domains", "b.test"),
                ("expires_in_days", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("you do not manage the domain b.test"), "{}", refused.body);
    assert!(refused.body.contains("value=\"wide\""), "what was typed stays");
    let bad = browser
        .post(
            "/tokens",
            &[("name", "x"), ("access", "write"), ("domains", ""), ("expires_in_days", "soon")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("class=\"field-error\""));

    let created = browser
        .post(
            "/tokens",
            &[
                ("name", "ci <script>"),
                ("access", "read"),
                ("domains", "a.test"),
                ("expires_in_days", "30"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert!(!created.body.contains("ci <script>"), "escaped");
    let tokens = store.list_tokens(Some(&"dora".parse().unwrap())).await.unwrap();
    assert_eq!(tokens.len(), 1);
    let token = &tokens[0];
    assert_eq!(
        (token.access, token.domains.clone()),
        (Access::Read, vec!["a.test".parse::<DomainName>().unwrap()])
    );
    assert!(token.expires_at.unwrap() > now() + 29 * 86_400);
    let at =
        created.body.find("value=\"pst_").expect("the bearer is on the page") + "value=\"".len();
    let bearer = created.body[at..].split('"').next().unwrap().to_string();
    assert!(store.authenticate_token(&bearer).await.unwrap().is_some());
    assert!(created.cookies().iter().all(|c| !c.contains(&bearer)), "never in a cookie");

    let list = browser.get("/tokens").await;
    assert!(list.body.contains(&token.id));
    assert!(!list.body.contains(&bearer), "shown once, never again");
    let revoked =
        browser.post(&format!("/tokens/{}/delete", token.id), &[("confirm", "yes")]).await;
    assert_eq!(revoked.location(), "/tokens");
    assert!(store.authenticate_token(&bearer).await.unwrap().is_none());
}

async fn the_openapi_document_has_tokens_and_admins(store: Store) {
    let doc = postern_web::api::openapi();
    let doc = serde_json::to_value(&doc).unwrap();
    for (path, method) in [
        ("/tokens", "get"),
        ("/tokens", "post"),
        ("/tokens/{id}", "get"),
        ("/tokens/{id}", "delete"),
        ("/admins", "get"),
        ("/admins", "post"),
        ("/admins/{name}", "get"),
        ("/admins/{name}", "patch"),
        ("/admins/{name}", "delete"),
        ("/admins/{name}/password", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    let created = &doc["components"]["schemas"]["CreatedToken"];
    assert!(created.to_string().contains("\"token\""), "{created}");
    drop(store);
}

/// A good token is checked in memory: a revocation by another process (the command line, played
/// by a second handle on the same database) ends it as soon as the change feed brings the new
/// revision, and one through the API at once.
async fn a_good_token_is_checked_in_memory_until_the_change_feed_says_otherwise(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let issued = store
        .create_token("test", &"alice".parse().unwrap(), "cli", Access::Read, &[], None)
        .await
        .unwrap();
    let read = Api { app: app.clone(), bearer: issued.bearer.clone() };
    assert_eq!(read.call("GET", "/domains", None).await.status, StatusCode::OK);

    let other = Store::open(store.database(), store.key_file()).await.unwrap();
    other.revoke_token("cli:root", &issued.token.id).await.unwrap();
    let revoked_at = other.revision().await.unwrap();
    // This process has not heard of the change yet: the token is still good in memory, and no
    // store read happened to find otherwise.
    assert_eq!(read.call("GET", "/domains", None).await.status, StatusCode::OK);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let watcher = store.spawn_watcher(shutdown.clone());
    let mut feed = store.subscribe();
    tokio::time::timeout(std::time::Duration::from_secs(20), feed.wait_for(|r| *r >= revoked_at))
        .await
        .expect("the change feed brings the other process's revision")
        .unwrap();
    assert_eq!(read.call("GET", "/domains", None).await.status, StatusCode::UNAUTHORIZED);
    shutdown.cancel();
    let _ = watcher.await;
    other.close().await;

    // Revoked through the API: the very next request fails.
    let issued = store
        .create_token("test", &"alice".parse().unwrap(), "api", Access::Read, &[], None)
        .await
        .unwrap();
    let read = Api { app: app.clone(), bearer: issued.bearer };
    assert_eq!(read.call("GET", "/domains", None).await.status, StatusCode::OK);
    let path = format!("/tokens/{}", issued.token.id);
    assert_eq!(api.call("DELETE", &path, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(read.call("GET", "/domains", None).await.status, StatusCode::UNAUTHORIZED);
    // A wrong secret for a good token's ID is still refused (and counted).
    let wrong = format!("{}x", api.bearer);
    let wrong = Api { app: app.clone(), bearer: wrong };
    assert_eq!(wrong.call("GET", "/domains", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.call("GET", "/domains", None).await.status, StatusCode::OK);
}

/// Not a test: how long 1000 in-process requests take (`--ignored --nocapture`).
#[tokio::test]
#[ignore]
async fn time_a_thousand_requests() {
    let db = postern_store::testing::TestDb::sqlite();
    let store = db.open().await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let names: Vec<String> = (0..100).map(|i| format!("d{i}.test")).collect();
    domains(&store, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    for path in ["/domains?limit=100", "/domains?limit=1", "/domains?limit=100", "/domains?limit=1"]
    {
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            assert_eq!(api.call("GET", path, None).await.status, StatusCode::OK);
        }
        eprintln!("1000 requests of {path}: {:?}", started.elapsed());
    }
    store.close().await;
}
