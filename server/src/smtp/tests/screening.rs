//! DNS blocklists and greylisting at RCPT (`policy/screen.rs`): a listed client refused with
//! `554 5.7.1`, one below the threshold accepted with a header field and a note, a DNS failure
//! that never refuses, exempt clients; greylisting's first attempt deferred and the retry after
//! the delay accepted, on a simulated clock. The blocklists are also served by a real DNS
//! server, pebble-challtestsrv (Debian package pebble).

use std::process::{Command, Stdio};

use postern_store::model::{ListKind, NewBlocklist};

use super::*;
use crate::dns::{HickoryResolver, ScriptedResolver};
use crate::policy::Screen;
use crate::policy::dnsbl::Blocklists;
use crate::policy::greylist::Greylist;
use postern_store::testing::free_port;

const SMTP: ListenerKind = ListenerKind::Smtp;
const SUBMISSION: ListenerKind = ListenerKind::Submission;

async fn add_list(server: &Server, zone: &str, kind: ListKind, weight: i64) {
    let new = NewBlocklist {
        zone: zone.parse().unwrap(),
        kind,
        weight,
        codes: Default::default(),
        description: String::new(),
    };
    server.store.add_blocklist("test", new).await.unwrap();
    server.caught_up().await;
}

/// A server whose blocklists ask `resolver` (within `timeout`).
async fn screened(resolver: Arc<dyn crate::dns::Resolver>, timeout: Duration) -> Server {
    let mut server = Server::new().await;
    let clock = server.ctx.screen.greylist.clock().clone();
    let screen = Screen {
        blocklists: Blocklists::new(resolver, clock.clone()).with_timeout(timeout),
        greylist: Greylist::new(server.store.clone(), clock),
    };
    Arc::get_mut(&mut server.ctx).expect("no session yet").screen = Arc::new(screen);
    server
}

#[tokio::test]
async fn a_listed_client_is_refused_at_rcpt_and_a_lower_score_is_noted() {
    let dns = Arc::new(
        ScriptedResolver::new()
            .address("99.2.0.192.zen.bl.test", "127.0.0.2".parse().unwrap())
            .address("98.2.0.192.small.bl.test", "127.0.0.2".parse().unwrap())
            .address("spammer.test.dbl.bl.test", "127.0.1.2".parse().unwrap())
            .temporary("97.2.0.192.zen.bl.test"),
    );
    let server = screened(dns, Duration::from_secs(5)).await;
    add_list(&server, "zen.bl.test", ListKind::Ip, 2).await;
    add_list(&server, "small.bl.test", ListKind::Ip, 1).await;
    add_list(&server, "dbl.bl.test", ListKind::Domain, 2).await;
    server.store.set_dnsbl_threshold("test", 2).await.unwrap();
    server.caught_up().await;

    let mut c = server.connect(SMTP, "192.0.2.99").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    let reply = c.cmd("RCPT TO:<ann@example.test>").await;
    assert_eq!(
        reply,
        "554 5.7.1 Service unavailable; client [192.0.2.99] blocked using zen.bl.test"
    );
    // An unknown user is refused as such, before any lookup.
    c.expect("RCPT TO:<nobody@example.test>", "550 5.1.1").await;

    // A listed sender domain (RHSBL).
    let mut c = server.connect(SMTP, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@spammer.test>", "250").await;
    let reply = c.cmd("RCPT TO:<ann@example.test>").await;
    assert_eq!(
        reply,
        "554 5.7.1 Service unavailable; sender domain spammer.test blocked using dbl.bl.test"
    );

    // Below the threshold: accepted, with a header field and a note.
    let mut c = server.connect(SMTP, "192.0.2.98").await;
    c.expect("EHLO client.test", "250").await;
    c.mail("a@sender.test", &["ann@example.test", "bob@example.test"], "Subject: s\r\n\r\nx\r\n")
        .await;
    // A list that fails (SERVFAIL) counts for nothing.
    let mut c = server.connect(SMTP, "192.0.2.97").await;
    c.expect("EHLO client.test", "250").await;
    c.mail("a@sender.test", &["ann@example.test"], "Subject: s\r\n\r\nx\r\n").await;

    let accepted = server.accepted();
    let noted = &accepted[0];
    let body = String::from_utf8_lossy(&noted.body);
    assert_eq!(
        body.matches("X-Postern-DNSBL: small.bl.test=1; score=1; threshold=2\r\n").count(),
        1,
        "once for two recipients: {body}"
    );
    assert!(
        noted.note.as_deref().unwrap().contains("blocklist score 1 below 2"),
        "{:?}",
        noted.note
    );
    let failed = &accepted[1];
    assert!(!String::from_utf8_lossy(&failed.body).contains("X-Postern-DNSBL"));
    let note = failed.note.as_deref().unwrap();
    assert!(note.contains("blocklist zen.bl.test not asked"), "{note}");

    // Authenticated clients and trusted networks are never checked.
    let mut c = server.connect(SUBMISSION, "192.0.2.99").await;
    c.expect("EHLO client.test", "250").await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    c.expect(&format!("AUTH PLAIN {}", base64_plain("", "ann@example.test", PASSWORD)), "235")
        .await;
    c.expect("MAIL FROM:<ann@example.test>", "250").await;
    c.expect("RCPT TO:<bob@example.test>", "250").await;
    server.store.add_network("test", "192.0.2.99/32".parse().unwrap(), "").await.unwrap();
    server.caught_up().await;
    let mut c = server.connect(SMTP, "192.0.2.99").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "250").await;
}

