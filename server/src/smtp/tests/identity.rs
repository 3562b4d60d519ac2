//! Sender identity on submission: an authenticated user may not use the null sender, and the
//! addresses in `From:` and `Sender:` must be ones it may send as (issue 9, item 9).

use super::*;

const SUBMISSION: ListenerKind = ListenerKind::Submission;

/// A submission session, through STARTTLS, authenticated as `user`.
async fn signed_in(server: &Server, user: &str) -> Client {
    let mut c = server.connect(SUBMISSION, "192.0.2.20").await;
    c.expect("EHLO client.test", "250").await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    c.expect(&format!("AUTH PLAIN {}", base64_plain("", user, PASSWORD)), "235 2.7.0").await;
    c
}

#[tokio::test]
async fn the_null_sender_is_refused_to_authenticated_users() {
    let server = Server::new().await;
    let mut c = signed_in(&server, "ann@example.test").await;
    let reply = c.expect("MAIL FROM:<>", "550 5.7.1").await;
    assert!(reply.contains("ann@example.test"), "{reply}");
    // The session goes on.
    let reply = c
        .mail("ann@example.test", &["x@elsewhere.test"], "From: ann@example.test\r\n\r\nhi\r\n")
        .await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    assert_eq!(server.accepted().len(), 1);
}

#[tokio::test]
async fn a_from_header_the_user_does_not_own_is_refused() {
    let server = Server::new().await;
    let mut c = signed_in(&server, "ann@example.test").await;

    let good = "From: Ann <ann@example.test>\r\nSubject: one\r\n\r\nfirst\r\n";
    let reply = c.mail("ann@example.test", &["x@elsewhere.test"], good).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");

    let spoof = "From: \"CEO\" <ceo@b.test>\r\nSubject: wire the money\r\n\r\nnow\r\n";
    let reply = c.mail("ann@example.test", &["x@elsewhere.test"], spoof).await;
    assert!(reply.starts_with("550 5.7.1 <ceo@b.test>"), "{reply}");

    // Every mailbox of a From: list counts (RFC 5322 §3.6.2), and so does Sender:.
    let list = "From: ann@example.test, Bob <bob@example.test>\r\n\r\nx\r\n";
    let reply = c.mail("ann@example.test", &["x@elsewhere.test"], list).await;
    assert!(reply.starts_with("550 5.7.1 <bob@example.test>: From:"), "{reply}");
    let sender = "From: ann@example.test\r\nSender: bob@example.test\r\n\r\nx\r\n";
    let reply = c.mail("ann@example.test", &["x@elsewhere.test"], sender).await;
    assert!(reply.starts_with("550 5.7.1 <bob@example.test>: Sender:"), "{reply}");
    // The obsolete `From :` and a From: with no address are refused too.
    let obsolete = "From : ceo@b.test\r\n\r\nx\r\n";
    let reply = c.mail("ann@example.test", &["x@elsewhere.test"], obsolete).await;
    assert!(reply.starts_with("550 5.7.1 <ceo@b.test>"), "{reply}");
    let nameless = "From: The CEO\r\n\r\nx\r\n";
    let reply = c.mail("ann@example.test", &["x@elsewhere.test"], nameless).await;
    assert!(reply.starts_with("550 5.7.1"), "{reply}");

    // An alias that delivers to her, and a +tag, are hers; a catch-all that does is not.
    let alias = "From: Sales <sales@example.test>\r\nSender: ann+x@example.test\r\n\r\nx\r\n";
    let reply = c.mail("ann@example.test", &["x@elsewhere.test"], alias).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let catch_all = "From: anyone@catchall.test\r\n\r\nx\r\n";
    let reply = c.mail("ann@example.test", &["x@elsewhere.test"], catch_all).await;
    assert!(reply.starts_with("550 5.7.1 <anyone@catchall.test>"), "{reply}");
    c.expect("MAIL FROM:<anyone@catchall.test>", "553 5.7.1").await;
    c.expect("RSET", "250").await;

    // BDAT ends the same way.
    c.expect("MAIL FROM:<ann@example.test>", "250").await;
    c.expect("RCPT TO:<x@elsewhere.test>", "250").await;
    let bdat = b"From: ceo@b.test\r\n\r\nx\r\n";
    c.send(format!("BDAT {} LAST\r\n", bdat.len()).as_bytes()).await;
    c.send(bdat).await;
    let reply = c.reply().await;
    assert!(reply.starts_with("550 5.7.1 <ceo@b.test>"), "{reply}");

    // Only the good messages went to the queue, and the session is still usable.
    let accepted = server.accepted();
    assert_eq!(accepted.len(), 2, "the first and the alias message");
    assert!(String::from_utf8_lossy(&accepted[0].body).contains("first"));
    c.expect("NOOP", "250").await;
}

#[tokio::test]
async fn the_send_as_list_extends_what_a_user_may_use() {
    let server = Server::new().await;
    let mut c = signed_in(&server, "bob@example.test").await;
    let body = "From: The Boss <boss@elsewhere.test>\r\nSender: bob@example.test\r\n\r\nx\r\n";
    let reply = c.mail("boss@elsewhere.test", &["x@elsewhere.test"], body).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let body = "From: anyone@relay.test\r\n\r\nx\r\n";
    let reply = c.mail("anyone@relay.test", &["x@elsewhere.test"], body).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    c.expect("MAIL FROM:<ceo@elsewhere.test>", "553 5.7.1").await;
    c.expect("RSET", "250").await;

    // Ann's list is empty: bob's extras are his alone.
    let mut c = signed_in(&server, "ann@example.test").await;
    c.expect("MAIL FROM:<boss@elsewhere.test>", "553 5.7.1").await;
}

#[tokio::test]
async fn unauthenticated_mail_on_port_25_is_not_checked() {
    let server = Server::new().await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    let body = "From: \"CEO\" <ceo@b.test>\r\n\r\nx\r\n";
    let reply = c.mail("", &["ann@example.test"], body).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
}
