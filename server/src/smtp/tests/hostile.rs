//! Hostile and broken clients that a dialog file cannot express (timing, the queue failing, a
//! real listener); the rest are in `server/tests/dialogs/hostile-*.smtp` and `limit-*.smtp`.
//! Each fails if its protection is removed.

use super::*;

const SMTP: ListenerKind = ListenerKind::Smtp;

async fn ready(server: &Server) -> Client {
    let mut c = server.connect(SMTP, "192.0.2.30").await;
    c.expect("EHLO client.test", "250").await;
    c
}

#[tokio::test]
async fn long_data_lines_are_accepted_and_folded() {
    let server = Server::new().await;
    let mut c = ready(&server).await;
    let long = "x".repeat(5000);
    let reply = c
        .mail("x@remote.test", &["ann@example.test"], &format!("Subject: l\r\n\r\n{long}\r\n"))
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let body = &server.accepted()[0].body;
    assert!(
        body.split(|&b| b == b'\n').all(|l| l.len() <= 999),
        "a line longer than 998 octets was stored"
    );
    let text = String::from_utf8_lossy(body);
    let (_, content) = text.split_once("\r\n\r\n").unwrap();
    assert_eq!(content.matches('x').count(), 5000);
}

#[tokio::test]
async fn a_mail_loop_is_refused() {
    let server = Server::new().await;
    let mut c = ready(&server).await;
    let hops = "Received: from a by b; Sat, 28 Nov 2026 10:00:00 +0000\r\n".repeat(101);
    let reply = c
        .mail("x@remote.test", &["ann@example.test"], &format!("{hops}Subject: loop\r\n\r\nx\r\n"))
        .await;
    assert!(reply.starts_with("554 5.4.6"), "{reply}");
    assert!(server.accepted().is_empty());
}

#[tokio::test]
async fn a_trickling_client_is_cut_off() {
    let limits = Limits {
        command_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        data_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let server = Server::with_limits(limits).await;
    let mut c = ready(&server).await;
    // A command that never ends. (Writes after the server gave up may fail: that is the point.)
    for b in b"NOOP" {
        let _ = c.conn.get_mut().write_all(&[*b]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(c.reply().await.starts_with("421 4.4.2"));
    assert!(c.closed().await);

    let mut c = ready(&server).await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "250").await;
    c.expect("DATA", "354").await;
    for _ in 0..10 {
        let _ = c.conn.get_mut().write_all(b"x").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(c.reply().await.starts_with("421 4.4.2"));
    assert!(server.accepted().is_empty());
}

#[tokio::test]
async fn a_nearly_full_disk_refuses_mail_for_now() {
    let limits = Limits { min_free_disk: u64::MAX, ..Limits::default() };
    let server = Server::with_limits(limits).await;
    let mut c = ready(&server).await;
    c.expect("MAIL FROM:<x@remote.test>", "452 4.3.1").await;
}

#[tokio::test]
async fn a_failed_queue_write_is_451_never_250() {
    let server = Server::new().await;
    server.sink.1.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut c = ready(&server).await;
    let reply = c.mail("x@remote.test", &["ann@example.test"], "Subject: w\r\n\r\nx\r\n").await;
    assert!(reply.starts_with("451 4.3.0"), "{reply}");
    // The session goes on, and the client may try again.
    server.sink.1.store(false, std::sync::atomic::Ordering::SeqCst);
    let reply = c.mail("x@remote.test", &["ann@example.test"], "Subject: w\r\n\r\nx\r\n").await;
    assert!(reply.starts_with("250"), "{reply}");
}

#[tokio::test]
async fn a_connection_flood_gets_421_beyond_the_session_limit() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let server = Server::with_limits(Limits { max_sessions: 2, ..Limits::default() }).await;
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let listeners = crate::smtp::bind_all(&[("smtp", &[any])]).await.unwrap();
    let addr = listeners[0].local_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::smtp::serve(listeners, server.ctx.clone(), shutdown.clone()));
    async fn greeting(addr: std::net::SocketAddr) -> (String, BufReader<tokio::net::TcpStream>) {
        let mut conn = BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let mut line = String::new();
        conn.read_line(&mut line).await.unwrap();
        (line, conn)
    }
    let (first, held) = greeting(addr).await;
    let (second, _also_held) = greeting(addr).await;
    assert!(first.starts_with("220 ") && second.starts_with("220 "));
    let (third, mut refused) = greeting(addr).await;
    assert_eq!(third, "421 4.3.2 Too many connections, try again later\r\n");
    let mut rest = String::new();
    assert_eq!(refused.read_line(&mut rest).await.unwrap(), 0, "and closed");
    drop(held);
    // The slot comes back when the session ends (the server sees the EOF at its next read).
    let mut again = String::new();
    for _ in 0..50 {
        (again, _) = greeting(addr).await;
        if again.starts_with("220 ") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.starts_with("220 "), "{again}");
    shutdown.cancel();
}
