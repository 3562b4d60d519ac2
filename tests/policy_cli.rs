//! `postern policy …` as an administrator types it: rules added, listed, moved and removed, clear
//! refusals of a bad pattern or code, and `policy test` naming the rule an envelope hits.

mod common;

use common::Setup;
use postern_store::testing::TestDb;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn rules(db: &TestDb) {
    let s = Setup::new(&db.database);
    let out = s.ok(&[
        "policy",
        "rule",
        "add",
        "--stage",
        "rcpt",
        "--client",
        "192.0.2.0/24",
        "--to",
        "@example.test",
        "REJECT",
        "550",
        "5.7.1",
        "not",
        "from",
        "there",
    ]);
    assert!(out.contains("added rule 1 at position 1"), "{out}");
    s.ok(&[
        "policy",
        "rule",
        "add",
        "--stage",
        "mail",
        "--from",
        "/^vip@/",
        "--position",
        "1",
        "OK",
    ]);
    let listed = json(&s.ok(&["policy", "rule", "list", "--json"]));
    assert_eq!(listed[0]["id"], 2);
    assert_eq!(listed[1]["action"], "REJECT 550 5.7.1 not from there");
    assert_eq!(listed[1]["client"], "192.0.2.0/24");

    let err = s.fails(&["policy", "rule", "add", "--stage", "mail", "--from", "/(oops/", "OK"]);
    assert!(err.contains("not a valid pattern"), "{err}");
    let err = s.fails(&["policy", "rule", "add", "--stage", "rcpt", "DEFER", "550", "5.7.1", "x"]);
    assert!(err.contains("DEFER needs a 4xx code"), "{err}");
    let err = s.fails(&["policy", "rule", "add", "--stage", "connect", "--to", "a@b.test", "OK"]);
    assert!(err.contains("not known yet at the connect stage"), "{err}");

    let out = s.ok(&[
        "policy",
        "test",
        "--client",
        "192.0.2.9",
        "--helo",
        "c.test",
        "--from",
        "a@b.test",
        "--to",
        "ann@example.test",
    ]);
    assert!(
        out.contains("rcpt <ann@example.test>: rule 1 (REJECT 550 5.7.1 not from there)"),
        "{out}"
    );
    assert!(out.contains("client 192.0.2.9 is in 192.0.2.0/24"), "{out}");
    let out = s.ok(&["policy", "test", "--client", "198.51.100.1", "--to", "ann@example.test"]);
    assert!(out.contains("rcpt <ann@example.test>: no rule matched"), "{out}");

    s.ok(&["policy", "rule", "move", "1", "1"]);
    assert_eq!(json(&s.ok(&["policy", "rule", "list", "--json"]))[0]["id"], 1);
    s.ok(&["policy", "rule", "remove", "1"]);
    let err = s.fails(&["policy", "rule", "remove", "1"]);
    assert!(err.contains("policy rule 1 does not exist"), "{err}");
    assert_eq!(json(&s.ok(&["policy", "rule", "list", "--json"])).as_array().unwrap().len(), 1);
}

#[test]
fn rules_sqlite() {
    rules(&TestDb::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_postgres() {
    let Some(db) = TestDb::postgres("policy_cli::rules_postgres").await else { return };
    tokio::task::spawn_blocking(move || rules(&db)).await.unwrap();
}
