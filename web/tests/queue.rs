//! The queue in the console and the API: filters, keyset pages over thousands of messages,
//! actions on one message and in bulk, domain-admin scope, and hostile envelope text shown inert.

mod support;

use std::time::Instant;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{
    Access, DeliveryResult, DomainKind, NewMessage, NewRecipient, Notify, Outcome, QueueFilter,
    QueueId, Role,
};
use postern_store::now;
use serde_json::json;
use support::*;

const NODE: &str = "mx1.example.test";

fn message(sender: &str, recipients: &[&str], subject: &str) -> NewMessage {
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
        received_at: now() - 3600,
        client: "mx.example.org [192.0.2.1]".into(),
        auth_user: None,
        held: false,
        note: None,
        auth_results: None,
        body: format!("Subject: {subject}\r\nFrom: {sender}\r\n\r\nhello\r\n").into_bytes(),
    }
}

async fn held(store: &Store, id: QueueId) -> bool {
    store.queue_show(id).await.unwrap().expect("still queued").held
}

postern_store::store_tests!(
    pages_chain_through_thousands_of_messages,
    the_filter_bar_narrows_and_says_what_is_wrong,
    a_message_page_shows_the_envelope_headers_and_actions,
    bulk_actions_take_the_checked_or_all_that_match,
    a_domain_admin_sees_and_acts_only_within_its_domains,
    the_api_lists_shows_and_acts,
    hostile_envelope_and_headers_are_shown_inert,
    inbound_check_results_show_on_the_page_the_api_and_the_log,
    a_message_page_shows_every_attempt_and_the_log_leads_to_it,
    the_list_shows_subject_error_and_retry_and_filters_by_part_of_an_address,
    the_raw_message_downloads_within_the_pages_scope
);

