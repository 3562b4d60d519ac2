//! Mailboxes from a directory: a real OpenLDAP `slapd`, started by the test with its own
//! configuration and database on a loopback port, attached to a domain with
//! `postern directory set`. Its users receive mail (by `mail` and by AD-style `proxyAddresses`),
//! sign in on 587 with their directory password, and a stopped directory gives temporary
//! errors, never "unknown user". On both stores; StartTLS and LDAPS with a test CA.
//!
//! Needs the Debian packages `slapd` and `ldap-utils` (for `slapadd`), and `swaks`.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Setup;
use postern_store::testing::free_port;
use postern_store::testing::{TestDb, missing_peer};

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const SUFFIX: &str = "dc=corp,dc=test";
const SERVICE_DN: &str = "cn=postern,dc=corp,dc=test";
const SERVICE_PW: &str = "service-secret";
const ANN_PW: &str = "ann-directory-pw";

/// proxyAddresses as Active Directory defines it (case-insensitive), for OpenLDAP, with an
/// auxiliary class that allows it.
const AD_SCHEMA: &str = "\
attributetype ( 1.2.840.113556.1.2.210 NAME 'proxyAddresses' EQUALITY caseIgnoreMatch \
SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n\
objectclass ( 1.3.6.1.4.1.99999.1.1 NAME 'posternTestMailUser' SUP top AUXILIARY \
MAY ( proxyAddresses ) )\n";

const USERS: &str = "\
dn: dc=corp,dc=test\nobjectClass: dcObject\nobjectClass: organization\ndc: corp\no: Corp\n\n\
dn: ou=people,dc=corp,dc=test\nobjectClass: organizationalUnit\nou: people\n\n\
dn: cn=postern,dc=corp,dc=test\nobjectClass: simpleSecurityObject\n\
objectClass: organizationalRole\ncn: postern\nuserPassword: service-secret\n\n\
dn: uid=ann,ou=people,dc=corp,dc=test\nobjectClass: inetOrgPerson\n\
objectClass: posternTestMailUser\nuid: ann\ncn: Ann\nsn: Example\nmail: ann@corp.test\n\
proxyAddresses: SMTP:ann@corp.test\nproxyAddresses: smtp:sales@corp.test\n\
proxyAddresses: X500:/o=corp/cn=ann\nuserPassword: ann-directory-pw\n\n\
dn: uid=bob,ou=people,dc=corp,dc=test\nobjectClass: inetOrgPerson\nuid: bob\ncn: Bob\n\
sn: Example\nmail: bob@corp.test\nuserPassword: bob-directory-pw\n";

struct Slapd {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl Slapd {
    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default()
    }

