//! `postern serve` as a user runs it: it starts, says what listens where, follows changes made by
//! other processes, refuses ports it cannot have, and stops on SIGTERM, draining its sessions.

mod common;

use std::time::Duration;

use common::{Setup, applied};
use postern_store::testing::TestDb;

/// `postern domain add` in a second process reaches the running server within a second.
fn cli_change_reaches_running_server(db: &TestDb) {
    let setup = Setup::new(&db.database);
    let serve = setup.serve();
    assert!(serve.stdout[0].starts_with("postern "), "{:?}", serve.stdout);
    assert!(serve.stdout.iter().any(|l| l.contains("self-signed, created now")));
    for name in ["smtp", "submission", "submissions"] {
        assert!(serve.listeners.contains_key(name), "{name} is not listed in {:?}", serve.stdout);
    }
    let (first, _) = serve
        .wait_log(Duration::from_secs(5), applied)
        .expect("the initial configuration is applied");
    assert_eq!(first["domains"], 0);

    setup.ok(&["domain", "add", "example.test"]);
    let (line, took) = serve
        .wait_log(Duration::from_secs(1), |l| applied(l) && l["domains"] == 1)
        .expect("the new domain reaches the running server within a second");
    assert!(line["revision"].as_i64().unwrap() > first["revision"].as_i64().unwrap());
    eprintln!("change visible to the server after {took:?}");

    // A refused change is not applied and leaves the server as it was.
    let err = setup.fails(&["domain", "add", "example.test"]);
    assert!(err.contains("domain example.test already exists"), "{err}");
    assert!(serve.wait_log(Duration::from_millis(500), applied).is_none());
}

#[test]
fn cli_change_reaches_running_server_sqlite() {
    cli_change_reaches_running_server(&TestDb::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_change_reaches_running_server_postgres() {
    let Some(db) = TestDb::postgres("serve::cli_change_reaches_running_server_postgres").await
    else {
        return;
    };
    tokio::task::spawn_blocking(move || cli_change_reaches_running_server(&db)).await.unwrap();
}

#[test]
fn stops_cleanly_on_sigterm() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let mut serve = setup.serve();
    let status = serve.terminate();
    assert!(status.success(), "serve exited with {status} on SIGTERM");
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = setup.command(&["serve"]).env("POSTERN_SUBMISSION_LISTEN", &addr).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen for submission on {addr}")), "{err}");
    assert!(err.contains("another program already listens"), "{err}");
    assert_eq!(err.matches("Address already in use").count(), 1, "the cause is said once: {err}");
    assert!(!setup.dir.path().join("data").exists(), "nothing is created when a port is refused");
}

#[test]
fn a_bad_config_file_names_the_field() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    std::fs::write(setup.config(), "[smtp]\nlisten = [\"localhost:25\"]\n").unwrap();
    let err = setup.fails(&["serve"]);
    assert!(err.contains("smtp.listen = \"localhost:25\": is not a socket address"), "{err}");
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    // Port 1 on loopback: nothing listens there.
    let out = setup
        .command(&["domain", "list"])
        .env("POSTERN_DATABASE", "postgres://postern:hunter2@127.0.0.1:1/postern")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("postgres://postern:***@127.0.0.1:1/postern"), "{err}");
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
}

/// With `[console] tls_listen`, `serve` says where the console listens over HTTPS, and answers
/// there with the appliance's own certificate.
#[test]
fn the_console_is_served_over_https_when_configured() {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let db = TestDb::sqlite();
    let mut setup = Setup::new(&db.database);
    setup.env.push(("POSTERN_CONSOLE_TLS_LISTEN".into(), "127.0.0.1:0".into()));
    let serve = setup.serve();
    let addr: std::net::SocketAddr = serve
        .stdout
        .iter()
        .find_map(|line| line.trim().strip_prefix("console-tls"))
        .unwrap_or_else(|| panic!("no console-tls line in {:?}", serve.stdout))
        .trim()
        .parse()
        .unwrap();

    let cert = setup.dir.path().join("data/tls/mail.example.test.crt");
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(&cert).unwrap() {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("mail.example.test").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /login HTTP/1.1\r\nHost: mail.example.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    // The server may close without close_notify once the reply is sent.
    let _ = tls.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("Sign in"), "{reply}");
}

