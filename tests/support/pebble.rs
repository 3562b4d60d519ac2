//! Debian's `pebble` (an ACME test CA) and `pebble-challtestsrv` (its DNS) on loopback, for the
//! ACME tests. Everything is made per test: ports chosen free, a config in a temp directory,
//! pebble's HTTPS certificate (a leaf for localhost and 127.0.0.1, signed by a test CA made
//! with rcgen: pebble ships none, and a self-signed CA certificate is refused as a server's),
//! and pebble's issuing root, fetched from its management `/roots/0` (new at every start).
//!
//! The DNS server answers A = 127.0.0.1 for every name (and no AAAA), so the CA validates
//! HTTP-01 on `127.0.0.1:<http_port>` and TLS-ALPN-01 on `127.0.0.1:<tls_port>`: the ports the
//! code under test listens on. `PEBBLE_VA_NOSLEEP=1` removes pebble's random validation delay;
//! its 5 % rejection of nonces (`PEBBLE_WFE_NONCEREJECT`) is left on, so clients must retry.
//!
//! Missing pebble skips the test with a note, or fails it under `POSTERN_TEST_REQUIRE_PEERS=1`
//! (`postern_store::testing::missing_peer`).
//!
//! Used by `tests/acme.rs` and, through `#[path]`, by `server/tests/acme_pebble.rs`; it needs
//! only std, rcgen and rustls.
#![allow(dead_code)]

pub use postern_store::testing::free_port;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const PEBBLE: &str = "/usr/bin/pebble";
pub const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";

/// Where the CA validates, and for how long it issues.
#[derive(Debug, Clone)]
pub struct PebbleOptions {
    /// The port HTTP-01 validation connects to (pebble's `httpPort`).
    pub http_port: u16,
    /// The port TLS-ALPN-01 validation connects to (pebble's `tlsPort`).
    pub tls_port: u16,
    /// The validity of issued certificates (`certificateValidityPeriod`); pebble's default
    /// (5 years) when `None`.
    pub validity: Option<Duration>,
}

impl PebbleOptions {
    /// Free ports for both validations.
    pub fn free() -> PebbleOptions {
        PebbleOptions { http_port: free_port(), tls_port: free_port(), validity: None }
    }
}

/// A running pebble and its DNS server, killed on drop.
pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// The test CA that signed pebble's HTTPS certificate: the client's `ca_file`.
    pub ca_file: PathBuf,
    /// pebble's issuing root, PEM: what issued certificates verify against.
    pub root_pem: String,
    pub options: PebbleOptions,
    dns_management: u16,
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Pebble {
    /// Starts both, or returns `None` (after `missing_peer`) when pebble is not installed.
    pub fn start(test: &str, options: PebbleOptions) -> Option<Pebble> {
        for program in [PEBBLE, CHALLTESTSRV] {
            if !Path::new(program).exists() {
                postern_store::testing::missing_peer(
                    test,
                    &format!("{program} is not installed (Debian package pebble)"),
                );
                return None;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();

        // The test CA, and pebble's HTTPS certificate signed by it.
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "Postern test CA for pebble");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
        let mut leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf.signed_by(&leaf_key, &ca).unwrap();
        let ca_file = path.join("test-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(path.join("pebble.pem"), format!("{}{}", leaf.pem(), ca.pem())).unwrap();
        std::fs::write(path.join("pebble.key"), leaf_key.serialize_pem()).unwrap();

        let mut children = Vec::new();
        let dns = free_port();
        let dns_management = free_port();
        let log = |name: &str| {
            let file = std::fs::File::create(path.join(name)).unwrap();
            (Stdio::from(file.try_clone().unwrap()), Stdio::from(file))
        };
        let (out, err) = log("challtestsrv.log");
        children.push(
            Command::new(CHALLTESTSRV)
                .args(["-dns01", &format!("127.0.0.1:{dns}")])
                .args(["-management", &format!("127.0.0.1:{dns_management}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap(),
        );

        let listen = free_port();
        let management = free_port();
        let validity = options
            .validity
            .map(|v| format!(",\n    \"certificateValidityPeriod\": {}", v.as_secs()))
            .unwrap_or_default();
        let config = format!(
            "{{\n  \"pebble\": {{\n    \"listenAddress\": \"127.0.0.1:{listen}\",\n    \
             \"managementListenAddress\": \"127.0.0.1:{management}\",\n    \
             \"certificate\": \"{cert}\",\n    \"privateKey\": \"{key}\",\n    \
             \"httpPort\": {http},\n    \"tlsPort\": {tls},\n    \"ocspResponderURL\": \"\",\n    \
             \"externalAccountBindingRequired\": false{validity}\n  }}\n}}\n",
            cert = path.join("pebble.pem").display(),
            key = path.join("pebble.key").display(),
            http = options.http_port,
            tls = options.tls_port,
        );
        std::fs::write(path.join("pebble.json"), config).unwrap();
        let (out, err) = log("pebble.log");
        children.push(
            Command::new(PEBBLE)
                .arg("-config")
                .arg(path.join("pebble.json"))
                .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env_remove("PEBBLE_WFE_NONCEREJECT")
                .env_remove("PEBBLE_VA_ALWAYS_VALID")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap(),
        );
        let mut pebble = Pebble {
            directory: format!("https://127.0.0.1:{listen}/dir"),
            ca_file,
            root_pem: String::new(),
            options,
            dns_management,
            dir,
            children,
        };
        for port in [dns_management, listen, management] {
            pebble.wait_for_port(port);
        }
        let ca_der = ca.der().clone();
        let (status, body) = https_get(management, "/roots/0", &ca_der);
        assert_eq!(status, 200, "pebble's /roots/0: {body}");
        assert!(body.contains("-----BEGIN CERTIFICATE-----"), "pebble's root: {body}");
        pebble.root_pem = body;
        Some(pebble)
    }

    /// Makes the DNS server answer `address` for `host` (instead of 127.0.0.1): a name whose
    /// validation nobody answers when nothing listens there.
    pub fn add_a(&self, host: &str, address: &str) {
        let body = format!("{{\"host\":\"{host}.\",\"addresses\":[\"{address}\"]}}");
        let (status, reply) = http_post(self.dns_management, "/add-a", &body);
        assert_eq!(status, 200, "pebble-challtestsrv /add-a: {reply}");
    }

    /// What pebble printed, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    fn wait_for_port(&mut self, port: u16) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            for child in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("pebble or its DNS exited ({status}):\n{}", self.log());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nothing listens on port {port} after 15 s:\n{}", self.log());
    }
}

/// A GET over HTTPS to 127.0.0.1, trusting only `ca`: status and body.
pub fn https_get(
    port: u16,
    path: &str,
    ca: &rustls::pki_types::CertificateDer<'static>,
) -> (u16, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    // Go's server may close without close_notify: what arrived is the reply.
    let _ = tls.read_to_end(&mut reply);
    parse_reply(&reply)
}

/// A POST of a JSON body over plain HTTP to 127.0.0.1: status and body.
fn http_post(port: u16, path: &str, body: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let _ = tcp.read_to_end(&mut reply);
    parse_reply(&reply)
}

fn parse_reply(reply: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(reply);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, dechunk(&body))
}

/// Undoes `Transfer-Encoding: chunked` when the body looks chunked (Go chunks a reply it
/// streams without a length).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else { return body.to_string() };
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { return body.to_string() };
        if size == 0 {
            return out;
        }
        if after.len() < size {
            return body.to_string();
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
}
