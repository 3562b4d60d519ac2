//! The relay decision where the accepted message must be looked at; the replies alone are in
//! `server/tests/dialogs/relay-*.smtp`.

use super::*;

const SMTP: ListenerKind = ListenerKind::Smtp;

#[tokio::test]
async fn trusted_networks_relay() {
    let server = Server::new().await;
    let mut c = server.connect(SMTP, "127.0.0.1").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<app@example.test>", "250").await;
    c.expect("RCPT TO:<Someone@Elsewhere.test>", "250").await;
    c.expect("DATA", "354").await;
    c.send(b"Subject: r\r\n\r\nr\r\n").await;
    c.expect(".", "250").await;
    assert_eq!(
        server.accepted()[0].recipients[0].address,
        "Someone@Elsewhere.test",
        "kept as spelled"
    );
}

/// RFC 5321 §4.5.1: `<postmaster>` without a domain, and postmaster@ each of our domains, are
/// accepted. The fixture sets up no postmaster address, so the first mailbox created (ann)
/// stands in; mail.example.test is not one of our domains.
#[tokio::test]
async fn the_postmaster_is_always_reachable() {
    let server = Server::new().await;
    let mut c = server.connect(SMTP, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    c.expect("RCPT TO:<Postmaster>", "250 2.1.5").await;
    c.expect("RCPT TO: <postmaster> NOTIFY=NEVER", "250 2.1.5").await;
    c.expect("RCPT TO:<PostMaster@Example.test>", "250 2.1.5").await;
    c.expect("RCPT TO:<>", "501 5.1.3").await;
    c.expect("RCPT TO:<postmasterx>", "501 5.1.3").await;
    c.expect("RCPT TO:<postmaster@relay.test>", "250 2.1.5").await;
    c.expect("DATA", "354").await;
    c.send(b"Subject: abuse report\r\n\r\nr\r\n").await;
    c.expect(".", "250").await;
    let m = &server.accepted()[0];
    let rcpts: Vec<(&str, Option<&str>)> =
        m.recipients.iter().map(|r| (r.address.as_str(), r.orcpt.as_deref())).collect();
    assert_eq!(
        rcpts,
        vec![
            ("ann@example.test", Some("rfc822;postmaster@mail.example.test")),
            // A relay domain's postmaster is its next hop's.
            ("postmaster@relay.test", Some("rfc822;postmaster@relay.test")),
        ]
    );
}
