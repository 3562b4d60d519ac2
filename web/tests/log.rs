//! The delivery log, the audit log and the dashboard's chart and last errors, in the console
//! and the API.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::metrics::CounterTotals;
use postern_store::model::{
    Access, DeliveryResult, DomainKind, NewMessage, NewRecipient, Notify, Outcome, QueueId, Role,
};
use postern_store::{NewRefusal, RefusalStatus, now};
use serde_json::json;
use support::*;

const NODE: &str = "mx1.example.test";

fn message(sender: &str, recipients: &[&str]) -> NewMessage {
    NewMessage {
        sender: sender.into(),
        recipients: recipients
            .iter()
            .map(|r| NewRecipient { address: (*r).into(), orcpt: None, notify: Notify::default() })
            .collect(),
        envid: None,
        ret: None,
        smtputf8: false,
        eight_bit: false,
        received_at: now(),
        client: "mx.example.org [192.0.2.1]".into(),
        auth_user: None,
        held: false,
        note: None,
        auth_results: None,
        body: b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
    }
}

fn result(id: QueueId, recipient: u32, outcome: Outcome) -> DeliveryResult {
    DeliveryResult { id, recipient, at: now(), outcome }
}

/// Two messages: one to a.test delivered, one to b.test bounced, and one to a.test deferred.
async fn traffic(store: &postern_store::Store) -> Vec<QueueId> {
    let ids = store
        .queue_insert(
            NODE,
            &[
                message("alpha@x.test", &["u@a.test"]),
                message("beta@x.test", &["v@b.test"]),
                message("gamma@x.test", &["w@a.test"]),
            ],
        )
        .await
        .unwrap();
    store
        .queue_record_results(&[
            result(ids[0], 0, Outcome::Delivered { reply: "250 2.0.0 ok".into() }),
            result(ids[1], 0, Outcome::Failed { reply: "550 5.1.1 no such user".into() }),
            result(
                ids[2],
                0,
                Outcome::Deferred { reply: "451 4.7.1 later".into(), next_attempt_at: now() + 600 },
            ),
        ])
        .await
        .unwrap();
    // What the engine's counters would have counted for the same traffic: the chart and the
    // dashboard's tiles read the counters' samples, not the delivery log.
    let counted =
        CounterTotals { received: 3, delivered: 1, deferred: 1, bounced: 1, ..Default::default() };
    store.record_metric_sample(NODE, now(), &counted).await.unwrap();
    ids
}

postern_store::store_tests!(
    the_delivery_log_lists_newest_first_with_filters,
    a_domain_admin_reads_the_log_of_its_domains_only,
    the_audit_log_is_for_admins_with_every_domain,
    the_dashboard_charts_the_day_and_shows_the_last_errors,
    refusals_are_listed_and_filtered_by_status
);

