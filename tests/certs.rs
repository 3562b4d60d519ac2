//! Certificates end to end: a certificate imported with `postern cert import` while `serve` runs
//! is served by SNI on 465 and after STARTTLS on 25 and 587 from the next handshake on, with no
//! restart; a key that does not match is refused with a clear message.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Serve, Setup};
use postern_store::testing::TestDb;
use postern_store::testing::certs::TestCa;
use rustls::pki_types::{CertificateDer, ServerName};

/// A client that trusts only `ca`.
pub fn client_config(ca: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.to_vec())).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS handshake over `tcp` asking for `sni`: the chain the server sent, if it verifies
/// against the client's roots, or the handshake's error.
fn handshake(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tcp = tcp;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(conn.peer_certificates().unwrap().to_vec())
}

fn connect(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp
}

/// Port 465: TLS from the first byte.
fn implicit_tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    handshake(connect(addr), config, sni)
}

/// Ports 25 and 587: EHLO, STARTTLS (RFC 3207), then the handshake.
fn starttls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let tcp = connect(addr);
    let mut reader = BufReader::new(tcp.try_clone().unwrap());
    let mut writer = tcp.try_clone().unwrap();
    let reply = |reader: &mut BufReader<TcpStream>| -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    };
    assert!(reply(&mut reader).starts_with("220"));
    writer.write_all(b"EHLO client.example.net\r\n").unwrap();
    let ehlo = reply(&mut reader);
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    writer.write_all(b"STARTTLS\r\n").unwrap();
    let go = reply(&mut reader);
    assert!(go.starts_with("220"), "{go}");
    assert!(reader.buffer().is_empty());
    handshake(tcp, config, sni)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn loaded(serve: &Serve) -> serde_json::Value {
    let (line, took) = serve
        .wait_log(Duration::from_secs(15), |l| l["message"] == "TLS certificates loaded")
        .expect("serve reloads its certificates");
    eprintln!("certificates reloaded {} ms after the CLI returned", took.as_millis());
    line
}

/// The listeners serve an imported certificate by SNI, on every SMTP port, without a restart.
#[test]
fn an_imported_certificate_is_served_by_sni_without_restart_sqlite() {
    served_by_sni_without_restart(&TestDb::sqlite());
}

/// The same over Postgres, where the CLI's change reaches `serve` by LISTEN/NOTIFY.
#[tokio::test(flavor = "multi_thread")]
async fn an_imported_certificate_is_served_by_sni_without_restart_postgres() {
    let test = "certs::an_imported_certificate_is_served_by_sni_without_restart_postgres";
    let Some(db) = TestDb::postgres(test).await else { return };
    tokio::task::spawn_blocking(move || served_by_sni_without_restart(&db)).await.unwrap();
}

fn served_by_sni_without_restart(db: &TestDb) {
    let setup = Setup::new(&db.database);
    let serve = setup.serve();
    let pid = serve.child.id();
    let ca = TestCa::new("Postern e2e CA");
    let trusting_ca = client_config(&ca.der());
    let (smtp, submission, submissions) =
        (serve.listeners["smtp"], serve.listeners["submission"], serve.listeners["submissions"]);

    // Before: the self-signed certificate, which a client trusting only the CA refuses.
    let err = implicit_tls(submissions, trusting_ca.clone(), "mx.other.example").unwrap_err();
    assert!(err.contains("UnknownIssuer") || err.contains("certificate"), "{err}");

    // A certificate for another name than the host name, imported while serve runs.
    let (chain, key) = ca.issue_now(&["mx.other.example", "smtp.other.example"]);
    let dir = setup.dir.path();
    let (cert_file, key_file) = (write(dir, "other.crt", &chain), write(dir, "other.key", &key));
    let out = setup.ok(&["cert", "import", "--cert", &cert_file, "--key", &key_file]);
    assert!(out.contains("stored certificate 1 for mx.other.example smtp.other.example"), "{out}");
    let line = loaded(&serve);
    assert_eq!(line["certificates"], "[1]", "{line}");

    let expected = CertificateDer::from_pem_slice_first(&chain);
    for (port, how) in [(submissions, "465"), (submission, "587"), (smtp, "25")] {
        let got = if how == "465" {
            implicit_tls(port, trusting_ca.clone(), "smtp.other.example")
        } else {
            starttls(port, trusting_ca.clone(), "smtp.other.example")
        }
        .unwrap_or_else(|e| panic!("port {how}: {e}"));
        assert_eq!(got[0], expected, "port {how} serves the imported leaf");
        assert_eq!(got.len(), 2, "port {how} sends the chain");
    }
    // Another name still gets the self-signed host certificate.
    let err = starttls(submission, trusting_ca.clone(), "mail.example.test").unwrap_err();
    assert!(err.contains("UnknownIssuer") || err.contains("certificate"), "{err}");

    // Then the host name's, which also becomes what clients without a match get.
    let (host_chain, host_key) = ca.issue_now(&["mail.example.test"]);
    let out = setup.ok(&[
        "cert",
        "import",
        "--cert",
        &write(dir, "host.crt", &host_chain),
        "--key",
        &write(dir, "host.key", &host_key),
    ]);
    assert!(out.contains("stored certificate 2"), "{out}");
    loaded(&serve);
    let host_leaf = CertificateDer::from_pem_slice_first(&host_chain);
    assert_eq!(
        starttls(submission, trusting_ca.clone(), "mail.example.test").unwrap()[0],
        host_leaf
    );
    assert_eq!(
        implicit_tls(submissions, trusting_ca.clone(), "mail.example.test").unwrap()[0],
        host_leaf
    );
    // A name nothing covers gets the host name's certificate (which the client then refuses).
    let err = implicit_tls(submissions, trusting_ca.clone(), "unknown.example").unwrap_err();
    assert!(err.contains("only valid for DnsName(\"mail.example.test\")"), "{err}");

    let list = setup.ok(&["cert", "list"]);
    assert!(
        list.contains("mx.other.example smtp.other.example") && list.contains("upload"),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&setup.ok(&["cert", "list", "--json"])).unwrap();
    assert_eq!(json["certificates"].as_array().unwrap().len(), 2);
    assert!(!json.to_string().contains("PRIVATE"), "no key in the listing");

    // Removed: that name gets the host name's certificate again.
    setup.ok(&["cert", "remove", "1"]);
    loaded(&serve);
    let err = implicit_tls(submissions, trusting_ca.clone(), "smtp.other.example").unwrap_err();
    assert!(err.contains("only valid for DnsName(\"mail.example.test\")"), "{err}");
    assert_eq!(serve.child.id(), pid, "no restart");
}

