//! `postern checks …` and `postern policy service …` as an administrator types them: rules and
//! services added, listed, moved and removed, clear refusals, `checks test` naming the rule a
//! message hits, and `policy service test` saying a service does not answer.

mod common;

use common::Setup;
use postern_store::testing::TestDb;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn checks(db: &TestDb) {
    let s = Setup::new(&db.database);
    let out = s.ok(&[
        "checks",
        "add",
        "--part",
        "header",
        "--pattern",
        "^Subject:.*pills",
        "REJECT",
        "no",
        "pills",
    ]);
    assert!(out.contains("added check 1 at position 1"), "{out}");
    s.ok(&["checks", "add", "--part", "body", "--pattern", "casino", "--position", "1", "HOLD"]);
    let listed = json(&s.ok(&["checks", "list", "--json"]));
    assert_eq!(listed[0]["id"], 2);
    assert_eq!(listed[1]["action"], "REJECT 550 5.7.1 no pills");
    let err = s.fails(&["checks", "add", "--part", "body", "--pattern", "(oops", "HOLD"]);
    assert!(err.contains("not a valid pattern"), "{err}");
    let err = s.fails(&["checks", "add", "--part", "body", "--pattern", "x", "IGNORE"]);
    assert!(err.contains("body rules"), "{err}");

    let out = s.run(&["checks", "test", "-"], "Subject: cheap\n pills\n\ncasino night\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("header rule 1 (REJECT 550 5.7.1 no pills) matched"), "{text}");
    assert!(text.contains("refused by rule 1"), "{text}");
    s.ok(&["checks", "move", "1", "2"]);
    s.ok(&["checks", "remove", "1"]);
    let err = s.fails(&["checks", "remove", "1"]);
    assert!(err.contains("content check 1 does not exist"), "{err}");

    let port = postern_store::testing::free_port();
    let address = format!("inet:127.0.0.1:{port}");
    let out = s.ok(&[
        "policy",
        "service",
        "add",
        "grey",
        &address,
        "--timeout",
        "2s",
        "--on-failure",
        "defer",
    ]);
    assert!(out.contains("added policy service grey"), "{out}");
    let err = s.fails(&["policy", "service", "add", "bad", "tcp://x"]);
    assert!(err.contains("inet:host:port"), "{err}");
    let listed = json(&s.ok(&["policy", "service", "list", "--json"]));
    assert_eq!(listed[0]["on_failure"], "defer");
    let out = s.run(&["policy", "service", "test", "grey"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("grey gave no answer: cannot connect"), "{text}");
    s.ok(&["policy", "service", "remove", "grey"]);
}

#[test]
fn checks_sqlite() {
    checks(&TestDb::sqlite());
}
