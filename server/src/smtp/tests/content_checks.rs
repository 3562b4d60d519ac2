//! Header and body checks through an SMTP session: each action as set, applied at the end of
//! DATA and of BDAT LAST, live once the configuration changes.

use postern_store::model::NewContentCheck;

use super::*;

async fn add(server: &Server, part: &str, pattern: &str, action: &str) -> i64 {
    let new = NewContentCheck::parse(part, pattern, action, "").unwrap();
    let rule = server.store.add_content_check("test", new, None).await.unwrap();
    server.caught_up().await;
    rule.id
}

const MESSAGE: &str = "From: ann@example.test\r\nSubject: cheap pills\r\nX-Mailer: SpamKit\r\n\t2000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nvisit our ca=\r\nsino today\r\n";

#[tokio::test]
async fn header_and_body_checks_act_as_set() {
    let server = Server::new().await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    // No rules: the message goes through untouched.
    let reply = c.mail("x@remote.test", &["ann@example.test"], MESSAGE).await;
    assert!(reply.starts_with("250 2.0.0 Ok: queued"), "{reply}");

    // REJECT on an unfolded header: the message is refused with the rule's reply.
    let reject =
        add(&server, "header", "^X-Mailer: SpamKit\\s+2000$", "REJECT 554 5.7.0 no spam kits")
            .await;
    let reply = c.mail("x@remote.test", &["ann@example.test"], MESSAGE).await;
    assert_eq!(reply, "554 5.7.0 no spam kits");
    assert_eq!(server.accepted().len(), 1);
    server.store.remove_content_check("test", reject).await.unwrap();

    // IGNORE, REPLACE, WARN and HOLD (on the decoded body: "casino" was split by a soft break).
    add(&server, "header", "^X-Mailer:", "IGNORE").await;
    add(&server, "header", "^Subject:", "REPLACE Subject: [suspect] cheap pills").await;
    add(&server, "header", "^From:", "WARN").await;
    let hold = add(&server, "body", "casino", "HOLD").await;
    let reply = c.mail("x@remote.test", &["ann@example.test"], MESSAGE).await;
    assert!(reply.starts_with("250 2.0.0 Ok: queued"), "{reply}");
    let m = server.accepted().pop().unwrap();
    let body = String::from_utf8(m.body.clone()).unwrap();
    assert!(m.held);
    assert!(!body.contains("X-Mailer"), "{body}");
    assert!(body.contains("\r\nSubject: [suspect] cheap pills\r\n"), "{body}");
    assert!(body.starts_with("Received: "), "our own header is not checked away: {body}");
    let note = m.note.unwrap();
    assert!(note.contains(&format!("body check {hold} matched (HOLD)")), "{note}");
    assert!(note.contains("matched (WARN)"), "{note}");

    // DISCARD: 250, nothing queued. Through BDAT this time.
    add(&server, "body", "^sino today$|casino", "DISCARD").await;
    server.store.remove_content_check("test", hold).await.unwrap();
    server.caught_up().await;
    let before = server.accepted().len();
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "250").await;
    let data = MESSAGE;
    c.send(format!("BDAT {} LAST\r\n", data.len()).as_bytes()).await;
    c.send(data.as_bytes()).await;
    let reply = c.reply().await;
    assert!(reply.starts_with("250 2.0.0 Ok"), "{reply}");
    assert_eq!(server.accepted().len(), before);
}
