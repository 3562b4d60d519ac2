//! The LMTP client against a real Dovecot, run as its own instance from a config in a temp
//! dir: per-recipient outcomes for a known and an unknown user, over TCP and a Unix socket.
//!
//! Needs the Debian packages `dovecot-core dovecot-lmtpd`.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use postern_server::delivery::{
    ClientOptions, DirectConnector, Outcome, Protocol, Target, Timeouts, deliver,
};
use postern_store::model::{Host, TlsPolicy};
use postern_store::testing::missing_peer;
use support::{Peer, TRICKY_BODY, delivery, free_port, have, wait_for_port};

struct Dovecot {
    _peer: Peer,
    port: u16,
    socket: PathBuf,
    mail: PathBuf,
}

fn dovecot(test: &str, dir: &Path) -> Option<Dovecot> {
    if !have("dovecot") || !Path::new("/usr/lib/dovecot/lmtp").exists() {
        missing_peer(test, "dovecot is not installed (Debian packages dovecot-core dovecot-lmtpd)");
        return None;
    }
    let port = free_port();
    let mail = dir.join("mail");
    std::fs::create_dir(&mail).unwrap();
    let root = std::fs::metadata(dir).unwrap().uid() == 0;
    // Dovecot will not deliver as root: mail belongs to `nobody` then, and the temp dir must
    // let it in. Run unprivileged, Dovecot delivers as whoever runs the test.
    let (uid, gid, users) = if root {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&mail, Some(65534), Some(65534)).unwrap();
        (65534, 65534, "default_internal_user = dovecot\ndefault_login_user = dovenull\n".into())
    } else {
        let me = std::env::var("USER").unwrap_or_default();
        let meta = std::fs::metadata(dir).unwrap();
        (
            meta.uid(),
            meta.gid(),
            format!("default_internal_user = {me}\ndefault_login_user = {me}\n"),
        )
    };
    let d = dir.display();
    std::fs::write(
        dir.join("users"),
        format!("bob@example.com::{uid}:{gid}::{d}/mail/example.com/bob::\n"),
    )
    .unwrap();
    let config = dir.join("dovecot.conf");
    std::fs::write(
        &config,
        format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
             protocols = lmtp\nlisten = 127.0.0.1\nssl = no\n{users}\
             mail_location = maildir:~/Maildir\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/users\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {d}/users\n}}\n\
             service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    \
             port = {port}\n  }}\n  unix_listener lmtp {{\n    mode = 0666\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let log = dir.join("dovecot.log");
    let child = Command::new("dovecot").arg("-c").arg(&config).arg("-F").spawn();
    let mut peer = Peer(child.expect("start dovecot"));
    wait_for_port(port, &mut peer, Some(&log));
    Some(Dovecot {
        _peer: peer,
        port,
        socket: dir.join("run/lmtp"),
        mail: mail.join("example.com/bob/Maildir"),
    })
}

fn options() -> ClientOptions {
    let mut options = ClientOptions::new(Protocol::Lmtp, "postern.test");
    options.tls = TlsPolicy::None;
    options.timeouts = Timeouts::all(Duration::from_secs(20));
    options
}

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
        Outcome::Failed { reply } => assert!(reply.starts_with("550 5.1.1"), "{reply}"),
        other => panic!("the unknown user should fail: {other:?}"),
    }
    let mail = new_mail(&dovecot.mail);
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
    let Some(dovecot) = dovecot("lmtp_dovecot::tcp_and_unix", dir.path()) else {
        return;
    };
    let tcp = Target::Tcp { host: Host::Ip("127.0.0.1".parse().unwrap()), port: dovecot.port };
    check(tcp, &dovecot, 1).await;
    check(Target::Unix(dovecot.socket.clone()), &dovecot, 2).await;
}
