//! The outbound connection cache against Postfix's smtp-sink: messages to one destination share
//! a session, a session the server closed while idle costs the next message nothing, no
//! destination gets more sessions at once than its limit, and a destination that throttles us
//! (421, a 4xx greeting) gets a lower limit that recovers with successful deliveries.
//!
//! Needs the Debian package `postfix` (for smtp-sink). Connections are counted by a connector
//! that wraps the real one.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use postern_server::delivery::connector::ConnectFuture;
use postern_server::delivery::pool::Key;
use postern_server::delivery::{
    BoxStream, Connector, DirectConnector, Outcome, Pool, PoolSettings, Target,
};
use support::delivery;
use support::peers::{sink, sink_on};
use support::{loopback as target, smtp_options as options};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Counts connections opened, and the most open at once.
#[derive(Default)]
struct Counting {
    opened: AtomicUsize,
    open: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

/// A stream that counts itself out of `open` when dropped.
struct Tracked {
    inner: BoxStream,
    open: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connector for Counting {
    fn connect<'a>(&'a self, target: &'a Target) -> ConnectFuture<'a> {
        Box::pin(async move {
            let inner = DirectConnector::default().connect(target).await?;
            self.opened.fetch_add(1, Ordering::SeqCst);
            let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            let stream: BoxStream = Box::new(Tracked { inner, open: self.open.clone() });
            Ok(stream)
        })
    }
}

const BODY: &[u8] = b"Subject: pooled\r\n\r\nhello\r\n";

#[tokio::test]
async fn messages_to_one_destination_share_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_peer, port)) = sink("pool::share", dir.path(), &[]) else { return };
    let pool = Pool::new(PoolSettings { max_uses: 4, ..PoolSettings::default() });
    let counting = Counting::default();
    let rcpts = vec!["bob@example.com".to_string()];
    for _ in 0..10 {
        let out = pool.deliver(&counting, &target(port), &options(), &delivery(&rcpts, BODY)).await;
        assert!(out.iter().all(Outcome::is_delivered), "{out:?}");
    }
    // Four messages a session at most: 10 messages take 3 sessions.
    assert_eq!(counting.opened.load(Ordering::SeqCst), 3);
    pool.close_all().await;
    assert_eq!(counting.open.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_idle_session_is_closed_after_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_peer, port)) = sink("pool::idle", dir.path(), &[]) else { return };
    let settings = PoolSettings { idle: Duration::from_millis(400), ..PoolSettings::default() };
    let pool = Pool::new(settings);
    let counting = Counting::default();
    let rcpts = vec!["bob@example.com".to_string()];
    let out = pool.deliver(&counting, &target(port), &options(), &delivery(&rcpts, BODY)).await;
    assert!(out.iter().all(Outcome::is_delivered), "{out:?}");
    assert_eq!(counting.open.load(Ordering::SeqCst), 1);
    // Idle sessions are timed on the real clock (they mirror the peer's own timeouts).
    let start = std::time::Instant::now();
    while counting.open.load(Ordering::SeqCst) != 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "the idle session is still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(start.elapsed() >= Duration::from_millis(300), "closed before its time limit");
}

