//! MTA-STS (RFC 8461) on loopback: policies served by an HTTPS server in the test with a
//! certificate from a test CA, found through a scripted resolver that points
//! `mta-sts.example.test` and the MX hosts at 127.0.0.1; MX hosts that are a STARTTLS server in
//! the test, or Postfix's smtp-sink (which speaks no TLS).
//!
//! Needs the Debian package `postfix` (for smtp-sink) for the tests that use it. No test here
//! asks real DNS anything.

mod support;
#[path = "support/tls_peers.rs"]
mod tls_peers;
// Beside `support` rather than in it: the root package's tests share `support` and have no
// rcgen or tokio-rustls.

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_server::Engine;
use postern_server::delivery::mta_sts::{Mode, Policy};
use postern_server::delivery::mx::deliver_mx_sts;
use postern_server::delivery::{MtaSts, Outcome, StsSettings};
use postern_server::dns::ScriptedResolver;
use postern_server::queue::{Queue, RetryPolicy, Scheduler, SchedulerConfig};
use postern_store::clock::Clock;
use postern_store::model::{
    NewMessage, NewRecipient, Notify, RecipientStatus, TlsPolicy, Transport,
};
use postern_store::testing::TestDb;
use support::peers::sink;
use support::{Ports, delivery, smtp_options};
use tls_peers::{HttpReply, HttpsServer, Pki, Seen, smtp_server};
use tokio_util::sync::CancellationToken;

const DOMAIN: &str = "example.test";
const POLICY_HOST: &str = "mta-sts.example.test";

fn policy_text(mode: &str, max_age: u32) -> String {
    format!("version: STSv1\r\nmode: {mode}\r\nmx: *.example.test\r\nmax_age: {max_age}\r\n")
}

/// DNS for example.test: the policy's TXT record (id 1), the policy host, and one MX host.
fn dns(mx: &str) -> Arc<ScriptedResolver> {
    let loopback = "127.0.0.1".parse().unwrap();
    Arc::new(
        ScriptedResolver::new()
            .txt("_mta-sts.example.test", "v=STSv1; id=1;")
            .address(POLICY_HOST, loopback)
            .mx(DOMAIN, 10, mx)
            .address(mx, loopback),
    )
}

/// A policy server for example.test answering `reply`, and the MTA-STS cache that asks it.
async fn policy_server(
    pki: &Pki,
    dns: &Arc<ScriptedResolver>,
    reply: HttpReply,
) -> (HttpsServer, MtaSts) {
    policy_server_on(pki, dns, reply, Clock::system()).await
}

/// The same, with the cache's time on `clock`.
async fn policy_server_on(
    pki: &Pki,
    dns: &Arc<ScriptedResolver>,
    reply: HttpReply,
    clock: Clock,
) -> (HttpsServer, MtaSts) {
    let server = HttpsServer::start(pki.acceptor(&[POLICY_HOST]), reply).await;
    let settings = StsSettings {
        fetch_timeout: Duration::from_secs(2),
        https_port: server.port,
        extra_roots: vec![pki.ca.clone()],
        clock,
        ..StsSettings::default()
    };
    let sts = MtaSts::new(dns.clone(), settings).unwrap();
    (server, sts)
}

/// One message to bob@example.test by MX under `policy`, trusting the test CA for `verify`.
async fn send(
    dns: &ScriptedResolver,
    ports: &Ports,
    pki: &Pki,
    policy: Option<&Policy>,
) -> Outcome {
    let rcpts = vec!["bob@example.test".to_string()];
    let body = b"Subject: sts\r\n\r\nhello\r\n";
    // As the scheduler builds them for the mx transport: opportunistic TLS.
    let mut options = smtp_options();
    options.tls = TlsPolicy::May;
    options.extra_roots = vec![pki.ca.clone()];
    let domain = DOMAIN.parse().unwrap();
    let d = delivery(&rcpts, body);
    deliver_mx_sts(dns, ports, None, &domain, policy, &options, &d).await.remove(0)
}

/// Log lines written while `f` runs.
async fn logged<T>(f: impl Future<Output = T>) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime has one thread: every task of the test logs here.
    let _guard = tracing::subscriber::set_default(subscriber);
    let value = f.await;
    let text = String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned();
    (value, text)
}

