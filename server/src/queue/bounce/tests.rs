//! DSNs read back with an independent parser (mail-parser): structure, fields, what is
//! returned of the original, and who gets none; failures, delay warnings and success notices.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::*;

const HOST: &str = "mail.example.test";
const ORIGINAL: &[u8] =
    b"From: ann@example.test\r\nTo: bob@remote.test\r\nSubject: lunch?\r\n\r\nAt noon.\r\n";

fn original(sender: &str, ret: Option<DsnRet>) -> Original {
    Original {
        id: "0J5K2ZQ8T1M4XW3R".parse().unwrap(),
        sender: sender.into(),
        envid: Some("env-42".into()),
        ret,
        received_at: 1_700_000_000,
    }
}

fn failure(index: u32, address: &str, notify: Notify, remote: Option<&str>) -> Notice {
    Notice {
        action: Action::Failed,
        index,
        address: address.into(),
        orcpt: Some(format!("rfc822;{address}")),
        notify,
        reply: "550 5.1.1 <nobody@remote.test>: Recipient address rejected".into(),
        remote: remote.map(str::to_string),
        at: 1_700_000_060,
    }
}

fn parse(m: &NewMessage) -> Message<'_> {
    MessageParser::default().parse(&m.body).expect("the DSN parses")
}

/// The `message/delivery-status` part's text.
fn status_part<'a>(m: &'a Message<'a>) -> String {
    let part = &m.parts[2];
    let ct = part.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("message", Some("delivery-status")));
    String::from_utf8(part.contents().to_vec()).unwrap()
}

#[test]
fn a_report_with_a_status_block_per_recipient_and_the_whole_original() {
    let failures = [
        failure(0, "bob@remote.test", Notify::default(), Some("127.0.0.1")),
        failure(2, "cat@example.test", Notify::FAILURE | Notify::DELAY, None),
    ];
    let dsn = build(HOST, &original("ann@example.test", None), &failures, Some(ORIGINAL)).unwrap();
    assert_eq!(dsn.sender, "", "a DSN goes out with the null sender");
    assert_eq!(dsn.recipients.len(), 1);
    assert_eq!(dsn.recipients[0].address, "ann@example.test");
    let m = parse(&dsn);
    let ct = m.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let from = m.from().and_then(|a| a.first()).and_then(|a| a.address()).unwrap();
    assert_eq!(from, "MAILER-DAEMON@mail.example.test");
    assert_eq!(m.header_raw("Auto-Submitted").map(str::trim), Some("auto-replied"));

    // The root and its three parts.
    assert_eq!(m.parts.len(), 4, "{}", String::from_utf8_lossy(&dsn.body));
    let text = m.body_text(0).unwrap();
    assert!(text.contains("<bob@remote.test>: 127.0.0.1 said: 550 5.1.1"), "{text}");
    assert!(text.contains("<cat@example.test>: 550 5.1.1"), "{text}");

    let status = status_part(&m);
    let blocks: Vec<&str> = status.split("\r\n\r\n").collect();
    assert_eq!(blocks.len(), 3, "{status}");
    assert!(blocks[0].contains("Reporting-MTA: dns; mail.example.test"), "{status}");
    assert!(blocks[0].contains("Original-Envelope-Id: env-42"), "{status}");
    assert!(blocks[0].contains("Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000"), "{status}");
    for needed in [
        "Original-Recipient: rfc822;bob@remote.test",
        "Final-Recipient: rfc822; bob@remote.test",
        "Action: failed",
        "Status: 5.1.1",
        "Remote-MTA: dns; 127.0.0.1",
        "Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.test>: Recipient address rejected",
    ] {
        assert!(blocks[1].contains(needed), "{needed} missing from {status}");
    }
    assert!(blocks[2].contains("Final-Recipient: rfc822; cat@example.test"), "{status}");
    assert!(!blocks[2].contains("Remote-MTA"), "a local failure has no remote: {status}");

    let returned = &m.parts[3];
    let ct = returned.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("message", Some("rfc822")));
    let PartType::Message(inner) = &returned.body else { panic!("not a message: {returned:?}") };
    assert_eq!(inner.subject(), Some("lunch?"));
    assert_eq!(inner.body_text(0).as_deref(), Some("At noon.\r\n"));
}

