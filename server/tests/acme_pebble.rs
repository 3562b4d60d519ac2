//! The ACME protocol against Debian's pebble, without the store: an account registered and
//! restored from its credentials, certificates issued over HTTP-01 (the responder of
//! `acme::http01`) and TLS-ALPN-01 (challenge certificates served by a TLS listener in the
//! test), the CA's own error text when nothing answers, and pebble's 5 % nonce rejection
//! never failing an order. Needs the Debian package `pebble`.

#[path = "../../tests/support/pebble.rs"]
mod pebble;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pebble::{Pebble, PebbleOptions};
use postern_server::acme::{
    self, ACME_TLS_ALPN, AlpnChallenges, Challenge, Http01Tokens, Responders, account,
};
use postern_store::boot::{AcmeConfig, BootConfig, Profile};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use tokio_util::sync::CancellationToken;

/// TLS-ALPN-01 challenge certificates by name, served to a ClientHello offering acme-tls/1.
#[derive(Debug, Default)]
struct AlpnMap(Mutex<HashMap<String, Arc<CertifiedKey>>>);

impl AlpnChallenges for AlpnMap {
    fn set(&self, name: &str, key: Arc<CertifiedKey>) {
        self.0.lock().unwrap().insert(name.to_string(), key);
    }
    fn clear(&self, name: &str) {
        self.0.lock().unwrap().remove(name);
    }
}

impl ResolvesServerCert for AlpnMap {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello.alpn()?.any(|p| p == ACME_TLS_ALPN);
        let name = hello.server_name()?;
        if acme { self.0.lock().unwrap().get(name).cloned() } else { None }
    }
}

/// The HTTP-01 responder and a TLS-ALPN-01 listener on pebble's validation ports.
async fn responders(pebble: &Pebble, shutdown: &CancellationToken) -> (Responders, Arc<AlpnMap>) {
    let tokens = Http01Tokens::new();
    let http =
        tokio::net::TcpListener::bind(("127.0.0.1", pebble.options.http_port)).await.unwrap();
    let redirect = acme::http01::Redirect { hostname: "mail.example.test".into(), https_port: 443 };
    tokio::spawn(acme::http01::serve(http, tokens.clone(), redirect, shutdown.clone()));

    let alpn = Arc::new(AlpnMap::default());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(alpn.clone());
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let tls = tokio::net::TcpListener::bind(("127.0.0.1", pebble.options.tls_port)).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = tls.accept().await else { return };
            let acceptor = acceptor.clone();
            // RFC 8737 §3: the handshake is the answer; the connection closes after it.
            tokio::spawn(async move {
                let _ = acceptor.accept(stream).await;
            });
        }
    });
    let responders = Responders {
        http01: tokens,
        tls_alpn01: Some(alpn.clone() as Arc<dyn AlpnChallenges>),
        http01_listening: true,
    };
    (responders, alpn)
}

fn config(pebble: &Pebble) -> AcmeConfig {
    let text = format!(
        "[acme]\ndirectory = \"{}\"\nca_file = \"{}\"\ncontact = \"mailto:postmaster@example.test\"",
        pebble.directory,
        pebble.ca_file.display()
    );
    BootConfig::from_toml(&text, Profile::Standard).unwrap().acme.unwrap()
}

/// Checks that `chain_pem` names `name` and verifies up to pebble's root.
fn verify(pebble: &Pebble, chain_pem: &str, name: &str) {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(chain_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
    assert!(chain.len() >= 2, "leaf and intermediate: {chain_pem}");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pebble.root_pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .unwrap_or_else(|e| panic!("{name}'s chain does not verify against pebble's root: {e}"));
}

#[tokio::test]
async fn certificates_are_issued_over_both_challenges_and_failures_carry_the_ca_s_words() {
    let Some(pebble) = Pebble::start("acme_pebble", PebbleOptions::free()) else { return };
    let shutdown = CancellationToken::new();
    let (responders, alpn) = responders(&pebble, &shutdown).await;
    let config = config(&pebble);

    let (account, credentials) = account::create(&config).await.unwrap();
    assert!(credentials.contains("key_pkcs8"), "the credentials hold the account key");
    let id = account.id().to_string();
    // Restored from its credentials, it is the same account (as after a restart).
    let account = account::restore(&config, &credentials).await.unwrap();
    assert_eq!(account.id(), id);

    // Several orders, so that pebble's 5 % nonce rejection hits some requests: none fails.
    for name in ["mail.example.test", "a.example.test", "b.example.test"] {
        let names = vec![name.to_string()];
        let issued = acme::order_certificate(
            &account,
            &names,
            Challenge::Http01,
            None,
            &responders,
            &mut acme::order::Quiet,
        )
        .await
        .unwrap_or_else(|e| panic!("HTTP-01 for {name}: {e}\n{}", pebble.log()));
        verify(&pebble, &issued.chain_pem, name);
        assert!(issued.key_pem.contains("PRIVATE KEY"));
    }
    let names = vec!["alpn.example.test".to_string(), "alpn2.example.test".to_string()];
    let issued = acme::order_certificate(
        &account,
        &names,
        Challenge::TlsAlpn01,
        None,
        &responders,
        &mut acme::order::Quiet,
    )
    .await
    .unwrap_or_else(|e| panic!("TLS-ALPN-01: {e}\n{}", pebble.log()));
    verify(&pebble, &issued.chain_pem, "alpn2.example.test");
    assert!(alpn.0.lock().unwrap().is_empty(), "challenge certificates are taken down");

    // Nothing answers at 127.0.0.2: the order fails with what pebble said.
    pebble.add_a("broken.example.test", "127.0.0.2");
    let names = vec!["broken.example.test".to_string()];
    let err = acme::order_certificate(
        &account,
        &names,
        Challenge::Http01,
        None,
        &responders,
        &mut acme::order::Quiet,
    )
    .await
    .unwrap_err();
    eprintln!("the CA said: {err}");
    assert!(!err.bad_nonce);
    assert!(err.message.contains("broken.example.test"), "{err}");
    assert!(err.message.to_lowercase().contains("connection refused"), "{err}");
    shutdown.cancel();
}
