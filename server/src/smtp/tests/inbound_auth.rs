//! SPF, DKIM, ARC and DMARC on port 25, against records served by a real DNS server,
//! pebble-challtestsrv (Debian package pebble): the `Authentication-Results:` field, a forged
//! one claiming our authserv-id removed, `550 5.7.1` for a DMARC failure under `p=reject`, and
//! a DNS failure that never refuses permanently.

use std::process::{Command, Stdio};

use base64::Engine as _;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;

use super::*;
use crate::dns::HickoryResolver;
use crate::mailauth::Verifier;
use postern_store::model::MailAuthPolicy;
use postern_store::testing::free_port;

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
    let child = Command::new("pebble-challtestsrv")
        .args(["-dns01", &format!("127.0.0.1:{port}")])
        .args(["-management", &format!("127.0.0.1:{management}")])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv6", ""])
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
    async fn txt(&self, host: &str, value: &str) {
        let body = serde_json::json!({ "host": format!("{host}."), "value": value });
        let url = format!("http://127.0.0.1:{}/set-txt", self.management);
        let reply = reqwest::Client::new().post(url).body(body.to_string()).send().await.unwrap();
        assert!(reply.status().is_success());
    }
}

/// A server whose port 25 checks mail through the DNS server at `port`.
async fn checking_server(port: u16) -> Server {
    let mut server = Server::new().await;
    let resolver = HickoryResolver::new(&[([127, 0, 0, 1], port).into()]).unwrap();
    let verifier = Verifier::new(resolver.hickory().clone(), "mail.example.test");
    Arc::get_mut(&mut server.ctx).expect("no session yet").verifier = Some(Arc::new(verifier));
    server
}

fn sign(pkcs8: &[u8], message: &str) -> String {
    let key = Ed25519Key::from_pkcs8_der(pkcs8).unwrap();
    let signature = DkimSigner::from_key(key)
        .domain("sender.test")
        .selector("k1")
        .headers(["From", "To", "Subject"])
        .sign(message.as_bytes())
        .unwrap();
    format!("{}{message}", signature.to_header())
}

fn auth_results(m: &NewMessage) -> String {
    let body = String::from_utf8_lossy(&m.body);
    let start = body.find("Authentication-Results: mail.example.test;").expect("our field");
    let field = &body[start..];
    let end = field.find("\r\n").map(|first| {
        // The field's continuation lines start with a tab.
        let mut end = first;
        while field[end + 2..].starts_with('\t') {
            end += 2 + field[end + 2..].find("\r\n").unwrap();
        }
        end
    });
    field[..end.unwrap()].to_string()
}

#[tokio::test]
async fn spf_dkim_and_dmarc_pass_and_fail_with_authentication_results() {
    let test =
        "smtp::tests::inbound_auth::spf_dkim_and_dmarc_pass_and_fail_with_authentication_results";
    let Some(dns) = challtestsrv(test) else { return };
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let public = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap().public_key();
    let record = format!(
        "v=DKIM1; k=ed25519; p={}",
        base64::engine::general_purpose::STANDARD.encode(public)
    );
    dns.txt("k1._domainkey.sender.test", &record).await;
    dns.txt("sender.test", "v=spf1 ip4:192.0.2.0/24 -all").await;
    dns.txt("_dmarc.sender.test", "v=DMARC1; p=reject").await;
    let server = checking_server(dns.port).await;

    // Everything passes; a forged field claiming our authserv-id goes, another host's stays.
    let message =
        "From: Bob <bob@sender.test>\r\nTo: ann@example.test\r\nSubject: hi\r\n\r\nhello\r\n";
    let signed = sign(&pkcs8, message);
    let forged = format!(
        "Authentication-Results: mail.example.test; dmarc=pass\r\n\
         Authentication-Results: other.test; spf=pass\r\n{signed}"
    );
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.7").await;
    c.expect("EHLO out.sender.test", "250").await;
    let reply = c.mail("bob@sender.test", &["ann@example.test"], &forged).await;
    assert!(reply.starts_with("250"), "{reply}");
    let accepted = server.accepted();
    let body = String::from_utf8_lossy(&accepted[0].body).into_owned();
    let results = auth_results(&accepted[0]);
    for expected in [
        "dkim=pass",
        "header.d=sender.test",
        "spf=pass",
        "smtp.mailfrom=bob@sender.test",
        "arc=none",
        "dmarc=pass",
        "policy.dmarc=reject",
    ] {
        assert!(results.contains(expected), "{expected} in {results}");
    }
    assert_eq!(body.matches("Authentication-Results: mail.example.test").count(), 1, "{body}");
    assert!(body.contains("Authentication-Results: other.test; spf=pass"), "{body}");
    assert!(body.find("Received:").unwrap() < body.find("Authentication-Results").unwrap());

    // From an address SPF does not allow, unsigned: DMARC fails, and p=reject refuses it.
    let mut c = server.connect(ListenerKind::Smtp, "198.51.100.9").await;
    c.expect("EHLO spoof.test", "250").await;
    let reply = c.mail("bob@sender.test", &["ann@example.test"], message).await;
    assert!(reply.starts_with("550 5.7.1") && reply.contains("DMARC"), "{reply}");

    // The same from an allowed address with a broken signature: SPF carries DMARC.
    let tampered = sign(&pkcs8, message).replace("Subject: hi", "Subject: h1");
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.8").await;
    c.expect("EHLO out.sender.test", "250").await;
    let reply = c.mail("bob@sender.test", &["ann@example.test"], &tampered).await;
    assert!(reply.starts_with("250"), "{reply}");
    let results = auth_results(&server.accepted()[1]);
    assert!(results.contains("dkim=fail") && results.contains("spf=pass"), "{results}");
    assert!(results.contains("dmarc=pass"), "{results}");

    // Signed but from a disallowed address: DKIM alone carries DMARC.
    let mut c = server.connect(ListenerKind::Smtp, "198.51.100.10").await;
    c.expect("EHLO elsewhere.test", "250").await;
    let reply = c.mail("bob@sender.test", &["ann@example.test"], &signed).await;
    assert!(reply.starts_with("250"), "{reply}");
    let results = auth_results(&server.accepted()[2]);
    assert!(results.contains("spf=fail") && results.contains("dkim=pass"), "{results}");

    // Submissions and trusted networks are not checked here.
    let mut c = server.connect(ListenerKind::Smtp, "127.0.0.1").await;
    c.expect("EHLO app.test", "250").await;
    let reply = c.mail("bob@sender.test", &["ann@example.test"], message).await;
    assert!(reply.starts_with("250"), "{reply}");
    let trusted = String::from_utf8_lossy(&server.accepted()[3].body).into_owned();
    assert!(!trusted.contains("Authentication-Results"), "{trusted}");
}

