//! Real peers as child processes for tests: Dovecot's LMTP server and Postfix's smtp-sink. Each
//! is skipped (or, under `POSTERN_TEST_REQUIRE_PEERS=1`, fails the test) when not installed.
//!
//! Needs the Debian packages `dovecot-core dovecot-lmtpd` and `postfix`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use postern_store::testing::missing_peer;

use super::{Peer, free_port, have, wait_for_port};

pub struct Dovecot {
    _peer: Peer,
    pub port: u16,
    pub socket: PathBuf,
    mail: PathBuf,
}

impl Dovecot {
    /// The Maildir Dovecot delivers `user`'s mail to.
    pub fn maildir(&self, user: &str) -> PathBuf {
        let (local, domain) = user.split_once('@').expect("a full address");
        self.mail.join(domain).join(local).join("Maildir")
    }
}

/// A Dovecot instance serving LMTP for `accounts` (full addresses) over TCP and a Unix socket, with
/// each user's mail in `<dir>/mail/<domain>/<local>/Maildir`.
pub fn dovecot(test: &str, dir: &Path, accounts: &[&str]) -> Option<Dovecot> {
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
    let lines: String = accounts
        .iter()
        .map(|u| {
            let (local, domain) = u.split_once('@').expect("a full address");
            format!("{u}::{uid}:{gid}::{d}/mail/{domain}/{local}::\n")
        })
        .collect();
    std::fs::write(dir.join("users"), lines).unwrap();
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
    Some(Dovecot { _peer: peer, port, socket: dir.join("run/lmtp"), mail })
}

/// smtp-sink on a free port with extra `args`, or `None` when it is not installed.
pub fn sink(test: &str, dir: &Path, args: &[&str]) -> Option<(Peer, u16)> {
    let port = free_port();
    sink_on(test, dir, port, args).map(|peer| (peer, port))
}

/// smtp-sink on `port` with extra `args`, or `None` when it is not installed.
pub fn sink_on(test: &str, dir: &Path, port: u16, args: &[&str]) -> Option<Peer> {
    if !have("smtp-sink") {
        missing_peer(test, "smtp-sink is not installed (Debian package postfix)");
        return None;
    }
    let mut cmd = Command::new("smtp-sink");
    // smtp-sink refuses to run as root without a user to become.
    if is_root() {
        cmd.args(["-u", "postfix"]);
        std::os::unix::fs::chown(dir, Some(postfix_uid()), None).unwrap();
    }
    cmd.args(args).arg(format!("127.0.0.1:{port}")).arg("10");
    let mut peer = Peer(cmd.spawn().expect("start smtp-sink"));
    wait_for_port(port, &mut peer, None);
    Some(peer)
}

pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

pub fn postfix_uid() -> u32 {
    let out = Command::new("id").args(["-u", "postfix"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `pebble-challtestsrv` as a real DNS server (UDP and TCP on `dns`), whose TXT records the
/// test sets through its management API. It answers A 127.0.0.1 for every name, times out on
/// TXT records over 255 octets and fails MX lookups: test those through the scripted resolver.
pub struct ChallTestSrv {
    _peer: Peer,
    pub dns: std::net::SocketAddr,
    management: u16,
}

/// `pebble-challtestsrv` on free ports, or `None` when it is not installed (package pebble).
pub fn challtestsrv(test: &str) -> Option<ChallTestSrv> {
    if !have("pebble-challtestsrv") {
        missing_peer(test, "pebble-challtestsrv is not installed (Debian package pebble)");
        return None;
    }
    let (dns, management) = (free_port(), free_port());
    let child = Command::new("pebble-challtestsrv")
        .args(["-dns01", &format!("127.0.0.1:{dns}")])
        .args(["-management", &format!("127.0.0.1:{management}")])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv6", ""])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start pebble-challtestsrv");
    let mut peer = Peer(child);
    // Its DNS server listens on TCP too; the management port comes up with it.
    wait_for_port(management, &mut peer, None);
    wait_for_port(dns, &mut peer, None);
    Some(ChallTestSrv { _peer: peer, dns: ([127, 0, 0, 1], dns).into(), management })
}

impl ChallTestSrv {
    async fn post(&self, path: &str, body: String) {
        let url = format!("http://127.0.0.1:{}{path}", self.management);
        let reply = reqwest::Client::new().post(&url).body(body).send().await.expect(path);
        assert!(reply.status().is_success(), "{path}: {}", reply.status());
    }

    /// Publishes one TXT record at `name` (replacing none: challtestsrv adds to a list).
    pub async fn set_txt(&self, name: &str, value: &str) {
        let body = serde_json::json!({ "host": format!("{name}."), "value": value });
        self.post("/set-txt", body.to_string()).await;
    }

    /// Removes every TXT record at `name`.
    pub async fn clear_txt(&self, name: &str) {
        self.post("/clear-txt", serde_json::json!({ "host": format!("{name}.") }).to_string())
            .await;
    }
}
