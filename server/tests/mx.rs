//! Delivery to MX hosts (RFC 5321 §5.1) against real smtp-sink peers, with DNS from a script:
//! preference order, fallback past refused connections and 4xx transactions, implicit MX, null
//! MX, a domain that does not exist, and a temporary DNS failure; then the same through the
//! queue's scheduler, routes and all.
//!
//! Needs the Debian package `postfix` (for smtp-sink). No test here asks real DNS anything.

mod support;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use postern_server::Engine;
use postern_server::delivery::mx::deliver_mx_on;
use postern_server::delivery::{Outcome, Pool, PoolSettings, Reply, deliver_mx};
use postern_server::dns::ScriptedResolver;
use postern_server::queue::{Queue, RetryPolicy, Scheduler, SchedulerConfig};
use postern_store::model::{
    DomainName, NewMessage, NewRecipient, Notify, RecipientStatus, TlsPolicy, Transport,
};
use postern_store::testing::TestDb;
use support::peers::sink;
use support::smtp_options as options;
use support::{Ports, delivery, free_port};
use tokio_util::sync::CancellationToken;

const LOOPBACK: &str = "127.0.0.1";

fn domain() -> DomainName {
    "example.test".parse().unwrap()
}

fn loopback() -> IpAddr {
    LOOPBACK.parse().unwrap()
}

fn rcpts() -> Vec<String> {
    vec!["bob@example.test".to_string(), "carol@example.test".to_string()]
}

async fn send(dns: &ScriptedResolver, ports: &Ports) -> Vec<Outcome> {
    let rcpts = rcpts();
    let d = delivery(&rcpts, b"Subject: mx\r\n\r\nhello\r\n");
    deliver_mx(dns, ports, &domain(), &options(), &d).await
}

/// smtp-sink dumping each message into `dir`, or None when smtp-sink is not installed.
fn dumping_sink(test: &str, dir: &Path, extra: &[&str]) -> Option<(support::Peer, u16)> {
    let template = format!("{}/%M.", dir.display());
    let mut args = vec!["-d", template.as_str()];
    args.extend_from_slice(extra);
    sink(test, dir, &args)
}

/// How many messages a dumping sink has written, after a moment for it to finish.
async fn dumped(dir: &Path, expected: usize) -> usize {
    let count = || std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    for _ in 0..50 {
        if count() >= expected && expected > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    count()
}

/// Two MX hosts on loopback: mx1 (preference 10) and mx2 (preference 20).
fn two_hosts() -> ScriptedResolver {
    ScriptedResolver::new()
        .mx("example.test", 20, "mx2.example.test")
        .mx("example.test", 10, "mx1.example.test")
        .address("mx1.example.test", loopback())
        .address("mx2.example.test", loopback())
}

fn all_delivered_by(out: &[Outcome], host: &str) -> bool {
    out.len() == 2
        && out.iter().all(|o| o.is_delivered() && o.text().starts_with(&format!("{host}[")))
}

#[tokio::test]
async fn delivers_to_the_lowest_preference_first() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let Some((_a, port1)) = dumping_sink("mx::order_1", one.path(), &[]) else { return };
    let Some((_b, port2)) = dumping_sink("mx::order_2", two.path(), &[]) else { return };
    let ports = Ports::default().with("mx1.example.test", port1).with("mx2.example.test", port2);
    let out = send(&two_hosts(), &ports).await;
    assert!(all_delivered_by(&out, "mx1.example.test"), "{out:?}");
    assert_eq!(ports.tried(), ["mx1.example.test"]);
    assert_eq!(dumped(one.path(), 1).await, 1);
    assert_eq!(dumped(two.path(), 0).await, 0);
}

#[tokio::test]
async fn messages_to_one_mx_host_share_a_cached_session() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_a, port1)) = dumping_sink("mx::cached", dir.path(), &[]) else { return };
    let ports = Ports::default().with("mx1.example.test", port1);
    let pool = Pool::new(PoolSettings::default());
    let rcpts = rcpts();
    let d = delivery(&rcpts, b"Subject: mx\r\n\r\nhello\r\n");
    for _ in 0..3 {
        let out =
            deliver_mx_on(&two_hosts(), &ports, Some(&pool), &domain(), 25, &options(), &d).await;
        assert!(all_delivered_by(&out, "mx1.example.test"), "{out:?}");
    }
    assert_eq!(ports.tried(), ["mx1.example.test"], "one session for three messages");
    assert_eq!(dumped(dir.path(), 3).await, 3);
    pool.close_all().await;
}

