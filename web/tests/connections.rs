//! The console's listeners over real TCP on port 0: connections beyond the cap (overall and per
//! address) are refused at once, and idle, half-sent and trickling connections are closed.
//! Loopback lets a test play several clients: 127.0.0.2, 127.0.0.3… are all this machine.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use postern_store::boot::ConsoleOptions;
use postern_store::testing::TestDb;
use postern_web::{AppState, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

/// A console on 127.0.0.1:0 with `options`; stops when the guard is dropped.
struct Console {
    addr: SocketAddr,
    _db: TestDb,
    _stop: tokio_util::sync::DropGuard,
}

async fn console(options: ConsoleOptions) -> Console {
    let db = TestDb::sqlite();
    let store = db.open().await;
    let settings = Settings { live_wait: Duration::ZERO, options, ..Settings::default() };
    let state = AppState::new(store, settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(postern_web::run(listener, state, shutdown.clone()));
    Console { addr, _db: db, _stop: shutdown.drop_guard() }
}

async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Everything the server says until it closes (a reset counts as a close), within 10 s.
async fn until_closed(conn: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server did not close the connection within 10 s; it said {:?}",
        String::from_utf8_lossy(&all)
    );
    String::from_utf8_lossy(&all).into_owned()
}

/// A whole request on a fresh connection from `source`; the status line of the reply.
async fn get(source: &str, to: SocketAddr) -> String {
    let mut conn = connect_from(source, to).await;
    conn.write_all(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    until_closed(&mut conn).await.lines().next().unwrap_or("").to_string()
}

/// Waits until the server holds the silent connections given: they are accepted in the
/// background, and one request that gets a reply after them proves they were.
async fn settled(to: SocketAddr) {
    assert_eq!(get("127.0.0.200", to).await, "HTTP/1.1 200 OK");
}

/// A connection with a request in progress: its body is promised and never finished.
async fn busy_from(source: &str, to: SocketAddr) -> TcpStream {
    let mut conn = connect_from(source, to).await;
    conn.write_all(
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=a",
    )
    .await
    .unwrap();
    conn
}

#[tokio::test]
async fn beyond_the_cap_an_idle_connection_gives_way_and_a_busy_console_refuses_at_once() {
    let options = ConsoleOptions {
        max_connections: 4,
        max_connections_per_address: 0,
        ..ConsoleOptions::default()
    };
    let console = console(options).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect_from("127.0.0.2", console.addr).await);
    }
    // Every place is taken by a connection that has said nothing: the one that has waited
    // longest is closed for a newcomer, who is served.
    assert_eq!(get("127.0.0.3", console.addr).await, "HTTP/1.1 200 OK");
    assert_eq!(until_closed(&mut idle[0]).await, "", "the oldest idle connection gave way");

    // With every place taken by a request in progress, a newcomer gets a 503 at once.
    let mut busy = Vec::new();
    for _ in 0..4 {
        busy.push(busy_from("127.0.0.2", console.addr).await);
    }
    let mut status = String::new();
    let start = Instant::now();
    for _ in 0..200 {
        // The idle ones give way to the busy ones as these arrive; then the cap holds.
        let mut refused = connect_from("127.0.0.3", console.addr).await;
        let reply = until_closed(&mut refused).await;
        status = reply.lines().next().unwrap_or("").to_string();
        if status.starts_with("HTTP/1.1 503") {
            assert!(reply.contains("Retry-After: 5"), "{reply}");
            break;
        }
    }
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());

    // A connection that ends gives its place back.
    busy.clear();
    for _ in 0..200 {
        status = get("127.0.0.3", console.addr).await;
        if status == "HTTP/1.1 200 OK" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let options = ConsoleOptions {
        max_connections: 20,
        max_connections_per_address: 3,
        ..ConsoleOptions::default()
    };
    let console = console(options).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.2", console.addr).await);
    }
    settled(console.addr).await;
    let mut refused = connect_from("127.0.0.2", console.addr).await;
    assert!(until_closed(&mut refused).await.starts_with("HTTP/1.1 503 "));
    // Another client is served as if nothing happened.
    assert_eq!(get("127.0.0.3", console.addr).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn idle_half_sent_and_trickling_connections_are_closed() {
    let (idle, header) = (Duration::from_millis(300), Duration::from_millis(600));
    let options =
        ConsoleOptions { idle_timeout: idle, header_timeout: header, ..ConsoleOptions::default() };
    let console = console(options).await;

    // Connected, never a word.
    let start = Instant::now();
    let mut silent = connect_from("127.0.0.2", console.addr).await;
    assert_eq!(until_closed(&mut silent).await, "");
    assert!(start.elapsed() >= idle, "{:?}", start.elapsed());

    // Half a request's headers, then nothing.
    let start = Instant::now();
    let mut half = connect_from("127.0.0.2", console.addr).await;
    half.write_all(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
    until_closed(&mut half).await;
    assert!(start.elapsed() >= header, "{:?}", start.elapsed());

    // Headers one byte at a time, each in time for the idle timeout but never finished: the
    // header timeout counts from the first byte.
    let start = Instant::now();
    let mut trickle = connect_from("127.0.0.2", console.addr).await;
    let head = b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for byte in head {
        if trickle.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_closed(&mut trickle).await;
    let took = start.elapsed();
    assert!(took >= header && took < Duration::from_secs(2), "{took:?}");

    // A body that never arrives in full.
    let start = Instant::now();
    let mut body = connect_from("127.0.0.2", console.addr).await;
    body.write_all(
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=a",
    )
    .await
    .unwrap();
    let reply = until_closed(&mut body).await;
    assert!(start.elapsed() >= idle, "{:?}", start.elapsed());
    assert!(reply.is_empty() || reply.starts_with("HTTP/1.1 4"), "{reply}");

    // Kept alive after a reply, then idle.
    let mut kept = connect_from("127.0.0.2", console.addr).await;
    kept.write_all(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let start = Instant::now();
    let reply = until_closed(&mut kept).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(start.elapsed() >= idle, "{:?}", start.elapsed());
}

#[tokio::test]
async fn over_tcp_the_console_answers_to_its_own_address_and_names_only() {
    let console = console(ConsoleOptions::default()).await;
    let own = console.addr.to_string();
    let cases = [
        (own.as_str(), "HTTP/1.1 200 OK"),
        ("127.0.0.1", "HTTP/1.1 200 OK"),
        ("localhost:8080", "HTTP/1.1 200 OK"),
        // Another address of this machine is not the one the listener was reached on.
        ("127.0.0.2", "HTTP/1.1 421 Misdirected Request"),
        ("rebind.attacker.example", "HTTP/1.1 421 Misdirected Request"),
    ];
    for (host, expected) in cases {
        let mut conn = connect_from("127.0.0.2", console.addr).await;
        let request = format!("GET /login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let reply = until_closed(&mut conn).await;
        assert_eq!(reply.lines().next().unwrap_or(""), expected, "Host: {host}");
    }
}
