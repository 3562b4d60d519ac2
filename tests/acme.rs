//! ACME end to end: `postern serve` with `[acme]` pointed at Debian's pebble (an ACME test
//! CA, see `support/pebble.rs`), on loopback. The account is registered once and used again
//! after a restart; the host name's certificate is issued over HTTP-01 with no command;
//! another name over TLS-ALPN-01 once ordered; a validation nobody answers leaves the CA's
//! words on the order and is tried again; a short-lived certificate is renewed on its own.
//! pebble rejects 5 % of nonces throughout, and no order fails from it.
//!
//! Needs the Debian package `pebble`.

mod common;
#[path = "support/pebble.rs"]
mod pebble;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::{Serve, Setup};
use pebble::{Pebble, PebbleOptions};
use postern_store::Database;
use postern_store::model::{Challenge, DomainName, OrderState};
use postern_store::testing::TestDb;

const HOST: &str = "mail.example.test";

/// A setup whose binary uses `db` (and its key file, so that both open the sealed account)
/// and whose `[acme]` is pebble, answering challenges on pebble's validation ports.
fn setup(db: &TestDb, pebble: &Pebble) -> Setup {
    let mut s = Setup::new(&db.database);
    let config = format!(
        "hostname = \"{HOST}\"\n\
         data_dir = \"data\"\n\
         [smtp]\n\
         listen = [\"127.0.0.1:0\"]\n\
         submission = [\"127.0.0.1:0\"]\n\
         submissions = [\"127.0.0.1:0\"]\n\
         [console]\n\
         listen = [\"127.0.0.1:0\"]\n\
         tls_listen = [\"127.0.0.1:{tls}\"]\n\
         [log]\n\
         format = \"json\"\n\
         level = \"info\"\n\
         [acme]\n\
         directory = \"{directory}\"\n\
         ca_file = \"{ca}\"\n\
         contact = \"mailto:postmaster@example.test\"\n\
         http_listen = \"127.0.0.1:{http}\"\n\
         retry_first = \"1s\"\n\
         retry_max = \"2s\"\n",
        tls = pebble.options.tls_port,
        http = pebble.options.http_port,
        directory = pebble.directory,
        ca = pebble.ca_file.display(),
    );
    std::fs::write(s.config(), config).unwrap();
    if let Database::Sqlite { path } = &db.database {
        s.env.push(("POSTERN_DATABASE".into(), format!("sqlite:{}", path.display())));
    }
    s.env.push(("POSTERN_SECRET_KEY_FILE".into(), db.key_file().display().to_string()));
    s
}

/// Waits for the log line saying a certificate naming `name` was issued.
fn issued(serve: &Serve, name: &str, within: Duration) -> serde_json::Value {
    serve
        .wait_log(within, |l| {
            l["message"] == "certificate issued by the ACME CA"
                && l["names"].as_str().is_some_and(|n| n.split(' ').any(|n| n == name))
        })
        .unwrap_or_else(|| panic!("no certificate issued for {name} within {within:?}"))
        .0
}

/// The chain a TLS client asking for `sni` gets at `addr`, after STARTTLS when `starttls`;
/// the handshake itself verifies it against pebble's root (and only that root).
fn served_chain(
    addr: SocketAddr,
    sni: &str,
    starttls: bool,
    pebble: &Pebble,
) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let root = rustls::pki_types::CertificateDer::from_pem_slice(pebble.root_pem.as_bytes());
    roots.add(root.unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if starttls {
        let mut reader = BufReader::new(tcp.try_clone().unwrap());
        let mut reply = |expect: &str| loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with(expect), "{addr}: {line:?}");
            if line.as_bytes().get(3) == Some(&b' ') {
                break;
            }
        };
        reply("220");
        tcp.write_all(b"EHLO client.example.test\r\n").unwrap();
        reply("250");
        tcp.write_all(b"STARTTLS\r\n").unwrap();
        reply("220");
    }
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .unwrap_or_else(|e| panic!("{addr} asking for {sni}: the chain does not verify: {e}"));
    }
    conn.peer_certificates().unwrap().to_vec()
}

