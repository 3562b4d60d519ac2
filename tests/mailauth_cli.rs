//! `postern mailauth policy` as an administrator types it: the defaults, a global change, a
//! domain's override (made from the global policy), clearing it, and bad values refused.

mod common;

use common::Setup;
use postern_store::testing::TestDb;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn policy(db: &TestDb) {
    let s = Setup::new(&db.database);
    s.ok(&["domain", "add", "example.test"]);
    let shown = json(&s.ok(&["mailauth", "policy", "--json"]));
    assert_eq!(shown[0]["scope"], "global");
    assert_eq!(shown[0]["dmarc_reject"], "reject");
    assert_eq!(shown[0]["dmarc_quarantine"], "tag");
    assert_eq!(shown[0]["spf_fail"], "record");
    assert_eq!(shown[0]["temperror"], "accept");

    let out = s.ok(&["mailauth", "policy", "--dmarc-quarantine", "hold", "--temperror", "defer"]);
    assert!(out.contains("global") && out.contains("hold") && out.contains("defer"), "{out}");
    s.ok(&["mailauth", "policy", "--domain", "example.test", "--spf-fail", "reject"]);
    let shown = json(&s.ok(&["mailauth", "policy", "--json"]));
    assert_eq!(shown.as_array().unwrap().len(), 2, "{shown}");
    assert_eq!(shown[1]["scope"], "example.test");
    assert_eq!(shown[1]["spf_fail"], "reject");
    // The override starts from the global policy.
    assert_eq!(shown[1]["dmarc_quarantine"], "hold");
    assert_eq!(shown[1]["temperror"], "defer");

    let err = s.fails(&["mailauth", "policy", "--dmarc-reject", "bounce"]);
    assert!(err.contains("reject, quarantine, record"), "{err}");
    let err = s.fails(&["mailauth", "policy", "--domain", "nowhere.test", "--spf-fail", "tag"]);
    assert!(err.contains("nowhere.test"), "{err}");

    let out = s.ok(&["mailauth", "policy", "--domain", "example.test", "--clear"]);
    assert!(out.contains("global inbound policy again"), "{out}");
    let shown = json(&s.ok(&["mailauth", "policy", "--json"]));
    assert_eq!(shown.as_array().unwrap().len(), 1, "{shown}");
}

#[test]
fn policy_sqlite() {
    policy(&TestDb::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_postgres() {
    let Some(db) = TestDb::postgres("mailauth_cli::policy_postgres").await else { return };
    tokio::task::spawn_blocking(move || policy(&db)).await.unwrap();
}