#[test]
fn ret_hdrs_returns_only_the_headers() {
    let failures = [failure(0, "bob@remote.test", Notify::default(), Some("127.0.0.1"))];
    let dsn = build(
        HOST,
        &original("ann@example.test", Some(DsnRet::Headers)),
        &failures,
        Some(ORIGINAL),
    )
    .unwrap();
    let m = parse(&dsn);
    let returned = &m.parts[3];
    let ct = returned.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("rfc822-headers")));
    let headers = String::from_utf8_lossy(returned.contents());
    assert!(headers.contains("Subject: lunch?"), "{headers}");
    assert!(!String::from_utf8_lossy(&dsn.body).contains("At noon."), "the body came back");
}

#[test]
fn a_large_original_comes_back_as_headers_and_says_so() {
    let mut big = b"Subject: huge\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', MAX_RETURNED_BODY + 1));
    let failures = [failure(0, "bob@remote.test", Notify::default(), None)];
    let dsn = build(HOST, &original("ann@example.test", Some(DsnRet::Full)), &failures, Some(&big))
        .unwrap();
    assert!(dsn.body.len() < 64 * 1024, "{} bytes", dsn.body.len());
    let m = parse(&dsn);
    let ct = m.parts[3].content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("rfc822-headers")));
    assert!(m.body_text(0).unwrap().contains("only its headers are returned"));
}

#[test]
fn a_missing_original_is_reported_without_a_third_part() {
    let failures = [failure(0, "bob@remote.test", Notify::default(), None)];
    let dsn = build(HOST, &original("ann@example.test", None), &failures, None).unwrap();
    let m = parse(&dsn);
    assert_eq!(m.parts.len(), 3);
    assert!(m.body_text(0).unwrap().contains("no longer available"));
}

#[test]
fn no_bounce_for_a_bounce() {
    let failures = [failure(0, "bob@remote.test", Notify::default(), None)];
    assert!(build(HOST, &original("", None), &failures, Some(ORIGINAL)).is_none());
}

#[test]
fn notify_decides_who_is_reported() {
    let sender = original("ann@example.test", None);
    for none in [Notify::NEVER, Notify::SUCCESS, Notify::DELAY, Notify::SUCCESS | Notify::DELAY] {
        let failures = [failure(0, "bob@remote.test", none, None)];
        assert!(build(HOST, &sender, &failures, Some(ORIGINAL)).is_none(), "NOTIFY={none}");
    }
    // Only the recipient that asked for failures is in the report.
    let failures = [
        failure(0, "never@remote.test", Notify::NEVER, None),
        failure(1, "bob@remote.test", Notify::SUCCESS | Notify::FAILURE, None),
    ];
    let dsn = build(HOST, &sender, &failures, Some(ORIGINAL)).unwrap();
    let m = parse(&dsn);
    let status = status_part(&m);
    assert!(status.contains("Final-Recipient: rfc822; bob@remote.test"), "{status}");
    assert!(!status.contains("never@remote.test"), "{status}");
}

#[test]
fn the_status_comes_from_the_reply() {
    assert_eq!(status("550 5.7.1 go away"), "5.7.1");
    assert_eq!(status("5.0.0 bounced by the administrator"), "5.0.0");
    assert_eq!(status("451 4.4.1 connection refused (gave up: in the queue too long)"), "4.4.1");
    assert_eq!(status("550 no code here"), "5.0.0");
    assert_eq!(status("550 5.1"), "5.0.0");
}

fn with(action: Action, reply: &str, n: Notice) -> Notice {
    Notice { action, reply: reply.into(), ..n }
}

#[test]
fn who_is_owed_what() {
    let cases = [
        // No NOTIFY: RFC 3461 section 4.1's default, FAILURE,DELAY.
        (Notify::default(), [true, true, false, false]),
        (Notify::NEVER, [false, false, false, false]),
        (Notify::SUCCESS, [false, false, true, true]),
        (Notify::FAILURE, [true, false, false, false]),
        (Notify::DELAY | Notify::SUCCESS, [false, true, true, true]),
    ];
    let actions = [Action::Failed, Action::Delayed, Action::Delivered, Action::Relayed];
    for (notify, expected) in cases {
        let got = actions.map(|a| owed("ann@example.test", notify, a));
        assert_eq!(got, expected, "NOTIFY={notify}");
        assert_eq!(
            actions.map(|a| owed("", notify, a)),
            [false; 4],
            "null sender, NOTIFY={notify}"
        );
    }
}

