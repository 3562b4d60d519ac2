//! Policy services through an SMTP session: an in-process fake service, and postgrey (Debian
//! package postgrey) as the real one: the first attempt deferred, the retry after the delay
//! accepted, and a service that hangs or dies getting its default without losing a message.

use std::process::{Child, Command};
use std::time::Instant;

use postern_store::model::NewPolicyService;
use tokio::net::TcpListener;

use super::*;

async fn add_service(
    server: &Server,
    name: &str,
    port: u16,
    stage: &str,
    timeout: &str,
    on_failure: &str,
) {
    let new = NewPolicyService::parse(
        name,
        &format!("inet:127.0.0.1:{port}"),
        stage,
        timeout,
        on_failure,
        true,
        "",
    )
    .unwrap();
    server.store.add_policy_service("test", new).await.unwrap();
    server.caught_up().await;
}

/// A fake policy service that refuses recipients starting with "no", prepends a header at the
/// end of DATA, and answers DUNNO otherwise; or, with `hang`, reads and never answers.
async fn fake(hang: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut request = String::new();
                    loop {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\n" {
                            break;
                        }
                        request.push_str(&line);
                    }
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    let attribute = |name: &str| {
                        request
                            .lines()
                            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                            .unwrap_or("")
                            .to_string()
                    };
                    let echo = format!("REJECT size={}", attribute("size"));
                    let action = if request.contains("\nrecipient=no") {
                        "REJECT not this one"
                    } else if request.contains("\nrecipient=echo") {
                        echo.as_str()
                    } else if request.contains("protocol_state=END-OF-MESSAGE") {
                        "PREPEND X-Policy: checked"
                    } else {
                        "DUNNO"
                    };
                    let _ =
                        stream.get_mut().write_all(format!("action={action}\n\n").as_bytes()).await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn services_refuse_recipients_and_prepend_headers() {
    let server = Server::new().await;
    let port = fake(false).await;
    add_service(&server, "fake-rcpt", port, "rcpt", "", "").await;
    add_service(&server, "fake-data", port, "data", "", "").await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@remote.test> SIZE=1234", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "250").await;
    let refused = c.cmd("RCPT TO:<nobody@example.test>").await;
    // Unknown users are refused before any service is asked.
    assert!(refused.starts_with("550 5.1.1"), "{refused}");
    server
        .store
        .add_alias(
            "test",
            &"nope@example.test".parse().unwrap(),
            &["bob@example.test".parse().unwrap()],
        )
        .await
        .unwrap();
    server.caught_up().await;
    assert_eq!(c.cmd("RCPT TO:<nope@example.test>").await, "554 5.7.1 not this one");
    let logged = server.logged("rejected", 1).await;
    assert_eq!(logged[0].recipient, "nope@example.test");
    assert_eq!(logged[0].reason, "policy service fake-rcpt: REJECT not this one");
    // At RCPT, the size is MAIL's SIZE=.
    server
        .store
        .add_alias(
            "test",
            &"echo@example.test".parse().unwrap(),
            &["bob@example.test".parse().unwrap()],
        )
        .await
        .unwrap();
    server.caught_up().await;
    assert_eq!(c.cmd("RCPT TO:<echo@example.test>").await, "554 5.7.1 size=1234");
    c.expect("DATA", "354").await;
    c.send(b"Subject: hi\r\n\r\nhello\r\n.\r\n").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("250 2.0.0 Ok: queued"), "{reply}");
    let m = server.accepted().pop().unwrap();
    let to: Vec<&str> = m.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(to, ["ann@example.test"]);
    let body = String::from_utf8(m.body).unwrap();
    assert!(body.contains("\r\nX-Policy: checked\r\n"), "{body}");
    assert!(m.note.unwrap().contains("header added by policy service fake-data"));
}

#[tokio::test]
async fn a_hung_service_gets_its_default() {
    let server = Server::new().await;
    let port = fake(true).await;
    add_service(&server, "open", port, "rcpt", "100ms", "dunno").await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    let reply = c.mail("x@remote.test", &["ann@example.test"], "Subject: x\r\n\r\nx\r\n").await;
    assert!(reply.starts_with("250 2.0.0 Ok: queued"), "{reply}");
    add_service(&server, "shut", port, "rcpt", "100ms", "defer").await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "451 4.3.5").await;
}

