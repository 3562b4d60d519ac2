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
    let out =
        s.ok(&["dkim", "generate", "example.test", "--algorithm", "ed25519", "--selector", "ed1"]);
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
    let states: Vec<&str> =
        listed.as_array().unwrap().iter().map(|k| k["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["active", "pending", "pending"]);

    // Automatic rotation, shown in the list; signing relayed mail.
    assert!(s.ok(&["dkim", "list"]).contains(" off"), "auto-rotate column");
    let out = s.ok(&["dkim", "auto-rotate", "example.test", "--every", "90d"]);
    assert!(out.contains("every 90 days"), "{out}");
    assert_eq!(json(&s.ok(&["dkim", "list", "--json"]))[0]["auto_rotate_days"], 90);
    assert!(s.ok(&["dkim", "list"]).contains("every 90d"));
    let err = s.fails(&["dkim", "auto-rotate", "example.test", "--every", "2d"]);
    assert!(err.contains("7 to 3650"), "{err}");
    s.ok(&["dkim", "sign-relayed", "example.test", "on"]);
    s.ok(&["dkim", "auto-rotate", "example.test", "--every", "off"]);
    assert_eq!(
        json(&s.ok(&["dkim", "list", "--json"]))[0]["auto_rotate_days"],
        serde_json::Value::Null
    );
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

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// pebble-challtestsrv on free ports: (the process, DNS port, management port).
fn challtestsrv(test: &str) -> Option<(Killed, u16, u16)> {
    use std::process::{Command, Stdio};
    let exists = Command::new("sh").args(["-c", "command -v pebble-challtestsrv"]).status();
    if !exists.is_ok_and(|s| s.success()) {
        postern_store::testing::missing_peer(
            test,
            "pebble-challtestsrv is not installed (Debian package pebble)",
        );
        return None;
    }
    let port = || postern_store::testing::free_port();
    let (dns, management) = (port(), port());
    let child = Killed(
        Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", management)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", dns)).is_err()
    {
        assert!(start.elapsed().as_secs() < 15, "pebble-challtestsrv did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Some((child, dns, management))
}

async fn set_txt(management: u16, host: &str, value: &str) {
    let body = serde_json::json!({ "host": format!("{host}."), "value": value });
    let set = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{management}/set-txt"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success());
}

/// `postern dkim check` asks the servers in `[dns] servers` (here pebble-challtestsrv) and
/// activates the key once its record is there.
#[tokio::test(flavor = "multi_thread")]
async fn dkim_check_activates_a_published_key() {
    let test = "dkim_cli::dkim_check_activates_a_published_key";
    let Some((_dns, dns, management)) = challtestsrv(test) else { return };
    let db = TestDb::sqlite();
    let mut s = Setup::new(&db.database);
    s.env.push(("POSTERN_DNS_SERVERS".into(), format!("127.0.0.1:{dns}")));
    s.ok(&["domain", "add", "example.test"]);
    s.ok(&["dkim", "generate", "example.test", "--algorithm", "ed25519", "--selector", "k1"]);
    let out = s.ok(&["dkim", "check", "example.test"]);
    assert!(out.contains("pending") && out.contains("missing at "), "{out}");
    let key = &json(&s.ok(&["dkim", "list", "--json"]))[0];
    set_txt(management, "k1._domainkey.example.test", key["record_value"].as_str().unwrap()).await;
    let checked = json(&s.ok(&["dkim", "check", "--json"]));
    assert_eq!(checked[0]["state"], "active");
    assert_eq!(checked[0]["dns"]["status"], "published");
}

/// `postern dns check` reports each record with what to publish, and fails while a required
/// one is missing or wrong.
#[tokio::test(flavor = "multi_thread")]
async fn dns_check_says_what_to_publish() {
    let test = "dkim_cli::dns_check_says_what_to_publish";
    let Some((_dns, dns, management)) = challtestsrv(test) else { return };
    let db = TestDb::sqlite();
    let mut s = Setup::new(&db.database);
    s.env.push(("POSTERN_DNS_SERVERS".into(), format!("127.0.0.1:{dns}")));
    s.ok(&["domain", "add", "example.test"]);
    s.ok(&["dkim", "generate", "example.test", "--algorithm", "ed25519", "--selector", "k1"]);
    set_txt(management, "example.test", "v=spf1 mx -all").await;
    set_txt(management, "k1._domainkey.example.test", "v=DKIM1; k=ed25519; p=AAAA").await;
    let out = s.run(&["dns", "check", "example.test", "--json"], "");
    assert!(!out.status.success(), "a missing DMARC record is a failure");
    let rows = json(&String::from_utf8(out.stdout).unwrap());
    let row = |check: &str| {
        rows.as_array().unwrap().iter().find(|r| r["check"] == check).unwrap().clone()
    };
    assert_eq!(row("SPF")["status"], "found");
    assert_eq!(row("DKIM")["status"], "wrong");
    assert_eq!(row("DKIM")["found"], "v=DKIM1; k=ed25519; p=AAAA");
    assert!(row("DKIM")["publish"].as_str().unwrap().starts_with("TXT \"v=DKIM1; k=ed25519; p="));
    assert_eq!(row("DMARC")["status"], "missing");
    assert_eq!(
        row("DMARC")["publish"],
        "TXT \"v=DMARC1; p=none; rua=mailto:postmaster@example.test\""
    );
    // pebble-challtestsrv cannot answer MX queries: a failed lookup, not a missing record.
    assert_eq!(row("MX")["status"], "failed");
}

/// The DNS health report through the API of a running `postern serve` whose `[dns] servers` is
/// pebble-challtestsrv: a missing DMARC record and a wrong DKIM record, each with the record to
/// publish (the "done when"), and the sending address's reverse DNS row.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_reports_a_missing_dmarc_and_a_wrong_dkim_record() {
    let test = "dkim_cli::the_api_reports_a_missing_dmarc_and_a_wrong_dkim_record";
    let Some((_dns, dns, management)) = challtestsrv(test) else { return };
    let db = TestDb::sqlite();
    let mut s = Setup::new(&db.database);
    s.env.push(("POSTERN_DNS_SERVERS".into(), format!("127.0.0.1:{dns}")));
    s.ok(&["domain", "add", "example.test"]);
    s.ok(&["dkim", "generate", "example.test", "--algorithm", "ed25519", "--selector", "k1"]);
    set_txt(management, "example.test", "v=spf1 mx -all").await;
    set_txt(management, "k1._domainkey.example.test", "v=DKIM1; k=ed25519; p=AAAA").await;
    // serve creates the administrator the token belongs to.
    let serve = tokio::task::block_in_place(|| s.serve());
    let bearer = s.ok(&["token", "create", "--owner", "admin", "--name", "dns", "--read-only"]);
    let response = reqwest::Client::new()
        .get(format!("http://{}/api/v1/domains/example.test/dns", serve.listeners["console"]))
        .bearer_auth(bearer.trim())
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let report = json(&response.text().await.unwrap());
    let rows = report["items"].as_array().unwrap();
    let row = |check: &str| rows.iter().find(|r| r["check"] == check).unwrap().clone();
    assert_eq!(row("DMARC")["status"], "missing");
    assert_eq!(
        row("DMARC")["publish"],
        "TXT \"v=DMARC1; p=none; rua=mailto:postmaster@example.test\""
    );
    assert_eq!(row("DKIM")["status"], "wrong");
    assert_eq!(row("DKIM")["found"], "v=DKIM1; k=ed25519; p=AAAA");
    assert!(row("DKIM")["publish"].as_str().unwrap().starts_with("TXT \"v=DKIM1; k=ed25519; p="));
    assert_eq!(row("SPF")["status"], "found");
    // pebble-challtestsrv gives every name its default address and serves no PTR records: the
    // reverse DNS row is there, and not found.
    assert_ne!(row("rDNS")["status"], "found", "{report}");
    assert!(report["summary"].as_str().unwrap().ends_with("to fix"), "{report}");
}
