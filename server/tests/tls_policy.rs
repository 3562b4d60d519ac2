//! STARTTLS under each TLS policy, against a small SMTP server in the test that speaks real
//! TLS (tokio-rustls) with a certificate from a test CA. The Connector seam sends every target
//! name to that server, so certificates can be checked against names no DNS knows.
//!
//! Needs no Debian package.

mod support;
#[path = "support/tls_peers.rs"]
mod tls_peers;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postern_server::delivery::{
    BoxStream, ClientOptions, Connector, Outcome, Protocol, Target, Timeouts, deliver,
};
use postern_store::model::{Host, TlsPolicy};
use rustls::pki_types::CertificateDer;
use support::delivery;
use tls_peers::Pki;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const NAME: &str = "mx.test.example";

/// What the server saw.
#[derive(Default)]
struct Seen {
    tls: AtomicBool,
    message: AtomicBool,
}

/// Starts the server; returns its port.
async fn server(pki: &Pki, offer_tls: bool, seen: Arc<Seen>) -> u16 {
    let acceptor = pki.acceptor(&[NAME]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                if let Ok(Some(plain)) = converse(tcp, offer_tls, false, &seen).await
                    && let Ok(tls) = acceptor.accept(plain).await
                {
                    seen.tls.store(true, Ordering::SeqCst);
                    let _ = converse(tls, false, true, &seen).await;
                }
            });
        }
    });
    port
}

/// A minimal SMTP server; returns the stream when the client asked for STARTTLS.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    offer_tls: bool,
    in_tls: bool,
    seen: &Seen,
) -> io::Result<Option<S>> {
    let mut io = BufReader::new(stream);
    if !in_tls {
        io.write_all(b"220 mx.test.example ESMTP\r\n").await?;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if offer_tls => b"250-mx.test.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
            "EHLO" => b"250-mx.test.example\r\n250 PIPELINING\r\n",
            "STAR" => {
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
                seen.message.store(true, Ordering::SeqCst);
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

/// Every target goes to the test server, whatever its name.
struct ToPort(u16);

impl Connector for ToPort {
    fn connect<'a>(
        &'a self,
        _target: &'a Target,
    ) -> Pin<Box<dyn Future<Output = io::Result<BoxStream>> + Send + 'a>> {
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.0)).await?;
            Ok(Box::new(tcp) as BoxStream)
        })
    }
}

async fn send(
    port: u16,
    name: &str,
    tls: TlsPolicy,
    roots: Vec<CertificateDer<'static>>,
) -> Outcome {
    let target = Target::Tcp { host: Host::Name(name.parse().unwrap()), port: 25 };
    send_to(port, &target, tls, roots).await
}

async fn send_to(
    port: u16,
    target: &Target,
    tls: TlsPolicy,
    roots: Vec<CertificateDer<'static>>,
) -> Outcome {
    let mut options = ClientOptions::new(Protocol::Smtp, "client.example.org");
    options.tls = tls;
    options.extra_roots = roots;
    options.timeouts = Timeouts::all(Duration::from_secs(10));
    let rcpts = vec!["bob@example.com".to_string()];
    let body = b"Subject: tls\r\n\r\nhello\r\n";
    deliver(&ToPort(port), target, &options, &delivery(&rcpts, body)).await.remove(0)
}

#[tokio::test]
async fn verify_accepts_a_certificate_for_the_name_from_a_trusted_ca() {
    let pki = Pki::new();
    let seen = Arc::new(Seen::default());
    let port = server(&pki, true, seen.clone()).await;
    let out = send(port, NAME, TlsPolicy::Verify, vec![pki.ca.clone()]).await;
    assert!(out.is_delivered(), "{out:?}");
    assert!(seen.tls.load(Ordering::SeqCst) && seen.message.load(Ordering::SeqCst));
}

#[tokio::test]
async fn verify_refuses_another_name_and_an_unknown_ca() {
    let pki = Pki::new();
    let seen = Arc::new(Seen::default());
    let port = server(&pki, true, seen.clone()).await;
    let out = send(port, "other.example.com", TlsPolicy::Verify, vec![pki.ca.clone()]).await;
    assert!(out.is_deferred() && out.text().starts_with("451 4.7.5 TLS handshake"), "{out:?}");
    let out = send(port, NAME, TlsPolicy::Verify, vec![]).await;
    assert!(out.is_deferred() && out.text().starts_with("451 4.7.5 TLS handshake"), "{out:?}");
    assert!(!seen.message.load(Ordering::SeqCst));
}

#[tokio::test]
async fn verify_checks_an_mx_host_by_its_name_not_its_address() {
    let pki = Pki::new();
    let ip = "127.0.0.1".parse().unwrap();
    let mx = |name: &str| Target::Resolved { name: name.parse().unwrap(), ip, port: 25 };
    let seen = Arc::new(Seen::default());
    let port = server(&pki, true, seen.clone()).await;
    let out = send_to(port, &mx(NAME), TlsPolicy::Verify, vec![pki.ca.clone()]).await;
    assert!(out.is_delivered(), "{out:?}");
    assert!(out.text().starts_with(&format!("{NAME}[127.0.0.1]:25 said")), "{out:?}");
    let seen = Arc::new(Seen::default());
    let port = server(&pki, true, seen.clone()).await;
    let other = mx("other.example.com");
    let out = send_to(port, &other, TlsPolicy::Verify, vec![pki.ca.clone()]).await;
    assert!(out.is_deferred() && out.text().starts_with("451 4.7.5 TLS handshake"), "{out:?}");
    assert!(!seen.message.load(Ordering::SeqCst));
}

#[tokio::test]
async fn encrypt_and_may_take_any_certificate() {
    let pki = Pki::new();
    for policy in [TlsPolicy::Encrypt, TlsPolicy::May] {
        let seen = Arc::new(Seen::default());
        let port = server(&pki, true, seen.clone()).await;
        let out = send(port, "other.example.com", policy, vec![]).await;
        assert!(out.is_delivered(), "{policy}: {out:?}");
        assert!(seen.tls.load(Ordering::SeqCst), "{policy}");
    }
}

#[tokio::test]
async fn without_starttls_encrypt_defers_and_may_sends_in_the_clear() {
    let pki = Pki::new();
    let seen = Arc::new(Seen::default());
    let port = server(&pki, false, seen.clone()).await;
    let out = send(port, NAME, TlsPolicy::Encrypt, vec![pki.ca.clone()]).await;
    assert!(out.is_deferred() && out.text().starts_with("451 4.7.10"), "{out:?}");
    assert!(!seen.message.load(Ordering::SeqCst));
    let out = send(port, NAME, TlsPolicy::May, vec![]).await;
    assert!(out.is_delivered(), "{out:?}");
    assert!(seen.message.load(Ordering::SeqCst) && !seen.tls.load(Ordering::SeqCst));
}