/// postgrey, run as whoever runs the test, on a free port with its own database.
struct Postgrey {
    child: Child,
    port: u16,
}

impl Drop for Postgrey {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn postgrey(test: &str, dir: &std::path::Path) -> Option<Postgrey> {
    let found = Command::new("sh").args(["-c", "command -v postgrey"]).status();
    if !found.is_ok_and(|s| s.success()) && !std::path::Path::new("/usr/sbin/postgrey").exists() {
        postern_store::testing::missing_peer(
            test,
            "postgrey is not installed (Debian package postgrey)",
        );
        return None;
    }
    let id = |flag: &str| {
        let out = Command::new("id").arg(flag).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let port = postern_store::testing::free_port();
    let empty = dir.join("empty");
    std::fs::write(&empty, "").unwrap();
    let log = std::fs::File::create(dir.join("postgrey.log")).unwrap();
    let child = Command::new("postgrey")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .arg(format!("--inet=127.0.0.1:{port}"))
        .arg(format!("--dbdir={}", dir.display()))
        .arg("--delay=1")
        .arg(format!("--user={}", id("-un")))
        .arg(format!("--group={}", id("-gn")))
        .arg(format!("--whitelist-clients={}", empty.display()))
        .arg(format!("--whitelist-recipients={}", empty.display()))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start postgrey");
    let mut peer = Postgrey { child, port };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = peer.child.try_wait() {
            let log = std::fs::read_to_string(dir.join("postgrey.log")).unwrap_or_default();
            panic!("postgrey exited ({status}):\n{log}");
        }
        assert!(start.elapsed() < Duration::from_secs(20), "postgrey never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    peer.port = port;
    Some(peer)
}

#[tokio::test]
async fn postgrey_defers_the_first_attempt_and_accepts_the_retry() {
    let dir = tempfile::tempdir().unwrap();
    let Some(grey) =
        postgrey("postgrey_defers_the_first_attempt_and_accepts_the_retry", dir.path())
    else {
        return;
    };
    let server = Server::new().await;
    add_service(&server, "grey", grey.port, "rcpt", "5s", "dunno").await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.77").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    let first = c.cmd("RCPT TO:<ann@example.test>").await;
    assert!(first.starts_with("450 4.7.1 Greylisted"), "{first}");
    // Retry, as a real client would, until the delay has passed.
    let start = Instant::now();
    loop {
        c.expect("RSET", "250").await;
        c.expect("MAIL FROM:<x@remote.test>", "250").await;
        let reply = c.cmd("RCPT TO:<ann@example.test>").await;
        if reply.starts_with("250") {
            break;
        }
        assert!(reply.starts_with("450 4.7.1"), "{reply}");
        assert!(start.elapsed() < Duration::from_secs(30), "postgrey never let the retry in");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.expect("DATA", "354").await;
    c.send(b"Subject: retried\r\n\r\nhello\r\n.\r\n").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("250 2.0.0 Ok: queued"), "{reply}");
    let m = server.accepted().pop().unwrap();
    let body = String::from_utf8(m.body).unwrap();
    assert!(body.contains("\r\nX-Greylist: delayed "), "postgrey's PREPEND: {body}");

    // postgrey dies: fail-open goes on, fail-closed defers; nothing accepted is lost.
    drop(grey);
    c.expect("MAIL FROM:<y@remote.test>", "250").await;
    c.expect("RCPT TO:<bob@example.test>", "250").await;
    c.expect("RSET", "250").await;
    server.store.remove_policy_service("test", "grey").await.unwrap();
    add_service(&server, "grey", 1, "rcpt", "5s", "defer").await;
    c.expect("MAIL FROM:<y@remote.test>", "250").await;
    c.expect("RCPT TO:<bob@example.test>", "451 4.3.5").await;
    assert_eq!(server.accepted().len(), 1);
}
