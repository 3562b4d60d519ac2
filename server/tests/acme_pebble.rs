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

/// Polls `check` every 50 ms until it gives a value, for at most `within`.
async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    within: std::time::Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn worker_config(pebble: &Pebble) -> AcmeConfig {
    AcmeConfig {
        retry_first: std::time::Duration::from_secs(1),
        retry_max: std::time::Duration::from_secs(2),
        ..config(pebble)
    }
}

fn start_worker(
    store: &postern_store::Store,
    pebble: &Pebble,
    responders: &Responders,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let options = acme::WorkerOptions {
        config: worker_config(pebble),
        hostname: Some("mail.example.test".parse().unwrap()),
        responders: responders.clone(),
    };
    let task = tokio::spawn(acme::run(store.clone(), options, shutdown.clone()));
    (shutdown, task)
}

/// The first certificate covering `name`, once there is one.
async fn certificate_for(
    store: &postern_store::Store,
    name: &str,
    other_than: Option<i64>,
) -> postern_store::model::CertificateInfo {
    wait_for(std::time::Duration::from_secs(30), &format!("a certificate for {name}"), || async {
        let list = store.list_certificates().await.unwrap();
        list.into_iter().find(|c| c.covers(name) && Some(c.id) != other_than)
    })
    .await
}

#[tokio::test]
async fn the_worker_orders_stores_retries_and_keeps_its_account() {
    use postern_store::model::{Challenge as OrderChallenge, OrderState};
    let Some(pebble) = Pebble::start("acme_worker", PebbleOptions::free()) else { return };
    let shutdown = CancellationToken::new();
    let (responders, _alpn) = responders(&pebble, &shutdown).await;
    let db = postern_store::testing::TestDb::sqlite();
    let store = db.open().await;
    let (stop, task) = start_worker(&store, &pebble, &responders);

    // The host name's certificate, over HTTP-01, with no order asked for.
    let host = certificate_for(&store, "mail.example.test", None).await;
    assert_eq!(host.source, postern_store::model::CertificateSource::Acme);
    assert_eq!(host.acme_directory.as_deref(), Some(pebble.directory.as_str()));
    let serving = store.serving_certificates().await.unwrap();
    verify(&pebble, &serving[0].chain_pem, "mail.example.test");
    let credentials = store.acme_account(&pebble.directory).await.unwrap().expect("stored");

    // Another name over TLS-ALPN-01, as `postern cert order` asks for it.
    let name: postern_store::model::DomainName = "alpn.example.test".parse().unwrap();
    store.request_acme_order("admin", &[name], OrderChallenge::TlsAlpn01, None).await.unwrap();
    certificate_for(&store, "alpn.example.test", None).await;
    // The certificate is stored a moment before its order is marked issued: wait for both.
    wait_for(std::time::Duration::from_secs(10), "both orders issued", || async {
        let orders = store.list_acme_orders().await.unwrap();
        orders.iter().all(|o| o.state == OrderState::Issued && o.error.is_none()).then_some(())
    })
    .await;

    // Nothing answers for this one: the CA's words are recorded and the order tried again.
    pebble.add_a("broken.example.test", "127.0.0.2");
    let name: postern_store::model::DomainName = "broken.example.test".parse().unwrap();
    let order =
        store.request_acme_order("admin", &[name], OrderChallenge::Http01, None).await.unwrap();
    let retried =
        wait_for(std::time::Duration::from_secs(30), "a second failed attempt", || async {
            let orders = store.list_acme_orders().await.unwrap();
            orders.into_iter().find(|o| o.id == order.id && o.attempts >= 2)
        })
        .await;
    assert_eq!(retried.state, OrderState::Pending, "{retried:?}");
    let error = retried.error.unwrap();
    assert!(error.contains("connection refused") && error.contains("127.0.0.2"), "{error}");

    // After a restart the stored account is used again.
    stop.cancel();
    task.await.unwrap();
    let (stop, task) = start_worker(&store, &pebble, &responders);
    let name: postern_store::model::DomainName = "again.example.test".parse().unwrap();
    store.request_acme_order("admin", &[name], OrderChallenge::Http01, None).await.unwrap();
    certificate_for(&store, "again.example.test", None).await;
    assert_eq!(store.acme_account(&pebble.directory).await.unwrap().unwrap(), credentials);
    stop.cancel();
    task.await.unwrap();
    shutdown.cancel();
}

#[tokio::test]
async fn a_short_lived_certificate_is_renewed_on_its_own() {
    let options = PebbleOptions {
        validity: Some(std::time::Duration::from_secs(9)),
        ..PebbleOptions::free()
    };
    let Some(pebble) = Pebble::start("acme_renewal", options) else { return };
    let shutdown = CancellationToken::new();
    let (responders, _alpn) = responders(&pebble, &shutdown).await;
    let db = postern_store::testing::TestDb::sqlite();
    let store = db.open().await;
    let (stop, task) = start_worker(&store, &pebble, &responders);
    let first = certificate_for(&store, "mail.example.test", None).await;
    let lifetime = first.not_after - first.not_before;
    assert!(lifetime <= 10, "pebble issued for {lifetime} s");
    // Renewed with a third of the lifetime left, and the old one removed.
    let second = certificate_for(&store, "mail.example.test", Some(first.id)).await;
    assert!(second.not_after > first.not_after);
    let orders = store.list_acme_orders().await.unwrap();
    assert!(orders.iter().any(|o| o.replaces == Some(first.id)), "{orders:?}");
    wait_for(std::time::Duration::from_secs(10), "the old certificate removed", || async {
        let list = store.list_certificates().await.unwrap();
        (!list.iter().any(|c| c.id == first.id)).then_some(())
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    shutdown.cancel();
}