/// A key that is not the certificate's is refused, saying so, and nothing is stored.
#[test]
fn an_import_with_a_key_that_does_not_match_is_refused() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let ca = TestCa::new("Postern e2e CA");
    let (chain, _) = ca.issue_now(&["mail.example.test"]);
    let (_, other_key) = ca.issue_now(&["mail.example.test"]);
    let dir = setup.dir.path();
    let err = setup.fails(&[
        "cert",
        "import",
        "--cert",
        &write(dir, "a.crt", &chain),
        "--key",
        &write(dir, "b.key", &other_key),
    ]);
    assert!(err.contains("the private key does not match the certificate"), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&setup.ok(&["cert", "list", "--json"])).unwrap();
    assert!(json["certificates"].as_array().unwrap().is_empty());

    let err = setup.fails(&["cert", "order", "mail.example.test"]);
    assert!(err.contains("ACME is off: add an [acme] section"), "{err}");
}

trait FirstPem {
    fn from_pem_slice_first(pem: &str) -> CertificateDer<'static>;
}

impl FirstPem for CertificateDer<'static> {
    fn from_pem_slice_first(pem: &str) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::pem_slice_iter(pem.as_bytes()).next().unwrap().unwrap()
    }
}

/// The MTA-STS policy of a domain is served over HTTPS for `mta-sts.<domain>` with that name's
/// certificate, and reads back through the policy parser delivery uses (RFC 8461 §3.2).
#[test]
fn the_mta_sts_policy_is_served_over_https_and_verifies() {
    use postern_server::delivery::mta_sts::policy::{Mode, parse, txt_id};

    let db = TestDb::sqlite();
    let mut setup = Setup::new(&db.database);
    setup.env.push(("POSTERN_CONSOLE_TLS_LISTEN".into(), "127.0.0.1:0".into()));
    let serve = setup.serve();
    let https: SocketAddr = serve
        .stdout
        .iter()
        .find_map(|line| line.trim().strip_prefix("console-tls"))
        .expect("a console-tls line")
        .trim()
        .parse()
        .unwrap();

    setup.ok(&["domain", "add", "example.org"]);
    let out = setup.ok(&[
        "domain",
        "mta-sts",
        "example.org",
        "--mode",
        "enforce",
        "--max-age",
        "86400",
        "--mx",
        "mail.example.test",
    ]);
    let txt = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("_mta-sts.example.org. TXT "))
        .unwrap_or_else(|| panic!("the TXT record to publish: {out}"))
        .trim_matches('"')
        .to_string();
    assert!(
        out.contains(
            "_smtp._tls.example.org. TXT \"v=TLSRPTv1; rua=mailto:postmaster@example.org\""
        ),
        "{out}"
    );

    let ca = TestCa::new("Postern MTA-STS CA");
    let (chain, key) = ca.issue_now(&["mta-sts.example.org"]);
    let dir = setup.dir.path();
    setup.ok(&[
        "cert",
        "import",
        "--cert",
        &write(dir, "sts.crt", &chain),
        "--key",
        &write(dir, "sts.key", &key),
    ]);
    loaded(&serve);

    // As a sending MTA fetches it (§3.3): HTTPS, SNI and Host mta-sts.<domain>, a certificate
    // valid for that name.
    let tcp = connect(https);
    let name = ServerName::try_from("mta-sts.example.org").unwrap();
    let conn = rustls::ClientConnection::new(client_config(&ca.der()), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(
        b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.org\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = Vec::new();
    // The server may close without close_notify once the reply is sent.
    let _ = std::io::Read::read_to_end(&mut tls, &mut reply);
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain"), "{head}");
    let policy = parse(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert_eq!(policy.mode, Mode::Enforce);
    assert_eq!(policy.mx, ["mail.example.test"]);
    assert_eq!(policy.max_age, Duration::from_secs(86_400));
    assert!(policy.allows("mail.example.test"));
    let id = txt_id(std::slice::from_ref(&txt)).unwrap();

    // A changed policy gets a new id.
    let out = setup.ok(&["domain", "mta-sts", "example.org", "--mode", "testing"]);
    assert!(!out.contains(&txt) && out.contains("v=STSv1; id="), "{out}");
    assert!(!out.contains(&id));
}
