//! A domain-admin and a message that also goes to another domain: through the API and the
//! console, its actions touch only its own recipients, its filters and searches see only them,
//! and every action is in the audit log with who did it and to which recipients.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{
    Access, DeliveryResult, NewMessage, NewRecipient, Notify, Outcome, QueueId, QueuedMessage,
    RecipientStatus, Role,
};
use postern_store::now;
use serde_json::json;
use support::*;

const NODE: &str = "mx1.example.test";

fn message(recipients: &[&str]) -> NewMessage {
    NewMessage {
        sender: "x@x.test".into(),
        recipients: recipients
            .iter()
            .map(|r| NewRecipient { address: (*r).into(), orcpt: None, notify: Notify::default() })
            .collect(),
        envid: None,
        ret: None,
        smtputf8: false,
        eight_bit: false,
        received_at: now() - 60,
        client: "mx.example.org [192.0.2.1]".into(),
        auth_user: None,
        held: false,
        note: None,
        auth_results: None,
        body: b"Subject: shared\r\n\r\nhello\r\n".to_vec(),
    }
}

async fn shown(store: &Store, id: QueueId) -> QueuedMessage {
    store.queue_show(id).await.unwrap().expect("still queued")
}

/// Each recipient's address, status and own hold, as the store has them.
async fn recipients(store: &Store, id: QueueId) -> Vec<(String, RecipientStatus, bool)> {
    shown(store, id).await.recipients.into_iter().map(|r| (r.address, r.status, r.held)).collect()
}

fn r(address: &str, status: RecipientStatus, held: bool) -> (String, RecipientStatus, bool) {
    (address.to_string(), status, held)
}

/// Two local domains, a global admin alice and dora, the domain-admin of a.test.
async fn setup(store: &Store) {
    add_test_domains(store).await;
    add_admin(store, "alice", Role::Admin, &[]).await;
    add_admin(store, "dora", Role::DomainAdmin, &["a.test"]).await;
}

postern_store::store_tests!(
    the_api_acts_only_on_the_callers_recipients,
    filters_and_search_see_only_the_callers_recipients,
    the_console_acts_only_on_the_callers_recipients
);

