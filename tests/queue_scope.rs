//! A domain-admin's queue actions against the real `postern serve`, end to end: messages to a
//! recipient in its domain and one in another wait for a next hop that is down; through the
//! API it holds, deletes and bounces its own recipient; when the next hop comes back, the
//! running engine delivers only the other domain's recipient, sends the sender a DSN for the
//! bounced one alone, and after a release delivers the held one. The audit log has it all.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Serve, Setup, applied};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use postern_store::testing::TestDb;
use postern_store::testing::free_port;
use reqwest::StatusCode;
use serde_json::Value;

const PASSWORD: &str = "a long enough password for the test";

/// An API client with a bearer token.
struct Api {
    http: reqwest::Client,
    base: String,
    bearer: String,
}

impl Api {
    async fn expect(&self, expected: StatusCode, method: &str, path: &str) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.bearer)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, expected, "{path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// GETs `path` until `pred` holds for its body (or 20 s pass); returns the body.
    async fn wait_for(&self, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let value = self.expect(StatusCode::OK, "GET", path).await;
            if pred(&value) {
                return value;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{path} never got there: {value}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn maildir(setup: &Setup, address: &str) -> PathBuf {
    let (local, domain) = address.split_once('@').unwrap();
    setup.dir.path().join("data/mail").join(domain).join(local)
}

/// The contents of the files in `maildir/new`.
fn new_mail(maildir: &Path) -> Vec<String> {
    std::fs::read_dir(maildir.join("new"))
        .map(|d| {
            d.flatten().map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect()
        })
        .unwrap_or_default()
}

/// The subjects of `maildir`'s new mail, sorted, once it holds `count` messages (or 20 s pass).
async fn subjects(maildir: &Path, count: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let mail = new_mail(maildir);
        if mail.len() >= count || start.elapsed() > Duration::from_secs(20) {
            let mut found: Vec<String> = mail
                .iter()
                .filter_map(|m| {
                    m.lines().find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
                })
                .collect();
            found.sort();
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send_to_both(smtp: SocketAddr, subject: &str) {
    let message = Message::builder()
        .from("sam@c.test".parse::<Mailbox>().unwrap())
        .to("u@a.test".parse::<Mailbox>().unwrap())
        .to("v@b.test".parse::<Mailbox>().unwrap())
        .subject(subject)
        .body(format!("{subject}\r\n"))
        .unwrap();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.ip().to_string())
        .port(smtp.port())
        .timeout(Some(Duration::from_secs(20)))
        .build();
    transport.send(message).await.unwrap_or_else(|e| panic!("sending {subject:?}: {e}"));
}

/// Three domains with a mailbox each, dora the domain-admin of a.test, and a next hop that is
/// down for a.test and b.test. Returns the admin's and dora's API clients.
fn start(db: &TestDb) -> (Setup, Serve, Api, Api) {
    let setup = Setup::new(&db.database);
    let serve = setup.serve();
    for domain in ["a.test", "b.test", "c.test"] {
        setup.ok(&["domain", "add", domain]);
    }
    for mailbox in ["u@a.test", "v@b.test", "sam@c.test"] {
        let out = setup.run(&["mailbox", "add", mailbox], &format!("{PASSWORD}\n"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = setup.run(
        &["admin", "create", "dora", "--role", "domain-admin", "--domains", "a.test"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let closed = format!("smtp:[127.0.0.1]:{}", free_port());
    for domain in ["a.test", "b.test"] {
        setup.ok(&["transport", "set", domain, &closed, "--tls", "none"]);
    }
    serve
        .wait_log(Duration::from_secs(5), |l| {
            applied(l) && l["mailboxes"] == 3 && l["transports"] == 2
        })
        .expect("the mailboxes and transports are live");
    let client = |owner: &str| Api {
        http: reqwest::Client::new(),
        base: format!("http://{}/api/v1", serve.listeners["console"]),
        bearer: setup.ok(&["token", "create", "--owner", owner, "--name", "test"]).trim().into(),
    };
    let (admin, dora) = (client("admin"), client("dora"));
    (setup, serve, admin, dora)
}

async fn a_domain_admins_actions_reach_the_engine(db: TestDb) {
    let (setup, serve, admin, dora) = tokio::task::block_in_place(|| start(&db));
    let smtp = serve.listeners["smtp"];
    for subject in ["held", "deleted", "bounced"] {
        send_to_both(smtp, subject).await;
    }
    // Every recipient waits, deferred.
    let all_deferred = |page: &Value| {
        let items = page["items"].as_array().unwrap();
        items.len() == 3
            && items.iter().all(|m| {
                m["recipients"].as_array().unwrap().iter().all(|r| r["status"] == "deferred")
            })
    };
    let queue = admin.wait_for("/queue", all_deferred).await;
    let id = |i: usize| queue["items"][i]["id"].as_str().unwrap().to_string();
    let (held, deleted, bounced) = (id(0), id(1), id(2));
    let subject = admin.expect(StatusCode::OK, "GET", &format!("/queue/{bounced}")).await;
    assert!(subject["headers"].to_string().contains("bounced"), "{subject}");

    // Dora acts on her recipient of each.
    dora.expect(StatusCode::OK, "POST", &format!("/queue/{held}/hold")).await;
    dora.expect(StatusCode::OK, "POST", &format!("/queue/{deleted}/delete")).await;
    dora.expect(StatusCode::OK, "POST", &format!("/queue/{bounced}/bounce")).await;
    // The sender hears of the bounced recipient, and of it alone.
    let dsn = {
        let dir = maildir(&setup, "sam@c.test");
        assert_eq!(subjects(&dir, 1).await.len(), 1, "a DSN for the sender");
        new_mail(&dir).remove(0)
    };
    assert!(dsn.contains("Final-Recipient: rfc822; u@a.test"), "{dsn}");
    assert!(dsn.contains("bounced by the administrator"), "{dsn}");
    // (The returned headers name both, as the sender wrote them.)
    assert_eq!(dsn.matches("Final-Recipient:").count(), 1, "only hers: {dsn}");

    // The next hop comes back (local delivery), and the queue is flushed.
    tokio::task::block_in_place(|| {
        for domain in ["a.test", "b.test"] {
            setup.ok(&["transport", "remove", domain]);
        }
        serve
            .wait_log(Duration::from_secs(5), |l| applied(l) && l["transports"] == 0)
            .expect("the transports are gone");
        setup.ok(&["queue", "flush"]);
    });
    let (u, v) = (maildir(&setup, "u@a.test"), maildir(&setup, "v@b.test"));
    assert_eq!(subjects(&v, 3).await, ["bounced", "deleted", "held"], "bob's recipient gets all");
    let left = admin
        .wait_for("/queue", |p| {
            p["items"].as_array().unwrap().len() == 1
                && p["items"][0]["recipients"][1]["status"] == "delivered"
        })
        .await;
    assert_eq!(left["items"][0]["id"], held.as_str(), "{left}");
    assert_eq!(left["items"][0]["recipients"][0]["held"], true, "{left}");
    assert!(new_mail(&u).is_empty(), "dora's recipient got nothing yet");

    // She releases hers and has it tried now: delivered, and the queue is empty.
    dora.expect(StatusCode::OK, "POST", &format!("/queue/{held}/release")).await;
    dora.expect(StatusCode::OK, "POST", &format!("/queue/{held}/retry")).await;
    assert_eq!(subjects(&u, 1).await, ["held"]);
    admin.wait_for("/queue", |p| p["total"] == 0).await;
    assert_eq!(new_mail(&v).len(), 3, "nothing twice");

    // The audit log: dora's actions by her token, the flush by the system user.
    let audit = admin.expect(StatusCode::OK, "GET", "/audit?limit=50").await;
    let queue_actions: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter(|e| e["action"].as_str().unwrap().starts_with("queue."))
        .map(|e| {
            let actor = e["actor"].as_str().unwrap();
            let who = actor.split('/').next().unwrap_or(actor);
            let who = if who.starts_with("cli:") { "cli" } else { who };
            (who.to_string(), e["action"].as_str().unwrap().to_string())
        })
        .collect();
    let expected = [
        ("api:dora", "queue.hold"),
        ("api:dora", "queue.delete"),
        ("api:dora", "queue.bounce"),
        // One record per message the flush retried.
        ("cli", "queue.retry"),
        ("cli", "queue.retry"),
        ("cli", "queue.retry"),
        ("api:dora", "queue.release"),
        ("api:dora", "queue.retry"),
    ];
    assert_eq!(
        queue_actions,
        expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>()
    );
    drop(serve);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_domain_admins_actions_reach_the_engine_sqlite() {
    a_domain_admins_actions_reach_the_engine(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_domain_admins_actions_reach_the_engine_postgres() {
    let test = "queue_scope::a_domain_admins_actions_reach_the_engine_postgres";
    let Some(db) = TestDb::postgres(test).await else { return };
    a_domain_admins_actions_reach_the_engine(db).await;
}
