//! The MTA end to end, as a user runs it: `postern serve` as a child process, configured with
//! the CLI, and real clients and peers: swaks on 25, 587 and 465, smtp-sink as a smarthost,
//! Dovecot over LMTP, and a SIGKILL while clients are sending.
//!
//! Needs the Debian packages `swaks`, `postfix` (smtp-sink), `dovecot-core dovecot-lmtpd`.

mod common;
#[path = "../server/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Serve, Setup, applied};
use postern_store::testing::{TestDb, missing_peer};

const PASSWORD: &str = common::ANN_PASSWORD;

fn have_swaks(test: &str) -> bool {
    if support::have("swaks") {
        return true;
    }
    missing_peer(test, "swaks is not installed (Debian package swaks)");
    false
}

/// Runs swaks against `addr` with `args`; returns its exit success and transcript.
fn swaks(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args([
            "--server",
            &addr.ip().to_string(),
            "--port",
            &addr.port().to_string(),
            "--timeout",
            "20",
        ])
        .args(args)
        .output()
        .expect("run swaks");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The contents of the files in `maildir/new`.
fn new_mail(maildir: &Path) -> Vec<String> {
    std::fs::read_dir(maildir.join("new"))
        .map(|d| {
            d.flatten().map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect()
        })
        .unwrap_or_default()
}

/// Waits up to `within` until `dir`'s new mail holds `count` messages.
fn wait_for_mail(dir: &Path, count: usize, within: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let mail = new_mail(dir);
        if mail.len() >= count || start.elapsed() > within {
            return mail;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn swaks_on_every_port(db: &TestDb, test: &str) {
    if !have_swaks(test) {
        return;
    }
    let setup = Setup::new(&db.database);
    let serve = setup.serve_with_ann();
    let (ok, text) = swaks(
        serve.listeners["smtp"],
        &[
            "--from",
            "someone@remote.test",
            "--to",
            "ann@example.test",
            "--header",
            "Subject: via 25",
        ],
    );
    assert!(ok && text.contains("250 2.0.0 Ok: queued as"), "{text}");
    let auth = ["--auth", "PLAIN", "--auth-user", "ann@example.test", "--auth-password", PASSWORD];
    let mut args = vec![
        "-tls",
        "--from",
        "ann@example.test",
        "--to",
        "ann@example.test",
        "--header",
        "Subject: via 587",
    ];
    args.extend(auth);
    let (ok, text) = swaks(serve.listeners["submission"], &args);
    assert!(ok, "{text}");
    let mut args = vec![
        "--tls-on-connect",
        "--from",
        "ann@example.test",
        "--to",
        "ann@example.test",
        "--header",
        "Subject: via 465",
    ];
    args.extend(auth);
    let (ok, text) = swaks(serve.listeners["submissions"], &args);
    assert!(ok, "{text}");
    // A wrong password, and a sender the user does not own, are refused.
    let (ok, text) = swaks(
        serve.listeners["submission"],
        &[
            "-tls",
            "--from",
            "ann@example.test",
            "--to",
            "ann@example.test",
            "--auth",
            "PLAIN",
            "--auth-user",
            "ann@example.test",
            "--auth-password",
            "wrong",
        ],
    );
    assert!(!ok && text.contains("535 5.7.8"), "{text}");
    let mut args = vec!["-tls", "--from", "boss@example.test", "--to", "ann@example.test"];
    args.extend(auth);
    let (ok, text) = swaks(serve.listeners["submission"], &args);
    assert!(!ok && text.contains("553 5.7.1"), "{text}");

    let mail = wait_for_mail(&setup.ann_maildir(), 3, Duration::from_secs(10));
    for subject in ["via 25", "via 587", "via 465"] {
        let m = mail
            .iter()
            .find(|m| m.contains(&format!("Subject: {subject}")))
            .unwrap_or_else(|| panic!("{subject} not delivered: {mail:?}"));
        assert!(
            m.starts_with("Return-Path: <") && m.contains("Delivered-To: <ann@example.test>"),
            "{m}"
        );
    }
    let submitted = mail.iter().find(|m| m.contains("Subject: via 587")).unwrap();
    assert!(
        submitted.contains("with ESMTPSA")
            && submitted.contains("(authenticated as ann@example.test)"),
        "{submitted}"
    );
    assert!(
        serve
            .wait_log(Duration::from_secs(2), |l| l["status"] == "sent" && l["relay"] == "local")
            .is_some()
    );
}

#[test]
fn swaks_on_every_port_sqlite() {
    swaks_on_every_port(&TestDb::sqlite(), "mta::swaks_on_every_port_sqlite");
}

#[tokio::test(flavor = "multi_thread")]
async fn swaks_on_every_port_postgres() {
    let test = "mta::swaks_on_every_port_postgres";
    let Some(db) = TestDb::postgres(test).await else { return };
    tokio::task::spawn_blocking(move || swaks_on_every_port(&db, test)).await.unwrap();
}

#[test]
fn a_trusted_network_relays_to_a_smarthost() {
    let test = "mta::a_trusted_network_relays_to_a_smarthost";
    if !have_swaks(test) {
        return;
    }
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let dump = tempfile::tempdir().unwrap();
    let template = format!("{}/%M.", dump.path().display());
    let Some((_sink, port)) = support::peers::sink(test, dump.path(), &["-d", &template]) else {
        return;
    };
    let serve = setup.serve();
    let next_hop = format!("smtp:[127.0.0.1]:{port}");
    set_transport(&setup, &serve, &["*", &next_hop, "--tls", "none"], "", 1);
    // 127.0.0.1 is a trusted network by default.
    let (ok, text) = swaks(
        serve.listeners["smtp"],
        &[
            "--from",
            "app@example.test",
            "--to",
            "someone@elsewhere.test",
            "--header",
            "Subject: relayed",
        ],
    );
    assert!(ok, "{text}");
    // The sink writes its dump while we look: wait for the content, not for the file.
    let start = Instant::now();
    loop {
        let dumped: Vec<String> = std::fs::read_dir(dump.path())
            .unwrap()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        if dumped
            .iter()
            .any(|d| d.contains("someone@elsewhere.test") && d.contains("Subject: relayed"))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the relayed message did not reach the sink: {dumped:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (line, _) = serve
        .wait_log(Duration::from_secs(5), |l| l["status"] == "sent")
        .expect("a delivery log line");
    assert_eq!(line["relay"], format!("127.0.0.1:{port}"));
    assert_eq!(line["to"], "someone@elsewhere.test");
}

#[test]
fn lmtp_into_dovecot() {
    let test = "mta::lmtp_into_dovecot";
    if !have_swaks(test) {
        return;
    }
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let peer_dir = tempfile::tempdir().unwrap();
    let Some(dovecot) = support::peers::dovecot(test, peer_dir.path(), &["ann@lmtp.test"]) else {
        return;
    };
    let serve = setup.serve();
    setup.ok(&["domain", "add", "lmtp.test"]);
    let out = setup.run(&["mailbox", "add", "ann@lmtp.test"], &format!("{PASSWORD}\n"));
    assert!(out.status.success());
    let lmtp = format!("lmtp:127.0.0.1:{}", dovecot.port);
    set_transport(&setup, &serve, &["lmtp.test", &lmtp, "--tls", "none"], "", 1);
    let (ok, text) = swaks(
        serve.listeners["smtp"],
        &[
            "--from",
            "x@remote.test",
            "--to",
            "ann@lmtp.test",
            "--header",
            "Subject: through dovecot",
        ],
    );
    assert!(ok, "{text}");
    let mail = wait_for_mail(&dovecot.maildir("ann@lmtp.test"), 1, Duration::from_secs(10));
    assert!(mail.iter().any(|m| m.contains("Subject: through dovecot")), "{mail:?}");
}

fn queue_json(setup: &Setup, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["queue", "list", "--json"];
    all.extend(args);
    serde_json::from_str(&setup.ok(&all)).unwrap()
}

/// `postern queue` run beside `serve` acts on the running server: hold keeps a message from
/// delivery, flush tries it now once released.
#[test]
fn queue_commands_act_on_the_running_server() {
    let test = "mta::queue_commands_act_on_the_running_server";
    if !have_swaks(test) {
        return;
    }
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let serve = setup.serve();
    // A next hop that is down for now.
    let port = support::free_port();
    setup.ok(&["transport", "set", "*", &format!("smtp:[127.0.0.1]:{port}"), "--tls", "none"]);
    setup.ok(&["transport", "set", "discard.test", "discard"]);
    serve.wait_log(Duration::from_secs(5), |l| applied(l) && l["transports"] == 2).expect("live");
    let (ok, text) = swaks(
        serve.listeners["smtp"],
        &[
            "--from",
            "app@example.test",
            "--to",
            "someone@elsewhere.test",
            "--header",
            "Subject: waits",
        ],
    );
    assert!(ok, "{text}");
    let (line, _) =
        serve.wait_log(Duration::from_secs(10), |l| l["status"] == "deferred").expect("deferred");
    assert!(line["message"].as_str().unwrap().contains("refused"), "{line}");
    // The log line comes as the outcome is known; the store records it a moment later.
    let start = Instant::now();
    let mut page = queue_json(&setup, &["--status", "deferred"]);
    while page["total"] != 1 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
        page = queue_json(&setup, &["--status", "deferred"]);
    }
    assert_eq!(page["total"], 1, "{page}");
    let id = page["messages"][0]["id"].as_str().unwrap().to_string();
    assert!(
        page["messages"][0]["recipients"][0]["last_error"].as_str().unwrap().contains("refused"),
        "{page}"
    );

    setup.ok(&["queue", "hold", &id]);
    let dump = tempfile::tempdir().unwrap();
    let template = format!("{}/%M.", dump.path().display());
    let Some(_sink) = support::peers::sink_on(test, dump.path(), port, &["-d", &template]) else {
        return;
    };
    setup.ok(&["queue", "flush"]);
    // The flush reaches the engine, and so would the held message if it were not held; a
    // message sent after it to the same next hop is delivered after it would have been, so
    // once that one is sent, the held one had its chance and was kept.
    serve
        .wait_log(Duration::from_secs(10), |l| {
            l["message"] == "queue action" && l["queue_id"] == id.as_str()
        })
        .expect("the engine followed the flush");
    let (ok, text) = swaks(
        serve.listeners["smtp"],
        &[
            "--from",
            "app@example.test",
            "--to",
            "later@elsewhere.test",
            "--header",
            "Subject: later",
        ],
    );
    assert!(ok, "{text}");
    let held_sent = std::cell::Cell::new(false);
    let (line, _) = serve
        .wait_log(Duration::from_secs(10), |l| {
            if l["status"] == "sent" && l["queue_id"] == id.as_str() {
                held_sent.set(true);
            }
            l["status"] == "sent" && l["to"] == "later@elsewhere.test"
        })
        .expect("the later message is delivered");
    assert!(!held_sent.get(), "a held message was delivered: {line}");
    assert_eq!(queue_json(&setup, &["--held"])["total"], 1);

    setup.ok(&["queue", "release", &id]);
    setup.ok(&["queue", "flush"]);
    let (line, _) = serve
        .wait_log(Duration::from_secs(10), |l| l["status"] == "sent")
        .expect("delivered after release and flush");
    assert_eq!(line["queue_id"], id);
    let start = Instant::now();
    while queue_json(&setup, &[])["total"] != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the delivered message stays in the queue"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // discard: accepted and dropped, logged as sent by the discard route.
    let (ok, text) =
        swaks(serve.listeners["smtp"], &["--from", "app@example.test", "--to", "x@discard.test"]);
    assert!(ok, "{text}");
    let (line, _) =
        serve.wait_log(Duration::from_secs(10), |l| l["status"] == "sent").expect("discarded");
    assert_eq!(line["relay"], "discard");
}

/// One SMTP conversation over a plain socket; `Ok(true)` when the message was acknowledged.
fn send_one(addr: SocketAddr, subject: &str) -> std::io::Result<bool> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut reply = || -> std::io::Result<String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(all);
            }
        }
    };
    reply()?;
    for command in
        ["EHLO load.test", "MAIL FROM:<load@remote.test>", "RCPT TO:<ann@example.test>", "DATA"]
    {
        writer.write_all(format!("{command}\r\n").as_bytes())?;
        let r = reply()?;
        if !(r.starts_with('2') || r.starts_with('3')) {
            return Ok(false);
        }
    }
    writer.write_all(format!("Subject: {subject}\r\n\r\nbody\r\n.\r\n").as_bytes())?;
    let acknowledged = reply()?.starts_with("250");
    let _ = writer.write_all(b"QUIT\r\n");
    Ok(acknowledged)
}

