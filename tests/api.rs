//! The REST API end to end, as a script uses it: the real `postern serve`, a token from
//! `postern token create`, reqwest as the HTTP client and lettre as the SMTP client. A domain and
//! a mailbox are added through the API, a message is delivered to the mailbox and another waits
//! for a next hop that is down; both show in the queue and the delivery log, and the waiting one
//! is held and released.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Serve, Setup, applied};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use postern_store::testing::TestDb;
use postern_store::testing::free_port;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An API client with a bearer token.
struct Api {
    http: reqwest::Client,
    base: String,
    bearer: String,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.bearer)
            .timeout(Duration::from_secs(20));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
        };
        (status, value)
    }

    /// A call that must answer `expected`; returns the body.
    async fn expect(
        &self,
        expected: StatusCode,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, value) = self.call(method, path, body).await;
        assert_eq!(status, expected, "{method} {path}: {value}");
        value
    }

    /// GETs `path` until `pred` holds for its body (or 20 s pass); returns the body.
    async fn wait_for(&self, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let value = self.expect(StatusCode::OK, "GET", path, None).await;
            if pred(&value) {
                return value;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{path} never got there: {value}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The items of a list reply.
fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().unwrap_or_else(|| panic!("a list reply without items: {page}"))
}

/// The log entry for `recipient` with `status`, if the page has one.
fn entry<'a>(page: &'a Value, recipient: &str, status: &str) -> Option<&'a Value> {
    items(page).iter().find(|e| e["recipient"] == recipient && e["status"] == status)
}

async fn send(smtp: SocketAddr, from: &str, to: &str, subject: &str) {
    let message = Message::builder()
        .from(from.parse::<Mailbox>().unwrap())
        .to(to.parse::<Mailbox>().unwrap())
        .subject(subject)
        .body(format!("{subject}\r\n"))
        .unwrap();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.ip().to_string())
        .port(smtp.port())
        .timeout(Some(Duration::from_secs(20)))
        .build();
    transport.send(message).await.unwrap_or_else(|e| panic!("sending {subject:?}: {e}"));
}

/// Starts serve on `db` and makes a write token for the first-run administrator.
fn start(db: &TestDb) -> (Setup, Serve, Api) {
    let setup = Setup::new(&db.database);
    let serve = setup.serve();
    let bearer = setup.ok(&["token", "create", "--owner", "admin", "--name", "api test"]);
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://{}/api/v1", serve.listeners["console"]),
        bearer: bearer.trim().to_string(),
    };
    (setup, serve, api)
}

async fn a_script_does_what_the_console_does(db: TestDb) {
    let (setup, serve, api) = tokio::task::block_in_place(|| start(&db));

    let doc = api.expect(StatusCode::OK, "GET", "/openapi.json", None).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);

    let domain = api
        .expect(StatusCode::CREATED, "POST", "/domains", Some(json!({"name": "example.test"})))
        .await;
    assert_eq!(domain["kind"], "local");
    let mailbox = json!({
        "address": "ann@example.test",
        "password": "correct horse battery",
        "display_name": "Ann Example",
        "quota_bytes": 100 << 20,
    });
    let created = api.expect(StatusCode::CREATED, "POST", "/mailboxes", Some(mailbox)).await;
    assert_eq!(created["address"], "ann@example.test");
    assert_eq!(created["quota_bytes"], 100 << 20);
    assert!(created.get("password").is_none(), "the password came back: {created}");
    let listed = api.expect(StatusCode::OK, "GET", "/mailboxes", None).await;
    assert!(items(&listed).iter().any(|m| m["address"] == "ann@example.test"), "{listed}");

    // A next hop that is down for remote.test (the transports API is tested with its resource).
    let closed = free_port();
    tokio::task::block_in_place(|| {
        setup.ok(&[
            "transport",
            "set",
            "remote.test",
            &format!("smtp:[127.0.0.1]:{closed}"),
            "--tls",
            "none",
        ]);
        serve
            .wait_log(Duration::from_secs(5), |l| {
                applied(l) && l["mailboxes"] == 1 && l["transports"] == 1
            })
            .expect("the mailbox and the transport are live");
    });

    let smtp = serve.listeners["smtp"];
    send(smtp, "zoe@example.test", "ann@example.test", "to ann").await;
    send(smtp, "ann@example.test", "bob@remote.test", "stuck").await;

    // The log: one delivered, one deferred.
    let log = api
        .wait_for("/log", |p| {
            entry(p, "ann@example.test", "delivered").is_some()
                && entry(p, "bob@remote.test", "deferred").is_some()
        })
        .await;
    assert_eq!(entry(&log, "ann@example.test", "delivered").unwrap()["sender"], "zoe@example.test");
    let deferred = entry(&log, "bob@remote.test", "deferred").unwrap();
    let id = deferred["message_id"].as_str().unwrap().to_string();

    // The queue has the waiting message, and only it; its filters find it.
    let queue = api.wait_for("/queue", |p| items(p).len() == 1).await;
    assert_eq!(items(&queue)[0]["id"], id.as_str(), "{queue}");
    let by_recipient =
        api.expect(StatusCode::OK, "GET", "/queue?recipient=bob@remote.test", None).await;
    assert_eq!(items(&by_recipient).len(), 1, "{by_recipient}");
    let nobody =
        api.expect(StatusCode::OK, "GET", "/queue?recipient=nobody@remote.test", None).await;
    assert!(items(&nobody).is_empty(), "{nobody}");
    let shown = api.expect(StatusCode::OK, "GET", &format!("/queue/{id}"), None).await;
    assert_eq!(shown["sender"], "ann@example.test", "{shown}");
    assert!(shown.to_string().contains("bob@remote.test"), "{shown}");

    // Hold, then release.
    api.expect(StatusCode::OK, "POST", &format!("/queue/{id}/hold"), None).await;
    let held = api.expect(StatusCode::OK, "GET", &format!("/queue/{id}"), None).await;
    assert_eq!(held["held"], true, "{held}");
    api.expect(StatusCode::OK, "POST", &format!("/queue/{id}/release"), None).await;
    let released = api.expect(StatusCode::OK, "GET", &format!("/queue/{id}"), None).await;
    assert_eq!(released["held"], false, "{released}");

    // A read-only token sees all this and changes nothing.
    let reader = tokio::task::block_in_place(|| {
        setup.ok(&["token", "create", "--owner", "admin", "--name", "reader", "--read-only"])
    });
    let reader = Api { bearer: reader.trim().to_string(), ..api };
    reader.expect(StatusCode::OK, "GET", "/queue", None).await;
    reader.expect(StatusCode::FORBIDDEN, "POST", &format!("/queue/{id}/hold"), None).await;
    let refused = reader
        .expect(StatusCode::FORBIDDEN, "POST", "/domains", Some(json!({"name": "other.test"})))
        .await;
    assert_eq!(refused["error"]["code"], "forbidden");
    drop(serve);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_does_what_the_console_does_sqlite() {
    a_script_does_what_the_console_does(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_does_what_the_console_does_postgres() {
    let Some(db) = TestDb::postgres("api::a_script_does_what_the_console_does_postgres").await
    else {
        return;
    };
    a_script_does_what_the_console_does(db).await;
}
