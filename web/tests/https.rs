//! The console over real HTTPS (`run_tls` on port 0, a self-signed certificate, reqwest trusting
//! only it): the login works and the session cookie is `__Host-` prefixed and `Secure`.

mod support;

use postern_store::Store;
use std::sync::Arc;
use std::time::Duration;

use postern_store::model::Role;
use postern_web::{AppState, Settings};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::{PASSWORD, add_admin};
use tokio_util::sync::CancellationToken;

/// A self-signed certificate for `localhost`: the acceptor, and the PEM a client should trust.
fn certificate() -> (tokio_rustls::TlsAcceptor, String) {
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), cert.pem())
}

postern_store::store_tests!(
    a_tls_alpn_01_connection_is_closed_after_the_handshake,
    the_console_over_https_sets_a_host_prefixed_secure_cookie,
    the_https_listener_shares_the_connection_cap_and_its_timeouts
);

async fn the_console_over_https_sets_a_host_prefixed_secure_cookie(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let (acceptor, pem) = certificate();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    // Settings say HTTP: run_tls knows better.
    let state =
        AppState::new(store.clone(), Settings { live_wait: Duration::ZERO, ..Settings::default() });
    let server = tokio::spawn(postern_web::run_tls(listener, acceptor, state, shutdown.clone()));

    // A client that connects and never says hello holds up no one.
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();

    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let login = client
        .post(format!("{base}/login"))
        .form(&[("name", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::SEE_OTHER);
    let cookie = login
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("__Host-postern="))
        .expect("a __Host- session cookie");
    for attribute in ["; Secure", "; HttpOnly", "; SameSite=Strict", "; Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Domain="), "a __Host- cookie names no domain: {cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let dashboard = client.get(format!("{base}/")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(dashboard.status(), reqwest::StatusCode::OK);
    // Browsers that have seen it will not try plain HTTP for a year (RFC 6797).
    assert_eq!(dashboard.headers()["strict-transport-security"], "max-age=31536000");
    assert!(dashboard.text().await.unwrap().contains("Dashboard"));

    // A client that does not trust the certificate gets nowhere.
    let stranger = reqwest::Client::builder()
        .tls_certs_only(Vec::<reqwest::Certificate>::new())
        .build()
        .unwrap();
    assert!(stranger.get(format!("{base}/login")).send().await.is_err());

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("it stops").unwrap().unwrap();
}

async fn the_https_listener_shares_the_connection_cap_and_its_timeouts(store: Store) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (acceptor, _pem) = certificate();
    let idle = Duration::from_secs(2);
    let options = postern_store::boot::ConsoleOptions {
        max_connections: 2,
        idle_timeout: idle,
        ..Default::default()
    };
    let settings = Settings { live_wait: Duration::ZERO, options, ..Settings::default() };
    let state = AppState::new(store.clone(), settings);
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let secure = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (plain_addr, secure_addr) = (plain.local_addr().unwrap(), secure.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    tokio::spawn(postern_web::run(plain, state.clone(), shutdown.clone()));
    tokio::spawn(postern_web::run_tls(secure, acceptor, state, shutdown.clone()));

    async fn said(conn: &mut tokio::net::TcpStream) -> String {
        let mut all = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut all))
            .await
            .expect("closed within 10 s");
        String::from_utf8_lossy(&all).into_owned()
    }
    // A TLS client that never says hello, and a plain one with a request in progress,
    // take both places.
    let mut silent_tls = tokio::net::TcpStream::connect(secure_addr).await.unwrap();
    let mut busy = tokio::net::TcpStream::connect(plain_addr).await.unwrap();
    busy.write_all(b"POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Length: 50\r\n\r\nname=")
        .await
        .unwrap();
    // A newcomer on the plain listener takes the silent TLS client's place: one cap for
    // both listeners.
    let start = std::time::Instant::now();
    let mut newcomer = tokio::net::TcpStream::connect(plain_addr).await.unwrap();
    newcomer
        .write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(said(&mut newcomer).await.starts_with("HTTP/1.1 200 OK"));
    assert_eq!(said(&mut silent_tls).await, "");
    assert!(start.elapsed() < idle, "evicted, not timed out: {:?}", start.elapsed());

    // Over TLS too, a client that never says hello is dropped after the idle timeout.
    let start = std::time::Instant::now();
    let mut silent_tls = tokio::net::TcpStream::connect(secure_addr).await.unwrap();
    assert_eq!(said(&mut silent_tls).await, "");
    assert!(start.elapsed() >= idle, "{:?}", start.elapsed());
}

/// RFC 8737 §3: a connection that negotiated `acme-tls/1` only shows the CA a certificate; the
/// console closes it after the handshake and serves it no HTTP. (Choosing the challenge
/// certificate is the resolver's, tested in server/src/tls/resolver.rs.)
async fn a_tls_alpn_01_connection_is_closed_after_the_handshake(store: Store) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    // As `serve` configures it.
    config.alpn_protocols = vec![b"http/1.1".to_vec(), b"acme-tls/1".to_vec()];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let state =
        AppState::new(store.clone(), Settings { live_wait: Duration::ZERO, ..Settings::default() });
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let server = tokio::spawn(postern_web::run_tls(listener, acceptor, state, shutdown.clone()));

    let connect = |alpn: &'static [u8]| {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(cert.der().to_vec())).unwrap();
        let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![alpn.to_vec()];
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
                .connect(name, tcp)
                .await
                .unwrap();
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
            let _ = tls
                .write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await;
            let mut reply = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut reply));
            let _ = read.await.expect("the server answers or closes");
            String::from_utf8_lossy(&reply).into_owned()
        }
    };
    assert_eq!(connect(b"acme-tls/1").await, "", "closed without an HTTP answer");
    assert!(connect(b"http/1.1").await.starts_with("HTTP/1.1 200"), "the console itself");
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
