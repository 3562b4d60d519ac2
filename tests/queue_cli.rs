//! `postern queue …` as an administrator types it, against messages put in the store the way the
//! engine does, on SQLite and Postgres: lists, filters, pages, actions, events and clear errors.

mod common;

use common::Setup;
use postern_store::Database;
use postern_store::model::{
    DeliveryResult, NewMessage, NewRecipient, Notify, Outcome, QueueAction, QueueId,
    RecipientStatus,
};
use postern_store::testing::TestDb;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

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
        received_at: 1_700_000_000,
        client: "mx.example.org [192.0.2.1]".into(),
        auth_user: None,
        held: false,
        note: None,
        auth_results: None,
        body: b"Subject: test\r\n\r\nhello\r\n".to_vec(),
    }
}

/// A setup whose binary uses `db`, SQLite included (Setup itself only passes Postgres on).
fn setup(db: &TestDb) -> Setup {
    let mut s = Setup::new(&db.database);
    if let Database::Sqlite { path } = &db.database {
        s.env.push(("POSTERN_DATABASE".into(), format!("sqlite:{}", path.display())));
    }
    s
}

async fn queue_commands(db: TestDb) {
    let store = db.open().await;
    let mut s = setup(&db);
    s.env.push(("SUDO_USER".into(), "ops".into()));
    let ids = store
        .queue_insert(
            "mx1.example.test",
            &[
                message("ann@x.test", &["bob@y.test", "cat@z.test"]),
                message("", &["dan@y.test"]),
                message("ann@x.test", &["eve@z.test"]),
            ],
        )
        .await
        .unwrap();
    store
        .queue_record_results(&[DeliveryResult {
            id: ids[0],
            recipient: 0,
            at: 1_700_000_100,
            outcome: Outcome::Deferred {
                reply: "451 4.7.1 greylisted".into(),
                next_attempt_at: 4_000_000_000,
            },
        }])
        .await
        .unwrap();

    let list = json(&s.ok(&["queue", "list", "--json"]));
    assert_eq!(list["total"], 3);
    assert_eq!(list["messages"][0]["id"], ids[0].to_string());
    assert_eq!(list["messages"][0]["recipients"][0]["status"], "deferred");
    let text = s.ok(&["queue", "list"]);
    assert!(text.contains(&ids[1].to_string()) && text.contains("<>"), "{text}");
    assert!(
        text.contains("2023-11-14 22:13:20") && text.contains("-- 3 of 3 message(s)"),
        "{text}"
    );
    let by_domain = json(&s.ok(&["queue", "list", "--json", "--domain", "Z.test"]));
    assert_eq!(by_domain["total"], 2);
    let by_sender = json(&s.ok(&["queue", "list", "--json", "--sender", "ann@x.test"]));
    assert_eq!(by_sender["total"], 2);
    let deferred = json(&s.ok(&["queue", "list", "--json", "--status", "deferred"]));
    assert_eq!(deferred["total"], 1);
    let err = s.fails(&["queue", "list", "--status", "stuck"]);
    assert!(err.contains("status: \"stuck\" is not a status"), "{err}");
    let first = s.ok(&["queue", "list", "--limit", "2"]);
    assert!(first.contains(&format!("--after {}", ids[1])), "{first}");
    let rest = json(&s.ok(&["queue", "list", "--json", "--after", &ids[1].to_string()]));
    assert_eq!(rest["messages"].as_array().unwrap().len(), 1);
    assert_eq!(rest["messages"][0]["id"], ids[2].to_string());

    let show = s.ok(&["queue", "show", &ids[0].to_string()]);
    assert!(show.contains("bob@y.test") && show.contains("451 4.7.1 greylisted"), "{show}");
    assert_eq!(
        json(&s.ok(&["queue", "show", "--json", &ids[0].to_string()]))["sender"],
        "ann@x.test"
    );
    let err = s.fails(&["queue", "show", "NOT-AN-ID"]);
    assert!(err.contains("\"NOT-AN-ID\" is not a queue ID"), "{err}");
    let unknown = QueueId::next_after(Some(ids[2])).to_string();
    let err = s.fails(&["queue", "show", &unknown]);
    assert!(err.contains(&format!("queued message {unknown} does not exist")), "{err}");

    let out = s.ok(&["queue", "hold", &ids[1].to_string()]);
    assert!(out.contains("held"), "{out}");
    assert!(s.ok(&["queue", "list"]).contains(&format!("{}!", ids[1])));
    assert_eq!(json(&s.ok(&["queue", "list", "--json", "--held"]))["total"], 1);
    s.ok(&["queue", "release", &ids[1].to_string()]);
    assert_eq!(json(&s.ok(&["queue", "list", "--json", "--held"]))["total"], 0);

    let out = s.ok(&["queue", "flush"]);
    assert!(out.contains("1 deferred message(s)"), "{out}");
    let m = store.queue_show(ids[0]).await.unwrap().unwrap();
    assert!(m.recipients[0].next_attempt_at < 4_000_000_000);
    s.ok(&["queue", "retry", "--all"]);
    s.fails(&["queue", "retry"]);

    let err = s.fails(&["queue", "delete", &ids[2].to_string(), &unknown]);
    assert!(err.contains("does not exist"), "{err}");
    assert!(store.queue_show(ids[2]).await.unwrap().is_some(), "a refused delete deletes nothing");
    s.ok(&["queue", "delete", &ids[2].to_string()]);
    assert!(store.queue_show(ids[2]).await.unwrap().is_none());

    s.ok(&["queue", "bounce", &ids[1].to_lowercase_string()]);
    let m = store.queue_show(ids[1]).await.unwrap().unwrap();
    assert_eq!(m.recipients[0].status, RecipientStatus::Failed);

    let events = store.queue_events_after(0, 100).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| (e.message, e.action)).collect();
    assert_eq!(
        actions,
        vec![
            (ids[1], QueueAction::Hold),
            (ids[1], QueueAction::Release),
            (ids[0], QueueAction::Retry),
            (ids[0], QueueAction::Retry),
            (ids[1], QueueAction::Retry),
            (ids[2], QueueAction::Retry),
            (ids[2], QueueAction::Delete),
            (ids[1], QueueAction::Bounce),
        ]
    );
    // Each is in the audit log, under the system user who typed it, with the recipients.
    let audit = store.list_audit(20, None).await.unwrap();
    let logged: Vec<_> = audit
        .iter()
        .rev()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.object.parse::<QueueId>().unwrap()))
        .collect();
    let expected: Vec<_> = events
        .iter()
        .map(|e| ("cli:ops", format!("queue.{}", e.action.as_str()), e.message))
        .collect();
    assert_eq!(logged, expected.iter().map(|(a, b, c)| (*a, b.as_str(), *c)).collect::<Vec<_>>());
    assert_eq!(
        audit[0].after,
        Some(serde_json::json!({"whole_message": true, "recipients": ["dan@y.test"]}))
    );
    store.close().await;
}

trait Lower {
    fn to_lowercase_string(&self) -> String;
}

impl Lower for QueueId {
    /// IDs typed in lower case are accepted too.
    fn to_lowercase_string(&self) -> String {
        self.to_string().to_lowercase()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_commands_sqlite() {
    queue_commands(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_commands_postgres() {
    let Some(db) = TestDb::postgres("queue_cli::queue_commands_postgres").await else { return };
    queue_commands(db).await;
}
