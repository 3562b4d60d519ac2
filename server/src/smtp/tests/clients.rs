//! One client against everyone else: per-address and per-network session limits over real TCP
//! (loopback lets a test play several clients: 127.0.0.2, 127.0.0.3… are all this machine),
//! and the shorter idle limit before MAIL on a simulated clock.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use super::*;

/// Serves `limits` on a real port on 127.0.0.1; returns its address and the stop switch.
async fn listen(server: &Server) -> (SocketAddr, tokio_util::sync::DropGuard) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let listeners = crate::smtp::bind_all(&[("smtp", &[any])]).await.unwrap();
    let addr = listeners[0].local_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::smtp::serve(listeners, server.ctx.clone(), shutdown.clone()));
    (addr, shutdown.drop_guard())
}

/// Connects from `source` (a loopback address) and reads the first line the server says.
async fn connect_from(source: &str, server: SocketAddr) -> (String, BufReader<TcpStream>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut conn = BufReader::new(socket.connect(server).await.unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_line(&mut line))
        .await
        .expect("a greeting within 10 s")
        .unwrap();
    (line, conn)
}

async fn closed(conn: &mut BufReader<TcpStream>) -> bool {
    let mut rest = String::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(10), conn.read_line(&mut rest)).await,
        Ok(Ok(0))
    )
}

const FROM_YOU: &str =
    "421 4.7.0 Error: too many connections from your address, try again later\r\n";

#[tokio::test]
async fn one_address_or_network_gets_only_its_share_of_sessions() {
    let limits =
        Limits { max_sessions_per_address: 3, max_sessions_per_network: 5, ..Limits::default() };
    let server = Server::with_limits(limits).await;
    let (addr, _stop) = listen(&server).await;

    let mut held = Vec::new();
    for _ in 0..3 {
        let (greeting, conn) = connect_from("127.0.0.2", addr).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        held.push(conn);
    }
    // The flooding address is refused at once, with a policy status, and closed…
    let (refused, mut conn) = connect_from("127.0.0.2", addr).await;
    assert_eq!(refused, FROM_YOU);
    assert!(closed(&mut conn).await, "and closed");
    // …while its neighbours still get in, up to the /24's share.
    for neighbour in ["127.0.0.3", "127.0.0.4"] {
        let (greeting, conn) = connect_from(neighbour, addr).await;
        assert!(greeting.starts_with("220 "), "{neighbour}: {greeting}");
        held.push(conn);
    }
    let (refused, _) = connect_from("127.0.0.5", addr).await;
    assert_eq!(refused, FROM_YOU, "the /24 has had its share");
    // Another network is not affected.
    let (greeting, _other) = connect_from("127.0.1.1", addr).await;
    assert!(greeting.starts_with("220 "), "{greeting}");

    // A session that ends gives its place back (the server sees the EOF at its next read).
    held.remove(0);
    let mut again = String::new();
    for _ in 0..100 {
        let (line, conn) = connect_from("127.0.0.2", addr).await;
        again = line;
        if again.starts_with("220 ") {
            held.push(conn);
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(again.starts_with("220 "), "{again}");
}

#[tokio::test]
async fn trusted_networks_are_not_limited() {
    // 127.0.0.1 is a trusted network out of the box (Postfix's mynetworks_style = host), and
    // Postfix exempts $mynetworks from its per-client limits.
    let limits = Limits { max_sessions_per_address: 2, ..Limits::default() };
    let server = Server::with_limits(limits).await;
    let (addr, _stop) = listen(&server).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let (greeting, conn) = connect_from("127.0.0.1", addr).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        held.push(conn);
    }
    for _ in 0..2 {
        let (greeting, conn) = connect_from("127.0.0.9", addr).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        held.push(conn);
    }
    let (refused, _) = connect_from("127.0.0.9", addr).await;
    assert_eq!(refused, FROM_YOU);
}

#[tokio::test]
async fn an_idle_session_is_closed_sooner_before_mail_than_inside_a_transaction() {
    let idle = Duration::from_millis(300);
    let limits = Limits { idle_timeout: idle, ..Limits::default() };
    assert_eq!(limits.command_timeout, Duration::from_secs(300));
    let server = Server::with_limits(limits).await;

    // Two sessions side by side: one stops after EHLO, the other inside a transaction.
    let mut idle_one = server.connect(ListenerKind::Smtp, "192.0.2.40").await;
    let mut busy = server.connect(ListenerKind::Smtp, "192.0.2.41").await;
    busy.expect("EHLO client.test", "250").await;
    busy.expect("MAIL FROM:<x@remote.test>", "250").await;
    let start = std::time::Instant::now();
    idle_one.expect("EHLO client.test", "250").await;
    let reply = idle_one.reply().await;
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
    assert!(idle_one.closed().await);
    let waited = start.elapsed();
    assert!(waited >= idle && waited < Duration::from_secs(10), "{waited:?}");

    // The transaction has been idle at least as long, and goes on: the RFC's 5 minutes apply.
    busy.expect("RCPT TO:<ann@example.test>", "250").await;
    busy.expect("RSET", "250").await;
    // Once it is over, the idle limit again.
    let start = std::time::Instant::now();
    assert!(busy.reply().await.starts_with("421 4.4.2"));
    assert!(start.elapsed() < Duration::from_secs(10));
}
