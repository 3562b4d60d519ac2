//! STARTTLS to a real Postfix: an instance of its own on a loopback port, with a certificate
//! from a test CA, taking mail for a relay domain and discarding it. Our client must upgrade,
//! verify the certificate for the MX name under `verify`, and refuse another name.
//!
//! Needs the Debian package `postfix`, and root (Postfix's master runs as root).

mod support;
#[path = "support/tls_peers.rs"]
mod tls_peers;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use postern_server::delivery::{
    ClientOptions, DirectConnector, Protocol, Target, Timeouts, deliver,
};
use postern_store::model::TlsPolicy;
use postern_store::testing::missing_peer;
use rustls::pki_types::CertificateDer;
use support::{delivery, free_port, have};
use tls_peers::Pki;

const NAME: &str = "mx.postfix.test";

/// Stops the instance however the test ends.
struct Postfix(std::path::PathBuf);

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix").arg("-c").arg(&self.0).arg("stop").output();
    }
}

/// A Postfix instance in `dir` listening on a free loopback port with STARTTLS.
fn postfix(test: &str, dir: &Path, chain: &str, key: &str) -> Option<(Postfix, u16)> {
    if !have("postfix") || !Path::new("/etc/postfix/master.cf.proto").exists() {
        missing_peer(test, "Postfix is not installed (Debian package postfix)");
        return None;
    }
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata(dir).unwrap().uid() != 0 {
        missing_peer(test, "a Postfix instance needs root to start");
        return None;
    }
    let port = free_port();
    let d = dir.display();
    std::fs::create_dir_all(dir.join("queue")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("chain.pem"), chain).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    let chown = Command::new("chown").arg("postfix").arg(dir.join("data")).status().unwrap();
    assert!(chown.success());
    std::fs::write(
        dir.join("main.cf"),
        format!(
            "compatibility_level = 3.6\nqueue_directory = {d}/queue\ndata_directory = {d}/data\n\
             mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = {NAME}\nmydestination =\n\
             inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n\
             relay_domains = example.com\nalias_maps =\nalias_database =\nrelay_transport = discard\ndefault_transport = discard\n\
             smtpd_tls_security_level = may\nsmtpd_tls_chain_files = {d}/key.pem, {d}/chain.pem\n\
             maillog_file = {d}/maillog\nmaillog_file_prefixes = {d}\n"
        ),
    )
    .unwrap();
    let proto = std::fs::read_to_string("/etc/postfix/master.cf.proto").unwrap();
    let mut master: String = proto
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("smtp ") && !l.starts_with("postlog"))
        .map(|l| format!("{l}\n"))
        .collect();
    master.push_str(&format!(
        "127.0.0.1:{port} inet n - n - - smtpd\npostlog unix-dgram n - n - 1 postlogd\n"
    ));
    // chroot off: the instance's files are not inside a chroot.
    let master: String = master
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 5 && !l.starts_with(' ') && f[4] == "y" {
                f[4] = "n";
            }
            if l.starts_with(' ') || l.is_empty() {
                format!("{l}\n")
            } else {
                format!("{}\n", f.join(" "))
            }
        })
        .collect();
    std::fs::write(dir.join("master.cf"), master).unwrap();
    let started = Command::new("postfix").arg("-c").arg(dir).arg("start").output().unwrap();
    let guard = Postfix(dir.to_path_buf());
    assert!(
        started.status.success(),
        "postfix start: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    for _ in 0..150 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((guard, port));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("maillog")).unwrap_or_default();
    panic!("Postfix did not listen on {port}: {log}");
}

async fn send(
    port: u16,
    name: &str,
    roots: Vec<CertificateDer<'static>>,
) -> postern_server::delivery::Outcome {
    let target =
        Target::Resolved { name: name.parse().unwrap(), ip: "127.0.0.1".parse().unwrap(), port };
    let mut options = ClientOptions::new(Protocol::Smtp, "client.example.org");
    options.tls = TlsPolicy::Verify;
    options.extra_roots = roots;
    options.timeouts = Timeouts::all(Duration::from_secs(15));
    let rcpts = vec!["bob@example.com".to_string()];
    let body = b"Subject: over TLS\r\n\r\nhello Postfix\r\n";
    deliver(&DirectConnector::default(), &target, &options, &delivery(&rcpts, body)).await.remove(0)
}

#[tokio::test]
async fn starttls_to_postfix_verifies_its_certificate() {
    let test = "postfix_tls::starttls_to_postfix_verifies_its_certificate";
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (chain, key) = pki.leaf_pem(&[NAME]);
    let ca = pki.ca.clone();
    let Some((_postfix, port)) = postfix(test, dir.path(), &chain, &key) else { return };
    let out = send(port, NAME, vec![ca.clone()]).await;
    assert!(out.is_delivered(), "{out:?}");
    let out = send(port, "other.postfix.test", vec![ca]).await;
    assert!(out.is_deferred() && out.text().starts_with("451 4.7.5 TLS handshake"), "{out:?}");
    // Postfix's own log says the session that carried the message used STARTTLS.
    let mut log = String::new();
    for _ in 0..50 {
        log = std::fs::read_to_string(dir.path().join("maillog")).unwrap_or_default();
        if log.contains("starttls=1 mail=1 rcpt=1 data=1") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Postfix logged no encrypted delivery: {log}");
}
