//! Which messages are signed, and for which domain: what an authenticated user submits and what
//! a trusted network relays, for the `From:` domain (the envelope sender's without one); never
//! mail that arrives from elsewhere. The signer here only marks; `server/tests/dkim.rs` checks
//! real signatures.

use super::*;

fn signed_for(m: &NewMessage) -> Option<String> {
    let body = String::from_utf8_lossy(&m.body);
    let rest = body.strip_prefix("DKIM-Signature: v=1; d=")?;
    Some(rest.split(';').next().unwrap().to_string())
}

#[tokio::test]
async fn mail_from_elsewhere_is_not_signed() {
    let server = Server::new().await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.9").await;
    c.expect("EHLO outside.test", "250").await;
    let reply = c
        .mail(
            "someone@outside.test",
            &["ann@example.test"],
            "From: <ann@example.test>\r\n\r\nhi\r\n",
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(signed_for(&server.accepted()[0]), None, "a forged From: is not ours to sign");
}

#[tokio::test]
async fn a_trusted_network_is_signed_for_the_from_domain() {
    let server = Server::new().await;
    // 127.0.0.1 is trusted by default (like Postfix's mynetworks_style = host).
    let mut c = server.connect(ListenerKind::Smtp, "127.0.0.1").await;
    c.expect("EHLO app.test", "250").await;
    let reply = c
        .mail(
            "bounces@relay.test",
            &["friend@elsewhere.test"],
            "From: App <app@Example.TEST>\r\nSubject: s\r\n\r\nhi\r\n",
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(signed_for(&server.accepted()[0]).as_deref(), Some("example.test"));
}

#[tokio::test]
async fn a_submission_is_signed_for_its_from_domain() {
    let server = Server::new().await;
    let mut c = server.connect(ListenerKind::Submission, "192.0.2.20").await;
    c.expect("EHLO client.test", "250").await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    c.expect(&format!("AUTH PLAIN {}", base64_plain("", "bob@example.test", PASSWORD)), "235")
        .await;
    let reply = c
        .mail(
            "bob@example.test",
            &["friend@elsewhere.test"],
            "From: Boss <boss@elsewhere.test>\r\n\r\nhi\r\n",
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(signed_for(&server.accepted()[0]).as_deref(), Some("elsewhere.test"));
}

#[tokio::test]
async fn relayed_mail_is_signed_when_its_domain_says_so() {
    let server = Server::new().await;
    let domain = "example.test".parse().unwrap();
    let settings = postern_store::model::DkimSettings { rotate_days: None, sign_relayed: true };
    server.store.set_dkim_settings("test", &domain, settings).await.unwrap();
    server.caught_up().await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.9").await;
    c.expect("EHLO gateway.test", "250").await;
    for from in ["ann@example.test", "someone@outside.test"] {
        let reply =
            c.mail(from, &["ann@example.test"], &format!("From: <{from}>\r\n\r\nhi\r\n")).await;
        assert!(reply.starts_with("250"), "{reply}");
    }
    let accepted = server.accepted();
    assert_eq!(signed_for(&accepted[0]).as_deref(), Some("example.test"));
    assert_eq!(signed_for(&accepted[1]), None, "only the domain that asked for it");
}