/// SIGKILL while eight clients send: after a restart, every acknowledged message is in the
/// mailbox exactly once.
#[test]
fn kill_9_loses_no_acknowledged_message() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let mut serve = setup.serve_with_ann();
    let addr = serve.listeners["smtp"];
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..8)
        .map(|t| {
            let count = count.clone();
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                for i in 0.. {
                    let subject = format!("m-{t}-{i}");
                    match send_one(addr, &subject) {
                        Ok(true) => {
                            acknowledged.push(subject);
                            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(false) => {}
                        Err(_) => return acknowledged,
                    }
                }
                acknowledged
            })
        })
        .collect();
    // Killed in full flow: once enough is acknowledged to prove something, with more on its way.
    let start = Instant::now();
    while count.load(std::sync::atomic::Ordering::Relaxed) < 100 {
        assert!(start.elapsed() < Duration::from_secs(60), "the clients get nothing through");
        std::thread::sleep(Duration::from_millis(10));
    }
    serve.child.kill().unwrap();
    serve.child.wait().unwrap();
    let acknowledged: Vec<String> = senders.into_iter().flat_map(|s| s.join().unwrap()).collect();
    assert!(
        acknowledged.len() > 20,
        "the clients got too little through ({}) to prove anything",
        acknowledged.len()
    );

    // The same data directory and store, a new process.
    let _again = setup.serve();
    let maildir = setup.ann_maildir();
    let start = Instant::now();
    loop {
        let mail = new_mail(&maildir);
        let missing: Vec<&String> = acknowledged
            .iter()
            .filter(|s| !mail.iter().any(|m| m.contains(&format!("Subject: {s}\r\n"))))
            .collect();
        if missing.is_empty() {
            for s in &acknowledged {
                let copies =
                    mail.iter().filter(|m| m.contains(&format!("Subject: {s}\r\n"))).count();
                assert_eq!(copies, 1, "{s} was delivered {copies} times");
            }
            eprintln!(
                "{} acknowledged before SIGKILL, all delivered once after the restart",
                acknowledged.len()
            );
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} acknowledged messages never arrived: {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the queue is empty.
fn wait_for_empty_queue(setup: &Setup, within: Duration) {
    let start = Instant::now();
    while queue_json(setup, &[])["total"] != 0 {
        assert!(start.elapsed() < within, "the queue did not empty: {}", queue_json(setup, &[]));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sets a transport for remote.test to smtp on 127.0.0.1:`port`, and waits until it is live.
fn remote_test_via(setup: &Setup, serve: &Serve, port: u16) {
    let next_hop = format!("smtp:[127.0.0.1]:{port}");
    set_transport(setup, serve, &["remote.test", &next_hop, "--tls", "none"], "", 1);
}

/// `postern transport set ARGS` with `stdin` (a next hop's password), then waits until the
/// running server has `live` transports.
fn set_transport(setup: &Setup, serve: &Serve, args: &[&str], stdin: &str, live: u64) {
    let out = setup.run(&[&["transport", "set"], args].concat(), stdin);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serve
        .wait_log(Duration::from_secs(5), |l| applied(l) && l["transports"] == live)
        .expect("the transport is live");
}

/// The remote refuses the recipient with 550: the sender's mailbox gets a DSN (RFC 3464), and
/// a DSN that cannot be delivered itself causes none.
#[test]
fn a_refused_recipient_bounces_to_the_sender() {
    let test = "mta::a_refused_recipient_bounces_to_the_sender";
    if !have_swaks(test) {
        return;
    }
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let peer = tempfile::tempdir().unwrap();
    let Some((_sink, port)) = support::peers::sink(test, peer.path(), &["-f", "RCPT"]) else {
        return;
    };
    let serve = setup.serve_with_ann();
    remote_test_via(&setup, &serve, port);
    let (ok, text) = swaks(
        serve.listeners["smtp"],
        &["--from", "ann@example.test", "--to", "bob@remote.test", "--header", "Subject: doomed"],
    );
    assert!(ok, "{text}");
    let mail = wait_for_mail(&setup.ann_maildir(), 1, Duration::from_secs(15));
    assert_eq!(mail.len(), 1, "no DSN in the sender's mailbox");
    let dsn = &mail[0];
    for needed in [
        "Return-Path: <>",
        "From: \"Mail Delivery System\" <MAILER-DAEMON@mail.example.test>",
        "multipart/report",
        "report-type=\"delivery-status\"",
        "message/delivery-status",
        "Reporting-MTA: dns; mail.example.test",
        "Final-Recipient: rfc822; bob@remote.test",
        "Action: failed",
        "Status: 5.",
        "Remote-MTA: dns; 127.0.0.1",
        "Diagnostic-Code: smtp; 5",
        "message/rfc822",
        "Subject: doomed",
    ] {
        assert!(dsn.contains(needed), "{needed:?} missing from the DSN:\n{dsn}");
    }
    wait_for_empty_queue(&setup, Duration::from_secs(10));

    // From an address nobody receives at: its DSN fails too, and that failure gets no DSN.
    let (ok, text) = swaks(
        serve.listeners["smtp"],
        &["--from", "nobody@example.test", "--to", "bob@remote.test", "--header", "Subject: twice"],
    );
    assert!(ok, "{text}");
    let (line, _) = serve
        .wait_log(Duration::from_secs(15), |l| {
            l["status"] == "bounced" && l["to"] == "nobody@example.test"
        })
        .expect("the DSN to nobody@example.test fails");
    let dsn_id = line["queue_id"].as_str().unwrap().to_string();
    assert!(
        serve
            .wait_log(Duration::from_secs(2), |l| {
                l["message"] == "sender non-delivery notification" && l["queue_id"] == dsn_id
            })
            .is_none(),
        "a bounce was bounced"
    );
    wait_for_empty_queue(&setup, Duration::from_secs(10));
    assert_eq!(new_mail(&setup.ann_maildir()).len(), 1);
}

/// `postern queue bounce` on a deferred message: the running server sends the DSN, then
/// removes the message.
#[test]
fn an_administrator_bounce_sends_a_dsn() {
    let test = "mta::an_administrator_bounce_sends_a_dsn";
    if !have_swaks(test) {
        return;
    }
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let serve = setup.serve_with_ann();
    // A next hop that is down: the message waits, deferred.
    remote_test_via(&setup, &serve, support::free_port());
    let (ok, text) = swaks(
        serve.listeners["smtp"],
        &["--from", "ann@example.test", "--to", "bob@remote.test", "--header", "Subject: stuck"],
    );
    assert!(ok, "{text}");
    serve.wait_log(Duration::from_secs(10), |l| l["status"] == "deferred").expect("deferred");
    let id = queue_json(&setup, &[])["messages"][0]["id"].as_str().unwrap().to_string();
    setup.ok(&["queue", "bounce", &id]);
    let mail = wait_for_mail(&setup.ann_maildir(), 1, Duration::from_secs(15));
    assert_eq!(mail.len(), 1, "no DSN in the sender's mailbox");
    for needed in ["Final-Recipient: rfc822; bob@remote.test", "Status: 5.0.0", "Subject: stuck"] {
        assert!(mail[0].contains(needed), "{needed:?} missing from the DSN:\n{}", mail[0]);
    }
    assert!(mail[0].contains("bounced by the administrator"), "{}", mail[0]);
    wait_for_empty_queue(&setup, Duration::from_secs(10));
}

/// Postern relaying through another Postern's submission port as a smarthost with AUTH: the
/// outbound client's STARTTLS and AUTH PLAIN against a real server that requires them.
#[test]
fn a_smarthost_takes_the_mail_after_starttls_and_auth() {
    let test = "mta::a_smarthost_takes_the_mail_after_starttls_and_auth";
    if !have_swaks(test) {
        return;
    }
    let (db_a, db_b) = (TestDb::sqlite(), TestDb::sqlite());
    let (relay, smarthost) = (Setup::new(&db_a.database), Setup::new(&db_b.database));
    let upstream = smarthost.serve_with_ann();
    let port = upstream.listeners["submission"].port();
    let serve = relay.serve();
    let next_hop = format!("smtp:[127.0.0.1]:{port}");
    let args = ["*", &next_hop, "--tls", "encrypt", "--auth-user", "ann@example.test"];
    set_transport(&relay, &serve, &args, &format!("{PASSWORD}\n"), 1);
    // 127.0.0.1 is a trusted network of the relay; the smarthost lets ann send as herself only.
    let (ok, text) = swaks(
        serve.listeners["smtp"],
        &["--from", "ann@example.test", "--to", "ann@example.test", "--header", "Subject: via"],
    );
    assert!(ok, "{text}");
    let mail = wait_for_mail(&smarthost.ann_maildir(), 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1, "the smarthost delivered it");
    assert!(mail[0].contains("Subject: via"));
    assert!(
        mail[0].contains("with ESMTPSA") && mail[0].contains("(authenticated as ann@example.test)"),
        "the relay used STARTTLS and AUTH: {}",
        mail[0]
    );
}

/// One transaction on an open session: MAIL, RCPT, DATA and `message` (dot-stuffed here);
/// returns the reply to the final dot.
fn transaction(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    message: &[u8],
) -> std::io::Result<String> {
    for command in ["MAIL FROM:<big@remote.test>", "RCPT TO:<ann@example.test>", "DATA"] {
        writer.write_all(format!("{command}\r\n").as_bytes())?;
        let r = read_reply(reader)?;
        assert!(r.starts_with('2') || r.starts_with('3'), "{command}: {r}");
    }
    // RFC 5321 §4.5.2: a line that starts with a dot gets another; written in pieces, as a
    // client streaming from disk would.
    let mut stuffed = Vec::with_capacity(message.len() + 1024);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            stuffed.push(b'.');
        }
        stuffed.extend_from_slice(line);
    }
    for piece in stuffed.chunks(64 * 1024) {
        writer.write_all(piece)?;
    }
    writer.write_all(b".\r\n")?;
    read_reply(reader)
}

fn read_reply(reader: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(all);
        }
    }
}

