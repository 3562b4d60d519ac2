//! Real milters from Debian in the SMTP session: OpenDKIM signing what passes through Postern,
//! and clamav-milter with clamd and a signature database built here (`sigtool --md5` of the
//! EICAR file) refusing EICAR while clean mail passes. Each skips, saying so, when its programs
//! are missing (and fails with POSTERN_TEST_REQUIRE_PEERS=1).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use postern_store::model::{MilterAddress, MilterDefault};
use postern_store::testing::missing_peer;

use super::*;
use postern_store::testing::free_port;

/// A child process killed when the test ends, whichever way it ends.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(program: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().any(|d| Path::new(d).join(program).exists())
}

fn spawn(program: &str, args: &[&str], log: &Path) -> Peer {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    Peer(child)
}

/// Waits (up to 30 s) until `ready` holds, or panics with the peer's log when it exits first.
async fn wait_until(peer: &mut Peer, log: &Path, what: &str, ready: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !ready() {
        if let Ok(Some(status)) = peer.0.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited ({status}) before it was ready:\n{text}");
        }
        if start.elapsed() > Duration::from_secs(30) {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} not ready after 30 s:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn listening(port: u16) -> impl Fn() -> bool {
    move || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[tokio::test]
async fn opendkim_signs_what_passes_through() {
    const TEST: &str = "opendkim_signs_what_passes_through";
    if !have("opendkim") || !have("opendkim-genkey") {
        return missing_peer(TEST, "opendkim or opendkim-genkey is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let status = Command::new("opendkim-genkey")
        .args(["-D", d.to_str().unwrap(), "-d", "example.test", "-s", "sel", "-b", "1024"])
        .status()
        .unwrap();
    assert!(status.success());
    let port = free_port();
    let config = d.join("opendkim.conf");
    std::fs::write(
        &config,
        format!(
            "Syslog no\nMode s\nDomain example.test\nSelector sel\nKeyFile {}/sel.private\n\
             Socket inet:{port}@127.0.0.1\nInternalHosts 192.0.2.0/24\nRequireSafeKeys false\n\
             Canonicalization relaxed/relaxed\nPidFile {}/opendkim.pid\n",
            d.display(),
            d.display()
        ),
    )
    .unwrap();
    let log = d.join("opendkim.log");
    let mut peer = spawn("opendkim", &["-f", "-l", "-x", config.to_str().unwrap()], &log);
    wait_until(&mut peer, &log, "opendkim", listening(port)).await;

    let server = Server::new().await;
    let address = MilterAddress::Inet { host: "127.0.0.1".into(), port };
    server.add_milter("opendkim", &address, MilterDefault::Tempfail).await;
    // 192.0.2.9 is an internal host for OpenDKIM, not a trusted network for us (so our own
    // signer stays out of it).
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.9").await;
    c.expect("EHLO app.example.test", "250").await;
    let body = "From: App <app@example.test>\r\nTo: ann@example.test\r\nSubject: signed\r\n\
                Date: Mon, 7 Dec 2026 05:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\n\
                Hello from a milter test.\r\n";
    let reply = c.mail("app@example.test", &["ann@example.test"], body).await;
    assert!(reply.starts_with("250"), "{reply}");
    let m = &server.accepted()[0];
    let text = String::from_utf8_lossy(&m.body);
    let signature = text
        .split("\r\n")
        .find(|l| l.starts_with("DKIM-Signature:"))
        .unwrap_or_else(|| panic!("no DKIM-Signature from opendkim:\n{text}"));
    assert!(signature.contains("d=example.test") && signature.contains("s=sel"), "{signature}");
    assert!(m.note.as_deref().unwrap_or("").contains("milter opendkim: added DKIM-Signature"));

    // Checked with dkimpy against the generated public key, when it is installed.
    let dkimpy = Path::new("/usr/lib/python3/dist-packages/dkim/__init__.py").exists();
    if dkimpy {
        let record = std::fs::read_to_string(d.join("sel.txt")).unwrap();
        let p = record.split('"').skip(1).step_by(2).collect::<String>();
        let message = d.join("message.eml");
        std::fs::write(&message, &m.body).unwrap();
        let script = format!(
            "import dkim,sys\nrec={p:?}.encode()\n\
             ok=dkim.verify(open({:?},'rb').read(), dnsfunc=lambda n, timeout=5: rec)\n\
             sys.exit(0 if ok else 1)\n",
            message.display()
        );
        let ok = Command::new("/usr/bin/python3").arg("-c").arg(script).status().unwrap();
        assert!(ok.success(), "dkimpy does not verify opendkim's signature:\n{text}");
    }
}

const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

#[tokio::test]
async fn clamav_milter_refuses_eicar_and_passes_clean_mail() {
    const TEST: &str = "clamav_milter_refuses_eicar_and_passes_clean_mail";
    if !have("clamd") || !have("clamav-milter") || !have("sigtool") {
        return missing_peer(TEST, "clamd, clamav-milter or sigtool is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("db");
    std::fs::create_dir(&db).unwrap();
    let eicar = d.join("eicar.txt");
    std::fs::write(&eicar, EICAR).unwrap();
    let hdb = Command::new("sigtool").arg("--md5").arg(&eicar).output().unwrap();
    assert!(hdb.status.success());
    std::fs::write(db.join("test.hdb"), &hdb.stdout).unwrap();
    let socket = d.join("clamd.sock");
    let clamd_conf = d.join("clamd.conf");
    std::fs::write(
        &clamd_conf,
        format!(
            "Foreground yes\nLocalSocket {}\nDatabaseDirectory {}\nLogFile {}/clamd.log\n\
             PidFile {}/clamd.pid\nTemporaryDirectory {}\n",
            socket.display(),
            db.display(),
            d.display(),
            d.display(),
            d.display()
        ),
    )
    .unwrap();
    let clamd_log = d.join("clamd.out");
    let mut clamd = spawn("clamd", &["-c", clamd_conf.to_str().unwrap()], &clamd_log);
    let path = socket.clone();
    wait_until(&mut clamd, &clamd_log, "clamd", move || {
        std::os::unix::net::UnixStream::connect(&path).is_ok()
    })
    .await;
    let port = free_port();
    let milter_conf = d.join("clamav-milter.conf");
    std::fs::write(
        &milter_conf,
        format!(
            "Foreground yes\nMilterSocket inet:{port}@127.0.0.1\nClamdSocket unix:{}\n\
             OnInfected Reject\nOnFail Defer\nLogFile {}/milter.log\nPidFile {}/milter.pid\n\
             TemporaryDirectory {}\n",
            socket.display(),
            d.display(),
            d.display(),
            d.display()
        ),
    )
    .unwrap();
    let milter_log = d.join("milter.out");
    let mut milter = spawn("clamav-milter", &["-c", milter_conf.to_str().unwrap()], &milter_log);
    wait_until(&mut milter, &milter_log, "clamav-milter", listening(port)).await;

    let server = Server::new().await;
    let address = MilterAddress::Inet { host: "127.0.0.1".into(), port };
    server.add_milter("clamav", &address, MilterDefault::Tempfail).await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.9").await;
    c.expect("EHLO outside.test", "250").await;
    // The signature is the MD5 of the whole file: it travels as an attachment, as viruses do.
    use base64::Engine as _;
    let attachment = base64::engine::general_purpose::STANDARD.encode(EICAR);
    let infected = format!(
        "From: <x@outside.test>\r\nSubject: test\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
         Content-Type: text/plain\r\n\r\nSee attached.\r\n--b1\r\n\
         Content-Type: application/octet-stream; name=\"eicar.com\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"eicar.com\"\r\n\r\n{attachment}\r\n--b1--\r\n"
    );
    let reply = c.mail("x@outside.test", &["ann@example.test"], &infected).await;
    assert!(reply.starts_with('5'), "EICAR must be refused: {reply}");
    assert!(server.accepted().is_empty());
    let clean = "From: <x@outside.test>\r\nSubject: clean\r\n\r\nNothing to see here.\r\n";
    let reply = c.mail("x@outside.test", &["ann@example.test"], clean).await;
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(server.accepted().len(), 1);
    drop(milter);
    drop(clamd);
}
