//! DSNs built from generated originals and notices (issue 15, fuzzing), read back with an
//! independent MIME parser (mail-parser): whatever the original holds (its own MIME structure,
//! boundaries that look like ours, 8-bit text, no header section at all) and whatever the next
//! hop replied (folded, with control characters, very long), the report stays one
//! `multipart/report` with a `message/delivery-status` part of one block per recipient.
//! `PROPTEST_CASES=N` raises the number of cases (`.ci/fuzz-long`).

use mail_parser::{MessageParser, MimeHeaders};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

use super::*;

fn config(default: u32) -> Config {
    let cases =
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// An original message: often MIME with boundaries of its own (some that mimic a report's),
/// sometimes 8-bit, sometimes junk.
fn original_body() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        "[ -~]{0,70}".prop_map(String::into_bytes),
        Just(b"Content-Type: multipart/mixed; boundary=\"x\"".to_vec()),
        Just(
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"".to_vec()
        ),
        Just(b"Content-Type: message/delivery-status".to_vec()),
        Just(b"--x".to_vec()),
        Just(b"--x--".to_vec()),
        Just(b"--b".to_vec()),
        Just(b"Action: delivered".to_vec()),
        Just(b"Final-Recipient: rfc822; evil@x.test".to_vec()),
        Just(b"Content-Transfer-Encoding: base64".to_vec()),
        Just(Vec::new()),
        "\\PC{0,30}".prop_map(String::into_bytes),
        prop::collection::vec(
            any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
            0..40
        ),
    ];
    prop::collection::vec(line, 0..20).prop_map(|lines| {
        let mut body = lines.join(&b"\r\n"[..]);
        body.extend_from_slice(b"\r\n");
        body
    })
}

/// What a next hop may reply: multi-line, with control characters, long.
fn reply_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[245][0-9]{2} [245]\\.[0-9]\\.[0-9] [ -~]{0,60}",
        "[ -~]{0,60}(\r\n[ -~]{0,60}){0,3}",
        any::<String>(),
        "x{900,1200}",
        // Long and not ASCII: a field is limited in octets, not characters.
        "\u{e9}{400,1200}",
    ]
}

fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.]{1,12}@[a-z]{1,8}\\.test",
        "[ -~&&[^@]]{1,20}@[a-z]{1,8}\\.test",
        "\\pL{1,8}@[a-z]{1,8}\\.test",
    ]
}

fn notice() -> impl Strategy<Value = Notice> {
    (
        prop::sample::select(vec![
            Action::Failed,
            Action::Delayed,
            Action::Delivered,
            Action::Relayed,
        ]),
        address(),
        prop::option::of(prop_oneof![
            address().prop_map(|a| format!("rfc822;{a}")),
            any::<String>()
        ]),
        reply_text(),
        prop::option::of(prop_oneof![Just("127.0.0.1".to_string()), "[a-z]{1,8}\\.test"]),
        any::<i64>(),
    )
        .prop_map(|(action, address, orcpt, reply, remote, at)| Notice {
            action,
            index: 0,
            address,
            orcpt,
            // Ask for every kind of notice, so that each one generated is owed.
            notify: Notify::SUCCESS | Notify::FAILURE | Notify::DELAY,
            reply,
            remote,
            at,
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn reports_stay_well_formed(
        body in prop::option::of(original_body()),
        notices in prop::collection::vec(notice(), 1..5),
        envid in prop::option::of(any::<String>()),
        ret in prop::option::of(prop::sample::select(vec![DsnRet::Full, DsnRet::Headers])),
        received_at in any::<i64>(),
    ) {
        let original = Original {
            id: "0J5K2ZQ8T1M4XW3R".parse().unwrap(),
            sender: "ann@example.test".into(),
            envid,
            ret,
            received_at,
        };
        let notices: Vec<Notice> =
            notices.into_iter().enumerate().map(|(i, n)| Notice { index: i as u32, ..n }).collect();
        let dsn = build("mail.example.test", &original, &notices, body.as_deref())
            .expect("every notice is owed");
        prop_assert_eq!(dsn.sender.as_str(), "");
        let m = MessageParser::default().parse(&dsn.body).expect("the DSN parses");
        let ct = m.content_type().expect("a content type");
        prop_assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        // The root, the text, the status, and the returned original when there is one.
        let status_part = m.parts.get(2).expect("a status part");
        let ct = status_part.content_type().expect("the status part's content type");
        prop_assert_eq!((ct.ctype(), ct.subtype()), ("message", Some("delivery-status")));
        let status = String::from_utf8_lossy(status_part.contents()).into_owned();
        let blocks: Vec<&str> = status.trim_end().split("\r\n\r\n").collect();
        prop_assert_eq!(blocks.len(), notices.len() + 1, "{}", status);
        for (block, notice) in blocks[1..].iter().zip(&notices) {
            let actions: Vec<&str> = block.lines().filter(|l| l.starts_with("Action: ")).collect();
            prop_assert_eq!(actions, vec![format!("Action: {}", notice.action.as_str())]);
            prop_assert_eq!(block.lines().filter(|l| l.starts_with("Status: ")).count(), 1);
            for line in block.split("\r\n") {
                prop_assert!(!line.contains(['\r', '\n']), "a bare line ending in {:?}", block);
                prop_assert!(line.len() <= 998, "a line of {} octets", line.len());
            }
        }
        for line in blocks[0].split("\r\n") {
            prop_assert!(!line.contains(['\r', '\n']), "a bare line ending in {:?}", blocks[0]);
        }
    }
}
