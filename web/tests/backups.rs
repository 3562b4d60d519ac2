//! The scheduled backups' settings in the console and the API, and the last result on the
//! dashboard: global administrators only, audited.

mod support;

use axum::http::StatusCode;
use postern_store::model::{Access, Role};
use postern_store::{BackupResult, Store};
use serde_json::json;
use support::*;

postern_store::store_tests!(
    backups_are_scheduled_in_the_console_and_shown_on_the_dashboard,
    a_token_schedules_backups
);

async fn backups_are_scheduled_in_the_console_and_shown_on_the_dashboard(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get("/backups").await;
    assert!(page.body.contains("No scheduled backup has run yet"), "{}", page.body);
    let reply = browser
        .post(
            "/backups/settings",
            &[
                ("directory", "/var/backups/postern"),
                ("interval", "86400"),
                ("retention", "3"),
                ("with_spool", "1"),
            ],
        )
        .await;
    assert_eq!(reply.location(), "/backups", "{}", reply.body);
    let settings = store.backup_settings().await.unwrap();
    assert_eq!(
        (settings.directory.as_str(), settings.interval, settings.retention),
        ("/var/backups/postern", 86400, 3)
    );
    assert!(settings.with_spool && !settings.with_maildirs);
    assert_eq!(store.list_audit(1, None).await.unwrap()[0].actor, "console:alice");

    let bad = browser
        .post(
            "/backups/settings",
            &[("directory", "relative"), ("interval", "60"), ("retention", "3")],
        )
        .await;
    assert_eq!(bad.location(), "/backups");
    assert!(flash_text(&bad).contains("absolute"), "{}", flash_text(&bad));

    store
        .record_backup(&BackupResult {
            at: 1_800_000_000,
            file: Some("/var/backups/postern/postern-x.tar.gz".into()),
            size: Some(2048),
            error: None,
        })
        .await
        .unwrap();
    let dashboard = browser.get("/").await;
    assert!(dashboard.body.contains("postern-x.tar.gz"), "{}", dashboard.body);
    store
        .record_backup(&BackupResult {
            at: 1_800_000_100,
            error: Some("No space left on device".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let dashboard = browser.get("/").await;
    assert!(dashboard.body.contains("No space left on device"), "{}", dashboard.body);
}

async fn a_token_schedules_backups(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    store
        .add_domain("test", &"a.test".parse().unwrap(), postern_store::model::DomainKind::Local)
        .await
        .unwrap();
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let shown = api.call("GET", "/backups", None).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.json()["settings"]["interval"], 0);
    let set = api
        .call("PUT", "/backups/settings", Some(json!({"directory": "/srv/b", "interval": 3600})))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.json()["settings"]["directory"], "/srv/b");
    assert_eq!(set.json()["settings"]["retention"], 7, "left out keeps its value");
    let bad = api.call("PUT", "/backups/settings", Some(json!({"interval": 5}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let dora = Api::new(&store, &app, "dora", Access::Write, &["a.test"]).await;
    assert_eq!(dora.call("GET", "/backups", None).await.status, StatusCode::FORBIDDEN);
}
