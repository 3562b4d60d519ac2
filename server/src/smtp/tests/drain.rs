//! Shutting down (issue 15): sessions see the shutdown. One waiting for a command is told `421
//! 4.3.2` and closed (RFC 5321 §3.8), one in the middle of DATA or BDAT finishes, its message
//! committed and answered 250, and only then gets the 421; the listener stops taking
//! connections and returns once every session has ended.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

const SHUTTING_DOWN: &str = "421 4.3.2 mail.example.test Service shutting down";

#[tokio::test]
async fn an_idle_session_is_told_421_and_closed() {
    let server = Server::new().await;
    let mut idle = server.connect(ListenerKind::Smtp, "192.0.2.1").await;
    idle.expect("EHLO client.test", "250").await;
    let mut in_transaction = server.connect(ListenerKind::Smtp, "192.0.2.2").await;
    in_transaction.expect("EHLO client.test", "250").await;
    in_transaction.expect("MAIL FROM:<x@remote.test>", "250").await;

    server.ctx.draining.cancel();
    // Without waiting for a command: the client reads it as the answer to its next one.
    for client in [&mut idle, &mut in_transaction] {
        let reply = client.reply().await;
        assert!(reply.starts_with(SHUTTING_DOWN), "{reply}");
        assert!(client.closed().await);
    }
    // One connecting now is greeted with it.
    let mut late = server.connect_silent(ListenerKind::Smtp, "192.0.2.3");
    let greeting = late.reply().await;
    assert!(greeting.starts_with(SHUTTING_DOWN), "{greeting}");
    assert!(late.closed().await);
    assert!(server.accepted().is_empty());
}

#[tokio::test]
async fn a_message_in_transfer_is_committed_and_answered_before_the_421() {
    let server = Server::new().await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.1").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "250").await;
    c.expect("DATA", "354").await;
    c.send(b"Subject: under way\r\n\r\nfirst half\r\n").await;

    server.ctx.draining.cancel();
    c.send(b"second half\r\n.\r\n").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("250 2.0.0"), "the message is accepted: {reply}");
    let reply = c.reply().await;
    assert!(reply.starts_with(SHUTTING_DOWN), "{reply}");
    assert!(c.closed().await);
    let accepted = server.accepted();
    assert_eq!(accepted.len(), 1);
    let body = String::from_utf8_lossy(&accepted[0].body).into_owned();
    assert!(body.contains("first half\r\nsecond half\r\n"), "{body}");
}

/// BDAT LAST gives no sign that its chunk is being read (no 354): the shutdown may be seen
/// before the command is (it is then answered 421, and nothing is accepted) or while its chunk
/// is read (the chunk is finished, committed and answered 250, then the 421). Never a 250
/// without the message, nor the message without its 250.
#[tokio::test]
async fn a_bdat_in_transfer_is_either_committed_and_answered_or_refused_whole() {
    let server = Server::new().await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.1").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "250").await;
    let body = b"Subject: chunked\r\n\r\nall of it\r\n";
    c.send(format!("BDAT {} LAST\r\n", body.len()).as_bytes()).await;
    c.send(&body[..10]).await;
    server.ctx.draining.cancel();
    c.send(&body[10..]).await;
    let reply = c.reply().await;
    if reply.starts_with("250 2.0.0") {
        assert_eq!(server.accepted().len(), 1);
        let reply = c.reply().await;
        assert!(reply.starts_with(SHUTTING_DOWN), "{reply}");
    } else {
        assert!(reply.starts_with(SHUTTING_DOWN), "{reply}");
        assert!(server.accepted().is_empty());
    }
    assert!(c.closed().await);
}

/// The listener: no new connection once shut down, and `serve` returns only when the session
/// in DATA has finished.
#[tokio::test]
async fn the_listener_drains_before_it_returns() {
    let server = Server::new().await;
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let listeners = crate::smtp::bind_all(&[("smtp", &[any])]).await.unwrap();
    let addr = listeners[0].local_addr();
    let shutdown = server.ctx.draining.clone();
    let serving = tokio::spawn(crate::smtp::serve(listeners, server.ctx.clone(), shutdown.clone()));

    // Two sessions in DATA.
    let mut conns = Vec::new();
    for _ in 0..2 {
        let mut conn = tokio::io::BufReader::new(TcpStream::connect(addr).await.unwrap());
        let greeting = said(&mut conn, "").await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        assert!(said(&mut conn, "EHLO client.test\r\n").await.starts_with("250"));
        assert!(said(&mut conn, "MAIL FROM:<x@remote.test>\r\n").await.starts_with("250"));
        assert!(said(&mut conn, "RCPT TO:<ann@example.test>\r\n").await.starts_with("250"));
        assert!(said(&mut conn, "DATA\r\n").await.starts_with("354"));
        conn.get_mut().write_all(b"Subject: late\r\n\r\n").await.unwrap();
        conns.push(conn);
    }

    shutdown.cancel();
    // Still draining: the first session finishes its message after the signal, and the other
    // one, still in DATA, holds `serve` up (had it returned at the signal, it would be done
    // long before this reply).
    for (n, conn) in conns.iter_mut().enumerate() {
        let done = said(conn, "body\r\n.\r\n").await;
        assert!(done.starts_with("250 2.0.0"), "{done}");
        if n == 0 {
            assert!(!serving.is_finished(), "serve returned with a session in DATA");
        }
        let mut bye = String::new();
        conn.read_line(&mut bye).await.unwrap();
        assert!(bye.starts_with(SHUTTING_DOWN), "{bye}");
    }
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve returns once the sessions are gone")
        .unwrap();
    assert_eq!(server.accepted().len(), 2);
    // Nobody listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

/// Sends `line` and reads the whole reply (all its lines); "" once the server has closed.
async fn said(conn: &mut tokio::io::BufReader<TcpStream>, line: &str) -> String {
    conn.get_mut().write_all(line.as_bytes()).await.unwrap();
    let mut reply = String::new();
    loop {
        let mut one = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read_line(&mut one))
            .await
            .expect("a reply within 10 s")
            .unwrap();
        reply.push_str(&one);
        if n == 0 || one.as_bytes().get(3) != Some(&b'-') {
            return reply;
        }
    }
}
