//! What `postern` leaves on disk, as a user runs it: the data directory, the store's files and the
//! secret key are the owner's alone whatever the umask, and a smarthost password is sealed in the
//! database while delivery through the smarthost still authenticates with it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ANN_PASSWORD, Serve, Setup, applied};
use postern_store::testing::TestDb;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `cmd` run with the usual umask, 022, whatever the test's own.
fn with_umask_022(mut cmd: Command) -> Command {
    // SAFETY: only umask between fork and exec, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    cmd
}

fn assert_private(data: &Path) {
    assert_eq!(mode(data), 0o700, "the data directory");
    for file in ["postern.db", "postern.db-wal", "postern.db-shm", "secret.key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert_eq!(std::fs::metadata(data.join("secret.key")).unwrap().len(), 32);
    assert_eq!(mode(&data.join("tls")), 0o700, "the certificate directory");
    assert_eq!(mode(&data.join("tls/mail.example.test.key")), 0o600, "the TLS key");
}

#[test]
fn serve_keeps_a_fresh_data_directory_private() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let _serve = Serve::start(with_umask_022(setup.command(&["serve"])));
    assert_private(&setup.dir.path().join("data"));
}

#[test]
fn the_cli_on_a_fresh_data_directory_keeps_it_private() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let out = with_umask_022(setup.command(&["domain", "add", "example.test"])).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let data = setup.dir.path().join("data");
    assert_eq!(mode(&data), 0o700);
    assert_eq!((mode(&data.join("postern.db")), mode(&data.join("secret.key"))), (0o600, 0o600));
}

/// A data directory and database left open by an earlier version are tightened, and the
/// change is logged.
#[test]
fn serve_tightens_what_an_earlier_version_left_open() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let data = setup.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("postern.db"), b"").unwrap();
    std::fs::set_permissions(data.join("postern.db"), std::fs::Permissions::from_mode(0o644))
        .unwrap();
    let serve = Serve::start(with_umask_022(setup.command(&["serve"])));
    assert_private(&data);
    let tightened = |l: &serde_json::Value| {
        l["message"].as_str().is_some_and(|m| m.contains("tightened"))
            && l["from"] == "0755"
            && l["path"].as_str().is_some_and(|p| p.ends_with("data"))
    };
    serve.wait_log(Duration::from_secs(5), tightened).expect("a log line saying so");
}

/// Reads one SMTP reply and checks its code.
fn expect(reader: &mut BufReader<TcpStream>, code: &str) {
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
        if line.as_bytes().get(3) != Some(&b'-') {
            return;
        }
    }
}

/// Sends one message over plain SMTP.
fn send(addr: SocketAddr, from: &str, to: &str, subject: &str) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut say = |line: &str, reader: &mut BufReader<TcpStream>, code: &str| {
        writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        expect(reader, code);
    };
    expect(&mut reader, "220");
    say("EHLO client.example.test", &mut reader, "250");
    say(&format!("MAIL FROM:<{from}>"), &mut reader, "250");
    say(&format!("RCPT TO:<{to}>"), &mut reader, "250");
    say("DATA", &mut reader, "354");
    say(
        &format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nhello\r\n."),
        &mut reader,
        "250",
    );
    say("QUIT", &mut reader, "221");
}

/// Waits until `maildir/new` holds `count` messages, and returns them.
fn wait_for_mail(maildir: &Path, count: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let mail: Vec<String> = std::fs::read_dir(maildir.join("new"))
            .map(|d| d.flatten().map(|e| std::fs::read_to_string(e.path()).unwrap()).collect())
            .unwrap_or_default();
        if mail.len() >= count || start.elapsed() > Duration::from_secs(15) {
            return mail;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `postern transport set --auth-user` stores the smarthost password sealed: no byte of the
/// database files holds it in clear. The running server, and a server started afresh from the
/// files, still log in to the smarthost with it.
#[test]
fn a_smarthost_password_is_sealed_at_rest_and_still_used() {
    let (db_a, db_b) = (TestDb::sqlite(), TestDb::sqlite());
    let (relay, smarthost) = (Setup::new(&db_a.database), Setup::new(&db_b.database));

    // The smarthost: another Postern, where ann must log in on the submission port.
    let upstream = smarthost.serve_with_ann();
    let maildir = smarthost.ann_maildir();

    let serve = relay.serve();
    let next_hop = format!("smtp:[127.0.0.1]:{}", upstream.listeners["submission"].port());
    let args = ["transport", "set", "*", &next_hop, "--tls", "encrypt"];
    let out = relay.run(
        &[&args[..], &["--auth-user", "ann@example.test"]].concat(),
        &format!("{ANN_PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serve
        .wait_log(Duration::from_secs(5), |l| applied(l) && l["transports"] == 1)
        .expect("the transport is live");

    let data = relay.dir.path().join("data");
    let mut stored = Vec::new();
    for file in ["postern.db", "postern.db-wal"] {
        stored.extend(std::fs::read(data.join(file)).unwrap_or_default());
    }
    assert!(contains(&stored, b"sealed:v1:"), "the row holds a sealed value");
    assert!(
        !contains(&stored, ANN_PASSWORD.as_bytes()),
        "the password is in the database in clear"
    );

    // 127.0.0.1 is a trusted network of the relay; the smarthost lets ann send as herself only.
    send(serve.listeners["smtp"], "ann@example.test", "ann@example.test", "first");
    let mail = wait_for_mail(&maildir, 1);
    assert_eq!(mail.len(), 1, "the smarthost delivered it");
    assert!(mail[0].contains("(authenticated as ann@example.test)"), "{}", mail[0]);

    // A restart opens the sealed password with the key file.
    drop(serve);
    let serve = relay.serve();
    serve.wait_log(Duration::from_secs(5), applied).expect("the configuration is applied");
    send(serve.listeners["smtp"], "ann@example.test", "ann@example.test", "second");
    let mail = wait_for_mail(&maildir, 2);
    assert_eq!(mail.len(), 2, "the smarthost delivered the second one after a restart");
    assert!(mail.iter().all(|m| m.contains("(authenticated as ann@example.test)")));

    // Without the key file, the relay refuses to start rather than log in with nothing.
    drop(serve);
    std::fs::rename(data.join("secret.key"), relay.dir.path().join("moved.key")).unwrap();
    let err = relay.fails(&["serve"]);
    assert!(err.contains("secret.key") && err.contains("is missing"), "{err}");
    let check = relay.run(&["config", "check"], "");
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success() && report.contains("restore the key file"), "{report}");
    assert!(!data.join("secret.key").exists(), "no new key replaces the lost one");
}
