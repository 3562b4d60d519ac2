//! Peers that speak TLS, written in the test with tokio-rustls: a test CA (rcgen), an HTTPS
//! server for MTA-STS policy files with a reply the test sets, and an SMTP server that offers
//! STARTTLS. Needs no Debian package.
// Each test binary that includes this uses part of it.
#![allow(dead_code)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A certificate authority for tests.
pub struct Pki {
    pub ca: CertificateDer<'static>,
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "Postern test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).unwrap();
        Pki { ca: issuer.der().clone(), issuer }
    }

    /// A certificate for `names` signed by this CA, as PEM: the chain (leaf, then the CA) and
    /// the leaf's private key, for a peer that reads files (Postfix).
    pub fn leaf_pem(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = rcgen::CertificateParams::new(names).unwrap().signed_by(&key, &self.issuer);
        (format!("{}{}", leaf.unwrap().pem(), self.issuer.pem()), key.serialize_pem())
    }

    /// A TLS acceptor whose certificate, signed by this CA, names `names`.
    pub fn acceptor(&self, names: &[&str]) -> TlsAcceptor {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = rcgen::CertificateParams::new(names).unwrap().signed_by(&key, &self.issuer);
        let chain = vec![leaf.unwrap().der().clone(), self.ca.clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }
}

/// What the HTTPS server answers.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// "200 OK", "404 Not Found" …
    pub status: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether to send Content-Length (else the body ends when the connection closes).
    pub length: bool,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl HttpReply {
    /// A policy file, as a policy host should serve it.
    pub fn policy(text: &str) -> HttpReply {
        HttpReply {
            status: "200 OK".into(),
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: text.as_bytes().to_vec(),
            length: true,
            delay: Duration::ZERO,
        }
    }

    pub fn status(status: &str) -> HttpReply {
        HttpReply { status: status.into(), ..HttpReply::policy("") }
    }
}

/// An HTTPS server on loopback answering every request with the current reply.
pub struct HttpsServer {
    pub port: u16,
    reply: Arc<Mutex<HttpReply>>,
    hits: Arc<AtomicUsize>,
}

impl HttpsServer {
    pub async fn start(acceptor: TlsAcceptor, reply: HttpReply) -> HttpsServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let reply = Arc::new(Mutex::new(reply));
        let hits = Arc::new(AtomicUsize::new(0));
        let (shared, counter) = (reply.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, shared, counter) =
                    (acceptor.clone(), shared.clone(), counter.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    counter.fetch_add(1, Ordering::SeqCst);
                    let reply = shared.lock().unwrap().clone();
                    let _ = answer(tls, reply).await;
                });
            }
        });
        HttpsServer { port, reply, hits }
    }

    pub fn set(&self, reply: HttpReply) {
        *self.reply.lock().unwrap() = reply;
    }

    /// Requests that got past the TLS handshake.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Reads one request's head, then answers and closes.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(stream: S, reply: HttpReply) -> io::Result<()> {
    let mut io = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 || line == "\r\n" {
            break;
        }
    }
    tokio::time::sleep(reply.delay).await;
    let mut head = format!("HTTP/1.1 {}\r\nConnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if reply.length {
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    head.push_str("\r\n");
    io.write_all(head.as_bytes()).await?;
    io.write_all(&reply.body).await?;
    io.flush().await?;
    io.into_inner().shutdown().await
}

/// What the SMTP server saw.
#[derive(Default)]
pub struct Seen {
    pub tls: AtomicBool,
    pub messages: AtomicUsize,
}

impl Seen {
    pub fn tls(&self) -> bool {
        self.tls.load(Ordering::SeqCst)
    }

    pub fn messages(&self) -> usize {
        self.messages.load(Ordering::SeqCst)
    }
}

/// A minimal SMTP server on loopback offering STARTTLS with `acceptor`'s certificate; returns
/// its port.
pub async fn smtp_server(acceptor: TlsAcceptor, seen: Arc<Seen>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                if let Ok(Some(plain)) = converse(tcp, false, &seen).await
                    && let Ok(tls) = acceptor.accept(plain).await
                {
                    seen.tls.store(true, Ordering::SeqCst);
                    let _ = converse(tls, true, &seen).await;
                }
            });
        }
    });
    port
}

/// One SMTP conversation; returns the stream when the client asked for STARTTLS.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    in_tls: bool,
    seen: &Seen,
) -> io::Result<Option<S>> {
    let mut io = BufReader::new(stream);
    if !in_tls {
        io.write_all(b"220 mx.example.test ESMTP\r\n").await?;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if in_tls => b"250-mx.example.test\r\n250 PIPELINING\r\n",
            "EHLO" => b"250-mx.example.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
            "STAR" if !in_tls => {
                io.write_all(b"220 2.0.0 ready\r\n").await?;
                return Ok(Some(io.into_inner()));
            }
            "MAIL" | "RCPT" | "RSET" => b"250 2.1.0 ok\r\n",
            "DATA" => {
                io.write_all(b"354 go ahead\r\n").await?;
                loop {
                    line.clear();
                    if io.read_line(&mut line).await? == 0 {
                        return Ok(None);
                    }
                    if line == ".\r\n" {
                        break;
                    }
                }
                seen.messages.fetch_add(1, Ordering::SeqCst);
                b"250 2.0.0 queued\r\n"
            }
            "QUIT" => {
                io.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(None);
            }
            _ => b"502 5.5.2 not here\r\n",
        };
        io.write_all(reply).await?;
    }
}