#[tokio::test]
async fn whitelisted_clients_are_not_checked() {
    let dns = Arc::new(
        ScriptedResolver::new().address("99.2.0.192.zen.bl.test", "127.0.0.2".parse().unwrap()),
    );
    let server = screened(dns.clone(), Duration::from_secs(5)).await;
    add_list(&server, "zen.bl.test", ListKind::Ip, 1).await;
    let entry = "192.0.2.0/24".parse().unwrap();
    server.store.add_dnsbl_whitelist("test", &entry).await.unwrap();
    server.caught_up().await;
    let mut c = server.connect(SMTP, "192.0.2.99").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "250").await;
    assert!(dns.queries().is_empty(), "{:?}", dns.queries());
}

#[tokio::test]
async fn greylisting_defers_the_first_attempt_and_accepts_the_retry_after_the_delay() {
    let server = Server::new().await;
    server.store.set_greylisting("test", &"example.test".parse().unwrap(), true).await.unwrap();
    server.caught_up().await;
    let clock = server.ctx.screen.greylist.clock().clone();

    let mut c = server.connect(SMTP, "192.0.2.50").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    let reply = c.cmd("RCPT TO:<ann@example.test>").await;
    assert_eq!(reply, "450 4.7.1 Greylisted, try again in 300 seconds");
    // Not greylisted: another domain, and relay domains we were not asked to greylist.
    c.expect("RCPT TO:<x@catchall.test>", "250").await;
    c.expect("RSET", "250").await;

    // Too early, from another address of the same /24.
    clock.advance(120);
    let mut c = server.connect(SMTP, "192.0.2.51").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<A@Sender.test>", "250").await;
    let reply = c.cmd("RCPT TO:<ann@example.test>").await;
    assert_eq!(reply, "450 4.7.1 Greylisted, try again in 180 seconds");

    // After the delay: accepted, with a note; and from then on at once.
    clock.advance(180);
    let mut c = server.connect(SMTP, "192.0.2.52").await;
    c.expect("EHLO client.test", "250").await;
    let reply = c.mail("a@sender.test", &["ann@example.test"], "Subject: g\r\n\r\nx\r\n").await;
    assert!(reply.starts_with("250"), "{reply}");
    let note = server.accepted()[0].note.clone().unwrap();
    assert!(note.contains("greylisting passed after 300 s"), "{note}");
    clock.advance(3600);
    c.mail("a@sender.test", &["ann@example.test"], "Subject: g\r\n\r\nx\r\n").await;
    assert_eq!(server.accepted()[1].note, None);

    // Authenticated users are never greylisted.
    let mut c = server.connect(SUBMISSION, "198.51.100.7").await;
    c.expect("EHLO client.test", "250").await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    c.expect(&format!("AUTH PLAIN {}", base64_plain("", "bob@example.test", PASSWORD)), "235")
        .await;
    c.expect("MAIL FROM:<bob@example.test>", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "250").await;
}

