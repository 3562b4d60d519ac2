//! DSN parameters (RFC 3461 §4) as a client sends them: malformed ones refused with
//! `501 5.5.4`, none given twice, and only printable US-ASCII kept for the DSN.

use super::*;

const SMTP: ListenerKind = ListenerKind::Smtp;

async fn ready(server: &Server) -> Client {
    let mut c = server.connect(SMTP, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    c
}

#[tokio::test]
async fn malformed_mail_parameters_are_refused() {
    let server = Server::new().await;
    let mut c = ready(&server).await;
    for (params, why) in [
        // Control characters that would reach the DSN's header: NUL, ESC, DEL, CR, LF.
        ("ENVID=a+00b", "Bad ENVID parameter: not printable US-ASCII"),
        ("ENVID=a+1Bb", "Bad ENVID parameter: not printable US-ASCII"),
        ("ENVID=a+7Fb", "Bad ENVID parameter: not printable US-ASCII"),
        ("ENVID=a+0D+0AX-Injected:+20yes", "Bad ENVID parameter: not printable US-ASCII"),
        ("ENVID=caf+C3+A9", "Bad ENVID parameter: not printable US-ASCII"),
        // Broken xtext is refused, not repaired.
        ("ENVID=a+4", "Bad ENVID parameter: a \"+\" not followed by two hex digits"),
        ("ENVID=a+ZZb", "Bad ENVID parameter: a \"+\" not followed by two hex digits"),
        ("ENVID=a=b", "Bad ENVID parameter: a bare \"=\""),
        ("ENVID=", "ENVID parameter"),
        (&format!("ENVID={}", "a".repeat(101)), "ENVID parameter"),
        ("RET=FULL RET=HDRS", "Duplicate RET parameter"),
        ("RET=HDRS ret=HDRS", "Duplicate RET parameter"),
        ("ENVID=a ENVID=b", "Duplicate ENVID parameter"),
        ("SIZE=10 SIZE=20", "Duplicate SIZE parameter"),
        ("BODY=8BITMIME BODY=7BIT", "Duplicate BODY parameter"),
    ] {
        let line = format!("MAIL FROM:<x@remote.test> {params}");
        let reply = c.cmd(&line).await;
        assert!(reply.starts_with("501 5.5.4 ") && reply.contains(why), "{line:?} got {reply:?}");
    }
    // Still a clean slate: a good MAIL is taken.
    c.expect("MAIL FROM:<x@remote.test> RET=FULL ENVID=QQ+2B1+20ok", "250 2.1.0").await;
}

#[tokio::test]
async fn malformed_rcpt_parameters_are_refused() {
    let server = Server::new().await;
    let mut c = ready(&server).await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    for (params, why) in [
        ("NOTIFY=NEVER,SUCCESS", "Bad NOTIFY parameter"),
        ("NOTIFY=SUCCESS,NEVER", "NOTIFY parameter"),
        ("NOTIFY=SUCCESS,", "NOTIFY parameter"),
        ("NOTIFY=", "NOTIFY parameter"),
        ("NOTIFY=SUCCESS NOTIFY=FAILURE", "Duplicate NOTIFY parameter"),
        ("NOTIFY=NEVER NOTIFY=NEVER", "NOTIFY parameter"),
        ("ORCPT=rfc822;a@example.test ORCPT=rfc822;b@example.test", "Duplicate ORCPT parameter"),
        ("ORCPT=rfc822;a+00b@example.test", "Bad ORCPT parameter: not printable US-ASCII"),
        ("ORCPT=rfc822;a+0D+0Ab@example.test", "Bad ORCPT parameter: not printable US-ASCII"),
        ("ORCPT=rfc822;a+4@example.test", "Bad ORCPT parameter: a \"+\" not followed"),
        ("ORCPT=rfc822;a=b@example.test", "Bad ORCPT parameter: a bare \"=\""),
    ] {
        let line = format!("RCPT TO:<ann@example.test> {params}");
        let reply = c.cmd(&line).await;
        assert!(reply.starts_with("501 5.5.4 ") && reply.contains(why), "{line:?} got {reply:?}");
    }
    c.expect("RCPT TO:<ann@example.test> NOTIFY=never", "250 2.1.5").await;
}

/// What is taken is kept decoded, exactly; without ORCPT, the recipient as the client wrote
/// it, quoted where its local part needs quotes (RFC 3461 §4.2, RFC 5321 §4.1.2).
#[tokio::test]
async fn well_formed_parameters_are_kept_exactly() {
    let server = Server::new().await;
    let mut c = server.connect(SMTP, "127.0.0.1").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<\"a b|c;d\"@ext.test> ret=hdrs ENVID=QQ+2B1+20ok+3d", "250 2.1.0").await;
    c.expect("RCPT TO:<\"x y\"@elsewhere.test> NOTIFY=SUCCESS,DELAY", "250 2.1.5").await;
    c.expect(
        "RCPT TO:<z@elsewhere.test> NOTIFY=FAILURE ORCPT=rfc822;\"Z+20z\"@Elsewhere.test",
        "250 2.1.5",
    )
    .await;
    c.expect("DATA", "354").await;
    c.send(b"Subject: d\r\n\r\nd\r\n").await;
    c.expect(".", "250 2.0.0").await;
    let m = &server.accepted()[0];
    assert_eq!(m.sender, "a b|c;d@ext.test");
    assert_eq!(m.envid.as_deref(), Some("QQ+1 ok="));
    assert_eq!(m.ret, Some(postern_store::model::DsnRet::Headers));
    let rcpts: Vec<(&str, Option<&str>, u8)> =
        m.recipients.iter().map(|r| (r.address.as_str(), r.orcpt.as_deref(), r.notify.0)).collect();
    assert_eq!(
        rcpts,
        vec![
            ("x y@elsewhere.test", Some("rfc822;\"x y\"@elsewhere.test"), 5),
            ("z@elsewhere.test", Some("rfc822;\"Z z\"@Elsewhere.test"), 2),
        ]
    );
}

/// RFC 6533 §3: in an SMTPUTF8 transaction an ORCPT may carry UTF-8 (as Postern itself sends
/// it to a next hop), but still no control characters.
#[tokio::test]
async fn an_smtputf8_orcpt_may_hold_utf8() {
    let server = Server::new().await;
    let mut c = server.connect(SMTP, "127.0.0.1").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@remote.test> SMTPUTF8", "250").await;
    c.expect("RCPT TO:<josé@elsewhere.test> ORCPT=rfc822;jos+C3+A9@elsewhere.test", "250").await;
    c.expect("RCPT TO:<a@elsewhere.test> ORCPT=rfc822;a+C2+85@elsewhere.test", "501 5.5.4").await;
    c.expect("RSET", "250").await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    c.expect("RCPT TO:<a@elsewhere.test> ORCPT=rfc822;jos+C3+A9@elsewhere.test", "501 5.5.4").await;
}
