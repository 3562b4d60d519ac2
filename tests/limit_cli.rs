//! `postern limit …` as an administrator types it: the defaults listed, a limit added, changed
//! and removed, clear refusals of a key that does not go with the measure or a bad window.

mod common;

use common::Setup;
use postern_store::testing::TestDb;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn limits(db: &TestDb) {
    let s = Setup::new(&db.database);
    let out = s.ok(&["limit", "list"]);
    assert!(out.contains("30 auth-failures per client-ip per 1h"), "the defaults: {out}");
    let out = s.ok(&["limit", "add", "messages", "sender-domain", "500", "1h"]);
    assert!(out.contains("rate limit 4: 500 messages per sender-domain per 1h"), "{out}");
    let out = s.ok(&["limit", "set", "4", "--max", "50", "--window", "10m"]);
    assert!(out.contains("rate limit 4: 50 messages per sender-domain per 10m"), "{out}");
    let listed = json(&s.ok(&["limit", "list", "--json"]));
    assert_eq!(listed[3]["threshold"], 50);
    assert_eq!(listed[3]["key"], "sender-domain");

    let err = s.fails(&["limit", "add", "connections", "user", "5", "1m"]);
    assert!(err.contains("connections are counted per client-ip, client-network only"), "{err}");
    let err = s.fails(&["limit", "add", "messages", "user", "5", "1y"]);
    assert!(err.contains("not a window"), "{err}");
    let err = s.fails(&["limit", "set", "99", "--max", "1"]);
    assert!(err.contains("there is no rate limit 99"), "{err}");

    let out = s.ok(&["limit", "remove", "4"]);
    assert!(out.contains("removed rate limit 4"), "{out}");
    assert!(s.ok(&["limit", "counters"]).contains("SUBJECT"));
}

#[test]
fn limits_sqlite() {
    limits(&TestDb::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_postgres() {
    let Some(db) = TestDb::postgres("limit_cli::limits_postgres").await else { return };
    tokio::task::spawn_blocking(move || limits(&db)).await.unwrap();
}
