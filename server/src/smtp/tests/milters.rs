//! Milters in the SMTP session, against fake milters in this process: a refusal refuses the
//! command it answers, the end-of-message changes reach the queue, and a milter that is down or
//! hangs gets its default action without losing what was accepted.

use postern_store::model::{MilterAddress, MilterDefault, MilterTimeouts, NewMilter};

use super::*;
use crate::milter::tests::{Act, actions, answering, cmd, fake, on, optneg, p, rsp};

impl Server {
    /// Adds a milter and waits until the engine's snapshot has it.
    pub async fn add_milter(&self, name: &str, address: &MilterAddress, default: MilterDefault) {
        self.add_milter_with(name, address, default, MilterTimeouts::default()).await;
    }

    pub async fn add_milter_with(
        &self,
        name: &str,
        address: &MilterAddress,
        default: MilterDefault,
        timeouts: MilterTimeouts,
    ) {
        let new = NewMilter {
            name: name.into(),
            address: address.clone(),
            default_action: default,
            timeouts,
            listeners: Default::default(),
            enabled: true,
        };
        self.store.add_milter("test", new, None).await.unwrap();
        self.caught_up().await;
    }
}

/// A message for `Client::mail`, which sends the final dot.
const BODY: &str = "From: <x@outside.test>\r\nSubject: s\r\n\r\nhi\r\n";

/// Tiny timeouts: a hanging milter costs the test a fraction of a second.
fn impatient() -> MilterTimeouts {
    MilterTimeouts { connect_ms: 300, command_ms: 150, eom_ms: 150 }
}

#[tokio::test]
async fn a_milter_refusing_a_rcpt_refuses_that_one_and_its_header_is_queued() {
    let server = Server::new().await;
    let script: crate::milter::tests::Script =
        std::sync::Arc::new(|packet: &crate::milter::tests::Packet| match packet.code {
            cmd::RCPT if packet.data.starts_with(b"<bob@") => {
                Act::Reply(vec![p(rsp::REPLYCODE, b"550 5.7.1 bob is on holiday\0")])
            }
            cmd::MACRO | cmd::ABORT | cmd::QUIT => Act::Reply(vec![]),
            cmd::BODYEOB => {
                Act::Reply(vec![p(rsp::ADDHEADER, b"X-Filtered\0by fake\0"), p(rsp::CONTINUE, b"")])
            }
            _ => Act::Reply(vec![p(rsp::CONTINUE, b"")]),
        });
    let milter = fake(optneg(actions::ALL, 0), script).await;
    server.add_milter("fake", &milter.address, MilterDefault::Tempfail).await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.9").await;
    c.expect("EHLO outside.test", "250").await;
    c.expect("MAIL FROM:<x@outside.test> SIZE=30", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "250").await;
    let refused = c.cmd("RCPT TO:<bob@example.test>").await;
    assert_eq!(refused, "550 5.7.1 bob is on holiday");
    c.expect("DATA", "354").await;
    c.send(BODY.as_bytes()).await;
    assert!(c.cmd(".").await.starts_with("250 2.0.0 Ok: queued"));
    let queued = server.accepted();
    let m = &queued[0];
    assert_eq!(
        m.recipients.iter().map(|r| r.address.as_str()).collect::<Vec<_>>(),
        ["ann@example.test"]
    );
    let body = String::from_utf8_lossy(&m.body);
    assert!(body.contains("\r\nSubject: s\r\nX-Filtered: by fake\r\n\r\nhi\r\n"), "{body}");
    assert!(body.starts_with("Received: "), "our headers go on top of the milter's: {body}");
    assert_eq!(m.note.as_deref(), Some("milter fake: added X-Filtered"));
    let mail = milter.seen().into_iter().find(|p| p.code == cmd::MAIL).unwrap();
    assert_eq!(mail.data, b"<x@outside.test>\0SIZE=30\0");
}

#[tokio::test]
async fn envelope_changes_quarantine_and_discard_reach_the_queue() {
    let server = Server::new().await;
    let eom = vec![
        p(rsp::ADDRCPT, b"<copy@elsewhere.test>\0"),
        p(rsp::DELRCPT, b"<ann@example.test>\0"),
        p(rsp::CHGFROM, b"<new@outside.test>\0"),
        p(rsp::QUARANTINE, b"suspicious\0"),
        p(rsp::CONTINUE, b""),
    ];
    let milter = fake(optneg(actions::ALL, 0), answering(eom)).await;
    server.add_milter("fake", &milter.address, MilterDefault::Tempfail).await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.9").await;
    c.expect("EHLO outside.test", "250").await;
    let reply = c.mail("x@outside.test", &["ann@example.test", "bob@example.test"], BODY).await;
    assert!(reply.starts_with("250"), "{reply}");
    let m = &server.accepted()[0];
    assert_eq!(m.sender, "new@outside.test");
    let to: Vec<_> = m.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(to, ["bob@example.test", "copy@elsewhere.test"]);
    assert!(m.held, "quarantine holds the message");
    assert!(m.note.as_deref().unwrap().contains("milter fake: quarantine suspicious"));

    // Discard: 250 for the client, nothing queued.
    let server = Server::new().await;
    let milter = fake(optneg(actions::ALL, 0), answering(vec![p(rsp::DISCARD, b"")])).await;
    server.add_milter("fake", &milter.address, MilterDefault::Tempfail).await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.9").await;
    c.expect("EHLO outside.test", "250").await;
    let reply = c.mail("x@outside.test", &["ann@example.test"], BODY).await;
    assert!(reply.starts_with("250"), "{reply}");
    assert!(server.accepted().is_empty());
}