async fn the_api_acts_only_on_the_callers_recipients(store: Store) {
    use RecipientStatus::{Failed, Pending};
    setup(&store).await;
    let ids = store
        .queue_insert(
            NODE,
            &[
                message(&["u@a.test", "bob@b.test"]),
                message(&["u@a.test", "bob@b.test"]),
                message(&["w@a.test"]),
            ],
        )
        .await
        .unwrap();
    let app = console(&store);
    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let alice = Api::new(&store, &app, "alice", Access::Write, &[]).await;

    // The probe: dora's delete of the shared message answered 200 and removed bob's copy.
    let done = dora.call("POST", &format!("/queue/{}/delete", ids[0]), None).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(
        recipients(&store, ids[0]).await,
        vec![r("bob@b.test", Pending, false)],
        "bob's copy stays"
    );
    assert_eq!(
        dora.call("GET", &format!("/queue/{}", ids[0]), None).await.status,
        StatusCode::NOT_FOUND,
        "nothing of hers is left"
    );

    // Hold and release: her recipient on its own; bob's is never held.
    dora.call("POST", &format!("/queue/{}/hold", ids[1]), None).await;
    assert_eq!(
        recipients(&store, ids[1]).await,
        vec![r("u@a.test", Pending, true), r("bob@b.test", Pending, false)]
    );
    assert!(!shown(&store, ids[1]).await.held, "the message is not held whole");
    let mine = dora.call("GET", &format!("/queue/{}", ids[1]), None).await.json();
    assert_eq!(
        (mine["held"].clone(), mine["recipients"][0]["held"].clone()),
        (json!(true), json!(true)),
        "{mine}"
    );
    let all = alice.call("GET", &format!("/queue/{}", ids[1]), None).await.json();
    assert_eq!(all["recipients"][1]["held"], false, "{all}");
    // A global hold, then dora's release: bob's recipient stays held.
    alice.call("POST", &format!("/queue/{}/hold", ids[1]), None).await;
    dora.call("POST", &format!("/queue/{}/release", ids[1]), None).await;
    assert_eq!(
        recipients(&store, ids[1]).await,
        vec![r("u@a.test", Pending, false), r("bob@b.test", Pending, true)]
    );
    alice.call("POST", &format!("/queue/{}/release", ids[1]), None).await;
    assert_eq!(
        recipients(&store, ids[1]).await,
        vec![r("u@a.test", Pending, false), r("bob@b.test", Pending, false)]
    );

    // Bounce, in bulk over all she sees: hers fail, bob's is still to deliver.
    let bulk =
        dora.call("POST", "/queue/actions", Some(json!({"action": "bounce", "filter": {}}))).await;
    assert_eq!(bulk.status, StatusCode::OK, "{}", bulk.body);
    assert_eq!(bulk.json()["ids"], json!([ids[1].to_string(), ids[2].to_string()]));
    assert_eq!(
        recipients(&store, ids[1]).await,
        vec![r("u@a.test", Failed, false), r("bob@b.test", Pending, false)]
    );
    assert_eq!(recipients(&store, ids[0]).await, vec![r("bob@b.test", Pending, false)]);
    // A token of alice's limited to a.test is held to the same.
    let narrow = Api::new(&store, &app, "alice", Access::Write, &["a.test"]).await;
    assert_eq!(
        narrow.call("POST", &format!("/queue/{}/delete", ids[0]), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(recipients(&store, ids[0]).await, vec![r("bob@b.test", Pending, false)]);

    // The audit log has each action, who did it, and on which recipients.
    let audit = alice.call("GET", "/audit?limit=20", None).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    let audit = audit.json();
    let entries: Vec<(String, String, String, serde_json::Value)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("queue."))
        .map(|e| {
            (
                e["actor"].as_str().unwrap().split('/').next().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["object"].as_str().unwrap().to_string(),
                e["after"]["recipients"].clone(),
            )
        })
        .rev()
        .collect();
    let e = |actor: &str, action: &str, id: QueueId, rcpts: serde_json::Value| {
        (actor.to_string(), action.to_string(), id.to_string(), rcpts)
    };
    assert_eq!(
        entries,
        vec![
            e("api:dora", "queue.delete", ids[0], json!(["u@a.test"])),
            e("api:dora", "queue.hold", ids[1], json!(["u@a.test"])),
            e("api:alice", "queue.hold", ids[1], json!(["u@a.test", "bob@b.test"])),
            e("api:dora", "queue.release", ids[1], json!(["u@a.test"])),
            e("api:alice", "queue.release", ids[1], json!(["u@a.test", "bob@b.test"])),
            e("api:dora", "queue.bounce", ids[1], json!(["u@a.test"])),
            e("api:dora", "queue.bounce", ids[2], json!(["w@a.test"])),
        ]
    );
    // A domain-admin does not read the audit log (it names other domains' recipients).
    assert_eq!(dora.call("GET", "/audit", None).await.status, StatusCode::FORBIDDEN);
}

async fn filters_and_search_see_only_the_callers_recipients(store: Store) {
    setup(&store).await;
    let ids =
        store.queue_insert(NODE, &[message(&["u@a.test", "secret-bcc@b.test"])]).await.unwrap();
    let id = ids[0];
    // The Bcc is deferred and held on its own by b.test's administrator: a domain-admin of
    // a.test learns nothing of it by the status or held filters either.
    let deferred = DeliveryResult {
        id,
        recipient: 1,
        at: now(),
        outcome: Outcome::Deferred { reply: "451 later".into(), next_attempt_at: now() + 600 },
    };
    store.queue_record_results(&[deferred]).await.unwrap();
    add_admin(&store, "bob", Role::DomainAdmin, &["b.test"]).await;
    let app = console(&store);
    let bob = Api::new(&store, &app, "bob", Access::Write, &[]).await;
    assert_eq!(bob.call("POST", &format!("/queue/{id}/hold"), None).await.status, StatusCode::OK);

    let dora = Api::new(&store, &app, "dora", Access::Read, &[]).await;
    let alice = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    for query in [
        "recipient=secret-bcc%40b.test",
        "domain=b.test",
        "search=secret",
        "search=bcc%40b",
        "status=deferred",
        "held=true",
    ] {
        let theirs = dora.call("GET", &format!("/queue?{query}"), None).await.json();
        assert_eq!(theirs["total"], 0, "dora's {query}: {theirs}");
        let everyone = alice.call("GET", &format!("/queue?{query}"), None).await.json();
        assert_eq!(everyone["total"], 1, "alice's {query}: {everyone}");
    }
    for query in
        ["recipient=u%40a.test", "domain=a.test", "search=u%40a", "status=pending", "held=false"]
    {
        let hers = dora.call("GET", &format!("/queue?{query}"), None).await.json();
        assert_eq!(hers["total"], 1, "dora's {query}: {hers}");
        assert!(!hers.to_string().contains("secret-bcc"), "{hers}");
    }
    // The same in a bulk action's filter: nothing of hers matches, so nothing is done.
    let dora_writes = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let bulk = dora_writes
        .call(
            "POST",
            "/queue/actions",
            Some(json!({"action": "delete", "filter": {"search": "secret"}})),
        )
        .await
        .json();
    assert_eq!(bulk["ids"], json!([]));
    assert_eq!(shown(&store, id).await.recipients.len(), 2);

    // And in the console's filter bar.
    let browser = Browser::login(&app, "dora").await;
    for query in ["search=secret", "recipient=secret-bcc%40b.test", "domain=b.test", "held=yes"] {
        let page = browser.get(&format!("/queue?{query}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("0 messages match"), "dora's {query}: {}", page.body);
    }
    let page = browser.get("/queue?search=u%40a").await.body;
    assert!(page.contains("1 message matches") && !page.contains("secret-bcc"), "{page}");
}

async fn the_console_acts_only_on_the_callers_recipients(store: Store) {
    use RecipientStatus::{Failed, Pending};
    setup(&store).await;
    let ids = store
        .queue_insert(
            NODE,
            &[message(&["u@a.test", "bob@b.test"]), message(&["v@a.test", "cat@b.test"])],
        )
        .await
        .unwrap();
    let app = console(&store);
    let dora = Browser::login(&app, "dora").await;

    let reply = dora.post(&format!("/queue/{}/hold", ids[0]), &[]).await;
    assert_eq!(reply.location(), format!("/queue/{}", ids[0]));
    assert!(
        flash_text(&reply).contains("only their recipients in your domains"),
        "{}",
        flash_text(&reply)
    );
    assert_eq!(
        recipients(&store, ids[0]).await,
        vec![r("u@a.test", Pending, true), r("bob@b.test", Pending, false)]
    );
    let page = dora.get(&format!("/queue/{}", ids[0])).await.body;
    assert!(page.contains("the recipients marked") && page.contains("in your domains"), "{page}");
    assert!(!page.contains("bob@b.test"), "{page}");

    dora.confirmed(&format!("/queue/{}/bounce", ids[0]), &[], "Bounce message").await;
    assert_eq!(
        recipients(&store, ids[0]).await,
        vec![r("u@a.test", Failed, false), r("bob@b.test", Pending, false)]
    );
    let reply = dora
        .confirmed(
            "/queue/act",
            &[("action", "delete"), ("scope", "checked"), ("id", &ids[1].to_string())],
            "Delete the checked message?",
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(recipients(&store, ids[1]).await, vec![r("cat@b.test", Pending, false)]);
    let reply = dora.post(&format!("/queue/{}/release", ids[1]), &[]).await;
    assert_eq!(reply.location(), "/queue", "nothing of hers is left in it");

    let audit = store.list_audit(10, None).await.unwrap();
    let logged: Vec<(&str, &str, String)> = audit
        .iter()
        .rev()
        .filter(|e| e.action.starts_with("queue."))
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.object.clone()))
        .collect();
    assert_eq!(
        logged,
        vec![
            ("console:dora", "queue.hold", ids[0].to_string()),
            ("console:dora", "queue.bounce", ids[0].to_string()),
            ("console:dora", "queue.delete", ids[1].to_string()),
        ]
    );
    assert_eq!(audit[0].after, Some(json!({"whole_message": false, "recipients": ["v@a.test"]})));
    // The audit page shows them to a global admin.
    let alice = Browser::login(&app, "alice").await;
    let page = alice.get("/audit").await.body;
    assert!(page.contains("queue.delete") && page.contains("console:dora"), "{page}");
}