#[tokio::test]
async fn a_dns_failure_never_refuses_permanently() {
    // Nothing answers there; a short timeout keeps the test quick.
    use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    let mut server = Server::new().await;
    let mut ns = NameServerConfig::udp(std::net::Ipv4Addr::LOCALHOST.into());
    ns.connections[0].port = free_port();
    let mut options = ResolverOpts::default();
    options.timeout = Duration::from_millis(200);
    options.attempts = 1;
    let resolver = hickory_resolver::TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    )
    .with_options(options)
    .build()
    .unwrap();
    let verifier = Verifier::new(resolver, "mail.example.test");
    Arc::get_mut(&mut server.ctx).expect("no session yet").verifier = Some(Arc::new(verifier));
    let mut c = server.connect(ListenerKind::Smtp, "198.51.100.9").await;
    c.expect("EHLO spoof.test", "250").await;
    let message = "From: Bob <bob@sender.test>\r\nSubject: hi\r\n\r\nhello\r\n";
    let reply = c.mail("bob@sender.test", &["ann@example.test"], message).await;
    assert!(reply.starts_with("250"), "{reply}");
    let results = auth_results(&server.accepted()[0]);
    assert!(results.contains("spf=temperror"), "{results}");
    assert!(!results.contains("dmarc=fail"), "{results}");
}

