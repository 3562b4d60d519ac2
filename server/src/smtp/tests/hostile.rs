//! Hostile and broken clients: each case of the MTA core issue, each failing if its protection
//! is removed.

use super::*;

const SMTP: ListenerKind = ListenerKind::Smtp;

async fn ready(server: &Server) -> Client {
    let mut c = server.connect(SMTP, "192.0.2.30").await;
    c.expect("EHLO client.test", "250").await;
    c
}

#[tokio::test]
async fn an_overlong_command_line_is_refused_without_buffering_it() {
    let server = Server::new().await;
    let mut c = server.connect(SMTP, "192.0.2.30").await;
    let mut line = b"EHLO ".to_vec();
    line.extend(std::iter::repeat_n(b'a', 100 * 1024));
    line.extend_from_slice(b"\r\n");
    c.send(&line).await;
    assert!(c.reply().await.starts_with("500 5.5.2"));
    // A long but legal line (ESMTP parameters) is fine, and the session goes on.
    let long_ok = format!("MAIL FROM:<x@remote.test> ENVID={}", "a".repeat(90));
    c.expect("EHLO client.test", "250").await;
    c.expect(&long_ok, "250").await;
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
async fn size_limits() {
    let limits = Limits { max_message_size: 1000, ..Limits::default() };
    let server = Server::with_limits(limits).await;
    let mut c = ready(&server).await;
    c.expect("MAIL FROM:<x@remote.test> SIZE=1001", "552 5.3.4").await;
    c.expect("MAIL FROM:<x@remote.test> SIZE=99999999999999999999", "552 5.3.4").await;
    let big = "y".repeat(2000);
    let reply = c
        .mail("x@remote.test", &["ann@example.test"], &format!("Subject: big\r\n\r\n{big}\r\n"))
        .await;
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    // The session goes on.
    let reply =
        c.mail("x@remote.test", &["ann@example.test"], "Subject: small\r\n\r\nok\r\n").await;
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(server.accepted().len(), 1);
}

#[tokio::test]
async fn too_many_recipients() {
    let limits = Limits { max_recipients: 3, ..Limits::default() };
    let server = Server::with_limits(limits).await;
    let mut c = ready(&server).await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    for _ in 0..3 {
        c.expect("RCPT TO:<ann@example.test>", "250").await;
    }
    c.expect("RCPT TO:<ann@example.test>", "452 4.5.3").await;
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
async fn the_error_budget_ends_the_session() {
    let limits = Limits { max_errors: 5, ..Limits::default() };
    let server = Server::with_limits(limits).await;
    let mut c = ready(&server).await;
    for _ in 0..4 {
        c.expect("BOGUS", "500 5.5.2").await;
    }
    c.expect("BOGUS", "500 5.5.2").await;
    assert!(c.reply().await.starts_with("421 4.7.0"));
    assert!(c.closed().await);
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
async fn talking_before_the_greeting_is_refused() {
    let server = Server::new().await;
    let mut c = server.connect_silent(SMTP, "192.0.2.30");
    c.send(b"EHLO hasty.test\r\n").await;
    assert!(c.reply().await.starts_with("554 5.5.0"));
    assert!(c.closed().await);
}

#[tokio::test]
async fn http_requests_close_the_connection() {
    let server = Server::new().await;
    for verb in ["GET / HTTP/1.1", "POST /x HTTP/1.0", "CONNECT example.com:443 HTTP/1.1"] {
        let mut c = server.connect(SMTP, "192.0.2.30").await;
        c.send(format!("{verb}\r\nHost: x\r\n\r\n").as_bytes()).await;
        assert!(c.reply().await.starts_with("221 2.7.0"));
        assert!(c.closed().await);
    }
}

#[tokio::test]
async fn commands_out_of_order() {
    let server = Server::new().await;
    let mut c = server.connect(SMTP, "192.0.2.30").await;
    c.expect("MAIL FROM:<x@remote.test>", "503 5.5.1").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "503 5.5.1").await;
    c.expect("DATA", "503 5.5.1").await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    c.expect("DATA", "554 5.5.1").await;
}

#[tokio::test]
async fn a_failed_bdat_kills_the_transaction() {
    let limits = Limits { max_message_size: 10, ..Limits::default() };
    let server = Server::with_limits(limits).await;
    let mut c = ready(&server).await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "250").await;
    c.send(b"BDAT 20\r\n01234567890123456789").await;
    assert!(c.reply().await.starts_with("552 5.3.4"));
    c.send(b"BDAT 3 LAST\r\nabc").await;
    assert!(c.reply().await.starts_with("503 5.5.1"), "the chunk is read and refused");
    c.expect("DATA", "503 5.5.1").await;
    c.expect("RSET", "250").await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    // BDAT without a usable size cannot be followed: the server says so and closes.
    let reply = c.cmd("BDAT 99999999999999999999999 LAST").await;
    assert!(reply.starts_with("501 5.5.4"), "{reply}");
    assert!(c.closed().await);
}

/// The twelve smuggling endings, each followed by a whole second transaction inside the data:
/// never two messages, never a message at all (bare CR/LF refuses it), and the session stays
/// in step.
#[tokio::test]
async fn smtp_smuggling_never_yields_a_second_message() {
    let endings: [&str; 12] = [
        "\n.\n",
        "\r.\r",
        "\r.\n",
        "\n.\r",
        "\n.\r\n",
        "\r\n.\n",
        "\r.\r\n",
        "\r\n.\r",
        "\r\n\x00.\r\n",
        "\r\n.\x00\r\n",
        "\r\n.\r\r\n",
        "\r\r\n.\r\r\n",
    ];
    let server = Server::new().await;
    for ending in endings {
        let mut c = ready(&server).await;
        c.expect("MAIL FROM:<x@remote.test>", "250").await;
        c.expect("RCPT TO:<ann@example.test>", "250").await;
        c.expect("DATA", "354").await;
        let payload = format!(
            "Subject: one\r\n\r\nfirst{ending}MAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsecond\r\n.\r\n"
        );
        c.send(payload.as_bytes()).await;
        let reply = c.reply().await;
        assert!(reply.starts_with("550"), "ending {ending:?}: {reply}");
        c.expect("NOOP", "250").await;
    }
    assert!(server.accepted().is_empty(), "{} message(s) got through", server.accepted().len());
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