/// pebble-challtestsrv on free ports, serving no A record but those the test adds.
struct Dns {
    child: std::process::Child,
    port: u16,
    management: u16,
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn challtestsrv(test: &str) -> Option<Dns> {
    let found = Command::new("sh").args(["-c", "command -v pebble-challtestsrv"]).status();
    if !found.is_ok_and(|s| s.success()) {
        postern_store::testing::missing_peer(
            test,
            "pebble-challtestsrv is not installed (Debian package pebble)",
        );
        return None;
    }
    let (port, management) = (free_port(), free_port());
    // Without `-defaultIPv4 ""` it answers 127.0.0.1 for every name: listed everywhere.
    let child = Command::new("pebble-challtestsrv")
        .args(["-dns01", &format!("127.0.0.1:{port}")])
        .args(["-management", &format!("127.0.0.1:{management}")])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv6", ""])
        .args(["-defaultIPv4", ""])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dns = Dns { child, port, management };
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", management)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    {
        assert!(start.elapsed() < Duration::from_secs(15), "pebble-challtestsrv did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(dns)
}

impl Dns {
    async fn post(&self, path: &str, body: serde_json::Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.management);
        let reply = reqwest::Client::new().post(url).body(body.to_string()).send().await.unwrap();
        assert!(reply.status().is_success(), "{path}: {}", reply.status());
    }

    async fn a(&self, host: &str, ip: &str) {
        self.post("/add-a", serde_json::json!({ "host": format!("{host}."), "addresses": [ip] }))
            .await;
    }

    async fn servfail(&self, host: &str) {
        self.post("/set-servfail", serde_json::json!({ "host": format!("{host}.") })).await;
    }
}

/// The "Done when": a DNSBL served by a real DNS server refuses a listed client, and a
/// list whose server fails (SERVFAIL, as a recursive resolver answers when a zone's servers
/// do not) or does not answer at all is ignored.
#[tokio::test]
async fn a_real_dns_server_lists_a_client_and_a_failing_list_is_ignored() {
    let test =
        "smtp::tests::screening::a_real_dns_server_lists_a_client_and_a_failing_list_is_ignored";
    let Some(dns) = challtestsrv(test) else { return };
    dns.a("99.2.0.192.zen.bl.test", "127.0.0.2").await;
    dns.a("99.2.0.192.dead.bl.test", "127.0.0.2").await;
    dns.servfail("99.2.0.192.dead.bl.test").await;
    dns.servfail("98.2.0.192.dead.bl.test").await;
    let resolver = HickoryResolver::new(&[([127, 0, 0, 1], dns.port).into()]).unwrap();
    let server = screened(Arc::new(resolver), Duration::from_secs(5)).await;
    add_list(&server, "zen.bl.test", ListKind::Ip, 1).await;
    add_list(&server, "dead.bl.test", ListKind::Ip, 1).await;

    let mut c = server.connect(SMTP, "192.0.2.99").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    let reply = c.cmd("RCPT TO:<ann@example.test>").await;
    assert_eq!(
        reply,
        "554 5.7.1 Service unavailable; client [192.0.2.99] blocked using zen.bl.test"
    );

    // Not listed in zen, and dead.bl.test fails: accepted, the failure noted.
    let mut c = server.connect(SMTP, "192.0.2.98").await;
    c.expect("EHLO client.test", "250").await;
    let reply = c.mail("a@sender.test", &["ann@example.test"], "Subject: d\r\n\r\nx\r\n").await;
    assert!(reply.starts_with("250"), "{reply}");
    let note = server.accepted()[0].note.clone().unwrap_or_default();
    assert!(note.contains("blocklist dead.bl.test not asked"), "{note}");

    // A DNS server that never answers: the lists time out, and the mail is accepted.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let resolver = HickoryResolver::new(&[silent.local_addr().unwrap()]).unwrap();
    server.ctx.screen.blocklists.use_resolver(Arc::new(resolver));
    let started = std::time::Instant::now();
    let mut c = server.connect(SMTP, "192.0.2.99").await;
    c.expect("EHLO client.test", "250").await;
    let reply = c.mail("a@sender.test", &["ann@example.test"], "Subject: d\r\n\r\nx\r\n").await;
    assert!(reply.starts_with("250"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(8), "one timeout for all lists, in parallel");
    let note = server.accepted()[1].note.clone().unwrap_or_default();
    assert!(note.contains("blocklist zen.bl.test not asked"), "{note}");
}
