//! The LMTP client against a real Dovecot, run as its own instance from a config in a temp
//! dir: per-recipient outcomes for a known and an unknown user, over TCP and a Unix socket.
//!
//! Needs the Debian packages `dovecot-core dovecot-lmtpd`.

mod support;

use std::path::Path;

use postern_server::delivery::{DirectConnector, Outcome, Target, deliver};
use postern_store::model::Host;
use support::lmtp_options as options;
use support::peers::{Dovecot, dovecot};
use support::{TRICKY_BODY, delivery};

fn new_mail(maildir: &Path) -> Vec<String> {
    std::fs::read_dir(maildir.join("new"))
        .map(|e| e.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect())
        .unwrap_or_default()
}

async fn check(target: Target, dovecot: &Dovecot, expected_mail: usize) {
    let rcpts = vec!["bob@example.com".to_string(), "nobody-here@example.com".to_string()];
    let out =
        deliver(&DirectConnector::default(), &target, &options(), &delivery(&rcpts, TRICKY_BODY))
            .await;
    assert!(out[0].is_delivered(), "{out:?}");
    match &out[1] {
        Outcome::Failed { reply } => assert!(reply.to_string().starts_with("550 5.1.1"), "{reply}"),
        other => panic!("the unknown user should fail: {other:?}"),
    }
    let mail = new_mail(&dovecot.maildir("bob@example.com"));
    assert_eq!(mail.len(), expected_mail);
    let body = String::from_utf8(TRICKY_BODY.to_vec()).unwrap();
    // Dovecot may store LF line ends; the content, un-stuffed, must be there.
    assert!(
        mail.iter().all(|m| m.replace("\r\n", "\n").contains(&body.replace("\r\n", "\n"))),
        "{mail:?}"
    );
}

#[tokio::test]
async fn a_known_user_gets_the_mail_and_an_unknown_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let Some(dovecot) = dovecot("lmtp_dovecot::tcp_and_unix", dir.path(), &["bob@example.com"])
    else {
        return;
    };
    let tcp = Target::Tcp { host: Host::Ip("127.0.0.1".parse().unwrap()), port: dovecot.port };
    check(tcp, &dovecot, 1).await;
    check(Target::Unix(dovecot.socket.clone()), &dovecot, 2).await;
}
