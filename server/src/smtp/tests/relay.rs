//! The relay decision: strangers may send only to our domains; our users and trusted networks
//! may send anywhere; tricks in the address never turn a local address into a relay.

use super::*;

const SMTP: ListenerKind = ListenerKind::Smtp;

#[tokio::test]
async fn strangers_cannot_relay() {
    let server = Server::new().await;
    let mut c = server.connect(SMTP, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    c.expect(
        "RCPT TO:<victim@elsewhere.test>",
        "554 5.7.1 <victim@elsewhere.test>: Relay access denied",
    )
    .await;
    c.expect("RCPT TO:<x@relay.test>", "250").await;
    c.expect("RCPT TO:<nobody@example.test>", "550 5.1.1").await;
    c.expect("RCPT TO:<off@example.test>", "550 5.2.1").await;
}

#[tokio::test]
async fn address_tricks_stay_local() {
    let server = Server::new().await;
    let mut c = server.connect(SMTP, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    for trick in [
        "<victim%elsewhere.test@example.test>",
        "<elsewhere.test!victim@example.test>",
        "<\"victim@elsewhere.test\"@example.test>",
        "<`id`${HOME}@example.test>",
    ] {
        c.expect(&format!("RCPT TO:{trick}"), "550 5.1.1").await;
    }
    // Shell syntax is plain (invalid) data: refused as syntax, never expanded.
    c.expect("RCPT TO:<$(reboot)@example.test>", "501 5.1.3").await;
    c.expect("RCPT TO:<a;reboot@example.test>", "501 5.1.3").await;
    // A source route is ignored (RFC 5321 §3.6.1): the mailbox after the colon decides.
    c.expect("RCPT TO:<@elsewhere.test:ann@example.test>", "250").await;
    c.expect("RCPT TO:<@example.test:victim@elsewhere.test>", "554 5.7.1").await;
    c.expect("RCPT TO:<victim@[192.0.2.99]>", "501 5.1.3").await;
}

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

/// `allow_untrusted_routing = no`: routing syntax in a relay domain's local part could make
/// its next hop relay on, so strangers may not use it; trusted networks and our users may.
#[tokio::test]
async fn routing_syntax_to_a_relay_domain_is_for_trusted_clients_only() {
    let tricks = [
        "victim%remote.test@relay.test",
        "remote.test!victim@relay.test",
        "\"victim@remote.test\"@relay.test",
    ];
    let server = Server::new().await;
    let mut c = server.connect(SMTP, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    for trick in tricks {
        let reply = c.cmd(&format!("RCPT TO:<{trick}>")).await;
        assert!(
            reply.starts_with("554 5.7.1 <") && reply.ends_with(">: Relay access denied"),
            "{trick}: {reply}"
        );
    }
    c.expect("RCPT TO:<plain.user@relay.test>", "250 2.1.5").await;

    let mut c = server.connect(SMTP, "127.0.0.1").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<app@example.test>", "250").await;
    for trick in tricks {
        c.expect(&format!("RCPT TO:<{trick}>"), "250 2.1.5").await;
    }

    let mut c = server.connect(ListenerKind::Submission, "192.0.2.20").await;
    c.expect("EHLO client.test", "250").await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    let auth = base64_plain("", "ann@example.test", PASSWORD);
    c.expect(&format!("AUTH PLAIN {auth}"), "235").await;
    c.expect("MAIL FROM:<ann@example.test>", "250").await;
    for trick in tricks {
        c.expect(&format!("RCPT TO:<{trick}>"), "250 2.1.5").await;
    }
}

#[tokio::test]
async fn an_error_transport_refuses_at_rcpt() {
    let server = Server::new().await;
    let mut c = server.connect(SMTP, "127.0.0.1").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<app@example.test>", "250").await;
    c.expect("RCPT TO:<someone@gone.test>", "550 5.0.0 <someone@gone.test>: this domain has moved")
        .await;
}
