//! The ordinary conversation where the accepted message must be looked at: EHLO, a
//! transaction with DATA and with BDAT, the headers we add, DSN parameters. Command order,
//! PIPELINING and SMTPUTF8 replies are in `server/tests/dialogs/`.

use super::*;

const SMTP: ListenerKind = ListenerKind::Smtp;

#[tokio::test]
async fn ehlo_lists_extensions_and_a_message_is_queued() {
    let server = Server::new().await;
    let mut c = server.connect(SMTP, "192.0.2.10").await;
    let ehlo = c.cmd("EHLO client.test").await;
    for ext in [
        "PIPELINING",
        "SIZE 52428800",
        "STARTTLS",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
        "SMTPUTF8",
        "CHUNKING",
    ] {
        assert!(ehlo.contains(ext), "{ext} missing from {ehlo}");
    }
    assert!(!ehlo.contains("AUTH"), "no AUTH on port 25: {ehlo}");
    let reply = c
        .mail("someone@remote.test", &["ann@example.test"], "Subject: hi\r\n\r\nhello\r\n..dot\r\n")
        .await;
    assert_eq!(reply, format!("250 2.0.0 Ok: queued as {}", queue_id(1)));
    c.expect("QUIT", "221 2.0.0").await;

    let m = &server.accepted()[0];
    assert_eq!(m.sender, "someone@remote.test");
    assert_eq!(m.recipients[0].address, "ann@example.test");
    assert_eq!(m.recipients[0].orcpt.as_deref(), Some("rfc822;ann@example.test"));
    let body = String::from_utf8(m.body.clone()).unwrap();
    assert!(body.starts_with("Received: from client.test ([192.0.2.10])\r\n\tby mail.example.test (Postern) with ESMTP\r\n\tfor <ann@example.test>; "), "{body}");
    assert!(body.ends_with("Subject: hi\r\n\r\nhello\r\n.dot\r\n"), "{body}");
    assert!(!body.contains("Message-ID"), "port 25 leaves the message alone");
}

#[tokio::test]
async fn aliases_expand_and_dsn_parameters_are_kept() {
    let server = Server::new().await;
    let mut c = server.connect(SMTP, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@remote.test> RET=HDRS ENVID=abc123", "250 2.1.0").await;
    c.expect(
        "RCPT TO:<sales@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;sales@example.test",
        "250 2.1.5",
    )
    .await;
    c.expect("RCPT TO:<ann+news@example.test>", "250 2.1.5").await;
    c.expect("DATA", "354").await;
    c.send(b"Subject: x\r\n\r\nx\r\n").await;
    c.expect(".", "250 2.0.0").await;
    let m = &server.accepted()[0];
    assert_eq!(m.envid.as_deref(), Some("abc123"));
    assert_eq!(m.ret, Some(postern_store::model::DsnRet::Headers));
    // ann is reached twice (through sales, and as ann+news): one copy, on the first one's terms.
    let rcpts: Vec<(&str, u8)> =
        m.recipients.iter().map(|r| (r.address.as_str(), r.notify.0)).collect();
    assert_eq!(rcpts, vec![("ann@example.test", 3), ("bob@example.test", 3)]);
    assert_eq!(m.recipients[0].orcpt.as_deref(), Some("rfc822;sales@example.test"));
}

#[tokio::test]
async fn bdat_chunks_make_one_message() {
    let server = Server::new().await;
    let mut c = server.connect(SMTP, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "250").await;
    c.send(b"BDAT 12\r\nSubject: b\r\n").await;
    assert!(c.reply().await.starts_with("250 2.0.0 12 octets"));
    c.send(b"BDAT 9 LAST\r\n\r\n.body\r\n").await;
    assert_eq!(c.reply().await, format!("250 2.0.0 Ok: queued as {}", queue_id(1)));
    let body = String::from_utf8(server.accepted()[0].body.clone()).unwrap();
    assert!(
        body.ends_with("Subject: b\r\n\r\n.body\r\n"),
        "BDAT data is not dot-unstuffed: {body}"
    );
}

/// `[smtp] max_message_size` is what EHLO announces (RFC 1870 §4); the checks at and one over
/// it are in `server/tests/dialogs/limit-size-exact.smtp`.
#[tokio::test]
async fn ehlo_announces_the_configured_size() {
    let server = Server::with_limits(Limits { max_message_size: 1234, ..Limits::default() }).await;
    let mut c = server.connect(SMTP, "192.0.2.10").await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("SIZE 1234\n") || ehlo.ends_with("SIZE 1234"), "{ehlo}");
}
