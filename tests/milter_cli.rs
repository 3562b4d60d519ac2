//! `postern milter …` as an administrator types it: milters added, listed, moved, turned off and
//! removed, clear refusals of a bad address or timeout, and `milter test` showing what a milter
//! (here a stand-in answering option negotiation) speaks, or why it cannot be reached.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::Setup;
use postern_store::testing::TestDb;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A milter that answers one option negotiation (version 6, add-header and quarantine, no HELO)
/// and then reads until the client leaves.
fn negotiating_milter() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut offer = [0u8; 17];
            if conn.read_exact(&mut offer).is_err() || offer[4] != b'O' {
                continue;
            }
            let mut answer = vec![0, 0, 0, 13, b'O'];
            for n in [6u32, 0x21, 0x02] {
                answer.extend_from_slice(&n.to_be_bytes());
            }
            let _ = conn.write_all(&answer);
            let _ = conn.read_to_end(&mut Vec::new());
        }
    });
    port
}

fn milters(db: &TestDb) {
    let s = Setup::new(&db.database);
    let port = negotiating_milter();
    let address = format!("inet:127.0.0.1:{port}");
    let out = s.ok(&["milter", "add", "opendkim", &address, "--default", "accept"]);
    assert!(out.contains("added milter opendkim"), "{out}");
    s.ok(&[
        "milter",
        "add",
        "clamav",
        "unix:/nonexistent/clamav-milter.ctl",
        "--listeners",
        "smtp",
        "--command-timeout",
        "500ms",
        "--position",
        "1",
    ]);
    let listed = json(&s.ok(&["milter", "list", "--json"]));
    assert_eq!(listed[0]["name"], "clamav");
    assert_eq!(listed[0]["listeners"]["submission"], false);
    assert_eq!(listed[0]["timeouts"]["command_ms"], 500);
    assert_eq!(listed[1]["address"], address);
    assert_eq!(listed[1]["default_action"], "accept");

    let err = s.fails(&["milter", "add", "x", "127.0.0.1:8891"]);
    assert!(err.contains("inet:host:port"), "{err}");
    let err = s.fails(&["milter", "add", "x", "unix:/x", "--eom-timeout", "2h"]);
    assert!(err.contains("not a duration"), "{err}");
    let err = s.fails(&["milter", "add", "opendkim", "unix:/x"]);
    assert!(err.contains("already exists"), "{err}");

    let out = s.ok(&["milter", "test", "opendkim"]);
    assert!(out.contains("milter protocol version 6"), "{out}");
    assert!(out.contains("add-header quarantine") && out.contains("no-helo"), "{out}");
    let err = s.fails(&["milter", "test", "clamav"]);
    assert!(err.contains("cannot connect"), "{err}");

    s.ok(&["milter", "move", "opendkim", "1"]);
    s.ok(&["milter", "disable", "clamav"]);
    let listed = json(&s.ok(&["milter", "list", "--json"]));
    assert_eq!(listed[0]["name"], "opendkim");
    assert_eq!(listed[1]["enabled"], false);
    s.ok(&["milter", "remove", "clamav"]);
    let err = s.fails(&["milter", "remove", "clamav"]);
    assert!(err.contains("no milter is called"), "{err}");
    assert_eq!(json(&s.ok(&["milter", "list", "--json"])).as_array().unwrap().len(), 1);
}

#[test]
fn milters_sqlite() {
    milters(&TestDb::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn milters_postgres() {
    let Some(db) = TestDb::postgres("milter_cli::milters_postgres").await else { return };
    tokio::task::spawn_blocking(move || milters(&db)).await.unwrap();
}