#[test]
fn a_delay_warning_says_delayed_and_returns_only_the_headers() {
    let deferred = "451 4.4.1 connection refused by 127.0.0.1:25";
    let n = with(
        Action::Delayed,
        deferred,
        failure(0, "bob@remote.test", Notify::default(), Some("127.0.0.1")),
    );
    // RET=FULL concerns failures: a warning still returns only the headers.
    let dsn = build(HOST, &original("ann@example.test", Some(DsnRet::Full)), &[n], Some(ORIGINAL))
        .unwrap();
    assert_eq!(dsn.sender, "");
    let m = parse(&dsn);
    assert_eq!(m.subject(), Some("Delayed Mail (still being retried)"));
    let ct = m.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert!(m.body_text(0).unwrap().contains("need not send it again"));
    let status = status_part(&m);
    for needed in [
        "Action: delayed",
        "Status: 4.4.1",
        "Original-Envelope-Id: env-42",
        "Final-Recipient: rfc822; bob@remote.test",
        "Remote-MTA: dns; 127.0.0.1",
        "Diagnostic-Code: smtp; 451 4.4.1 connection refused by 127.0.0.1:25",
    ] {
        assert!(status.contains(needed), "{needed} missing from {status}");
    }
    let ct = m.parts[3].content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("rfc822-headers")));
    assert!(!String::from_utf8_lossy(&dsn.body).contains("At noon."), "the body came back");

    let never =
        with(Action::Delayed, deferred, failure(0, "bob@remote.test", Notify::FAILURE, None));
    assert!(build(HOST, &original("ann@example.test", None), &[never], Some(ORIGINAL)).is_none());
}

#[test]
fn success_notices_say_delivered_or_relayed() {
    let delivered = with(
        Action::Delivered,
        "delivered to maildir /var/mail/example.test/cat/new/1.M1",
        failure(1, "cat@example.test", Notify::SUCCESS, None),
    );
    let relayed = with(
        Action::Relayed,
        "127.0.0.1:25 said: 250 2.0.0 Ok: queued as 4F2",
        failure(2, "dan@remote.test", Notify::SUCCESS | Notify::FAILURE, Some("127.0.0.1")),
    );
    let unasked = with(
        Action::Delivered,
        "delivered to maildir /x",
        failure(3, "eve@example.test", Notify::default(), None),
    );
    let dsn = build(
        HOST,
        &original("ann@example.test", None),
        &[delivered, relayed, unasked],
        Some(ORIGINAL),
    )
    .unwrap();
    let m = parse(&dsn);
    assert_eq!(m.subject(), Some("Successful Mail Delivery Report"));
    let status = status_part(&m);
    let blocks: Vec<&str> = status.split("\r\n\r\n").collect();
    assert_eq!(blocks.len(), 3, "eve did not ask: {status}");
    assert!(blocks[1].contains("Final-Recipient: rfc822; cat@example.test"), "{status}");
    assert!(blocks[1].contains("Action: delivered") && blocks[1].contains("Status: 2.0.0"));
    assert!(!blocks[1].contains("Remote-MTA"), "{status}");
    assert!(blocks[2].contains("Final-Recipient: rfc822; dan@remote.test"), "{status}");
    assert!(blocks[2].contains("Action: relayed") && blocks[2].contains("Status: 2.0.0"));
    assert!(blocks[2].contains("Remote-MTA: dns; 127.0.0.1"), "{status}");
    let text = m.body_text(0).unwrap();
    assert!(text.contains("delivered to the mailbox") && text.contains("<cat@example.test>"));
    assert!(text.contains("<dan@remote.test>: via 127.0.0.1"), "{text}");
    let ct = m.parts[3].content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("rfc822-headers")));
}