/// A message forwarded by a list that changed it (the author's DKIM signature breaks) and sealed
/// it with ARC: `arc=pass`; the same with the sealed message changed again: `arc=fail`.
#[tokio::test]
async fn an_arc_sealed_forward_passes_and_a_broken_seal_fails() {
    use mail_auth::arc::ArcSealer;
    use mail_auth::{AuthenticatedMessage, AuthenticationResults, MessageAuthenticator};
    let test = "smtp::tests::inbound_auth::an_arc_sealed_forward_passes_and_a_broken_seal_fails";
    let Some(dns) = challtestsrv(test) else { return };
    let author = Ed25519Key::generate_pkcs8().unwrap();
    let list = Ed25519Key::generate_pkcs8().unwrap();
    for (name, key) in [("k1._domainkey.sender.test", &author), ("k1._domainkey.list.test", &list)]
    {
        let public = Ed25519Key::from_pkcs8_der(key).unwrap().public_key();
        let b64 = base64::engine::general_purpose::STANDARD.encode(public);
        dns.txt(name, &format!("v=DKIM1; k=ed25519; p={b64}")).await;
    }
    // The author's domain asks for reports only, so that the test sees the results delivered.
    dns.txt("_dmarc.sender.test", "v=DMARC1; p=none").await;
    dns.txt("list.test", "v=spf1 ip4:203.0.113.0/24 -all").await;

    // The list receives the signed message, tags the subject and seals what it saw.
    let original = sign(
        &author,
        "From: Bob <bob@sender.test>\r\nTo: list@list.test\r\nSubject: hi\r\n\r\nhello\r\n",
    );
    let forwarded = original.replace("Subject: hi", "Subject: [list] hi");
    let resolver = HickoryResolver::new(&[([127, 0, 0, 1], dns.port).into()]).unwrap();
    let at_list = MessageAuthenticator(resolver.hickory().clone());
    let parsed = AuthenticatedMessage::parse(original.as_bytes()).unwrap();
    let dkim = at_list.verify_dkim(&parsed).await;
    let results = AuthenticationResults::new("list.test").with_dkim_results(&dkim, "sender.test");
    let parsed_fwd = AuthenticatedMessage::parse(forwarded.as_bytes()).unwrap();
    let arc = at_list.verify_arc(&parsed_fwd).await;
    let set = ArcSealer::from_key(Ed25519Key::from_pkcs8_der(&list).unwrap())
        .domain("list.test")
        .selector("k1")
        .headers(["From", "To", "Subject"])
        .seal(&parsed_fwd, &results, &arc)
        .unwrap();
    let sealed = format!("{}{forwarded}", set.to_header());
    assert!(sealed.contains("ARC-Seal: i=1;"), "{sealed}");

    let server = checking_server(dns.port).await;
    let mut c = server.connect(ListenerKind::Smtp, "203.0.113.5").await;
    c.expect("EHLO mx.list.test", "250").await;
    let reply = c.mail("list-bounces@list.test", &["ann@example.test"], &sealed).await;
    assert!(reply.starts_with("250"), "{reply}");
    let results = auth_results(&server.accepted()[0]);
    assert!(results.contains("arc=pass"), "{results}");
    assert!(results.contains("dkim=fail") && results.contains("spf=pass"), "{results}");

    let broken = sealed.replace("hello", "hell0");
    let reply = c.mail("list-bounces@list.test", &["ann@example.test"], &broken).await;
    assert!(reply.starts_with("250"), "{reply}");
    let results = auth_results(&server.accepted()[1]);
    assert!(results.contains("arc=fail"), "{results}");
}

/// Sets the inbound policy (global, or `domain`'s override) and waits until the engine's
/// snapshot carries it.
async fn set_policy(server: &Server, domain: Option<&str>, policy: MailAuthPolicy) {
    let domain: Option<postern_store::model::DomainName> = domain.map(|d| d.parse().unwrap());
    server.store.set_mail_auth_policy("test", domain.as_ref(), policy).await.unwrap();
    server.caught_up().await;
}