/// SMTP sessions and console connections each have their own cap; `serve` says so when the
/// open-file limit cannot hold both and a reserve.
#[test]
fn serve_warns_when_the_file_limit_cannot_hold_smtp_and_the_console() {
    use std::os::unix::process::CommandExt;
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let mut cmd = setup.command(&["serve"]);
    // SAFETY: only setrlimit between fork and exec, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 4000, rlim_max: 4000 };
            match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let serve = common::Serve::start(cmd);
    let (line, _) = serve
        .wait_log(Duration::from_secs(10), |l| {
            l["message"].as_str().is_some_and(|m| m.contains("open-file limit"))
        })
        .expect("a warning about the open-file limit");
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["open_files"], 4000);
    assert_eq!(line["wanted"], 10_000 + 256 + 1024, "{line}");
    assert_eq!(line["console_max_connections"], 256);
}

/// With `[console] tls_listen`, the plain listener sends browsers to HTTPS instead of serving
/// the console (and its session cookie) in the clear.
#[test]
fn plain_http_redirects_to_the_https_console() {
    use std::io::{Read, Write};
    let db = TestDb::sqlite();
    let mut setup = Setup::new(&db.database);
    setup.env.push(("POSTERN_CONSOLE_TLS_LISTEN".into(), "127.0.0.1:0".into()));
    let serve = setup.serve();
    let port = |prefix: &str| -> std::net::SocketAddr {
        let line = serve.stdout.iter().find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(prefix)).then(|| words.next().unwrap().to_string())
        });
        line.unwrap_or_else(|| panic!("no {prefix} line in {:?}", serve.stdout)).parse().unwrap()
    };
    let (plain, secure) = (port("console"), port("console-tls"));
    let mut tcp = std::net::TcpStream::connect(plain).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: {plain}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 22\r\nConnection: close\r\n\r\nname=admin&password=x1"
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = tcp.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 307 "), "{reply}");
    let location = format!("location: https://127.0.0.1:{}/login\r\n", secure.port());
    assert!(reply.to_ascii_lowercase().contains(&location), "{reply}");
    assert!(!reply.to_ascii_lowercase().contains("set-cookie"), "{reply}");
}

/// Sends `signal` (TERM, INT) to serve without waiting for it to exit.
fn signal(serve: &common::Serve, signal: &str) {
    let pid = serve.child.id().to_string();
    let status =
        std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid).status().unwrap();
    assert!(status.success());
}

/// Waits up to `within` for serve to exit.
fn exited(serve: &mut common::Serve, within: Duration) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if let Some(status) = serve.child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A plain SMTP client on serve's port 25, for stopping in the middle of a transaction.
struct Smtp(std::io::BufReader<std::net::TcpStream>);

impl Smtp {
    fn connect(serve: &common::Serve) -> Smtp {
        let stream = std::net::TcpStream::connect(serve.listeners["smtp"]).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut smtp = Smtp(std::io::BufReader::new(stream));
        assert!(smtp.reply().starts_with("220 "));
        smtp
    }

    fn send(&mut self, bytes: &str) {
        use std::io::Write;
        self.0.get_mut().write_all(bytes.as_bytes()).unwrap();
    }

    /// The next reply, its lines joined; "" once the server has closed.
    fn reply(&mut self) -> String {
        use std::io::BufRead;
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            if self.0.read_line(&mut line).unwrap() == 0 {
                return reply;
            }
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n"));
        self.reply()
    }

    /// Opens a transaction to someone elsewhere (relayed: loopback is a trusted network) and
    /// leaves it in the middle of DATA.
    fn mid_data(&mut self) {
        assert!(self.cmd("EHLO client.test").starts_with("250"));
        assert!(self.cmd("MAIL FROM:<app@example.test>").starts_with("250"));
        assert!(self.cmd("RCPT TO:<someone@elsewhere.test>").starts_with("250"));
        assert!(self.cmd("DATA").starts_with("354"));
        self.send("Subject: sent while stopping\r\n\r\nfirst half\r\n");
    }
}