/// A message of `len` bytes whose lines vary in length and content, some starting with a dot.
fn large_message(len: usize) -> Vec<u8> {
    let mut m = b"Subject: large\r\nFrom: <big@remote.test>\r\n\r\n".to_vec();
    let mut x: u32 = 1;
    while m.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let width = 1 + (x >> 16) as usize % 120;
        if x.is_multiple_of(17) {
            m.push(b'.');
        }
        m.extend((0..width).map(|i| b'!' + ((x as usize + i) % 90) as u8));
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// A multi-megabyte message goes through the real engine byte-exact into a Maildir (its body
/// stored apart from the envelope: a spool file with SQLite, chunk rows with Postgres), a
/// message one byte over `[smtp] max_message_size` is refused with 552 and the session goes on,
/// and with SQLite a spool file no envelope names is swept at start-up and the message's own is
/// removed once it is delivered.
fn a_large_message_arrives_byte_exact(db: &TestDb) {
    let mut setup = Setup::new(&db.database);
    let limit = 6 << 20;
    setup.env.push(("POSTERN_SMTP_MAX_MESSAGE_SIZE".into(), "6M".into()));
    let spool = setup.dir.path().join("data/spool");
    let sqlite = matches!(db.database, postern_store::Database::Sqlite { .. });
    if sqlite {
        std::fs::create_dir_all(&spool).unwrap();
        std::fs::write(spool.join("00000000000000000000000000000001"), b"left by a crash").unwrap();
    }
    let serve = setup.serve_with_ann();
    if sqlite {
        assert!(
            !spool.join("00000000000000000000000000000001").exists(),
            "an orphan is swept at start-up"
        );
    }

    let stream = TcpStream::connect(serve.listeners["smtp"]).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    read_reply(&mut reader).unwrap();
    writer.write_all(b"EHLO big.test\r\n").unwrap();
    let ehlo = read_reply(&mut reader).unwrap();
    assert!(ehlo.contains(&format!("SIZE {limit}\r\n")), "{ehlo}");

    let message = large_message(5 << 20);
    let reply = transaction(&mut reader, &mut writer, &message).unwrap();
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    // Exactly at the limit is taken; one octet over is not, and the session goes on.
    let mut at_limit = large_message(limit - 200);
    at_limit.truncate(at_limit.len() - 2);
    while at_limit.len() < limit - 2 {
        at_limit.push(b'x');
    }
    at_limit.extend_from_slice(b"\r\n");
    assert_eq!(at_limit.len(), limit);
    let reply = transaction(&mut reader, &mut writer, &at_limit).unwrap();
    assert!(reply.starts_with("250 "), "{reply}");
    let mut over = at_limit.clone();
    over.insert(over.len() - 2, b'y');
    let reply = transaction(&mut reader, &mut writer, &over).unwrap();
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    writer.write_all(b"NOOP\r\n").unwrap();
    assert!(read_reply(&mut reader).unwrap().starts_with("250"), "the session goes on");

    let maildir = setup.ann_maildir();
    let start = Instant::now();
    let files = loop {
        let files: Vec<Vec<u8>> = std::fs::read_dir(maildir.join("new"))
            .map(|d| d.flatten().map(|e| std::fs::read(e.path()).unwrap_or_default()).collect())
            .unwrap_or_default();
        if files.len() >= 2 || start.elapsed() > Duration::from_secs(60) {
            break files;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(files.len(), 2, "both messages under the limit are delivered");
    for sent in [&message, &at_limit] {
        let delivered = files
            .iter()
            .find(|f| f.len() >= sent.len() && f.ends_with(sent))
            .unwrap_or_else(|| panic!("a {}-byte message did not arrive byte-exact", sent.len()));
        let head = String::from_utf8_lossy(&delivered[..delivered.len() - sent.len()]);
        assert!(head.starts_with("Return-Path: <big@remote.test>"), "{head}");
    }
    if sqlite {
        wait_for_empty_queue(&setup, Duration::from_secs(30));
        let start = Instant::now();
        while std::fs::read_dir(&spool).unwrap().count() > 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "spool files outlive delivery");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_large_message_arrives_byte_exact_sqlite() {
    a_large_message_arrives_byte_exact(&TestDb::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_message_arrives_byte_exact_postgres() {
    let test = "mta::a_large_message_arrives_byte_exact_postgres";
    let Some(db) = TestDb::postgres(test).await else { return };
    tokio::task::spawn_blocking(move || a_large_message_arrives_byte_exact(&db)).await.unwrap();
}