/// Each action of the inbound policy, applied live: DMARC `p=reject` refused, quarantined
/// (held or tagged) or only recorded; `p=quarantine` held; an SPF `-all` failure refused or
/// tagged; a domain's override winning over the global policy; the results kept with the
/// message for the queue and the log.
#[tokio::test]
async fn the_inbound_policy_decides_what_a_failure_does() {
    use postern_store::model::{DmarcQuarantineAction as Q, DmarcRejectAction as R, SpfFailAction};
    let test = "smtp::tests::inbound_auth::the_inbound_policy_decides_what_a_failure_does";
    let Some(dns) = challtestsrv(test) else { return };
    dns.txt("sender.test", "v=spf1 ip4:192.0.2.0/24 -all").await;
    dns.txt("_dmarc.sender.test", "v=DMARC1; p=reject").await;
    dns.txt("quiet.test", "v=spf1 ip4:192.0.2.0/24 -all").await;
    dns.txt("_dmarc.quiet.test", "v=DMARC1; p=quarantine").await;
    dns.txt("nodmarc.test", "v=spf1 ip4:192.0.2.0/24 -all").await;
    let server = checking_server(dns.port).await;
    let spoof = |from: &str| {
        format!("From: Bob <bob@{from}>\r\nTo: ann@example.test\r\nSubject: hi\r\n\r\nhello\r\n")
    };
    let send = async |from: &str, to: &str| {
        let mut c = server.connect(ListenerKind::Smtp, "198.51.100.9").await;
        c.expect("EHLO spoof.test", "250").await;
        c.mail(&format!("bob@{from}"), &[to], &spoof(from)).await
    };
    let last = || server.accepted().pop().expect("a message was accepted");
    let tag_of = |m: &NewMessage| {
        let body = String::from_utf8_lossy(&m.body).into_owned();
        body.lines().find(|l| l.starts_with("X-Postern-Auth-Warning:")).map(str::to_string)
    };

    // The default: p=reject is honoured, p=quarantine is tagged, SPF fail only recorded.
    let reply = send("sender.test", "ann@example.test").await;
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    let reply = send("quiet.test", "ann@example.test").await;
    assert!(reply.starts_with("250"), "{reply}");
    let m = last();
    assert!(!m.held);
    assert_eq!(
        tag_of(&m).as_deref(),
        Some("X-Postern-Auth-Warning: dmarc=fail header.from=quiet.test")
    );
    let results = m.auth_results.clone().unwrap();
    assert!(
        results.contains("spf=fail") && results.contains("dmarc=fail (p=quarantine)"),
        "{results}"
    );
    let reply = send("nodmarc.test", "ann@example.test").await;
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(tag_of(&last()), None);

    // p=reject treated as a quarantine that holds the message in the queue.
    let hold = MailAuthPolicy {
        dmarc_reject: R::Quarantine,
        dmarc_quarantine: Q::Hold,
        ..MailAuthPolicy::default()
    };
    set_policy(&server, None, hold).await;
    let reply = send("sender.test", "ann@example.test").await;
    assert!(reply.starts_with("250"), "{reply}");
    let m = last();
    assert!(m.held, "held for an administrator");
    assert!(m.auth_results.unwrap().contains("dmarc=fail (p=reject)"));
    let reply = send("quiet.test", "ann@example.test").await;
    assert!(reply.starts_with("250") && last().held, "{reply}");

    // Only recorded: delivered untouched but for Authentication-Results.
    let record = MailAuthPolicy { dmarc_reject: R::Record, dmarc_quarantine: Q::Record, ..hold };
    set_policy(&server, None, record).await;
    let reply = send("sender.test", "ann@example.test").await;
    assert!(reply.starts_with("250"), "{reply}");
    let m = last();
    assert!(!m.held && tag_of(&m).is_none());
    assert!(auth_results(&m).contains("dmarc=fail"), "{}", auth_results(&m));

    // SPF -all failures: refused, or tagged.
    set_policy(&server, None, MailAuthPolicy { spf_fail: SpfFailAction::Reject, ..record }).await;
    let reply = send("nodmarc.test", "ann@example.test").await;
    assert!(reply.starts_with("550 5.7.23") && reply.contains("SPF"), "{reply}");
    set_policy(&server, None, MailAuthPolicy { spf_fail: SpfFailAction::Tag, ..record }).await;
    let reply = send("nodmarc.test", "ann@example.test").await;
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(tag_of(&last()).as_deref(), Some("X-Postern-Auth-Warning: spf=fail"));

    // example.test overrides the global "record": p=reject is refused there, not elsewhere.
    set_policy(&server, None, record).await;
    set_policy(&server, Some("example.test"), MailAuthPolicy::default()).await;
    let reply = send("sender.test", "ann@example.test").await;
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    let reply = send("sender.test", "someone@catchall.test").await;
    assert!(reply.starts_with("250"), "{reply}");
    server.store.clear_mail_auth_policy("test", &"example.test".parse().unwrap()).await.unwrap();
    server.caught_up().await;
    let reply = send("sender.test", "ann@example.test").await;
    assert!(reply.starts_with("250"), "{reply}");
}

/// A DNS failure: `451 4.7.24` when the policy says defer, accepted and tagged otherwise;
/// never a 5xx.
#[tokio::test]
async fn a_dns_failure_defers_or_tags_per_policy() {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    use postern_store::model::TempErrorAction;
    let mut server = Server::new().await;
    let mut ns = NameServerConfig::udp(std::net::Ipv4Addr::LOCALHOST.into());
    ns.connections[0].port = free_port();
    let mut options = ResolverOpts::default();
    options.timeout = Duration::from_millis(200);
    options.attempts = 1;
    let resolver = hickory_resolver::TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    )
    .with_options(options)
    .build()
    .unwrap();
    let verifier = Verifier::new(resolver, "mail.example.test");
    Arc::get_mut(&mut server.ctx).expect("no session yet").verifier = Some(Arc::new(verifier));
    let message = "From: Bob <bob@sender.test>\r\nSubject: hi\r\n\r\nhello\r\n";
    let strict = MailAuthPolicy { temperror: TempErrorAction::Defer, ..MailAuthPolicy::default() };
    set_policy(&server, None, strict).await;
    let mut c = server.connect(ListenerKind::Smtp, "198.51.100.9").await;
    c.expect("EHLO spoof.test", "250").await;
    let reply = c.mail("bob@sender.test", &["ann@example.test"], message).await;
    assert!(reply.starts_with("451 4.7.24"), "{reply}");
    assert!(server.accepted().is_empty());

    set_policy(&server, None, MailAuthPolicy::default()).await;
    let reply = c.mail("bob@sender.test", &["ann@example.test"], message).await;
    assert!(reply.starts_with("250"), "{reply}");
    let m = server.accepted().pop().unwrap();
    let body = String::from_utf8_lossy(&m.body).into_owned();
    assert!(body.contains("X-Postern-Auth-Warning: temperror"), "{body}");
    assert!(m.auth_results.unwrap().contains("spf=temperror"));
}