/// Issue 15: SIGTERM drains. A client in the middle of DATA finishes, is answered 250 and then
/// 421 4.3.2; an idle one is told 421 4.3.2 at once; serve exits cleanly, and the message is in
/// the queue, found again by the next start.
#[test]
fn sigterm_drains_a_message_in_transfer_into_the_queue() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    // A next hop that is down: the message waits in the queue.
    let port = postern_store::testing::free_port();
    let mut serve = setup.serve();
    setup.ok(&["transport", "set", "*", &format!("smtp:[127.0.0.1]:{port}"), "--tls", "none"]);
    serve.wait_log(Duration::from_secs(5), |l| applied(l) && l["transports"] == 1).expect("live");
    let mut sending = Smtp::connect(&serve);
    sending.mid_data();
    let mut idle = Smtp::connect(&serve);
    assert!(idle.cmd("EHLO idle.test").starts_with("250"));

    signal(&serve, "TERM");
    let told = idle.reply();
    assert!(told.starts_with("421 4.3.2 "), "the idle client: {told:?}");
    // The drain waits for the message: the 250 below could come from no other process.
    sending.send("second half\r\n.\r\n");
    let accepted = sending.reply();
    assert!(accepted.starts_with("250 2.0.0"), "{accepted:?}");
    let bye = sending.reply();
    assert!(bye.starts_with("421 4.3.2 "), "{bye:?}");
    let status = exited(&mut serve, Duration::from_secs(15)).expect("serve exits once drained");
    assert!(status.success(), "{status}");

    let page: serde_json::Value =
        serde_json::from_str(&setup.ok(&["queue", "list", "--json"])).unwrap();
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["messages"][0]["sender"], "app@example.test", "{page}");
    let serve = setup.serve();
    serve
        .wait_log(Duration::from_secs(10), |l| l["message"] == "queue loaded" && l["messages"] == 1)
        .expect("the next start has the message to deliver");
}

/// The drain is bounded (`--drain-timeout`), and a second signal exits at once.
#[test]
fn the_drain_is_bounded_and_a_second_signal_ends_it() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let mut serve = common::Serve::start(setup.command(&["serve", "--drain-timeout", "1"]));
    let mut stuck = Smtp::connect(&serve);
    stuck.mid_data();
    signal(&serve, "TERM");
    assert!(exited(&mut serve, Duration::from_secs(10)).is_some(), "bounded by the drain timeout");

    let mut serve = setup.serve();
    let mut stuck = Smtp::connect(&serve);
    stuck.mid_data();
    let mut finishing = Smtp::connect(&serve);
    finishing.mid_data();
    signal(&serve, "TERM");
    // Still draining (a 30 s bound): a session that finishes its message now is answered.
    finishing.send("second half\r\n.\r\n");
    let accepted = finishing.reply();
    assert!(accepted.starts_with("250 2.0.0"), "{accepted:?}");
    assert!(finishing.reply().starts_with("421 4.3.2 "));
    signal(&serve, "INT");
    let status = exited(&mut serve, Duration::from_secs(5)).expect("a second signal exits at once");
    assert!(!status.success(), "not a clean stop: {status}");
}

/// Issue 15: what the sessions refuse while they drain still reaches the delivery log: its
/// writer stops once they are gone, not at the signal.
#[test]
fn a_refusal_during_the_drain_is_logged() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    setup.ok(&["checks", "add", "--part", "body", "--pattern", "refuse me", "REJECT", "no thanks"]);
    let mut serve = setup.serve();
    serve.wait_log(Duration::from_secs(5), applied).expect("live");
    let mut sending = Smtp::connect(&serve);
    sending.mid_data();
    signal(&serve, "TERM");
    sending.send("refuse me\r\n.\r\n");
    let refused = sending.reply();
    assert!(refused.starts_with("550 5.7.1"), "{refused:?}");
    assert!(sending.reply().starts_with("421 4.3.2 "));
    let status = exited(&mut serve, Duration::from_secs(15)).expect("serve exits once drained");
    assert!(status.success(), "{status}");

    // The store of the config: `data/postern.db` beside it.
    let data = setup.dir.path().join("data");
    let database = postern_store::Database::Sqlite { path: data.join("postern.db") };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let logged = runtime.block_on(async {
        let store = postern_store::Store::open(&database, &data.join("secret.key")).await.unwrap();
        let filter =
            postern_store::LogFilter { status: Some("rejected".into()), ..Default::default() };
        let logged = store.delivery_log(&filter, None, 10).await.unwrap();
        store.close().await;
        logged
    });
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].recipient, "someone@elsewhere.test", "{logged:?}");
}