#[tokio::test]
async fn falls_back_when_the_first_host_refuses_connections() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_b, port2)) = dumping_sink("mx::refused", dir.path(), &[]) else { return };
    let ports =
        Ports::default().with("mx1.example.test", free_port()).with("mx2.example.test", port2);
    let out = send(&two_hosts(), &ports).await;
    assert!(all_delivered_by(&out, "mx2.example.test"), "{out:?}");
    assert_eq!(ports.tried(), ["mx1.example.test", "mx2.example.test"]);
    assert_eq!(dumped(dir.path(), 1).await, 1);
}

#[tokio::test]
async fn falls_back_when_the_first_host_answers_4xx_to_the_transaction() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let Some((_a, port1)) = dumping_sink("mx::mail_4xx", one.path(), &["-r", "MAIL"]) else {
        return;
    };
    let Some((_b, port2)) = dumping_sink("mx::after_4xx", two.path(), &[]) else { return };
    let ports = Ports::default().with("mx1.example.test", port1).with("mx2.example.test", port2);
    let out = send(&two_hosts(), &ports).await;
    assert!(all_delivered_by(&out, "mx2.example.test"), "{out:?}");
    assert_eq!(ports.tried(), ["mx1.example.test", "mx2.example.test"]);
    assert_eq!(dumped(one.path(), 0).await, 0);
    assert_eq!(dumped(two.path(), 1).await, 1);
}

#[tokio::test]
async fn falls_back_when_the_first_host_defers_the_message_after_the_data() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let Some((_a, port1)) = dumping_sink("mx::dot_4xx", one.path(), &["-r", "."]) else { return };
    let Some((_b, port2)) = dumping_sink("mx::after_dot", two.path(), &[]) else { return };
    let ports = Ports::default().with("mx1.example.test", port1).with("mx2.example.test", port2);
    let out = send(&two_hosts(), &ports).await;
    assert!(all_delivered_by(&out, "mx2.example.test"), "{out:?}");
    assert_eq!(ports.tried(), ["mx1.example.test", "mx2.example.test"]);
}

#[tokio::test]
async fn a_4xx_for_each_recipient_ends_the_attempt() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let Some((_a, port1)) = dumping_sink("mx::rcpt_4xx", one.path(), &["-r", "RCPT"]) else {
        return;
    };
    let Some((_b, port2)) = dumping_sink("mx::unused", two.path(), &[]) else { return };
    let ports = Ports::default().with("mx1.example.test", port1).with("mx2.example.test", port2);
    let out = send(&two_hosts(), &ports).await;
    assert_eq!(
        out,
        vec![Outcome::deferred(Reply::new(450, [4, 3, 0], "Error: command failed")); 2]
    );
    assert_eq!(ports.tried(), ["mx1.example.test"]);
}

#[tokio::test]
async fn every_host_failing_defers_with_the_last_reason() {
    let ports = Ports::default()
        .with("mx1.example.test", free_port())
        .with("mx2.example.test", free_port());
    let out = send(&two_hosts(), &ports).await;
    assert_eq!(out.len(), 2);
    for o in &out {
        assert!(o.is_deferred() && o.text().contains("mx2.example.test"), "{out:?}");
        assert!(o.text().starts_with("451 4.4.1 connection refused"), "{out:?}");
    }
    assert_eq!(ports.tried(), ["mx1.example.test", "mx2.example.test"]);
}

#[tokio::test]
async fn a_temporary_reason_outweighs_a_permanent_one() {
    let dns = ScriptedResolver::new()
        .mx("example.test", 10, "mx1.example.test")
        .mx("example.test", 20, "mx2.example.test")
        .address("mx1.example.test", loopback())
        .exists("mx2.example.test");
    let ports = Ports::default().with("mx1.example.test", free_port());
    let out = send(&dns, &ports).await;
    assert!(out.iter().all(|o| o.is_deferred() && o.text().starts_with("451 4.4.1")), "{out:?}");
}

#[tokio::test]
async fn without_mx_records_the_domain_itself_is_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_peer, port)) = dumping_sink("mx::implicit", dir.path(), &[]) else { return };
    let dns = ScriptedResolver::new().address("example.test", loopback());
    let ports = Ports::default().with("example.test", port);
    let out = send(&dns, &ports).await;
    assert!(all_delivered_by(&out, "example.test"), "{out:?}");
    assert_eq!(dns.queries()[..2], ["MX example.test", "AAAA example.test"]);
    assert_eq!(dumped(dir.path(), 1).await, 1);
}

#[tokio::test]
async fn a_null_mx_fails_every_recipient_with_5_1_10() {
    let dns = ScriptedResolver::new().mx("example.test", 0, ".");
    let ports = Ports::default();
    let out = send(&dns, &ports).await;
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| o.is_failed() && o.text().starts_with("556 5.1.10")), "{out:?}");
    assert!(ports.tried().is_empty());
}

