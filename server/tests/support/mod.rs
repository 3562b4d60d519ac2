//! Helpers shared by the delivery peer tests: free ports, peers as child processes that die
//! with the test, and a message to send.
#![allow(dead_code)]

pub mod dkimpy;
pub mod peers;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postern_server::delivery::{
    BoxStream, ClientOptions, Connector, Delivery, Protocol, Target, Timeouts,
};
use postern_store::model::{Host, TlsPolicy};
pub use postern_store::testing::free_port;

pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program} >/dev/null"))
        .status()
        .is_ok_and(|s| s.success())
}

/// A child process killed when the test ends, whichever way it ends.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts connections on the port, or panics with `log`'s contents.
pub fn wait_for_port(port: u16, peer: &mut Peer, log: Option<&Path>) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = peer.0.try_wait() {
            let text = log.and_then(|l| std::fs::read_to_string(l).ok()).unwrap_or_default();
            panic!("the peer exited ({status}) before listening on {port}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = log.and_then(|l| std::fs::read_to_string(l).ok()).unwrap_or_default();
    panic!("nothing listens on port {port} after 15 s:\n{text}");
}

pub fn delivery<'a>(recipients: &'a [String], body: &'a [u8]) -> Delivery<'a> {
    Delivery {
        queue_id: "T1",
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

/// A body that trips careless dot-stuffing: a "." first, and an end-of-data line inside.
pub const TRICKY_BODY: &[u8] =
    b".starts with a dot\r\nSubject: dots\r\n\r\nline\r\n.\r\nafter the dot\r\n..two\r\n";

/// A peer on loopback at `port`.
pub fn loopback(port: u16) -> Target {
    Target::Tcp { host: Host::Ip(std::net::Ipv4Addr::LOCALHOST.into()), port }
}

/// Client options for a plaintext SMTP peer on loopback (smtp-sink), with short timeouts.
pub fn smtp_options() -> ClientOptions {
    plain(Protocol::Smtp, "client.example.org", Duration::from_secs(10))
}

/// Client options for a plaintext LMTP peer on loopback (Dovecot), which answers slower.
pub fn lmtp_options() -> ClientOptions {
    plain(Protocol::Lmtp, "postern.test", Duration::from_secs(20))
}

fn plain(protocol: Protocol, helo: &str, limit: Duration) -> ClientOptions {
    let mut options = ClientOptions::new(protocol, helo);
    options.tls = TlsPolicy::None;
    options.timeouts = Timeouts::all(limit);
    options
}

/// Real TCP to the address DNS gave, on the port the test gave each MX host's name (MX delivery
/// itself always uses port 25); records which hosts were tried.
#[derive(Default)]
pub struct Ports {
    ports: HashMap<String, u16>,
    tried: Mutex<Vec<String>>,
}

impl Ports {
    pub fn with(mut self, name: &str, port: u16) -> Self {
        self.ports.insert(name.to_string(), port);
        self
    }

    pub fn tried(&self) -> Vec<String> {
        self.tried.lock().unwrap().clone()
    }
}

impl Connector for Ports {
    fn connect<'a>(
        &'a self,
        target: &'a Target,
    ) -> Pin<Box<dyn Future<Output = io::Result<BoxStream>> + Send + 'a>> {
        Box::pin(async move {
            let Target::Resolved { name, ip, .. } = target else {
                return Err(io::Error::other(format!("not an MX target: {target}")));
            };
            self.tried.lock().unwrap().push(name.to_string());
            let port = self.ports.get(name.as_str()).copied().unwrap_or(1);
            let tcp = tokio::net::TcpStream::connect((*ip, port)).await?;
            Ok(Box::new(tcp) as BoxStream)
        })
    }
}