#[tokio::test]
async fn enforce_delivers_to_a_listed_mx_over_verified_tls() {
    let pki = Pki::new();
    let dns = dns("mx1.example.test");
    let (server, sts) =
        policy_server(&pki, &dns, HttpReply::policy(&policy_text("enforce", 600))).await;
    let policy = sts.policy(DOMAIN).await.expect("a policy");
    assert_eq!((policy.mode, server.hits()), (Mode::Enforce, 1));

    let seen = Arc::new(Seen::default());
    let port = smtp_server(pki.acceptor(&["mx1.example.test"]), seen.clone()).await;
    let ports = Ports::default().with("mx1.example.test", port);
    let out = send(&dns, &ports, &pki, Some(&policy)).await;
    assert!(out.is_delivered(), "{out:?}");
    assert!(seen.tls() && seen.messages() == 1);
}

#[tokio::test]
async fn enforce_defers_when_no_mx_host_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_sink, port)) = sink("mta_sts::unlisted", dir.path(), &[]) else { return };
    let pki = Pki::new();
    // mx.elsewhere.test does not match *.example.test.
    let dns = dns("mx.elsewhere.test");
    let (_server, sts) =
        policy_server(&pki, &dns, HttpReply::policy(&policy_text("enforce", 600))).await;
    let policy = sts.policy(DOMAIN).await.expect("a policy");
    let ports = Ports::default().with("mx.elsewhere.test", port);
    let out = send(&dns, &ports, &pki, Some(&policy)).await;
    assert!(out.is_deferred(), "{out:?}");
    assert!(out.text().starts_with("451 4.7.0 MTA-STS policy of example.test"), "{out:?}");
    assert!(ports.tried().is_empty(), "an unlisted host was tried: {:?}", ports.tried());
}

#[tokio::test]
async fn enforce_defers_on_a_certificate_not_valid_for_the_mx_host() {
    let pki = Pki::new();
    let dns = dns("mx1.example.test");
    let (_server, sts) =
        policy_server(&pki, &dns, HttpReply::policy(&policy_text("enforce", 600))).await;
    let policy = sts.policy(DOMAIN).await.expect("a policy");
    // The right CA, the wrong name; then the right name from a CA nobody trusts.
    for acceptor in
        [pki.acceptor(&["mx9.example.test"]), Pki::new().acceptor(&["mx1.example.test"])]
    {
        let seen = Arc::new(Seen::default());
        let port = smtp_server(acceptor, seen.clone()).await;
        let ports = Ports::default().with("mx1.example.test", port);
        let out = send(&dns, &ports, &pki, Some(&policy)).await;
        assert!(out.is_deferred(), "{out:?}");
        let text = out.text();
        assert!(text.starts_with("451 4.7.5 MTA-STS policy of example.test (enforce)"), "{text}");
        // No retry in plaintext, as `may` would do after a failed handshake.
        assert_eq!((ports.tried().len(), seen.messages()), (1, 0), "{text}");
    }
}

#[tokio::test]
async fn enforce_never_falls_back_to_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_sink, port)) = sink("mta_sts::plaintext", dir.path(), &[]) else {
        return;
    };
    let pki = Pki::new();
    let dns = dns("mx1.example.test");
    let (_server, sts) =
        policy_server(&pki, &dns, HttpReply::policy(&policy_text("enforce", 600))).await;
    let policy = sts.policy(DOMAIN).await.expect("a policy");
    let ports = Ports::default().with("mx1.example.test", port);
    let out = send(&dns, &ports, &pki, Some(&policy)).await;
    assert!(out.is_deferred(), "{out:?}");
    assert!(out.text().starts_with("451 4.7.10 MTA-STS policy of example.test"), "{out:?}");
}

#[tokio::test]
async fn testing_delivers_as_without_a_policy_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_sink, port)) = sink("mta_sts::testing", dir.path(), &[]) else { return };
    let pki = Pki::new();
    let dns = dns("mx1.example.test");
    let (_server, sts) =
        policy_server(&pki, &dns, HttpReply::policy(&policy_text("testing", 600))).await;
    let policy = sts.policy(DOMAIN).await.expect("a policy");
    assert_eq!(policy.mode, Mode::Testing);
    let ports = Ports::default().with("mx1.example.test", port);
    let (out, log) = logged(send(&dns, &ports, &pki, Some(&policy))).await;
    assert!(out.is_delivered(), "{out:?}");
    assert!(log.contains("WARN") && log.contains("MTA-STS (testing)"), "{log}");
    assert!(log.contains("4.7.10"), "the log says why enforce would refuse: {log}");

    // A host the policy does not list: delivered too, and warned of.
    let dns = ScriptedResolver::new()
        .mx(DOMAIN, 10, "mx.elsewhere.test")
        .address("mx.elsewhere.test", "127.0.0.1".parse().unwrap());
    let ports = Ports::default().with("mx.elsewhere.test", port);
    let (out, log) = logged(send(&dns, &ports, &pki, Some(&policy))).await;
    assert!(out.is_delivered(), "{out:?}");
    assert!(log.contains("not in the policy; enforce mode would skip it"), "{log}");
}

