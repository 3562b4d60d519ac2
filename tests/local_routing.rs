//! Local domains stay local: the real binary with README's smarthost example (`transport set '*'
//! smtp:[…]`) still delivers a mailbox's mail to its Maildir, `<postmaster>` finds a mailbox,
//! and `postern config check` warns about a rule that takes a local domain's mail away.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::smtp::send;
use common::{Setup, applied};
use postern_store::testing::TestDb;

const PASSWORD: &str = "correct horse battery";

/// A loopback port nobody listens on: a smarthost that is down.
fn closed_port() -> u16 {
    postern_store::testing::free_port()
}

/// Waits until the Maildir's `new/` holds `count` messages, and returns them.
fn wait_for_mail(maildir: &Path, count: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let mail: Vec<String> = std::fs::read_dir(maildir.join("new"))
            .map(|d| d.flatten().map(|e| std::fs::read_to_string(e.path()).unwrap()).collect())
            .unwrap_or_default();
        if mail.len() >= count || start.elapsed() > Duration::from_secs(10) {
            return mail;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_default_smarthost_leaves_the_mailboxes_their_mail() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let serve = setup.serve();
    setup.ok(&["domain", "add", "example.test"]);
    let out = setup.run(&["mailbox", "add", "ann@example.test"], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let smarthost = format!("smtp:[127.0.0.1]:{}", closed_port());
    setup.ok(&["transport", "set", "*", &smarthost, "--tls", "none"]);
    serve
        .wait_log(Duration::from_secs(5), |l| {
            applied(l) && l["mailboxes"] == 1 && l["transports"] == 1
        })
        .expect("the mailbox and the smarthost are live");

    let reply =
        send(serve.listeners["smtp"], "someone@remote.test", "ann@example.test", "stays here");
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    // RFC 5321 §4.5.1: <postmaster> without a domain is accepted; with no postmaster address
    // set up, the first mailbox created takes it.
    let reply =
        send(serve.listeners["smtp"], "someone@remote.test", "Postmaster", "for the postmaster");
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let maildir = setup.dir.path().join("data/mail/example.test/ann");
    let mail = wait_for_mail(&maildir, 2);
    assert_eq!(mail.len(), 2, "not delivered to the Maildir: {mail:?}");
    assert!(mail.iter().any(|m| m.contains("Subject: stays here")), "{mail:?}");
    assert!(mail.iter().any(|m| m.contains("Subject: for the postmaster")), "{mail:?}");
    let (line, _) = serve
        .wait_log(Duration::from_secs(5), |l| l["status"] == "sent")
        .expect("a delivery log line");
    assert_eq!(line["relay"], "local");
}

#[test]
fn config_check_warns_about_rules_that_take_a_local_domains_mail() {
    let db = TestDb::sqlite();
    let s = Setup::new(&db.database);
    s.ok(&["domain", "add", "example.test"]);
    s.ok(&["domain", "add", "sub.example.test"]);
    s.run(&["mailbox", "add", "ann@example.test"], &format!("{PASSWORD}\n"));
    s.ok(&["transport", "set", "*", "smtp:[relay.example.net]:587"]);
    let check = || {
        let out = s.run(&["config", "check"], "");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "warnings do not fail the check: {text}");
        text
    };
    let text = check();
    assert!(!text.contains("mail for local domain"), "'*' takes no local domain: {text}");
    assert!(
        text.contains(
            "warning  postmaster: no postmaster@ address of ours leads to a mailbox: mail to \
             <postmaster> goes to ann@example.test, the first mailbox created"
        ),
        "{text}"
    );

    s.ok(&["transport", "set", ".example.test", "smtp:[relay.example.net]:25"]);
    s.ok(&["transport", "set", "example.test", "discard"]);
    s.ok(&["alias", "add", "postmaster@example.test", "ann@example.test"]);
    let text = check();
    for needed in [
        "warning  example.test: mail for local domain example.test goes to discard (transport \
         rule example.test), not to its mailboxes\n         fix: `postern transport set \
         example.test local` to keep it here, or `postern transport remove example.test`",
        "warning  sub.example.test: mail for local domain sub.example.test goes to \
         smtp:[relay.example.net]:25 (transport rule .example.test), not to its mailboxes",
    ] {
        assert!(text.contains(needed), "{needed:?} missing from:\n{text}");
    }
    assert!(!text.contains("postmaster:"), "{text}");
}