#[tokio::test]
async fn a_session_the_server_closed_while_idle_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    // The sink drops a session that says nothing for a second.
    let Some((_peer, port)) = sink("pool::closed", dir.path(), &["-t", "1"]) else { return };
    let pool = Pool::new(PoolSettings::default());
    let counting = Counting::default();
    let rcpts = vec!["bob@example.com".to_string()];
    let out = pool.deliver(&counting, &target(port), &options(), &delivery(&rcpts, BODY)).await;
    assert!(out.iter().all(Outcome::is_delivered), "{out:?}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let out = pool.deliver(&counting, &target(port), &options(), &delivery(&rcpts, BODY)).await;
    assert!(out.iter().all(Outcome::is_delivered), "{out:?}");
    assert_eq!(counting.opened.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_destination_gets_no_more_sessions_than_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    // A second's wait after DATA keeps the deliveries overlapping.
    let Some((_peer, port)) = sink("pool::limit", dir.path(), &["-w", "1"]) else { return };
    let pool = Arc::new(Pool::new(PoolSettings { per_destination: 3, ..PoolSettings::default() }));
    let counting = Arc::new(Counting::default());
    let key = Key::new(&target(port), &options());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..9 {
        let (pool, counting, key) = (pool.clone(), counting.clone(), key.clone());
        tasks.spawn(async move {
            let _permit = pool.permit(&key).await.unwrap();
            let rcpts = vec!["bob@example.com".to_string()];
            let d = delivery(&rcpts, BODY);
            pool.deliver(counting.as_ref(), &target(port), &options(), &d).await
        });
    }
    while let Some(out) = tasks.join_next().await {
        let out = out.unwrap();
        assert!(out.iter().all(Outcome::is_delivered), "{out:?}");
    }
    assert_eq!(counting.most.load(Ordering::SeqCst), 3);
    assert_eq!(counting.opened.load(Ordering::SeqCst), 3, "sessions were not reused");
}

/// Sends one message to the sink at `port` and returns its outcome.
async fn one(pool: &Pool, counting: &Counting, port: u16) -> Outcome {
    let rcpts = vec!["bob@example.com".to_string()];
    let mut out = pool.deliver(counting, &target(port), &options(), &delivery(&rcpts, BODY)).await;
    out.pop().unwrap()
}

#[tokio::test]
async fn a_destination_that_throttles_gets_fewer_sessions_and_they_come_back() {
    let dir = tempfile::tempdir().unwrap();
    // The sink answers MAIL with 421 and hangs up: a server shedding load.
    let Some((throttling, port)) = sink("pool::throttle", dir.path(), &["-Q", "MAIL"]) else {
        return;
    };
    let pool = Pool::new(PoolSettings { per_destination: 8, ..PoolSettings::default() });
    let counting = Counting::default();
    let key = Key::new(&target(port), &options());
    assert_eq!(pool.limit(&key), 8);
    let mut limits = Vec::new();
    for _ in 0..4 {
        let out = one(&pool, &counting, port).await;
        assert!(out.is_deferred() && out.text().starts_with("421"), "{out:?}");
        limits.push(pool.limit(&key));
    }
    assert_eq!(limits, [4, 2, 1, 1], "halved at each 421, down to one");

    // The same destination, now taking mail: one more session after each round of successes
    // as large as the limit (1 at 1, 2 at 2, …).
    drop(throttling);
    let Some(_sink) = sink_on("pool::throttle", dir.path(), port, &[]) else { return };
    let mut limits = Vec::new();
    for _ in 0..28 {
        let out = one(&pool, &counting, port).await;
        assert!(out.is_delivered(), "{out:?}");
        limits.push(pool.limit(&key));
    }
    assert_eq!(&limits[..6], [2, 2, 3, 3, 3, 4]);
    assert_eq!(limits[27], 8, "back to the configured limit: {limits:?}");
    pool.close_all().await;
}

#[tokio::test]
async fn a_4xx_greeting_throttles_and_the_lower_limit_holds() {
    let dir = tempfile::tempdir().unwrap();
    // The sink greets with 450: it takes no session now.
    let Some((busy, port)) = sink("pool::greeting", dir.path(), &["-r", "CONNECT"]) else {
        return;
    };
    let pool = Arc::new(Pool::new(PoolSettings { per_destination: 4, ..PoolSettings::default() }));
    let counting = Arc::new(Counting::default());
    let key = Key::new(&target(port), &options());
    for _ in 0..2 {
        let out = one(&pool, &counting, port).await;
        assert!(out.is_deferred() && out.text().starts_with("450"), "{out:?}");
    }
    assert_eq!(pool.limit(&key), 1);

    // Six deliveries at once to the recovered destination, slowed by a second's wait after
    // DATA: one session first; a second only once the first delivery succeeded.
    drop(busy);
    let Some(_sink) = sink_on("pool::greeting", dir.path(), port, &["-w", "1"]) else { return };
    let start = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (pool, counting, key) = (pool.clone(), counting.clone(), key.clone());
        tasks.spawn(async move {
            let _permit = pool.permit(&key).await.unwrap();
            one(&pool, &counting, port).await
        });
    }
    while let Some(out) = tasks.join_next().await {
        let out = out.unwrap();
        assert!(out.is_delivered(), "{out:?}");
    }
    // Rounds of a second each: one delivery at limit 1, two at 2, three at 3 (the last success
    // raising it to 4); never six at once.
    assert!(counting.most.load(Ordering::SeqCst) <= 3, "{:?}", counting.most);
    assert!(start.elapsed() >= Duration::from_secs(3), "{:?}", start.elapsed());
    assert_eq!(pool.limit(&key), 4);
}

/// A throttled destination is remembered half an hour after its limit last changed, on the
/// store's clock: a simulated half hour later, with nobody delivering there, it starts afresh.
#[tokio::test]
async fn a_throttled_destination_is_forgotten_after_half_an_hour_on_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_busy, port)) = sink("pool::forget", dir.path(), &["-r", "CONNECT"]) else {
        return;
    };
    let clock = postern_store::clock::Clock::manual(1_700_000_000);
    // Idle sessions are reaped (and gates looked at) every 100 ms of real time.
    let settings = PoolSettings {
        per_destination: 4,
        idle: Duration::from_millis(400),
        ..PoolSettings::default()
    };
    let pool = Pool::with_clock(settings, clock.clone());
    let counting = Counting::default();
    let key = Key::new(&target(port), &options());
    for _ in 0..2 {
        let out = one(&pool, &counting, port).await;
        assert!(out.is_deferred() && out.text().starts_with("450"), "{out:?}");
    }
    assert_eq!(pool.limit(&key), 1);
    // (That it is kept until then is `throttle`'s unit test, on the same clock.)
    clock.advance(31 * 60);
    let start = std::time::Instant::now();
    while pool.limit(&key) != 4 {
        assert!(start.elapsed() < Duration::from_secs(10), "the throttling is never forgotten");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
