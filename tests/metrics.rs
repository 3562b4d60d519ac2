//! `/metrics` on the real appliance: mail sent over SMTP (some delivered to Maildirs, one
//! refused by an access rule), then a scrape whose counters agree with the delivery log that
//! the API shows; a scrape without the token gets no data, on the console and on the metrics
//! listener alike. And the dashboard's chart (`/api/v1/traffic`, its numbers) counts what the
//! scrapes counted, across restarts of `serve`, as the engine samples its counters into the
//! store.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::smtp::send;
use common::{Serve, Setup, applied};
use postern_store::testing::TestDb;

const TOKEN: &str = "metrics-token-5f1c2a9b7e";
const PASSWORD: &str = "correct horse battery";
const FROM: &str = "someone@remote.test";

/// A GET over HTTP/1.1; returns the status and the body.
fn get(addr: SocketAddr, path: &str, bearer: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    // Chunked bodies: the numbers are on lines of their own and never look like a sample.
    (status, body)
}

/// The samples of a scrape: `name{labels}` -> value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with("postern_"))
        .filter_map(|l| {
            l.rsplit_once(' ').map(|(k, v)| (k.to_string(), v.parse().unwrap_or(f64::NAN)))
        })
        .collect()
}

fn metrics_listener(serve: &Serve) -> SocketAddr {
    serve
        .stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("metrics").map(|a| a.trim().parse().unwrap()))
        .expect("serve prints the metrics listener")
}

