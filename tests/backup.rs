//! Backup and restore end to end (issue 18): a backup taken while 20 SMTP sessions send,
//! restored into a new data directory, gives an appliance that starts and works, with every
//! message acknowledged before the backup either delivered there (the Maildirs come along) or in
//! its queue, and the same configuration. On SQLite, and from Postgres into a fresh schema.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Serve, Setup, applied};
use postern_store::Database;
use postern_store::testing::TestDb;

const PASSWORD: &str = "correct horse battery";
const SESSIONS: usize = 20;
const PER_SESSION: usize = 6;

struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    fn connect(addr: SocketAddr) -> Smtp {
        let stream = TcpStream::connect(addr).expect("connect to serve");
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut smtp = Smtp { reader: BufReader::new(stream), writer };
        let greeting = smtp.reply();
        assert!(greeting.starts_with("220"), "{greeting}");
        smtp
    }

    fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).expect("a reply") == 0 {
                return lines.join("\n");
            }
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.reply()
    }
}

/// A message carrying `marker`; every fifth one large enough for the spool (64 KiB and over).
fn message(marker: &str, large: bool) -> Vec<u8> {
    let mut body = format!("Subject: {marker}\r\n\r\n").into_bytes();
    let lines = if large { 2000 } else { 3 };
    for i in 0..lines {
        body.extend_from_slice(format!("{marker} line {i} of the body\r\n").as_bytes());
    }
    body.extend_from_slice(b".\r\n");
    body
}

/// Sends one message; its queue ID if the server said `250`.
fn send(smtp: &mut Smtp, to: &str, marker: &str, large: bool) -> Option<String> {
    if !smtp.cmd("MAIL FROM:<sender@client.test>").starts_with("250") {
        return None;
    }
    if !smtp.cmd(&format!("RCPT TO:<{to}>")).starts_with("250") {
        let _ = smtp.cmd("RSET");
        return None;
    }
    if !smtp.cmd("DATA").starts_with("354") {
        return None;
    }
    smtp.writer.write_all(&message(marker, large)).unwrap();
    let reply = smtp.reply();
    reply.strip_prefix("250 2.0.0 Ok: queued as ").map(|id| id.trim().to_string())
}

/// Every text in ann's Maildir under `data`.
fn ann_mail(data: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(dir) = std::fs::read_dir(data.join("mail/example.test/ann").join(sub)) else {
            continue;
        };
        for entry in dir.flatten() {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(entry.path()) {
                let _ = f.read_to_string(&mut text);
            }
            all.push(text);
        }
    }
    all
}