#[tokio::test]
async fn bdat_goes_to_the_milters_too() {
    let server = Server::new().await;
    let virus = p(rsp::REPLYCODE, b"554 5.7.1 Virus found\0");
    let milter = fake(optneg(actions::ALL, 0), answering(vec![virus])).await;
    server.add_milter("av", &milter.address, MilterDefault::Tempfail).await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.9").await;
    c.expect("EHLO outside.test", "250").await;
    c.expect("MAIL FROM:<x@outside.test>", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "250").await;
    c.send(b"BDAT 12\r\nSubject: a\r\n").await;
    assert!(c.reply().await.starts_with("250"));
    c.send(b"BDAT 5 LAST\r\n\r\nb\r\n").await;
    assert_eq!(c.reply().await, "554 5.7.1 Virus found");
    assert!(server.accepted().is_empty());
    assert_eq!(milter.codes().matches('T').count(), 1, "{}", milter.codes());
}

#[tokio::test]
async fn a_milter_that_is_down_or_hangs_gets_its_default() {
    // Down, tempfail: MAIL is refused for now, nothing is lost.
    let server = Server::new().await;
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead =
        MilterAddress::Inet { host: "127.0.0.1".into(), port: gone.local_addr().unwrap().port() };
    drop(gone);
    server.add_milter_with("dead", &dead, MilterDefault::Tempfail, impatient()).await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.9").await;
    c.expect("EHLO outside.test", "250").await;
    c.expect("MAIL FROM:<x@outside.test>", "451 4.7.1").await;

    // Hangs at the end of the message: tempfail answers 451 after DATA, accept queues it as is.
    for (default, expect) in
        [(MilterDefault::Tempfail, "451 4.7.1"), (MilterDefault::Accept, "250")]
    {
        let server = Server::new().await;
        let milter = fake(optneg(actions::ALL, 0), on(cmd::BODYEOB, Act::Hang)).await;
        server.add_milter_with("slow", &milter.address, default, impatient()).await;
        let mut c = server.connect(ListenerKind::Smtp, "192.0.2.9").await;
        c.expect("EHLO outside.test", "250").await;
        let reply = c.mail("x@outside.test", &["ann@example.test"], BODY).await;
        assert!(reply.starts_with(expect), "{default}: {reply}");
        assert_eq!(server.accepted().len(), usize::from(default == MilterDefault::Accept));
        // For the rest of the session the milter is not asked again (as in Postfix): its
        // default answers at once instead of after another timeout.
        if default == MilterDefault::Accept {
            let reply = c.mail("x@outside.test", &["ann@example.test"], BODY).await;
            assert!(reply.starts_with("250"), "{reply}");
        } else {
            c.expect("MAIL FROM:<x@outside.test>", "451 4.7.1").await;
        }
    }
}

#[tokio::test]
async fn milters_follow_the_listener_and_live_changes() {
    let server = Server::new().await;
    let milter =
        fake(optneg(actions::ALL, 0), on(cmd::CONNECT, Act::Reply(vec![p(rsp::REJECT, b"")])))
            .await;
    let new = NewMilter {
        name: "subs".into(),
        address: milter.address.clone(),
        default_action: MilterDefault::Tempfail,
        timeouts: MilterTimeouts::default(),
        listeners: "submission".parse().unwrap(),
        enabled: true,
    };
    let added = server.store.add_milter("test", new, None).await.unwrap();
    server.caught_up().await;
    // Not for port 25.
    server.connect(ListenerKind::Smtp, "192.0.2.9").await;
    let mut c = server.connect_silent(ListenerKind::Submission, "192.0.2.9");
    assert_eq!(c.reply().await, "554 5.7.1 Service unavailable");
    // Turned off in the store: the next session does without it.
    server.store.set_milter_enabled("test", added.id, false).await.unwrap();
    server.caught_up().await;
    server.connect(ListenerKind::Submission, "192.0.2.9").await;
}