/// The chain served once `fits` holds for its leaf: the resolver takes a new certificate from
/// the revision feed, a moment after the worker stored it.
fn served_when(
    addr: SocketAddr,
    sni: &str,
    starttls: bool,
    pebble: &Pebble,
    fits: impl Fn(&x509_parser::certificate::X509Certificate<'_>) -> bool,
) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let start = std::time::Instant::now();
    loop {
        let chain = served_chain(addr, sni, starttls, pebble);
        let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        if fits(&leaf) {
            return chain;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{addr} for {sni}: not served");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The DNS names of a certificate.
fn dns_names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}

fn name(text: &str) -> DomainName {
    text.parse().unwrap()
}

async fn the_appliance_gets_and_keeps_certificates(db: TestDb) {
    let Some(pebble) = Pebble::start("acme::certificates", PebbleOptions::free()) else { return };
    let store = db.open().await;
    let setup = setup(&db, &pebble);

    // First start: an account, and the host name's certificate over HTTP-01, unasked.
    let mut serve = tokio::task::block_in_place(|| setup.serve());
    assert!(serve.stdout.iter().any(|l| l.contains(&pebble.directory)), "{:?}", serve.stdout);
    let within = Duration::from_secs(30);
    serve
        .wait_log(within, |l| l["message"] == "ACME account registered")
        .expect("an account registered");
    let line = tokio::task::block_in_place(|| issued(&serve, HOST, within));
    let host_cert = line["certificate"].as_i64().unwrap();
    let credentials = store.acme_account(&pebble.directory).await.unwrap().expect("kept");
    let certs = store.list_certificates().await.unwrap();
    let cert = certs.iter().find(|c| c.id == host_cert).expect("stored");
    assert!(cert.covers(HOST) && cert.acme_directory.as_deref() == Some(&pebble.directory));

    // Another name over TLS-ALPN-01, answered on the console's HTTPS port, once ordered.
    let out = setup.ok(&["cert", "order", "alpn.example.test", "--challenge", "tls-alpn-01"]);
    assert!(out.contains("alpn.example.test"), "{out}");
    tokio::task::block_in_place(|| issued(&serve, "alpn.example.test", within));

    // Every TLS listener serves each name's new chain at once, with no restart: STARTTLS on
    // 25 and 587, implicit TLS on 465.
    let listeners = [("smtp", true), ("submission", true), ("submissions", false)];
    for sni in [HOST, "alpn.example.test"] {
        for (listener, starttls) in listeners {
            let addr = serve.listeners[listener];
            let chain = tokio::task::block_in_place(|| {
                served_when(addr, sni, starttls, &pebble, |leaf| {
                    dns_names(leaf).contains(&sni.to_string())
                })
            });
            assert!(chain.len() >= 2, "{listener}: leaf and intermediate");
        }
    }

    // Nothing answers at 127.0.0.2: the CA's error is kept on the order, which is retried.
    pebble.add_a("broken.example.test", "127.0.0.2");
    let order = store
        .request_acme_order("test", &[name("broken.example.test")], Challenge::Http01, None)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let failed = loop {
        let orders = store.list_acme_orders().await.unwrap();
        let o = orders.into_iter().find(|o| o.id == order.id).unwrap();
        if o.attempts >= 2 {
            break o;
        }
        assert!(start.elapsed() < within, "not retried: {o:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(failed.state, OrderState::Pending, "still open: tried again later");
    let error = failed.error.clone().unwrap();
    assert!(error.contains("127.0.0.2") && error.contains("connection refused"), "{error}");
    let list = setup.ok(&["cert", "list"]);
    assert!(list.contains("broken.example.test") && list.contains(&error), "{list}");
    let json: serde_json::Value =
        serde_json::from_str(&setup.ok(&["cert", "list", "--json"])).unwrap();
    let shown = json["orders"].as_array().unwrap().iter().find(|o| o["id"] == order.id);
    assert_eq!(shown.unwrap()["error"], error.as_str());
    // And in the API, as the console's Certificates page reads it: over the console's HTTPS,
    // which presents the host name's issued certificate.
    let token = setup.ok(&["token", "create", "--owner", "admin", "--name", "acme test"]);
    let tls_port = pebble.options.tls_port;
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pebble.root_pem.as_bytes()).unwrap()])
        .resolve(HOST, SocketAddr::from(([127, 0, 0, 1], tls_port)))
        .build()
        .unwrap();
    let api: serde_json::Value = client
        .get(format!("https://{HOST}:{tls_port}/api/v1/certificates"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shown = api["orders"].as_array().unwrap().iter().find(|o| o["id"] == order.id);
    assert_eq!(shown.unwrap()["error"], error.as_str(), "{api}");
    assert_eq!(api["acme"], true);

    // A restart uses the stored account and does not order the host name again.
    assert!(tokio::task::block_in_place(|| serve.terminate()).success());
    let serve = tokio::task::block_in_place(|| setup.serve());
    serve
        .wait_log(within, |l| l["message"] == "ACME account loaded")
        .expect("the stored account loaded");
    assert_eq!(store.acme_account(&pebble.directory).await.unwrap().unwrap(), credentials);
    store
        .request_acme_order("test", &[name("after.example.test")], Challenge::Http01, None)
        .await
        .unwrap();
    tokio::task::block_in_place(|| issued(&serve, "after.example.test", within));

    // pebble refused some nonces on the way; only the unanswerable order failed.
    let orders = store.list_acme_orders().await.unwrap();
    for o in orders.iter().filter(|o| o.id != order.id) {
        assert_eq!(o.state, OrderState::Issued, "{o:?}");
        assert_eq!(o.attempts, 1, "{o:?}");
    }
    let host_orders = orders.iter().filter(|o| o.names == [HOST]).count();
    assert_eq!(host_orders, 1, "the host name is ordered once: {orders:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_appliance_gets_and_keeps_certificates_sqlite() {
    the_appliance_gets_and_keeps_certificates(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_appliance_gets_and_keeps_certificates_postgres() {
    let test = "acme::the_appliance_gets_and_keeps_certificates_postgres";
    let Some(db) = TestDb::postgres(test).await else { return };
    the_appliance_gets_and_keeps_certificates(db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_lived_certificate_is_renewed_on_its_own() {
    let options = PebbleOptions { validity: Some(Duration::from_secs(9)), ..PebbleOptions::free() };
    let Some(pebble) = Pebble::start("acme::renewal", options) else { return };
    let db = TestDb::sqlite();
    let store = db.open().await;
    let setup = setup(&db, &pebble);
    let serve = tokio::task::block_in_place(|| setup.serve());
    let within = Duration::from_secs(30);
    let first = tokio::task::block_in_place(|| issued(&serve, HOST, within));
    serve
        .wait_log(within, |l| l["message"] == "renewing a certificate from the ACME CA")
        .expect("a renewal asked for");
    let second = tokio::task::block_in_place(|| issued(&serve, HOST, within));
    assert_ne!(first["certificate"], second["certificate"]);
    let orders = store.list_acme_orders().await.unwrap();
    let renewal = orders.iter().find(|o| o.replaces == first["certificate"].as_i64());
    assert!(renewal.is_some_and(|o| o.state == OrderState::Issued), "{orders:?}");
    // Port 465 serves the renewed certificate, with no restart.
    let renewed = store.list_certificates().await.unwrap();
    let renewed = renewed.iter().find(|c| Some(c.id) == second["certificate"].as_i64()).unwrap();
    let addr = serve.listeners["submissions"];
    tokio::task::block_in_place(|| {
        served_when(addr, HOST, false, &pebble, |leaf| {
            leaf.validity().not_after.timestamp() == renewed.not_after
        })
    });
}