fn queued_ids(setup: &Setup) -> BTreeSet<String> {
    let list: serde_json::Value =
        serde_json::from_str(&setup.ok(&["queue", "list", "--json", "--limit", "10000"])).unwrap();
    list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// The configuration as the CLI lists it.
fn configuration(setup: &Setup) -> Vec<String> {
    ["domain", "mailbox", "alias", "transport", "network", "token"]
        .iter()
        .map(|what| setup.ok(&[what, "list"]))
        .collect()
}

fn configure(setup: &Setup, serve: &Serve) {
    setup.ok(&["domain", "add", "example.test"]);
    let out = setup.run(&["mailbox", "add", "ann@example.test"], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    setup.ok(&["alias", "add", "info@example.test", "ann@example.test"]);
    setup.ok(&["network", "add", "127.0.0.0/8"]);
    // A next hop that refuses connections: mail for remote.test stays queued.
    setup.ok(&["transport", "set", "remote.test", "smtp:[127.0.0.1]:1", "--tls", "none"]);
    setup.ok(&["token", "create", "--owner", "admin", "--name", "backup-test"]);
    serve
        .wait_log(Duration::from_secs(30), |l| applied(l) && l["transports"] == 1)
        .expect("the configuration is live");
}

fn backup_while_sending(source: &Database, target: &Database) {
    let setup = Setup::new(source);
    let mut serve = setup.serve();
    configure(&setup, &serve);
    let smtp = serve.listeners["smtp"];

    // (queue ID, marker, acknowledged at) of every 250.
    let acked: Arc<Mutex<Vec<(String, String, Instant)>>> = Default::default();
    let senders: Vec<_> = (0..SESSIONS)
        .map(|s| {
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut client = Smtp::connect(smtp);
                assert!(client.cmd("EHLO client.test").starts_with("250"));
                for m in 0..PER_SESSION {
                    let marker = format!("backup-marker-{s}-{m}");
                    let to = if m % 2 == 0 { "ann@example.test" } else { "someone@remote.test" };
                    if let Some(id) = send(&mut client, to, &marker, m % 5 == 4) {
                        acked.lock().unwrap().push((id, marker, Instant::now()));
                    }
                }
                let _ = client.cmd("QUIT");
            })
        })
        .collect();
    // The backup starts once some messages are in, while the sessions go on sending.
    let start = Instant::now();
    while acked.lock().unwrap().len() < SESSIONS && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let backup_started = Instant::now();
    let file = setup.dir.path().join("backup.tar.gz");
    let file_arg = file.to_str().unwrap();
    let out = setup.ok(&["backup", file_arg, "--with-spool", "--with-maildirs"]);
    assert!(out.contains("backup written"), "{out}");
    for sender in senders {
        sender.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let before: Vec<_> = acked.iter().filter(|(_, _, at)| *at < backup_started).collect();
    assert!(before.len() >= SESSIONS, "{} messages acknowledged before the backup", before.len());
    assert!(acked.len() > before.len(), "no message was acknowledged during the backup");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup holds the secret key");
    }
    let config = configuration(&setup);
    assert_eq!(serve.terminate().code(), Some(0));

    // Restore into a new data directory (and database).
    let restored = Setup::new(target);
    let out = restored.ok(&["restore", file_arg]);
    assert!(out.contains("restored"), "{out}");
    // A second restore into what is now in use is refused, and changes nothing.
    let err = restored.fails(&["restore", file_arg]);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(configuration(&restored), config, "the same configuration");

    let queue = queued_ids(&restored);
    let mail = ann_mail(&restored.dir.path().join("data"));
    for (id, marker, _) in &before {
        let delivered = mail.iter().any(|m| m.contains(marker.as_str()));
        assert!(
            delivered || queue.contains(id),
            "{marker} ({id}) was acknowledged before the backup and is neither delivered nor queued"
        );
    }
    // Remote mail could not leave: all of it acknowledged before the backup is queued.
    for (id, marker, _) in before.iter().filter(|(_, m, _)| m.ends_with(['1', '3', '5'])) {
        assert!(queue.contains(id), "{marker} ({id}) is not in the restored queue");
    }

    // The restored appliance starts and works.
    let serve = restored.serve();
    let mut client = Smtp::connect(serve.listeners["smtp"]);
    assert!(client.cmd("EHLO client.test").starts_with("250"));
    assert!(send(&mut client, "info@example.test", "after-restore", false).is_some());
    let data = restored.dir.path().join("data");
    let start = Instant::now();
    while !ann_mail(&data).iter().any(|m| m.contains("after-restore")) {
        assert!(start.elapsed() < Duration::from_secs(30), "no delivery after the restore");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_backup_taken_while_sessions_send_restores_on_sqlite() {
    let source = TestDb::sqlite();
    let target = TestDb::sqlite();
    backup_while_sending(&source.database, &target.database);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_while_sessions_send_restores_on_postgres() {
    let test = "backup::a_backup_taken_while_sessions_send_restores_on_postgres";
    let Some(source) = TestDb::postgres(test).await else { return };
    let Some(target) = TestDb::postgres(test).await else { return };
    tokio::task::spawn_blocking(move || {
        backup_while_sending(&source.database, &target.database);
        drop((source, target));
    })
    .await
    .unwrap();
}

#[test]
fn restore_refuses_a_data_directory_that_is_not_empty() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    setup.ok(&["domain", "add", "example.test"]);
    let file = setup.dir.path().join("b.tar.gz");
    setup.ok(&["backup", file.to_str().unwrap()]);
    let err = setup.fails(&["backup", file.to_str().unwrap()]);
    assert!(err.contains("exists already"), "{err}");

    let other = Setup::new(&TestDb::sqlite().database);
    std::fs::create_dir_all(other.dir.path().join("data")).unwrap();
    std::fs::write(other.dir.path().join("data/keep-me"), b"mine").unwrap();
    let err = other.fails(&["restore", file.to_str().unwrap()]);
    assert!(err.contains("is not empty") && err.contains("keep-me"), "{err}");
    assert_eq!(std::fs::read(other.dir.path().join("data/keep-me")).unwrap(), b"mine");
    assert!(!other.dir.path().join("data/secret.key").exists());
}

/// The Postgres dump loads into SQLite too: a way from one backend to the other.
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_backup_restores_into_sqlite() {
    let test = "backup::a_postgres_backup_restores_into_sqlite";
    let Some(source) = TestDb::postgres(test).await else { return };
    let target = TestDb::sqlite();
    tokio::task::spawn_blocking(move || {
        backup_while_sending(&source.database, &target.database);
        drop((source, target));
    })
    .await
    .unwrap();
}

/// The scheduled backup inside `serve`: set with the CLI (`backup schedule`), the first one is
/// due at once (none has run), so `serve` takes it as it starts; the file appears in the
/// directory, the retention count removes the oldest files there, the result is in
/// `GET /api/v1/backups` (the dashboard's source), and the file restores. The interval itself
/// (at least 300 s) is run on a simulated clock in `src/backup/schedule.rs`'s tests.
#[test]
fn serve_takes_the_scheduled_backup_and_keeps_the_newest() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    setup.ok(&["domain", "add", "example.test"]);
    let dir = setup.dir.path().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    // Two older scheduled backups and a file of the administrator's own.
    for old in ["postern-20240101T000000Z.tar.gz", "postern-20250101T000000Z.tar.gz"] {
        std::fs::write(dir.join(old), b"old").unwrap();
    }
    std::fs::write(dir.join("keep-me.tar.gz"), b"mine").unwrap();
    let directory = dir.to_str().unwrap();
    let out = setup.ok(&[
        "backup",
        "schedule",
        "--directory",
        directory,
        "--interval",
        "3600",
        "--retention",
        "2",
    ]);
    assert!(out.contains(directory), "{out}");

    let serve = setup.serve();
    let console = serve.listeners["console"];

    // Its result, through the API the dashboard's tile reads.
    let bearer = setup.ok(&["token", "create", "--owner", "admin", "--name", "backup test"]);
    let start = Instant::now();
    let last = loop {
        let mut stream = TcpStream::connect(console).unwrap();
        write!(
            stream,
            "GET /api/v1/backups HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
             Connection: close\r\n\r\n",
            bearer.trim()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        let (s, e) = (body.find('{').unwrap_or(0), body.rfind('}').map_or(0, |e| e + 1));
        let view: serde_json::Value = serde_json::from_str(&body[s..e]).unwrap_or_default();
        if !view["last"].is_null() {
            break view["last"].clone();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no result recorded: {response}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(last["error"].is_null(), "{last}");
    // Recorded once the file is written and the old ones pruned.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // The new one and the newest old one are kept; the oldest is gone; other files stay.
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"postern-20250101T000000Z.tar.gz".to_string()), "{names:?}");
    assert!(names.contains(&"keep-me.tar.gz".to_string()), "{names:?}");
    let new = names
        .iter()
        .find(|n| n.starts_with("postern-") && !n.starts_with("postern-2025"))
        .unwrap()
        .clone();
    assert_eq!(last["file"].as_str().unwrap(), dir.join(&new).to_str().unwrap());
    assert_eq!(last["size"].as_u64().unwrap(), std::fs::metadata(dir.join(&new)).unwrap().len());
    drop(serve);

    // And it restores: the configuration is there.
    let other = Setup::new(&TestDb::sqlite().database);
    other.ok(&["restore", dir.join(&new).to_str().unwrap()]);
    assert!(other.ok(&["domain", "list"]).contains("example.test"));
}