/// Scrapes until `pred` holds (the bookkeeper records results in batches), or 20 s pass.
fn scrape_until(
    addr: SocketAddr,
    pred: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let start = Instant::now();
    loop {
        let (status, body) = get(addr, "/metrics", Some(TOKEN));
        assert_eq!(status, 200, "{body}");
        let s = samples(&body);
        if pred(&s) {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the counters never got there:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_count(console: SocketAddr, bearer: &str, status: &str) -> usize {
    let (code, body) =
        get(console, &format!("/api/v1/log?status={status}&limit=500"), Some(bearer));
    assert_eq!(code, 200, "{body}");
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |e| e + 1);
    let page: serde_json::Value =
        serde_json::from_str(&body[start..end]).unwrap_or_else(|e| panic!("{e}: {body}"));
    page["items"].as_array().unwrap().iter().filter(|e| e["status"] == status).count()
}

fn counters_agree_with_the_delivery_log(db: TestDb) {
    let setup = Setup::new(&db.database);
    let mut config = std::fs::read_to_string(setup.config()).unwrap();
    config.push_str(&format!("[metrics]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n"));
    std::fs::write(setup.config(), config).unwrap();
    let serve = setup.serve();
    let (smtp, console, metrics) =
        (serve.listeners["smtp"], serve.listeners["console"], metrics_listener(&serve));

    // Unauthorized scrapes get nothing, wherever they ask.
    for addr in [console, metrics] {
        let (status, body) = get(addr, "/metrics", None);
        assert_eq!(status, 401, "{body}");
        assert!(!body.contains("postern_"), "{body}");
        let (status, body) = get(addr, "/metrics", Some("not-the-token-at-all"));
        assert_eq!(status, 401, "{body}");
        assert!(!body.contains("postern_"), "{body}");
    }

    setup.ok(&["domain", "add", "example.test"]);
    for mailbox in ["ann@example.test", "bob@example.test"] {
        let out = setup.run(&["mailbox", "add", mailbox], &format!("{PASSWORD}\n"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    setup.ok(&[
        "policy",
        "rule",
        "add",
        "--stage",
        "rcpt",
        "--to",
        "bob@example.test",
        "REJECT",
        "550",
        "5.7.1",
        "not",
        "for",
        "bob",
    ]);
    serve
        .wait_log(Duration::from_secs(10), |l| {
            applied(l) && l["mailboxes"] == 2 && l["policy_rules"] == 1
        })
        .expect("the mailboxes and the rule are live");

    for n in 0..3 {
        let reply = send(smtp, FROM, "ann@example.test", &format!("message {n}"));
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
    }
    let reply = send(smtp, FROM, "bob@example.test", "refused");
    assert!(reply.starts_with("550 5.7.1"), "{reply}");

    let delivered = r#"postern_recipients_delivery_total{result="delivered"}"#;
    let rejected =
        r#"postern_messages_rejected_total{status="rejected",stage="rcpt",reason="access_rule"}"#;
    let s = scrape_until(metrics, |s| {
        // The queue gauges are read from the store, where a finished message's rows may
        // linger a moment after its result is counted.
        let waiting: f64 = s
            .iter()
            .filter(|(k, _)| k.starts_with("postern_queue_recipients{"))
            .map(|(_, v)| v)
            .sum();
        s.get(delivered) == Some(&3.0) && s.get(rejected) == Some(&1.0) && waiting == 0.0
    });
    assert_eq!(s[r#"postern_messages_received_total{listener="smtp"}"#], 3.0);
    assert_eq!(s[r#"postern_smtp_sessions_total{listener="smtp"}"#], 4.0);
    assert_eq!(s[r#"postern_smtp_sessions_current{listener="smtp"}"#], 0.0);
    assert_eq!(s[r#"postern_recipients_delivery_total{result="bounced"}"#], 0.0);
    assert_eq!(s[r#"postern_delivery_duration_seconds_count{transport="maildir"}"#], 3.0);
    assert!(s["postern_store_queue_commit_seconds_count"] >= 1.0, "{s:?}");
    let waiting: f64 =
        s.iter().filter(|(k, _)| k.starts_with("postern_queue_recipients{")).map(|(_, v)| v).sum();
    assert_eq!(waiting, 0.0, "the queue is empty once all is delivered: {s:?}");
    let maildir = setup.dir.path().join("data/mail/example.test/ann/new");
    assert_eq!(std::fs::read_dir(maildir).unwrap().count(), 3);

    // The same numbers as the delivery log, read through the API.
    let bearer = setup.ok(&["token", "create", "--owner", "admin", "--name", "metrics test"]);
    let bearer = bearer.trim();
    assert_eq!(log_count(console, bearer, "delivered"), 3);
    assert_eq!(log_count(console, bearer, "rejected"), 1);
    assert_eq!(log_count(console, bearer, "received"), 3);

    // The console's /metrics takes the same token.
    let (status, body) = get(console, "/metrics", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("postern_messages_received_total"), "{body}");
}

#[test]
fn counters_agree_with_the_delivery_log_sqlite() {
    counters_agree_with_the_delivery_log(TestDb::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_agree_with_the_delivery_log_postgres() {
    let Some(db) = TestDb::postgres("metrics::counters_agree_with_the_delivery_log_postgres").await
    else {
        return;
    };
    tokio::task::block_in_place(|| counters_agree_with_the_delivery_log(db));
}

/// The sum of a scrape's samples whose key starts with `prefix`.
fn sum(s: &HashMap<String, f64>, prefix: &str) -> f64 {
    s.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum()
}

/// The chart's totals through the API: (received, delivered, bounced, rejected).
fn chart_totals(console: SocketAddr, bearer: &str) -> (u64, u64, u64, u64) {
    let (code, body) = get(console, "/api/v1/traffic", Some(bearer));
    assert_eq!(code, 200, "{body}");
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |e| e + 1);
    let view: serde_json::Value =
        serde_json::from_str(&body[start..end]).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(view["source"], "counters", "{view}");
    let t = &view["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("{k} in {view}"));
    (n("received"), n("delivered"), n("bounced"), n("rejected"))
}

/// One run of `serve`: `good` messages to ann, `bad` to bob (refused); returns what the scrape
/// counted once all is delivered, as (received, delivered, bounced, rejected), and stops serve.
fn one_run(setup: &Setup, first: bool, good: usize, bad: usize) -> (u64, u64, u64, u64) {
    let mut serve = setup.serve();
    let (smtp, metrics) = (serve.listeners["smtp"], metrics_listener(&serve));
    if first {
        setup.ok(&["domain", "add", "example.test"]);
        let out = setup.run(&["mailbox", "add", "ann@example.test"], &format!("{PASSWORD}\n"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        setup.ok(&[
            "policy",
            "rule",
            "add",
            "--stage",
            "rcpt",
            "--to",
            "bob@example.test",
            "REJECT",
            "550",
            "5.7.1",
            "not",
            "for",
            "bob",
        ]);
        serve
            .wait_log(Duration::from_secs(10), |l| {
                applied(l) && l["mailboxes"] == 1 && l["policy_rules"] == 1
            })
            .expect("the mailbox and the rule are live");
    }
    for n in 0..good {
        let reply = send(smtp, FROM, "ann@example.test", &format!("message {n}"));
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
    }
    for _ in 0..bad {
        let reply = send(smtp, FROM, "bob@example.test", "refused");
        assert!(reply.starts_with("550 5.7.1"), "{reply}");
    }
    let delivered = r#"postern_recipients_delivery_total{result="delivered"}"#;
    let rejected = r#"postern_messages_rejected_total{status="rejected","#;
    let s = scrape_until(metrics, |s| {
        s.get(delivered) == Some(&(good as f64)) && sum(s, rejected) == bad as f64
    });
    let scraped = (
        sum(&s, "postern_messages_received_total{") as u64,
        s[delivered] as u64,
        s[r#"postern_recipients_delivery_total{result="bounced"}"#] as u64,
        sum(&s, rejected) as u64,
    );
    // A drained stop: the engine's last sample goes to the store.
    assert!(serve.terminate().success());
    scraped
}

fn the_chart_counts_what_the_scrapes_counted(db: TestDb) {
    let setup = Setup::new(&db.database);
    let mut config = std::fs::read_to_string(setup.config()).unwrap();
    config.push_str(&format!("[metrics]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n"));
    std::fs::write(setup.config(), config).unwrap();
    let first = one_run(&setup, true, 3, 1);
    assert_eq!(first, (3, 3, 0, 1));
    // The first run made the administrator.
    let bearer = setup.ok(&["token", "create", "--owner", "admin", "--name", "chart test"]);
    let bearer = bearer.trim();
    // The counters start again from 0 in the next process; the chart keeps the sum.
    let second = one_run(&setup, false, 2, 2);
    assert_eq!(second, (2, 2, 0, 2));

    let serve = setup.serve();
    let console = serve.listeners["console"];
    let sum = (first.0 + second.0, first.1 + second.1, first.2 + second.2, first.3 + second.3);
    assert_eq!(chart_totals(console, bearer), sum);
    // And the delivery log agrees with both.
    assert_eq!(log_count(console, bearer, "delivered") as u64, sum.1);
    assert_eq!(log_count(console, bearer, "rejected") as u64, sum.3);
}

#[test]
fn the_chart_counts_what_the_scrapes_counted_sqlite() {
    the_chart_counts_what_the_scrapes_counted(TestDb::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_counts_what_the_scrapes_counted_postgres() {
    let Some(db) =
        TestDb::postgres("metrics::the_chart_counts_what_the_scrapes_counted_postgres").await
    else {
        return;
    };
    tokio::task::block_in_place(|| the_chart_counts_what_the_scrapes_counted(db));
}