async fn the_delivery_log_lists_newest_first_with_filters(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    traffic(&store).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get("/log").await;
    assert_eq!(page.status, StatusCode::OK);
    let (newest, oldest) =
        (page.body.find("451 4.7.1 later").unwrap(), page.body.find("250 2.0.0 ok").unwrap());
    assert!(newest < oldest, "newest first");
    assert_eq!(page.body.matches("class=\"status received\"").count(), 3);

    let failed = browser.get("/log?status=failed").await.body;
    assert!(failed.contains("550 5.1.1 no such user") && !failed.contains("250 2.0.0 ok"));
    let searched = browser.get("/log?search=GAMMA").await.body;
    assert!(searched.contains("gamma@x.test") && !searched.contains("alpha@x.test"));
    assert_eq!(browser.get("/log?status=exploded").await.status, StatusCode::UNPROCESSABLE_ENTITY);

    let api = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let mut statuses = Vec::new();
    let mut path = "/log?limit=2".to_string();
    loop {
        let page = api.call("GET", &path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let page = page.json();
        statuses.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["status"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/log?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(statuses, ["deferred", "failed", "delivered", "received", "received", "received"]);
    let only = api.call("GET", "/log?status=delivered&search=ALPHA", None).await.json();
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    assert_eq!(only["items"][0]["reply"], "250 2.0.0 ok");
    assert_eq!(
        api.call("GET", "/log?after=x", None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        api.call("GET", "/log?status=exploded", None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn a_domain_admin_reads_the_log_of_its_domains_only(store: Store) {
    store.add_domain("test", &"a.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    traffic(&store).await;
    let app = console(&store);
    let dora = Browser::login(&app, "dora").await;
    let page = dora.get("/log").await.body;
    assert!(page.contains("u@a.test") && !page.contains("v@b.test"));
    let api = Api::new(&store, &app, "dora", Access::Read, &[]).await;
    let items = api.call("GET", "/log", None).await.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|e| e["domain"] == "a.test"));
    let dashboard = dora.get("/").await.body;
    assert!(
        dashboard.contains("451 4.7.1 later") && !dashboard.contains("550 5.1.1"),
        "the last errors, in scope"
    );
    assert!(
        dashboard.contains("<span class=\"n\">1</span> <a href=\"/queue\">in the queue</a>"),
        "its own queue: {dashboard}"
    );
}

async fn the_audit_log_is_for_admins_with_every_domain(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    // Issued first: a token's creation is audited too.
    let api = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let browser = Browser::login(&app, "alice").await;
    browser.post("/domains", &[("name", "a.test"), ("kind", "local")]).await;
    browser.post("/domains", &[("name", "b.test"), ("kind", "relay")]).await;
    let page = browser.get("/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("console:alice") && page.body.contains("domain.add"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<th scope=\"row\">kind</th><td><span class=\"hint\">none</span></td><td><ins>relay</ins></td>"),
        "the fields after the change, as a person reads them: {}",
        page.body
    );
    assert!(page.body.find("b.test").unwrap() < page.body.find("a.test").unwrap(), "newest first");

    let first = api.call("GET", "/audit?limit=1", None).await.json();
    assert_eq!(first["items"][0]["object"], "b.test");
    assert_eq!(first["items"][0]["after"]["kind"], "relay");
    let next = first["next"].as_str().expect("a second page");
    let rest = api.call("GET", &format!("/audit?limit=1&after={next}"), None).await.json();
    assert_eq!(rest["items"][0]["object"], "a.test");
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let dora = Browser::login(&app, "dora").await;
    assert_eq!(dora.get("/audit").await.status, StatusCode::FORBIDDEN);
    assert!(
        !dora.get("/").await.body.contains("href=\"/audit\""),
        "not in a domain-admin's navigation"
    );
    let narrow = Api::new(&store, &app, "alice", Access::Read, &["a.test"]).await;
    let refused = narrow.call("GET", "/audit", None).await;
    assert_eq!(
        (refused.status, refused.json()["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("forbidden"))
    );
}

async fn the_dashboard_charts_the_day_and_shows_the_last_errors(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    traffic(&store).await;
    let app = console(&store);
    let page = Browser::login(&app, "alice").await.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = page.body;
    let svg_start = body.find("<svg class=\"chart\"").expect("a chart");
    let svg = &body[svg_start..body[svg_start..].find("</svg>").unwrap() + svg_start];
    assert_eq!(svg.matches("<polyline class=\"series").count(), 5);
    assert!(svg.contains(">5<"), "the axis tops at a round 5 for 3 received in an hour: {svg}");
    for error in ["550 5.1.1 no such user", "451 4.7.1 later"] {
        assert!(body.contains(error), "{error} among the last errors");
    }
    assert!(
        body.find("451 4.7.1 later").unwrap() < body.find("550 5.1.1 no such user").unwrap(),
        "newest first"
    );
    assert!(body.contains("<span class=\"n\">3</span> received"));
}

/// What the SMTP sessions refused: in the API with their stage, client and reason, filtered by
/// the new statuses, on the log page without a queue link, and counted on the dashboard.
async fn refusals_are_listed_and_filtered_by_status(store: Store) {
    store.add_domain("test", &"a.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    traffic(&store).await;
    let refusal = |status, stage: &str, recipient: &str, reason: &str| NewRefusal {
        at: now(),
        status,
        stage: stage.into(),
        client: "192.0.2.66".into(),
        sender: if stage == "connect" { String::new() } else { "spam@bad.test".into() },
        recipient: recipient.into(),
        reply: "554 5.7.1 Service unavailable".into(),
        reason: reason.into(),
    };
    store
        .record_refusals(&[
            refusal(RefusalStatus::Rejected, "connect", "", "access rule 4 REJECT"),
            refusal(RefusalStatus::Rejected, "rcpt", "u@a.test", "DNS blocklist zen.bl.test"),
            refusal(RefusalStatus::Tempfailed, "rcpt", "u@a.test", "greylisting: first attempt"),
            refusal(RefusalStatus::Discarded, "data", "v@b.test", "milter m DISCARD"),
        ])
        .await
        .unwrap();
    let counted = CounterTotals { rejected: 2, tempfailed: 1, discarded: 1, ..Default::default() };
    store.record_metric_sample(NODE, now(), &counted).await.unwrap();
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let rejected = api.call("GET", "/log?status=rejected", None).await;
    assert_eq!(rejected.status, StatusCode::OK, "{}", rejected.body);
    let items = rejected.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["reason"], "DNS blocklist zen.bl.test");
    assert_eq!(items[0]["stage"], "rcpt");
    assert_eq!(items[0]["client"], "192.0.2.66");
    assert_eq!(items[0]["message_id"], "");
    assert_eq!(items[1]["reason"], "access rule 4 REJECT");
    for status in ["tempfailed", "discarded"] {
        let page = api.call("GET", &format!("/log?status={status}"), None).await.json();
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "{status}");
    }
    let found = api.call("GET", "/log?search=greylisting", None).await.json();
    assert_eq!(found["items"][0]["status"], "tempfailed");

    let browser = Browser::login(&app, "alice").await;
    let page = browser.get("/log?status=rejected").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("at CONNECT from 192.0.2.66"), "{}", page.body);
    assert!(page.body.contains("access rule 4 REJECT"));
    assert!(!page.body.contains("href=\"/queue/\""), "no link to a queue entry that never was");
    assert!(page.body.contains("<option value=\"rejected\" selected>"));
    let dashboard = browser.get("/").await.body;
    assert!(dashboard.contains("<span class=\"n\">2</span> <a href=\"/log?status=rejected\">"));

    // A domain-admin sees the refusals of its recipients, not a connection's.
    let dora = Api::new(&store, &app, "dora", Access::Read, &[]).await;
    let mine = dora.call("GET", "/log?status=rejected", None).await.json();
    let mine = mine["items"].as_array().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["recipient"], "u@a.test");
}
