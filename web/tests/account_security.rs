//! Administrator and mailbox passwords refuse the most common ones and the account's own name;
//! console sessions end when idle too long or too old (issue 9, item 16). Time passes by
//! changing the stored timestamps, not by waiting.

mod support;

use postern_store::Store;
use std::time::Duration;

use axum::http::StatusCode;
use postern_store::model::{Access, Role};
use postern_store::testing::hand_edit;
use postern_web::{AppState, Settings, app};
use serde_json::json;
use support::*;

fn refusal(reply: &Reply) -> (StatusCode, String, String) {
    let json = reply.json();
    let field = json["error"]["field"].as_str().unwrap_or("").to_string();
    let message = json["error"]["message"].as_str().unwrap_or("").to_string();
    (reply.status, field, message)
}

postern_store::store_tests!(
    common_passwords_and_own_names_are_refused,
    an_idle_session_ends_and_is_deleted,
    a_busy_session_ends_at_its_absolute_limit,
    the_limits_come_from_the_console_settings
);

async fn common_passwords_and_own_names_are_refused(store: Store) {
    add_test_domains(&store).await;
    add_mailbox(&store, "ann@a.test").await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;

    for (name, password, expected) in [
        ("carl", "password123", "most common passwords"),
        ("carl", "QWERTYUIOP", "most common passwords"),
        ("carlos-admin", "Carlos-Admin", "own name"),
    ] {
        let reply =
            api.call("POST", "/admins", Some(json!({"name": name, "password": password}))).await;
        let (status, field, message) = refusal(&reply);
        assert_eq!(
            (status, field.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "password"),
            "{password}: {}",
            reply.body
        );
        assert!(message.contains(expected), "{password}: {message}");
    }
    assert!(store.get_admin(&"carl".parse().unwrap()).await.unwrap().is_none());

    // Mailbox passwords sign in to SMTP: the same rules.
    let reply =
        api.call("PATCH", "/mailboxes/ann@a.test", Some(json!({"password": "iloveyou"}))).await;
    assert!(refusal(&reply).2.contains("most common passwords"), "{}", reply.body);
    let reply = api
        .call(
            "POST",
            "/mailboxes",
            Some(json!({"address": "bob@a.test", "password": "BOB@a.test"})),
        )
        .await;
    assert!(refusal(&reply).2.contains("own name"), "{}", reply.body);

    // The console's own password change says so next to the field.
    let browser = Browser::login(&app, "alice").await;
    let reply = browser
        .post("/password", &[("current", PASSWORD), ("new", "Password1"), ("repeat", "Password1")])
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("most common passwords"), "{}", reply.body);
    let (_, hash) = store.admin_credentials(&"alice".parse().unwrap()).await.unwrap().unwrap();
    assert!(hash.verify(PASSWORD), "the password did not change");
    let reply = browser.post("/mailboxes/ann@a.test/password", &[("password", "sunshine")]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("most common passwords"), "{}", reply.body);
}

async fn an_idle_session_ends_and_is_deleted(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    assert_eq!(browser.get("/").await.status, StatusCode::OK);

    // Used 20 minutes ago: still good, and the use is recorded, so 20 more minutes later it
    // is only 20 minutes idle.
    hand_edit(&store, "UPDATE console_sessions SET last_seen = last_seen - 1200").await;
    assert_eq!(browser.get("/").await.status, StatusCode::OK);
    hand_edit(&store, "UPDATE console_sessions SET last_seen = last_seen - 1200").await;
    assert_eq!(browser.get("/").await.status, StatusCode::OK);

    // 31 minutes without a request: back to the login page.
    hand_edit(&store, "UPDATE console_sessions SET last_seen = last_seen - 1860").await;
    assert_eq!(browser.get("/").await.location(), "/login");
    // Deleted, not just refused: even marked as used now it does not come back.
    hand_edit(&store, "UPDATE console_sessions SET last_seen = last_seen + 100000").await;
    assert_eq!(browser.get("/").await.location(), "/login");
    // A form posted with it is refused the same way.
    let reply =
        post_form(&app, "/domains", Some(&browser.cookie), &[("csrf", "x"), ("name", "x.test")])
            .await;
    assert_eq!(reply.location(), "/login");
}

async fn a_busy_session_ends_at_its_absolute_limit(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    // Signed in 12 hours and a minute ago, and used a moment ago.
    hand_edit(&store, "UPDATE console_sessions SET created_at = created_at - 43260, expires_at = expires_at - 43260").await;
    assert_eq!(browser.get("/").await.location(), "/login");
}

async fn the_limits_come_from_the_console_settings(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let mut settings = Settings { live_wait: Duration::ZERO, ..Settings::default() };
    settings.options.session_idle = Duration::from_secs(5 * 60);
    settings.options.session_lifetime = Duration::from_secs(3600);
    let app = app(AppState::new(store.clone(), settings));
    let reply = post_form(&app, "/login", None, &[("name", "alice"), ("password", PASSWORD)]).await;
    let set = reply.cookies().into_iter().find(|c| c.starts_with("postern=")).unwrap();
    assert!(set.contains("Max-Age=3600"), "the cookie lasts as long as the session: {set}");
    let browser = Browser { app: app.clone(), cookie: session_cookie(&reply).unwrap() };
    hand_edit(&store, "UPDATE console_sessions SET last_seen = last_seen - 240").await;
    assert_eq!(browser.get("/").await.status, StatusCode::OK);
    hand_edit(&store, "UPDATE console_sessions SET last_seen = last_seen - 360").await;
    assert_eq!(browser.get("/").await.location(), "/login");
}
