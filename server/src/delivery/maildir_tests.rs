use std::os::unix::fs::PermissionsExt;

use super::*;

fn delivery<'a>(recipients: &'a [String], body: &'a [u8]) -> Delivery<'a> {
    Delivery {
        queue_id: "Q1",
        sender: "alice@example.org",
        recipients,
        body,
        stream: None,
        smtputf8: false,
        eight_bit: false,
        envid: None,
        ret_full: None,
        rcpt_dsn: &[],
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir).map(|e| e.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
}

#[test]
fn the_message_lands_in_new_with_its_headers_and_tmp_is_left_empty() {
    let root = tempfile::tempdir().unwrap();
    let maildir = Maildir::new(root.path(), "mx:1/a");
    let rcpts = vec!["Bob@Example.com".to_string()];
    let out = maildir.deliver(&delivery(&rcpts, b"Subject: hi\r\n\r\nbody\r\n"), |_| None, false);
    assert!(out[0].is_delivered(), "{out:?}");

    let mailbox = root.path().join("example.com/bob");
    let new = files(&mailbox.join("new"));
    assert_eq!(new.len(), 1);
    assert!(files(&mailbox.join("tmp")).is_empty());
    assert!(mailbox.join("cur").is_dir());
    let mode = fs::metadata(mailbox.join("new")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);

    let text = fs::read_to_string(&new[0]).unwrap();
    assert_eq!(
        text,
        "Return-Path: <alice@example.org>\r\nDelivered-To: <Bob@Example.com>\r\n\
         Subject: hi\r\n\r\nbody\r\n"
    );
    let name = new[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.contains("mx\\0721\\057a"), "{name}");
    assert_eq!(size_in_name(&name), Some(text.len() as u64));

    // A second message gets a name of its own.
    maildir.deliver(&delivery(&rcpts, b"again\r\n"), |_| None, false);
    assert_eq!(files(&mailbox.join("new")).len(), 2);
}

#[test]
fn addresses_that_would_escape_the_root_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let maildir = Maildir::new(root.path().join("mail"), "mx");
    let rcpts: Vec<String> = [
        "..@example.com",
        ".hidden@example.com",
        "a/../../x@example.com",
        "a@..",
        "a@ex/ample.com",
        "nul\0@example.com",
        "@example.com",
        "no-at-sign",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = maildir.deliver(&delivery(&rcpts, b"x\r\n"), |_| None, false);
    for (rcpt, outcome) in rcpts.iter().zip(&out) {
        assert!(outcome.is_failed(), "{rcpt:?}: {outcome:?}");
        assert!(outcome.text().starts_with("550 5.1.3"), "{outcome:?}");
    }
    assert!(!root.path().join("mail").exists());
    assert!(files(root.path()).is_empty());
}

#[test]
fn quota_defers_a_full_mailbox_and_fails_a_message_bigger_than_the_quota() {
    let root = tempfile::tempdir().unwrap();
    let maildir = Maildir::new(root.path(), "mx");
    let rcpts = vec!["bob@example.com".to_string()];
    let body = vec![b'x'; 400];
    let quota = |_: &str| Some(1000);

    let out = maildir.deliver(&delivery(&rcpts, &body), quota, false);
    assert!(out[0].is_delivered(), "{out:?}");
    let out = maildir.deliver(&delivery(&rcpts, &body), quota, false);
    assert!(out[0].is_delivered(), "{out:?}");
    let out = maildir.deliver(&delivery(&rcpts, &body), quota, false);
    assert_eq!(
        out[0],
        Outcome::deferred(Reply::new(452, [4, 2, 2], "<bob@example.com>: mailbox full"))
    );

    let huge = vec![b'x'; 2000];
    let out = maildir.deliver(&delivery(&rcpts, &huge), quota, false);
    assert!(out[0].is_failed() && out[0].text().starts_with("552 5.2.2"), "{out:?}");

    // The owner makes room (as an IMAP client would): the refusal re-measures, and it fits.
    let mailbox = root.path().join("example.com/bob");
    for file in files(&mailbox.join("new")) {
        fs::remove_file(file).unwrap();
    }
    let out = maildir.deliver(&delivery(&rcpts, &body), quota, false);
    assert!(out[0].is_delivered(), "{out:?}");
    // Another mailbox has a quota of its own.
    let other = vec!["carol@example.com".to_string()];
    assert!(maildir.deliver(&delivery(&other, &body), quota, false)[0].is_delivered());
}

#[test]
fn a_recovered_message_already_in_the_mailbox_is_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = Maildir::new(dir.path(), "mail.example.test");
    let rcpts = vec!["bob@example.com".to_string()];
    let mut d = delivery(&rcpts, b"Subject: once\r\n\r\nx\r\n");
    d.queue_id = "D24BN4Z86ZBZ2B40";
    assert!(maildir.deliver(&d, |_| None, false)[0].is_delivered());
    let again = maildir.deliver(&d, |_| None, true);
    assert!(again[0].text().contains("already in the mailbox"), "{:?}", again);
    let new = dir.path().join("example.com/bob/new");
    assert_eq!(std::fs::read_dir(&new).unwrap().count(), 1);
    // Seen by an IMAP client, the file moves to cur/ and still counts.
    let file = std::fs::read_dir(&new).unwrap().next().unwrap().unwrap().path();
    let cur = dir
        .path()
        .join("example.com/bob/cur")
        .join(format!("{}:2,S", file.file_name().unwrap().to_str().unwrap()));
    std::fs::rename(&file, &cur).unwrap();
    assert!(maildir.deliver(&d, |_| None, true)[0].text().contains("already in the mailbox"));
    // Not recovered: no look, a second copy (a new message with the same ID cannot happen).
    let other = Delivery { queue_id: "D24BN4Z86ZBZ2B41", ..d };
    assert!(maildir.deliver(&other, |_| None, true)[0].text().starts_with("delivered to maildir"));
}
