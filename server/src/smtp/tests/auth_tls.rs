//! STARTTLS and AUTH: TLS first, credentials checked against the store, and an authenticated
//! user sending only as addresses it owns.

use super::*;

const SUBMISSION: ListenerKind = ListenerKind::Submission;

#[tokio::test]
async fn submission_with_starttls_and_auth() {
    let server = Server::new().await;
    let mut c = server.connect(SUBMISSION, "192.0.2.20").await;
    let ehlo = c.expect("EHLO client.test", "250").await;
    assert!(!ehlo.contains("AUTH"), "AUTH only after TLS: {ehlo}");
    c.expect("MAIL FROM:<ann@example.test>", "530 5.7.0").await;
    c.expect("AUTH PLAIN AGFubkBleGFtcGxlLnRlc3QAeA==", "530 5.7.0").await;
    c.starttls().await;
    let ehlo = c.expect("EHLO client.test", "250").await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"), "{ehlo}");
    c.expect("STARTTLS", "503 5.5.1").await;
    c.expect(
        &format!("AUTH PLAIN {}", base64_plain("", "ann@example.test", "wrong password")),
        "535 5.7.8",
    )
    .await;
    c.expect(
        &format!("AUTH PLAIN {}", base64_plain("", "ann@example.test", PASSWORD)),
        "235 2.7.0",
    )
    .await;
    c.expect(
        &format!("AUTH PLAIN {}", base64_plain("", "ann@example.test", PASSWORD)),
        "503 5.5.1",
    )
    .await;
    c.expect("MAIL FROM:<bob@example.test>", "553 5.7.1").await;
    c.expect("MAIL FROM:<sales@example.test>", "250").await;
    c.expect("RSET", "250").await;
    let reply = c
        .mail(
            "ann+lists@example.test",
            &["friend@elsewhere.test"],
            "Subject: s\r\n\r\nsubmitted\r\n",
        )
        .await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let m = &server.accepted()[0];
    assert_eq!(m.auth_user.as_deref(), Some("ann@example.test"));
    let body = String::from_utf8(m.body.clone()).unwrap();
    assert!(body.contains("with ESMTPSA\r\n\t(using TLSv1.3 with cipher "), "{body}");
    assert!(body.contains("\t(authenticated as ann@example.test)"), "{body}");
    assert!(
        body.contains("\r\nMessage-ID: <") && body.contains("\r\nDate: "),
        "submissions get Message-ID and Date: {body}"
    );
    // The signer sees the message as queued, our headers included, and its field goes on top.
    let signed = format!(
        "DKIM-Signature: v=1; d=example.test; test=yes; signed={}\r\n",
        m.body.len() - body.find("Received:").unwrap()
    );
    assert!(body.starts_with(&signed), "{body}");
}

#[tokio::test]
async fn auth_login_and_cancel() {
    let server = Server::new().await;
    let mut c = server.connect(SUBMISSION, "192.0.2.20").await;
    c.expect("EHLO client.test", "250").await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    c.expect("*", "501 5.0.0").await;
    c.expect("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    c.expect("Ym9iQGV4YW1wbGUudGVzdA==", "334 UGFzc3dvcmQ6").await;
    use base64::Engine as _;
    let pw = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
    c.expect(&pw, "235 2.7.0").await;
}

#[tokio::test]
async fn malformed_sasl_is_refused() {
    let server = Server::new().await;
    let mut c = server.connect(SUBMISSION, "192.0.2.20").await;
    c.expect("EHLO client.test", "250").await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("AUTH PLAIN !!!notbase64!!!", "501 5.5.2").await;
    c.expect(
        &format!("AUTH PLAIN {}", base64_plain("bob@example.test", "ann@example.test", PASSWORD)),
        "535 5.7.8",
    )
    .await;
    use base64::Engine as _;
    let extra_nul = base64::engine::general_purpose::STANDARD
        .encode(format!("\0ann@example.test\0{PASSWORD}\0x"));
    c.expect(&format!("AUTH PLAIN {extra_nul}"), "501 5.5.2").await;
    let no_nul = base64::engine::general_purpose::STANDARD.encode("ann@example.test");
    c.expect(&format!("AUTH PLAIN {no_nul}"), "501 5.5.2").await;
    c.expect(
        &format!("AUTH PLAIN {}", base64_plain("", "nobody@example.test", PASSWORD)),
        "535 5.7.8",
    )
    .await;
    c.expect(
        &format!("AUTH PLAIN {}", base64_plain("", "off@example.test", PASSWORD)),
        "535 5.7.8",
    )
    .await;
    c.expect("AUTH CRAM-MD5", "504 5.5.4").await;
}

#[tokio::test]
async fn no_auth_on_port_25() {
    let server = Server::new().await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.20").await;
    c.expect("EHLO client.test", "250").await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    c.expect(
        &format!("AUTH PLAIN {}", base64_plain("", "ann@example.test", PASSWORD)),
        "503 5.5.1",
    )
    .await;
}

/// CVE-2011-0411: commands pipelined after STARTTLS in the same packet are not executed.
#[tokio::test]
async fn starttls_injection_is_discarded() {
    let server = Server::new().await;
    let mut c = server.connect(SUBMISSION, "192.0.2.20").await;
    c.expect("EHLO client.test", "250").await;
    c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<ann@example.test>\r\n").await;
    assert!(c.reply().await.starts_with("220 2.0.0"));
    c.upgrade().await;
    // Had RSET or MAIL run, their replies would come first.
    let reply = c.cmd("EHLO client.test").await;
    assert!(reply.starts_with("250-mail.example.test"), "{reply}");
    c.expect("NOOP", "250 2.0.0").await;
}

#[tokio::test]
async fn only_what_authenticated_users_submit_is_signed() {
    let server = Server::new().await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.21").await;
    c.expect("EHLO mx.elsewhere.test", "250").await;
    let reply =
        c.mail("someone@elsewhere.test", &["ann@example.test"], "Subject: in\r\n\r\nhi\r\n").await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let body = String::from_utf8(server.accepted()[0].body.clone()).unwrap();
    assert!(body.starts_with("Received: "), "inbound mail is not signed: {body}");
}