#[tokio::test]
async fn a_domain_that_does_not_exist_fails_with_5_1_2() {
    let dns = ScriptedResolver::new();
    let ports = Ports::default();
    let out = send(&dns, &ports).await;
    assert!(out.iter().all(|o| o.is_failed() && o.text().starts_with("550 5.1.2")), "{out:?}");
    assert!(ports.tried().is_empty());
}

#[tokio::test]
async fn a_temporary_dns_failure_defers_and_tries_no_host() {
    let dns = ScriptedResolver::new().temporary("example.test");
    let ports = Ports::default();
    let out = send(&dns, &ports).await;
    assert!(out.iter().all(|o| o.is_deferred() && o.text().starts_with("451 4.4.3")), "{out:?}");
    assert!(ports.tried().is_empty());

    // A temporary failure resolving one MX host moves on; if it is the only reason left, the
    // mail waits rather than bounces.
    let dns = ScriptedResolver::new()
        .mx("example.test", 10, "mx1.example.test")
        .temporary("mx1.example.test");
    let out = send(&dns, &ports).await;
    assert!(out.iter().all(|o| o.is_deferred() && o.text().starts_with("451 4.4.3")), "{out:?}");
    assert!(ports.tried().is_empty());
}

#[tokio::test]
async fn mx_hosts_without_addresses_fail() {
    let dns = ScriptedResolver::new()
        .mx("example.test", 10, "mx1.example.test")
        .mx("example.test", 20, "mx2.example.test")
        .exists("mx2.example.test");
    let ports = Ports::default();
    let out = send(&dns, &ports).await;
    assert!(out.iter().all(|o| o.is_failed() && o.text().starts_with("550 5.4.4")), "{out:?}");
    assert!(ports.tried().is_empty());
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

#[tokio::test]
async fn the_scheduler_delivers_remote_mail_by_mx() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_peer, port)) = dumping_sink("mx::scheduler", dir.path(), &[]) else { return };
    let db = TestDb::sqlite();
    let store = db.open().await;
    // smtp:hub.test (no brackets) means hub.test's MX hosts, as in Postfix.
    let hub: Transport = "smtp:hub.test".parse().unwrap();
    let pattern = "relayed.test".parse().unwrap();
    store.set_transport("test", &pattern, hub, TlsPolicy::None, None).await.unwrap();
    let dns = two_hosts()
        .mx("hub.test", 10, "mx1.example.test")
        .mx("nomail.test", 0, ".")
        .temporary("slow.test");
    let ports = Arc::new(Ports::default().with("mx1.example.test", port));
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
        connector: ports.clone(),
        resolver: Arc::new(dns),
        mta_sts: None,
        extra_roots: Vec::new(),
        bounces: queue.clone(),
        courier: None,
        clock: Default::default(),
    };
    tokio::spawn(Scheduler::run(store.clone(), engine, config, fresh_rx, shutdown.clone()));

    let sent = queue.enqueue(message(&["bob@example.test", "cy@relayed.test"])).await.unwrap();
    let waits = queue.enqueue(message(&["dee@slow.test", "eve@nomail.test"])).await.unwrap();
    let mut left = None;
    for _ in 0..200 {
        let m = store.queue_show(waits).await.unwrap().expect("a deferred message stays");
        if m.recipients.iter().all(|r| r.attempts > 0) {
            left = Some(m);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = left.expect("both recipients tried within 10 s");
    let (dee, eve) = (&left.recipients[0], &left.recipients[1]);
    assert_eq!(dee.status, RecipientStatus::Deferred, "{dee:?}");
    assert!(dee.last_error.as_deref().unwrap_or("").starts_with("451 4.4.3"), "{dee:?}");
    assert_eq!(eve.status, RecipientStatus::Failed, "{eve:?}");
    assert!(eve.last_error.as_deref().unwrap_or("").starts_with("556 5.1.10"), "{eve:?}");

    // Two routes (example.test's MX, hub.test's MX), one transaction each, both to mx1; on
    // two sessions, since their TLS policies differ (may, and the rule's none).
    assert_eq!(dumped(dir.path(), 2).await, 2);
    for _ in 0..100 {
        if store.queue_show(sent).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.queue_show(sent).await.unwrap().is_none(), "delivered mail leaves the queue");
    // Once each: a message committed while the scheduler loaded the queue reaches it twice.
    assert_eq!(dumped(dir.path(), 3).await, 2, "a message was delivered twice");

    // The next message to the same routes goes on the two cached sessions.
    queue.enqueue(message(&["bob@example.test", "cy@relayed.test"])).await.unwrap();
    assert_eq!(dumped(dir.path(), 4).await, 4);
    assert_eq!(ports.tried(), ["mx1.example.test"; 2], "a cached session was not reused");
    shutdown.cancel();
}