    /// Stops the server and waits until its port refuses connections.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(start.elapsed() < Duration::from_secs(10), "slapd did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Files for slapd's TLS: the certificate chain and the key, and the CA that signed them.
struct TestCa {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

fn test_ca(dir: &Path) -> TestCa {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "Postern test CA for slapd");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
    let mut leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = leaf.signed_by(&leaf_key, &ca).unwrap();
    let cert = dir.join("slapd.crt");
    let key = dir.join("slapd.key");
    std::fs::write(&cert, format!("{}{}", leaf.pem(), ca.pem())).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    TestCa { ca_pem: ca.pem(), cert, key }
}

/// slapd with an mdb database holding [`USERS`], listening on `ldap://` (and `ldaps://` on
/// `ldaps` when given, with `tls`'s certificate, which StartTLS uses too).
fn slapd(test: &str, base: &Path, tls: Option<&TestCa>, ldaps: Option<u16>) -> Option<Slapd> {
    if !Path::new(SLAPD).exists() || !Path::new(SLAPADD).exists() {
        missing_peer(test, "slapd is not installed (Debian packages slapd ldap-utils)");
        return None;
    }
    let dir = base.join("slapd");
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::write(dir.join("ad.schema"), AD_SCHEMA).unwrap();
    std::fs::write(dir.join("users.ldif"), USERS).unwrap();
    let d = dir.display();
    let tls_lines = tls.map_or(String::new(), |t| {
        format!(
            "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
            t.cert.display(),
            t.key.display()
        )
    });
    let conf = format!(
        "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
         include /etc/ldap/schema/inetorgperson.schema\ninclude {d}/ad.schema\n\
         pidfile {d}/slapd.pid\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n{tls_lines}\
         database mdb\nmaxsize 10485760\nsuffix \"{SUFFIX}\"\n\
         rootdn \"cn=admin,{SUFFIX}\"\nrootpw admin-secret\ndirectory {d}/db\n"
    );
    let conf_path = dir.join("slapd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let out = Command::new(SLAPADD)
        .arg("-f")
        .arg(&conf_path)
        .arg("-l")
        .arg(dir.join("users.ldif"))
        .output()
        .unwrap();
    assert!(out.status.success(), "slapadd: {}", String::from_utf8_lossy(&out.stderr));
    let port = free_port();
    let mut urls = format!("ldap://127.0.0.1:{port}/");
    if let Some(p) = ldaps {
        urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
    }
    let log = std::fs::File::create(dir.join("slapd.log")).unwrap();
    // -d keeps it in the foreground, so that it is our child to stop.
    let child = Command::new(SLAPD)
        .arg("-f")
        .arg(&conf_path)
        .args(["-h", &urls, "-d", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut slapd = Slapd { child: Some(child), dir, port };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err()
        || ldaps.is_some_and(|p| TcpStream::connect(("127.0.0.1", p)).is_err())
    {
        if let Some(status) = slapd.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("slapd exited ({status}): {}", slapd.log());
        }
        assert!(start.elapsed() < Duration::from_secs(20), "slapd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(slapd)
}

fn swaks(addr: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(["--server", &addr.ip().to_string(), "--port", &addr.port().to_string()])
        .args(["--timeout", "20", "--tls"])
        .args(args)
        .output()
        .expect("run swaks");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn has_swaks(test: &str) -> bool {
    if Command::new("swaks").arg("--version").output().is_err() {
        missing_peer(test, "swaks is not installed (Debian package swaks)");
        return false;
    }
    true
}

/// Waits until `dir` holds `count` messages.
fn maildir_files(dir: &Path, count: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        if files.len() >= count {
            files.sort();
            return files;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} holds {} messages, not {count}",
            dir.display(),
            files.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn set_directory(s: &Setup, url: &str, extra: &[&str]) -> std::process::Output {
    let args = [
        &[
            "directory",
            "set",
            "corp.test",
            "--url",
            url,
            "--bind-dn",
            SERVICE_DN,
            "--password-stdin",
            "--base-dn",
            SUFFIX,
            "--attributes",
            "mail proxyAddresses",
            "--filter",
            "(objectClass=inetOrgPerson)",
            "--timeout-ms",
            "2000",
        ][..],
        extra,
    ]
    .concat();
    s.run(&args, &format!("{SERVICE_PW}\n"))
}

fn directory_users(db: &TestDb, test: &str) {
    if !has_swaks(test) {
        return;
    }
    let s = Setup::new(&db.database);
    let Some(mut slapd) = slapd(test, s.dir.path(), None, None) else { return };
    s.ok(&["domain", "add", "corp.test"]);
    let out = set_directory(&s, &slapd.url(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The CLI: the settings without the password, the connection test, a lookup.
    let shown = s.ok(&["directory", "show", "corp.test"]);
    assert!(shown.contains(SERVICE_DN) && shown.contains("password set"), "{shown}");
    assert!(!shown.contains(SERVICE_PW), "{shown}");
    let json = s.ok(&["directory", "show", "--json"]);
    assert!(!json.contains(SERVICE_PW) && json.contains("<set>"), "{json}");
    let tested = s.ok(&["directory", "test", "corp.test"]);
    assert!(tested.contains("connected to") && tested.contains(SERVICE_DN), "{tested}");
    let found = s.ok(&["directory", "lookup", "Sales@corp.test"]);
    assert!(found.contains("uid=ann,ou=people,dc=corp,dc=test"), "{found}");
    assert!(found.contains("addresses: ann@corp.test sales@corp.test"), "{found}");
    let out = s.run(&["directory", "lookup", "nobody@corp.test"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no entry"));

    let serve = s.serve();
    let smtp = serve.listeners["smtp"];
    let submission = serve.listeners["submission"];
    let inbox = s.dir.path().join("data/mail/corp.test/ann/new");

    // Mail to the directory user, by `mail` and by an AD-style proxyAddresses alias, lands in
    // the Maildir of its primary address.
    let (ok, text) = swaks(smtp, &["--from", "someone@elsewhere.test", "--to", "ann@corp.test"]);
    assert!(ok && text.contains("250 2.0.0"), "{text}\n{}", slapd.log());
    let (ok, text) = swaks(
        smtp,
        &[
            "--from",
            "someone@elsewhere.test",
            "--to",
            "SALES@corp.test",
            "--header",
            "Subject: alias",
        ],
    );
    assert!(ok && text.contains("250 2.1.5"), "{text}");
    let files = maildir_files(&inbox, 2);
    assert!(files.iter().any(|f| f.contains("Subject: alias")), "{files:?}");
    assert!(files.iter().all(|f| f.contains("Delivered-To: <ann@corp.test>")), "{files:?}");

    // Unknown in the directory: 550 5.1.1.
    let (ok, text) = swaks(smtp, &["--from", "someone@elsewhere.test", "--to", "nobody@corp.test"]);
    assert!(!ok && text.contains("550 5.1.1"), "{text}");

    // AUTH on 587 with the directory password; a wrong one is 535.
    let ann = ["--auth", "PLAIN", "--auth-user", "ann@corp.test", "--from", "ann@corp.test"];
    let (ok, text) = swaks(
        submission,
        &[&ann[..], &["--auth-password", ANN_PW, "--to", "bob@corp.test"]].concat(),
    );
    assert!(ok && text.contains("235 2.7.0") && text.contains("250 2.0.0"), "{text}");
    maildir_files(&s.dir.path().join("data/mail/corp.test/bob/new"), 1);
    let (ok, text) = swaks(
        submission,
        &[&ann[..], &["--auth-password", "wrong", "--to", "bob@corp.test"]].concat(),
    );
    assert!(!ok && text.contains("535 5.7.8"), "{text}");
    // The directory stops: temporary errors only. carol@ was never looked up (the cache holds
    // ann@, sales@, bob@ and nobody@), so its RCPT asks the directory and gets no answer.
    slapd.stop();
    let (ok, text) = swaks(smtp, &["--from", "someone@elsewhere.test", "--to", "carol@corp.test"]);
    assert!(!ok && text.contains("451 4.3.0"), "{text}");
    assert!(!text.contains("550"), "{text}");
    let (ok, text) = swaks(
        submission,
        &[&ann[..], &["--auth-password", ANN_PW, "--to", "bob@corp.test"]].concat(),
    );
    assert!(!ok && text.contains("454 4.7.0"), "{text}");
    assert!(!text.contains("535"), "{text}");
    // What the cache knows still holds meanwhile.
    let (ok, text) = swaks(smtp, &["--from", "someone@elsewhere.test", "--to", "ann@corp.test"]);
    assert!(ok && text.contains("250 2.0.0"), "{text}");
    // The CLI's test says why.
    let err = s.fails(&["directory", "test", "corp.test"]);
    assert!(err.contains("could not be asked"), "{err}");
    drop(serve);
}

#[test]
fn directory_users_sqlite() {
    directory_users(&TestDb::sqlite(), "ldap::directory_users_sqlite");
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_users_postgres() {
    let Some(db) = TestDb::postgres("ldap::directory_users_postgres").await else { return };
    tokio::task::spawn_blocking(move || directory_users(&db, "ldap::directory_users_postgres"))
        .await
        .unwrap();
}

/// StartTLS and LDAPS against a directory whose certificate a test CA signed: trusted with
/// the CA given, refused without it (the system's roots do not know it).
#[test]
fn tls_with_a_private_ca() {
    let test = "ldap::tls_with_a_private_ca";
    let s = Setup::new(&TestDb::sqlite().database);
    let ca = test_ca(s.dir.path());
    let ldaps = free_port();
    let Some(slapd) = slapd(test, s.dir.path(), Some(&ca), Some(ldaps)) else { return };
    let ca_file = s.dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let ca_arg = ca_file.to_str().unwrap();
    s.ok(&["domain", "add", "corp.test"]);

    // StartTLS, trusting the test CA.
    let out = set_directory(&s, &slapd.url(), &["--starttls", "--ca-file", ca_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tested = s.ok(&["directory", "test", "corp.test"]);
    assert!(tested.contains("connected to"), "{tested}\n{}", slapd.log());
    let found = s.ok(&["directory", "lookup", "sales@corp.test"]);
    assert!(found.contains("uid=ann"), "{found}");

    // LDAPS, trusting the test CA.
    let url = format!("ldaps://127.0.0.1:{ldaps}");
    let out = set_directory(&s, &url, &["--ca-file", ca_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tested = s.ok(&["directory", "test", "corp.test"]);
    assert!(tested.contains("connected to"), "{tested}\n{}", slapd.log());

    // Without the CA the certificate is not trusted: the test fails and says so.
    let out = set_directory(&s, &url, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = s.fails(&["directory", "test", "corp.test"]);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