#[test]
fn a_mixed_report_is_a_bounce_and_returns_the_message() {
    let failed = failure(0, "bob@remote.test", Notify::default(), Some("127.0.0.1"));
    let relayed =
        with(Action::Relayed, "250 ok", failure(1, "dan@remote.test", Notify::SUCCESS, None));
    let dsn = build(HOST, &original("ann@example.test", None), &[failed, relayed], Some(ORIGINAL))
        .unwrap();
    let m = parse(&dsn);
    assert_eq!(m.subject(), Some("Undelivered Mail Returned to Sender"));
    let status = status_part(&m);
    assert!(status.contains("Action: failed") && status.contains("Action: relayed"), "{status}");
    let ct = m.parts[3].content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("message", Some("rfc822")));
}

/// A sender or recipient whose local part is not a dot-atom is written as a quoted string
/// wherever the DSN names it (RFC 5322 §3.4.1, RFC 5321 §4.1.2, RFC 3464 §2.3.2), and the
/// DSN's own ORCPT keeps the quotes (RFC 3461 §4.2).
#[test]
fn quoted_local_parts_stay_quoted() {
    let sender = "a b|c;d@ext.test";
    let mut notice = failure(0, "x\"y z@remote.test", Notify::default(), None);
    notice.orcpt = Some("rfc822;\"x\\\"y z\"@remote.test".into());
    let dsn = build(HOST, &original(sender, None), &[notice], Some(ORIGINAL)).unwrap();
    assert_eq!(dsn.recipients[0].address, sender, "the envelope keeps its own form");
    assert_eq!(dsn.recipients[0].orcpt.as_deref(), Some("rfc822;\"a b|c;d\"@ext.test"));
    let text = String::from_utf8_lossy(&dsn.body).to_string();
    assert!(text.contains("\r\nTo: <\"a b|c;d\"@ext.test>\r\n"), "{text}");
    let m = parse(&dsn);
    let to = m.to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap();
    assert_eq!(to, "\"a b|c;d\"@ext.test", "an independent parser reads one address");
    assert!(m.body_text(0).unwrap().contains("<\"x\\\"y z\"@remote.test>: 550 5.1.1"), "{text}");
    let status = status_part(&m);
    assert!(status.contains("Final-Recipient: rfc822; \"x\\\"y z\"@remote.test\r\n"), "{status}");
    assert!(status.contains("Original-Recipient: rfc822;\"x\\\"y z\"@remote.test\r\n"), "{status}");
}

/// SMTP refuses control characters in ENVID and ORCPT; a message queued before that still
/// gets a DSN without them.
#[test]
fn control_characters_never_reach_the_report() {
    let mut o = original("ann@example.test", None);
    o.envid = Some("a\0b\x1b[2Jc\x7fd".into());
    let mut notice = failure(0, "bob@remote.test", Notify::default(), None);
    notice.orcpt = Some("rfc822;bob\x1b@remote.test".into());
    let dsn = build(HOST, &o, &[notice], None).unwrap();
    let status = status_part(&parse(&dsn));
    assert!(status.contains("Original-Envelope-Id: a b [2Jc d\r\n"), "{status}");
    assert!(status.contains("Original-Recipient: rfc822;bob @remote.test\r\n"), "{status}");
    assert!(!dsn.body.iter().any(|&b| b < 0x20 && b != b'\r' && b != b'\n' || b == 0x7f));
}

/// A long reply in UTF-8 is cut to fit a line in octets (RFC 5322 section 2.1.1: 998), not in
/// characters; found by `properties::reports_stay_well_formed`.
#[test]
fn a_long_utf8_reply_still_fits_a_line() {
    let mut notice = failure(0, "bob@remote.test", Notify::default(), Some("127.0.0.1"));
    notice.reply = format!("550 5.1.1 {}", "\u{e9}".repeat(1200));
    let dsn = build(HOST, &original("ann@example.test", None), &[notice], None).unwrap();
    let m = parse(&dsn);
    let status = status_part(&m);
    let diagnostic = status.lines().find(|l| l.starts_with("Diagnostic-Code:")).unwrap();
    assert!(diagnostic.len() <= 998, "a line of {} octets", diagnostic.len());
    assert!(diagnostic.ends_with("..."), "{diagnostic}");
}
