//! `postern dkim …` as an administrator types it: generate (the record to publish, never the
//! private key), list (--json), rotate and a forced activation; key sizes refused with a reason.

mod common;

use common::Setup;
use postern_store::testing::TestDb;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn dkim_keys(db: &TestDb) {
    let s = Setup::new(&db.database);
    s.ok(&["domain", "add", "example.test"]);
    let out = s.ok(&["dkim", "generate", "example.test", "--algorithm", "ed25519", "--selector", "ed1"]);
    assert!(out.contains("name   ed1._domainkey.example.test"), "{out}");
    assert!(out.contains("value  \"v=DKIM1; k=ed25519; p="), "{out}");
    let out = s.ok(&["dkim", "generate", "example.test"]);
    assert!(out.contains("(rsa-2048)") && out.contains("\" \""), "two strings: {out}");
    let err = s.fails(&["dkim", "generate", "example.test", "--bits", "1024"]);
    assert!(err.contains("too weak") && err.contains("2048"), "{err}");
    let err = s.fails(&["dkim", "generate", "nowhere.test"]);
    assert!(err.contains("nowhere.test"), "{err}");

    let listed = json(&s.ok(&["dkim", "list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["record_name"], "ed1._domainkey.example.test");
    assert_eq!(listed[0]["state"], "pending");
    assert!(listed[1]["record_value"].as_str().unwrap().starts_with("v=DKIM1; k=rsa; p=MII"));
    let text = s.ok(&["dkim", "list"]);
    assert!(!text.to_lowercase().contains("private") && text.contains("never"), "{text}");

    let err = s.fails(&["dkim", "rotate", "example.test"]);
    assert!(err.contains("no active DKIM key"), "{err}");
    let err = s.fails(&["dkim", "activate", "example.test", "ed1"]);
    assert!(err.contains("--force"), "{err}");
    let out = s.ok(&["dkim", "activate", "example.test", "ed1", "--force"]);
    assert!(out.contains("is active"), "{out}");
    let out = s.ok(&["dkim", "rotate", "example.test", "--algorithm", "ed25519"]);
    assert!(out.contains("pending until its record is published"), "{out}");
    let listed = json(&s.ok(&["dkim", "list", "example.test", "--json"]));
    let states: Vec<&str> = listed.as_array().unwrap().iter().map(|k| k["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["active", "pending", "pending"]);
}

#[test]
fn dkim_keys_sqlite() {
    dkim_keys(&TestDb::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn dkim_keys_postgres() {
    let Some(db) = TestDb::postgres("dkim_cli::dkim_keys_postgres").await else { return };
    tokio::task::spawn_blocking(move || dkim_keys(&db)).await.unwrap();
}