/// The policy `reply` gives (`None` when it means there is none), the requests the server
/// saw, and what was logged.
async fn policy_from(reply: HttpReply) -> (Option<Arc<Policy>>, usize, String) {
    let pki = Pki::new();
    let dns = dns("mx1.example.test");
    let (server, sts) = policy_server(&pki, &dns, reply).await;
    let (policy, log) = logged(sts.policy(DOMAIN)).await;
    (policy, server.hits(), log)
}

/// Asserts that `reply` means no policy, for the reason `why` (as logged); returns the
/// requests the server saw.
async fn no_policy_from(reply: HttpReply, why: &str) -> usize {
    let (policy, hits, log) = policy_from(reply).await;
    assert!(policy.is_none(), "{policy:?}");
    assert!(log.contains("MTA-STS policy fetch failed") && log.contains(why), "{why}: {log}");
    hits
}

#[tokio::test]
async fn a_redirect_means_no_policy() {
    let mut reply = HttpReply::status("301 Moved Permanently");
    reply.headers.push(("Location".into(), "/elsewhere/mta-sts.txt".into()));
    let hits = no_policy_from(reply, "answered 301 Moved Permanently").await;
    assert_eq!(hits, 1, "the redirect was followed");
}

#[tokio::test]
async fn a_reply_other_than_200_means_no_policy() {
    for status in ["404 Not Found", "500 Internal Server Error", "204 No Content"] {
        no_policy_from(HttpReply::status(status), &format!("answered {status}")).await;
    }
}

#[tokio::test]
async fn a_body_over_64_kib_means_no_policy() {
    // A valid policy padded with an unknown key past the limit, with and without a length.
    let mut text = policy_text("enforce", 600);
    text.push_str(&format!("padding: {}\r\n", "x".repeat(64 * 1024)));
    for length in [true, false] {
        let reply = HttpReply { length, ..HttpReply::policy(&text) };
        assert_eq!(no_policy_from(reply, "body over 65536 bytes").await, 1);
    }
    // Just under the limit is fine.
    let mut text = policy_text("enforce", 600);
    text.push_str(&format!("padding: {}\r\n", "x".repeat(60 * 1024)));
    let (policy, ..) = policy_from(HttpReply { length: false, ..HttpReply::policy(&text) }).await;
    assert!(policy.is_some());
}