/// A large message (stored apart from its envelope, see `postern_store::spool`): the page reads
/// its headers only, the raw download streams it whole, to those who may see the page.
async fn the_raw_message_downloads_within_the_pages_scope(store: Store) {
    store.add_domain("test", &"a.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let mut big = message("x@x.test", &["w@b.test"], "large");
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    big.body.extend_from_slice(line.repeat(1_000_000 / line.len()).as_bytes());
    let body_ref = store.spool_body(&big.body).await.unwrap();
    assert!(body_ref.is_some(), "a megabyte is stored apart");
    store.spool_sync().await.unwrap();
    let expected = String::from_utf8(big.body.clone()).unwrap();
    let ids = store.queue_insert_spooled(NODE, &[big], &[body_ref]).await.unwrap();
    let id = ids[0];

    let app = console(&store);
    let alice = Browser::login(&app, "alice").await;
    let page = alice.get(&format!("/queue/{id}")).await;
    assert!(page.body.contains("large") && page.body.contains(&format!("/queue/{id}/raw")));
    let raw = alice.get(&format!("/queue/{id}/raw")).await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.headers["content-type"], "message/rfc822");
    assert_eq!(
        raw.headers["content-disposition"],
        format!("attachment; filename=\"{id}.eml\"").as_str()
    );
    assert!(raw.body == expected, "byte-exact ({} of {} bytes)", raw.body.len(), expected.len());

    // The dashboard says how large the store is, to global administrators.
    let home = alice.get("/").await.body;
    assert!(home.contains("<h2>Storage</h2>") && home.contains("1 message body stored apart"));

    // Outside her domains: not found, as the page is.
    let dora = Browser::login(&app, "dora").await;
    assert!(!dora.get("/").await.body.contains("<h2>Storage</h2>"));
    assert_eq!(dora.get(&format!("/queue/{id}/raw")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(alice.get("/queue/nonsense/raw").await.status, StatusCode::UNPROCESSABLE_ENTITY);

    let api = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let raw = api.call("GET", &format!("/queue/{id}/raw"), None).await;
    assert_eq!(raw.status, StatusCode::OK);
    assert!(raw.body == expected);
    let narrow = Api::new(&store, &app, "dora", Access::Read, &[]).await;
    let hidden = narrow.call("GET", &format!("/queue/{id}/raw"), None).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert_eq!(hidden.json()["error"]["code"], "not_found");
    let doc = api.call("GET", "/openapi.json", None).await.json();
    let op = &doc["paths"]["/queue/{id}/raw"]["get"];
    assert!(op["responses"]["200"]["content"]["message/rfc822"].is_object(), "{op}");
    assert!(op["responses"]["404"].is_object(), "{op}");
}

async fn pages_chain_through_thousands_of_messages(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let batch: Vec<NewMessage> = (0..2000)
        .map(|i| message(&format!("s{}@x.test", i % 7), &[&format!("r{i}@y.test")], "bulk"))
        .collect();
    let ids = store.queue_insert(NODE, &batch).await.unwrap();
    let app = console(&store);

    let api = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let mut seen = Vec::new();
    let mut path = "/queue?limit=700".to_string();
    loop {
        let started = Instant::now();
        let page = api.call("GET", &path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        eprintln!("{path}: {:?}", started.elapsed());
        let page = page.json();
        assert_eq!(page["total"], 2000);
        seen.extend(
            page["items"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/queue?limit=700&after={next}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "every message once, in order"
    );

    // The console's pages chain the same way, by `after`, keeping the filter.
    let browser = Browser::login(&app, "alice").await;
    let started = Instant::now();
    let first = browser.get("/queue?sender=s3%40x.test").await;
    eprintln!("first console page: {:?}", started.elapsed());
    assert_eq!(first.status, StatusCode::OK);
    let matching: Vec<&QueueId> =
        ids.iter().enumerate().filter(|(i, _)| i % 7 == 3).map(|(_, id)| id).collect();
    assert!(first.body.contains(&format!("{} messages match", matching.len())), "{}", first.body);
    assert!(first.body.contains(&format!("<a href=\"/queue/{}\">", matching[0])));
    assert!(!first.body.contains(&format!("<a href=\"/queue/{}\">", matching[50])), "50 a page");
    let next = format!("/queue?sender=s3%40x%2Etest&amp;after={}", matching[49]);
    assert!(first.body.contains(&next), "the next link keeps the filter: {}", first.body);
    let second = browser.get(&next.replace("&amp;", "&")).await;
    assert!(second.body.contains(&format!("<a href=\"/queue/{}\">", matching[50])));
    assert!(!second.body.contains(&format!("<a href=\"/queue/{}\">", matching[49])));
}

async fn the_filter_bar_narrows_and_says_what_is_wrong(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let mut old = message("old@x.test", &["a@y.test"], "old");
    old.received_at = now() - 50 * 3600;
    let ids = store
        .queue_insert(
            NODE,
            &[
                old,
                message("new@x.test", &["b@z.test"], "new"),
                message("", &["c@z.test"], "bounce"),
            ],
        )
        .await
        .unwrap();
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let has = |body: &str, id: QueueId| body.contains(&format!("<a href=\"/queue/{id}\">"));

    let page = browser.get("/queue?older_than=24").await.body;
    assert!(has(&page, ids[0]) && !has(&page, ids[1]));
    let page = browser.get("/queue?newer_than=24&domain=Z.test").await.body;
    assert!(!has(&page, ids[0]) && has(&page, ids[1]) && has(&page, ids[2]));
    assert!(page.contains("&#60;&#62;"), "the null sender shows as <>");
    let page = browser.get("/queue?search=NEW%40").await.body;
    assert!(has(&page, ids[1]) && !has(&page, ids[2]));
    let page = browser.get("/queue?recipient=c%40z.test&status=pending&held=no").await.body;
    assert!(has(&page, ids[2]) && !has(&page, ids[1]));

    let bad = browser.get("/queue?older_than=soon&sender=keep%3Cme%3E").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("whole number of hours"));
    assert!(bad.body.contains("value=\"keep&#60;me&#62;\""), "what was typed stays");
    let bad = browser.get("/queue?status=lost").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_message_page_shows_the_envelope_headers_and_actions(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let ids = store
        .queue_insert(
            NODE,
            &[message("a@x.test", &["b@y.test", "c@y.test"], "=?utf-8?q?caf=C3=A9?=")],
        )
        .await
        .unwrap();
    let id = ids[0];
    store
        .queue_record_results(&[DeliveryResult {
            id,
            recipient: 1,
            at: now(),
            outcome: Outcome::Deferred {
                reply: "451 4.7.1 greylisted".into(),
                next_attempt_at: now() + 600,
            },
        }])
        .await
        .unwrap();
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get(&format!("/queue/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    for text in [
        "a@x.test",
        "b@y.test",
        "451 4.7.1 greylisted",
        "deferred",
        "café",
        "mx.example.org [192.0.2.1]",
    ] {
        assert!(page.body.contains(text), "{text} in {}", page.body);
    }
    for action in ["hold", "retry", "delete", "bounce"] {
        assert!(page.body.contains(&format!("action=\"/queue/{id}/{action}\"")), "{action}");
    }
    assert!(
        page.body.contains("<button>Hold</button>")
            && !page.body.contains("<button>Release</button>"),
        "only the action that applies"
    );
    assert!(page.body.contains("data-confirm=\"Delete message"), "a destructive action asks first");

    let start = store.queue_last_event().await.unwrap();
    let reply = browser.post(&format!("/queue/{id}/hold"), &[]).await;
    assert_eq!(reply.location(), format!("/queue/{id}"));
    assert!(held(&store, id).await);
    let page = browser.get(&format!("/queue/{id}")).await.body;
    assert!(page.contains("<button>Release</button>") && !page.contains("<button>Hold</button>"));
    assert!(page.contains("held: not until released"), "no next attempt while held");
    let reply = browser.post(&format!("/queue/{id}/release"), &[]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(!held(&store, id).await);
    browser.post(&format!("/queue/{id}/retry"), &[]).await;
    let events: Vec<_> = store
        .queue_events_after(start, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(events, ["hold", "release", "retry"], "each action leaves an event for the engine");

    let reply = browser.confirmed(&format!("/queue/{id}/delete"), &[], "Delete message").await;
    assert_eq!(reply.location(), "/queue");
    assert!(store.queue_show(id).await.unwrap().is_none());
    let gone = browser.get(&format!("/queue/{id}")).await;
    assert_eq!(gone.status, StatusCode::OK, "the log still knows it");
    assert!(
        gone.body.contains("no longer in the queue") && gone.body.contains("451 4.7.1 greylisted")
    );
    let gone = browser.post(&format!("/queue/{id}/hold"), &[]).await;
    assert_eq!(gone.location(), "/queue", "acting on a message no longer queued says so");
    assert_eq!(browser.get("/queue/not-an-id").await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let without_csrf =
        post_form(&app, &format!("/queue/{}/hold", ids[0]), Some(&browser.cookie), &[]).await;
    assert_eq!(without_csrf.status, StatusCode::FORBIDDEN);
}

async fn bulk_actions_take_the_checked_or_all_that_match(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let ids = store
        .queue_insert(
            NODE,
            &[
                message("a@x.test", &["r@y.test"], "1"),
                message("a@x.test", &["r@y.test"], "2"),
                message("spam@x.test", &["r@y.test"], "3"),
                message("spam@x.test", &["r@y.test"], "4"),
            ],
        )
        .await
        .unwrap();
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get("/queue").await.body;
    assert!(page.contains("data-confirm=\"Delete these messages"), "{page}");

    let (a, b) = (ids[0].to_string(), ids[1].to_string());
    let reply = browser
        .post("/queue/act", &[("action", "hold"), ("scope", "checked"), ("id", &a), ("id", &b)])
        .await;
    assert_eq!(reply.location(), "/queue");
    assert!(
        held(&store, ids[0]).await && held(&store, ids[1]).await && !held(&store, ids[2]).await
    );

    let reply = browser
        .confirmed(
            "/queue/act",
            &[("action", "delete"), ("scope", "filter"), ("sender", "spam@x.test")],
            "Delete every message that matches the filter?",
        )
        .await;
    assert_eq!(reply.location(), "/queue?sender=spam%40x%2Etest", "back to the same filter");
    let left = store.queue_list(&QueueFilter::default(), Default::default()).await.unwrap();
    assert_eq!(left.messages.iter().map(|m| m.id).collect::<Vec<_>>(), ids[..2].to_vec());

    let none = browser.post("/queue/act", &[("action", "hold"), ("scope", "checked")]).await;
    assert_eq!(none.status, StatusCode::SEE_OTHER, "nothing checked is said, not done");
    let bad = browser
        .post("/queue/act", &[("action", "explode"), ("scope", "checked"), ("id", &a)])
        .await;
    assert_eq!(bad.status, StatusCode::SEE_OTHER);
    assert_eq!(
        store.queue_list(&QueueFilter::default(), Default::default()).await.unwrap().total,
        2
    );
}

async fn a_domain_admin_sees_and_acts_only_within_its_domains(store: Store) {
    for domain in ["a.test", "b.test"] {
        store.add_domain("test", &domain.parse().unwrap(), DomainKind::Local).await.unwrap();
    }
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let ids = store
        .queue_insert(
            NODE,
            &[
                message("x@x.test", &["u@a.test", "v@b.test"], "shared"),
                message("x@x.test", &["w@b.test"], "theirs"),
                message("x@x.test", &["u@A.test"], "mine too"),
            ],
        )
        .await
        .unwrap();
    let app = console(&store);
    let dora = Browser::login(&app, "dora").await;
    let page = dora.get("/queue").await.body;
    let has = |body: &str, id: QueueId| body.contains(&format!("<a href=\"/queue/{id}\">"));
    assert!(has(&page, ids[0]) && !has(&page, ids[1]) && has(&page, ids[2]));
    assert!(page.contains("2 messages match"));
    assert_eq!(dora.get(&format!("/queue/{}", ids[1])).await.status, StatusCode::NOT_FOUND);
    let shared = dora.get(&format!("/queue/{}", ids[0])).await;
    assert_eq!(shared.status, StatusCode::OK);
    assert!(
        shared.body.contains("u@a.test") && !shared.body.contains("v@b.test"),
        "another domain's recipient stays hidden"
    );
    assert!(!page.contains("v@b.test") && !page.contains("w@b.test"), "{page}");

    let refused = dora.post(&format!("/queue/{}/hold", ids[1]), &[]).await;
    assert_eq!(refused.location(), "/queue");
    assert!(!held(&store, ids[1]).await);
    dora.post(
        "/queue/act",
        &[("action", "hold"), ("scope", "checked"), ("id", &ids[1].to_string())],
    )
    .await;
    assert!(!held(&store, ids[1]).await, "a checked ID outside the scope is refused");
    dora.post("/queue/act", &[("action", "hold"), ("scope", "filter")]).await;
    assert!(
        held(&store, ids[2]).await && !held(&store, ids[1]).await,
        "all that match stays in scope"
    );
    let shared = store.queue_show(ids[0]).await.unwrap().unwrap();
    assert!(
        !shared.held && shared.recipients[0].held && !shared.recipients[1].held,
        "only her recipient of the shared message is held"
    );

    let api = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let list = api.call("GET", "/queue", None).await.json();
    assert_eq!(list["total"], 2);
    assert!(!list.to_string().contains("b.test"), "{list}");
    let one = api.call("GET", &format!("/queue/{}", ids[0]), None).await.json();
    assert_eq!(one["recipients"].as_array().unwrap().len(), 1);
    assert_eq!(
        api.call("GET", &format!("/queue/{}", ids[1]), None).await.status,
        StatusCode::NOT_FOUND
    );
    let bulk = api
        .call("POST", "/queue/actions", Some(json!({"action": "release", "filter": {}})))
        .await
        .json();
    assert_eq!(bulk["ids"].as_array().unwrap().len(), 2);
    let narrow = Api::new(&store, &app, "alice", Access::Write, &["b.test"]).await;
    assert_eq!(
        narrow.call("GET", "/queue", None).await.json()["total"],
        2,
        "a token limited to b.test"
    );
}

async fn the_api_lists_shows_and_acts(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let ids = store
        .queue_insert(
            NODE,
            &[
                message("a@x.test", &["b@y.test"], "hello"),
                message("c@x.test", &["d@y.test"], "again"),
            ],
        )
        .await
        .unwrap();
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let list = api
        .call("GET", "/queue?sender=c%40x.test&status=pending&older_than=0&held=false", None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let list = list.json();
    assert_eq!(
        (list["total"].as_u64(), list["items"][0]["id"].as_str()),
        (Some(1), Some(ids[1].to_string().as_str()))
    );
    assert_eq!(list["items"][0]["recipients"][0]["status"], "pending");
    assert!(list["items"][0].get("headers").is_none());
    // An age past the documented maximum is refused, as the OpenAPI document says.
    let too_old = api.call("GET", "/queue?older_than=876001", None).await;
    assert_eq!(too_old.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", too_old.body);
    let bulk = json!({"action": "hold", "filter": {"newer_than": 4_294_967_295u32}});
    let too_new = api.call("POST", "/queue/actions", Some(bulk)).await;
    assert_eq!(too_new.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", too_new.body);

    let one = api.call("GET", &format!("/queue/{}", ids[0]), None).await.json();
    assert_eq!(one["sender"], "a@x.test");
    assert_eq!(one["headers"][0], json!({"name": "Subject", "value": "hello"}));

    let done = api.call("POST", &format!("/queue/{}/hold", ids[0]), None).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.json(), json!({"action": "hold", "ids": [ids[0].to_string()]}));
    assert!(held(&store, ids[0]).await);
    let bulk = api
        .call(
            "POST",
            "/queue/actions",
            Some(json!({"action": "release", "ids": [ids[0].to_string(), ids[1].to_string()]})),
        )
        .await;
    assert_eq!(bulk.json()["ids"].as_array().unwrap().len(), 2);
    assert!(!held(&store, ids[0]).await);
    let bulk = api
        .call(
            "POST",
            "/queue/actions",
            Some(json!({"action": "bounce", "filter": {"sender": "c@x.test"}})),
        )
        .await
        .json();
    assert_eq!(bulk["ids"], json!([ids[1].to_string()]));

    let code = |r: Reply| (r.status, r.json()["error"]["code"].as_str().unwrap_or("").to_string());
    assert_eq!(
        code(api.call("GET", "/queue/nonsense", None).await),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid".into())
    );
    let missing = QueueId::next_after(Some(ids[1])).to_string();
    assert_eq!(
        code(api.call("GET", &format!("/queue/{missing}"), None).await),
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    assert_eq!(
        code(api.call("POST", &format!("/queue/{missing}/hold"), None).await),
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    assert_eq!(
        code(api.call("POST", &format!("/queue/{}/explode", ids[0]), None).await).0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        code(api.call("GET", "/queue?status=lost", None).await).0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        code(api.call("GET", "/queue?limit=0", None).await).0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        code(api.call("GET", "/queue?after=zzz", None).await).0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let neither = api.call("POST", "/queue/actions", Some(json!({"action": "hold"}))).await;
    assert_eq!(code(neither).0, StatusCode::UNPROCESSABLE_ENTITY);
    let both = api
        .call(
            "POST",
            "/queue/actions",
            Some(json!({"action": "hold", "ids": [ids[0].to_string()], "filter": {}})),
        )
        .await;
    assert_eq!(code(both).0, StatusCode::UNPROCESSABLE_ENTITY);

    let reader = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    assert_eq!(reader.call("GET", "/queue", None).await.status, StatusCode::OK);
    assert_eq!(
        code(reader.call("POST", &format!("/queue/{}/hold", ids[0]), None).await),
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    let refused = reader
        .call("POST", "/queue/actions", Some(json!({"action": "delete", "filter": {}})))
        .await;
    assert_eq!(code(refused), (StatusCode::FORBIDDEN, "forbidden".into()));
    assert!(!held(&store, ids[0]).await);

    let doc = api.call("GET", "/openapi.json", None).await.json();
    for (path, method) in [
        ("/queue", "get"),
        ("/queue/{id}", "get"),
        ("/queue/{id}/{action}", "post"),
        ("/queue/actions", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is documented");
    }
}

async fn hostile_envelope_and_headers_are_shown_inert(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let sender = "\"<script>alert(1)</script>\"@x.test";
    let ids = store
        .queue_insert(
            NODE,
            &[message(sender, &["<b>r</b>@y.test"], "<img src=x onerror=alert(1)>")],
        )
        .await
        .unwrap();
    let id = ids[0];
    store
        .queue_record_results(&[DeliveryResult {
            id,
            recipient: 0,
            at: now(),
            outcome: Outcome::Deferred {
                reply: "451 <svg onload=alert(1)>".into(),
                next_attempt_at: now() + 600,
            },
        }])
        .await
        .unwrap();
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let pages = [
        ("list", browser.get("/queue").await.body),
        ("message", browser.get(&format!("/queue/{id}")).await.body),
        ("log", browser.get("/log").await.body),
        ("dashboard", browser.get("/").await.body),
    ];
    for (name, body) in &pages {
        for raw in ["<script>alert", "<img src=x", "<b>r</b>", "<svg onload"] {
            assert!(!body.contains(raw), "{name} shows {raw} raw: {body}");
        }
    }
    let escaped_sender = "&#34;&#60;script&#62;alert(1)&#60;/script&#62;&#34;@x.test";
    for (name, body) in &pages[..3] {
        assert!(body.contains(escaped_sender), "{name} shows the sender escaped: {body}");
    }
    assert!(
        pages[1].1.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "the subject, escaped: {}",
        pages[1].1
    );
    assert!(pages[2].1.contains("451 &#60;svg onload=alert(1)&#62;"));
    assert!(pages[3].1.contains("451 &#60;svg onload=alert(1)&#62;"), "the last errors, escaped");
    // The API gives the text as it is: JSON, never HTML.
    let api = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let one = api.call("GET", &format!("/queue/{id}"), None).await;
    assert!(one.headers["content-type"].to_str().unwrap().starts_with("application/json"));
    assert_eq!(one.json()["sender"], sender);
}

/// A message that arrived on port 25 and was held by a DMARC quarantine: its check results on
/// the message page, in the API, and on its "received" lines of the delivery log.
async fn inbound_check_results_show_on_the_page_the_api_and_the_log(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let results = "spf=fail dkim=none arc=none dmarc=fail (p=quarantine)";
    let checked = NewMessage {
        held: true,
        auth_results: Some(results.into()),
        ..message("bob@spoof.test", &["b@y.test"], "checked")
    };
    let id = store.queue_insert(NODE, &[checked]).await.unwrap()[0];
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get(&format!("/queue/{id}")).await.body;
    assert!(page.contains("Inbound checks"), "{page}");
    assert!(page.contains("dmarc=fail (p=quarantine)") && page.contains("status held"), "{page}");
    let api = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let shown = api.call("GET", &format!("/queue/{id}"), None).await.json();
    assert_eq!(shown["auth_results"], results);
    assert_eq!(shown["held"], true);
    let log = browser.get("/log?status=received").await.body;
    assert!(log.contains("dmarc=fail (p=quarantine); held"), "{log}");
}

async fn a_message_page_shows_every_attempt_and_the_log_leads_to_it(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    store.add_domain("test", &"other.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    add_admin(&store, "dora", Role::DomainAdmin, &["other.test"]).await;
    let ids =
        store.queue_insert(NODE, &[message("a@x.test", &["b@y.test"], "tries")]).await.unwrap();
    let id = ids[0];
    let mx = "mx.y.test[192.0.2.9]:25";
    let at = now() - 600;
    let attempt =
        |n: i64, outcome: Outcome| DeliveryResult { id, recipient: 0, at: at + n, outcome };
    store
        .queue_record_results(&[attempt(
            0,
            Outcome::Deferred {
                reply: format!("451 4.4.1 connection refused by {mx}"),
                next_attempt_at: at + 60,
            },
        )])
        .await
        .unwrap();
    store
        .queue_record_results(&[attempt(
            60,
            Outcome::Deferred {
                reply: format!("452 4.2.2 mailbox full ({mx} answered RCPT with this)"),
                next_attempt_at: now() + 600,
            },
        )])
        .await
        .unwrap();
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let page = browser.get(&format!("/queue/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    for text in [
        "connection refused by mx.y.test",
        "452 4.2.2 mailbox full",
        &format!("<td>{mx}</td>"),
        &format!("href=\"/log?search={id}\""),
    ] {
        assert!(page.body.contains(text), "{text} in {}", page.body);
    }
    let log = browser.get(&format!("/log?search={id}")).await.body;
    assert!(log.contains(&format!("href=\"/queue/{id}\"")), "the log links to the message");

    store
        .queue_record_results(&[attempt(
            120,
            Outcome::Delivered { reply: format!("{mx} said: 250 2.0.0 queued as 42") },
        )])
        .await
        .unwrap();
    assert!(store.queue_show(id).await.unwrap().is_none(), "delivered and gone");
    let gone = browser.get(&format!("/queue/{id}")).await;
    assert_eq!(gone.status, StatusCode::OK);
    for text in [
        "no longer in the queue",
        "connection refused",
        "250 2.0.0 queued as 42",
        "href=\"/queue\"",
    ] {
        assert!(gone.body.contains(text), "{text} in {}", gone.body);
    }
    // A domain-admin learns nothing of another domain's message, queued or not.
    let dora = Browser::login(&app, "dora").await;
    assert_eq!(dora.get(&format!("/queue/{id}")).await.status, StatusCode::NOT_FOUND);
    let unknown = browser.get("/queue/0000000000000000").await;
    assert!(matches!(unknown.status, StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY));
}

async fn the_list_shows_subject_error_and_retry_and_filters_by_part_of_an_address(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let ids = store
        .queue_insert(
            NODE,
            &[
                message("Boss@x.test", &["one@y.test"], "Quarterly figures"),
                message("clerk@x.test", &["two@z.test"], "Lunch"),
            ],
        )
        .await
        .unwrap();
    store
        .queue_record_results(&[DeliveryResult {
            id: ids[0],
            recipient: 0,
            at: now() - 60,
            outcome: Outcome::Deferred {
                reply: "451 4.7.1 greylisted, come back later".into(),
                next_attempt_at: now() + 2 * 3600 + 1800,
            },
        }])
        .await
        .unwrap();
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let has = |body: &str, id: QueueId| body.contains(&format!("<a href=\"/queue/{id}\">"));

    let page = browser.get("/queue").await.body;
    for text in ["Quarterly figures", "Lunch", "451 4.7.1 greylisted", "in 2h ", "Next retry"] {
        assert!(page.contains(text), "{text} in {page}");
    }
    assert!(page.contains("id=\"check-all\""), "a select-all box");
    let all = browser.get("/queue?check=all").await.body;
    assert!(
        all.contains(&format!("value=\"{}\" aria-label=\"Select {}\" checked", ids[1], ids[1]))
    );

    let page = browser.get("/queue?sender=boss").await.body;
    assert!(has(&page, ids[0]) && !has(&page, ids[1]), "part of the sender, any case");
    assert!(page.contains("sender contains &#34;boss&#34;"), "says what it matched: {page}");
    let page = browser.get("/queue?recipient=%40z.test").await.body;
    assert!(!has(&page, ids[0]) && has(&page, ids[1]));

    let bad = browser.get("/queue?sender=a%20b").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("no spaces in an address"));
    assert!(!bad.body.contains("in the queue."), "not \"no messages in the queue\"");
    let bad = browser.get("/queue?older_than=soon").await.body;
    assert!(bad.contains("the filter has a mistake") && !bad.contains("No messages"));

    let api = Api::new(&store, &app, "alice", Access::Read, &[]).await;
    let listed = api.call("GET", "/queue?sender=BOSS%40", None).await.json();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["items"][0]["id"], ids[0].to_string());
    let listed = api.call("GET", "/queue?recipient=two", None).await.json();
    assert_eq!(listed["items"][0]["id"], ids[1].to_string());
    assert_eq!(
        api.call("GET", "/queue?sender=a%20b", None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}