#[tokio::test]
async fn a_fetch_over_the_time_limit_means_no_policy() {
    // The limit is 2 s in these tests (60 s by default).
    let reply = HttpReply {
        delay: Duration::from_secs(4),
        ..HttpReply::policy(&policy_text("enforce", 600))
    };
    let started = std::time::Instant::now();
    no_policy_from(reply, "timed out").await;
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[tokio::test]
async fn another_media_type_or_an_invalid_policy_means_no_policy() {
    let mut html = HttpReply::policy(&policy_text("enforce", 600));
    html.headers = vec![("Content-Type".into(), "text/html".into())];
    no_policy_from(html, "not text/plain").await;
    let mut charset = HttpReply::policy(&policy_text("enforce", 600));
    charset.headers = vec![("Content-Type".into(), "text/plain; charset=utf-8".into())];
    assert!(policy_from(charset).await.0.is_some());
    let bad = "version: STSv1\r\nmode: enforce\r\nmx: *.example.test\r\n";
    no_policy_from(HttpReply::policy(bad), "invalid policy: no max_age").await;
    // A `none` policy is a valid one that asks nothing.
    let none = "version: STSv1\r\nmode: none\r\nmax_age: 600\r\n";
    let (policy, hits, log) = policy_from(HttpReply::policy(none)).await;
    assert_eq!((policy, hits), (None, 1));
    assert!(log.contains("MTA-STS policy fetched") && log.contains("mode=none"), "{log}");
}

#[tokio::test]
async fn a_policy_host_certificate_not_trusted_means_no_policy() {
    let pki = Pki::new();
    let dns = dns("mx1.example.test");
    let reply = HttpReply::policy(&policy_text("enforce", 600));
    // Signed by a CA the fetcher does not trust, and then for a name other than the host's.
    for acceptor in [Pki::new().acceptor(&[POLICY_HOST]), pki.acceptor(&["www.example.test"])] {
        let server = HttpsServer::start(acceptor, reply.clone()).await;
        let settings = StsSettings {
            fetch_timeout: Duration::from_secs(2),
            https_port: server.port,
            extra_roots: vec![pki.ca.clone()],
            ..StsSettings::default()
        };
        let sts = MtaSts::new(dns.clone(), settings).unwrap();
        let (policy, log) = logged(sts.policy(DOMAIN)).await;
        assert!(policy.is_none(), "{policy:?}");
        assert!(log.contains("certificate"), "{log}");
        assert_eq!(server.hits(), 0, "a request went past a bad certificate");
    }
}

#[tokio::test]
async fn no_txt_record_means_no_fetch() {
    let pki = Pki::new();
    let dns = dns("mx1.example.test");
    dns.set_txt("_mta-sts.example.test", &["v=spf1 -all"]);
    let (server, sts) =
        policy_server(&pki, &dns, HttpReply::policy(&policy_text("enforce", 600))).await;
    assert!(sts.policy(DOMAIN).await.is_none());
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn a_policy_is_kept_until_the_txt_id_changes() {
    let pki = Pki::new();
    let dns = dns("mx1.example.test");
    let (server, sts) =
        policy_server(&pki, &dns, HttpReply::policy(&policy_text("enforce", 600))).await;
    for _ in 0..3 {
        assert_eq!(sts.policy(DOMAIN).await.unwrap().mode, Mode::Enforce);
    }
    assert_eq!(server.hits(), 1, "one fetch for the same id");
    server.set(HttpReply::policy(&policy_text("testing", 600)));
    assert_eq!(sts.policy(DOMAIN).await.unwrap().mode, Mode::Enforce);
    dns.set_txt("_mta-sts.example.test", &["v=STSv1; id=2"]);
    assert_eq!(sts.policy(DOMAIN).await.unwrap().mode, Mode::Testing);
    assert_eq!(server.hits(), 2);

    // A failed refresh (new id, server down) keeps the cached policy, and is not retried at
    // every delivery.
    server.set(HttpReply::status("503 Service Unavailable"));
    dns.set_txt("_mta-sts.example.test", &["v=STSv1; id=3"]);
    assert_eq!(sts.policy(DOMAIN).await.unwrap().mode, Mode::Testing);
    assert_eq!(sts.policy(DOMAIN).await.unwrap().mode, Mode::Testing);
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn deliveries_asking_at_once_share_one_fetch() {
    let pki = Pki::new();
    let dns = dns("mx1.example.test");
    let reply = HttpReply {
        delay: Duration::from_millis(300),
        ..HttpReply::policy(&policy_text("enforce", 600))
    };
    let (server, sts) = policy_server(&pki, &dns, reply).await;
    let sts = Arc::new(sts);
    let asks: Vec<_> = (0..5)
        .map(|_| {
            let sts = sts.clone();
            tokio::spawn(async move { sts.policy(DOMAIN).await })
        })
        .collect();
    for ask in asks {
        let policy = ask.await.unwrap();
        assert_eq!(policy.map(|p| p.mode), Some(Mode::Enforce));
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_cached_policy_outlives_its_txt_record_until_max_age() {
    let pki = Pki::new();
    let dns = dns("mx1.example.test");
    // The cache's time on a simulated clock: max_age passes when the test says.
    let clock = Clock::manual(1_700_000_000);
    let reply = HttpReply::policy(&policy_text("enforce", 600));
    let (server, sts) = policy_server_on(&pki, &dns, reply, clock.clone()).await;
    assert!(sts.policy(DOMAIN).await.is_some());
    // The record gone (as an attacker blocking DNS would have it): the policy still holds.
    dns.set_txt("_mta-sts.example.test", &[]);
    assert_eq!(sts.policy(DOMAIN).await.unwrap().mode, Mode::Enforce);
    clock.advance(599);
    assert_eq!(sts.policy(DOMAIN).await.unwrap().mode, Mode::Enforce, "expired early");
    clock.advance(1);
    assert!(sts.policy(DOMAIN).await.is_none(), "an expired policy was used");
    assert_eq!(server.hits(), 1);
}

fn message(recipients: &[&str]) -> NewMessage {
    NewMessage {
        sender: "alice@example.org".into(),
        recipients: recipients
            .iter()
            .map(|r| NewRecipient {
                address: r.to_string(),
                orcpt: None,
                notify: Notify::default(),
            })
            .collect(),
        envid: None,
        ret: None,
        smtputf8: false,
        eight_bit: false,
        // Now: an old message would give up on its first deferral.
        received_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
        client: "client.example.org [192.0.2.7]".into(),
        auth_user: None,
        held: false,
        note: None,
        auth_results: None,
        body: b"Subject: queued\r\n\r\nhello\r\n".to_vec(),
    }
}

/// Through the scheduler, routes and all: mail for a domain with an enforce policy whose MX
/// speaks no TLS waits in the queue, while mail for a domain without a policy goes to the
/// same host; and a transport rule (`smtp:DOMAIN`) is not subject to the recipient's policy.
#[tokio::test]
async fn the_scheduler_applies_the_policy_of_the_mx_transport() {
    let dir = tempfile::tempdir().unwrap();
    let template = format!("{}/%M.", dir.path().display());
    let Some((_sink, port)) = sink("mta_sts::scheduler", dir.path(), &["-d", &template]) else {
        return;
    };
    let pki = Pki::new();
    let loopback = "127.0.0.1".parse().unwrap();
    let dns = dns("mx1.example.test");
    // relayed.test publishes the same policy, but a rule sends its mail to hub.test's MX.
    dns.set_txt("_mta-sts.relayed.test", &["v=STSv1; id=1"]);
    let dns = Arc::new(
        Arc::try_unwrap(dns)
            .unwrap()
            .address("mta-sts.relayed.test", loopback)
            .mx("plain.test", 10, "mx1.example.test")
            .mx("hub.test", 10, "mx1.example.test"),
    );
    let reply = HttpReply::policy(&policy_text("enforce", 600));
    let server =
        HttpsServer::start(pki.acceptor(&[POLICY_HOST, "mta-sts.relayed.test"]), reply).await;
    let settings = StsSettings {
        fetch_timeout: Duration::from_secs(2),
        https_port: server.port,
        extra_roots: vec![pki.ca.clone()],
        ..StsSettings::default()
    };
    let sts = MtaSts::new(dns.clone(), settings).unwrap();

    let db = TestDb::sqlite();
    let store = db.open().await;
    let hub: Transport = "smtp:hub.test".parse().unwrap();
    let pattern = "relayed.test".parse().unwrap();
    store.set_transport("test", &pattern, hub, TlsPolicy::May, None).await.unwrap();
    let shutdown = CancellationToken::new();
    let (engine, _task) = Engine::start(store.clone(), "test", shutdown.clone()).await.unwrap();
    let revision = store.revision().await.unwrap();
    while engine.snapshot().revision() < revision {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (fresh_tx, fresh_rx) = tokio::sync::mpsc::channel(postern_server::queue::FRESH_BACKLOG);
    let (queue, _writer) =
        Queue::start(store.clone(), "node.test".into(), Some(fresh_tx), shutdown.clone());
    let config = SchedulerConfig {
        node: "node.test".into(),
        hostname: "node.test".into(),
        mail_root: db.dir().join("mail"),
        retry: RetryPolicy::default(),
        concurrency: 4,
        outbound: Default::default(),
        connector: Arc::new(Ports::default().with("mx1.example.test", port)),
        resolver: dns.clone(),
        mta_sts: Some(Arc::new(sts)),
        extra_roots: vec![pki.ca.clone()],
        bounces: queue.clone(),
        courier: None,
        clock: Default::default(),
    };
    tokio::spawn(Scheduler::run(store.clone(), engine, config, fresh_rx, shutdown.clone()));

    let waits = queue.enqueue(message(&["bob@example.test"])).await.unwrap();
    let goes = queue.enqueue(message(&["cy@plain.test", "dee@relayed.test"])).await.unwrap();
    let mut left = None;
    for _ in 0..200 {
        let m = store.queue_show(waits).await.unwrap().expect("a deferred message stays");
        if m.recipients.iter().all(|r| r.attempts > 0) {
            left = Some(m);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bob = &left.expect("tried within 10 s").recipients[0];
    assert_eq!(bob.status, RecipientStatus::Deferred, "{bob:?}");
    let error = bob.last_error.as_deref().unwrap_or("");
    assert!(error.starts_with("451 4.7.10 MTA-STS policy of example.test (enforce)"), "{bob:?}");
    for _ in 0..100 {
        if store.queue_show(goes).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.queue_show(goes).await.unwrap().is_none(), "plain.test and relayed.test");
    // Two routes, two transactions; nothing for example.test.
    let dumped = || std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0);
    for _ in 0..50 {
        if dumped() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(dumped(), 2);
    // One fetch: example.test's. relayed.test's policy was never asked for.
    assert_eq!(server.hits(), 1);
    shutdown.cancel();
}
