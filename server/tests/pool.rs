//! The outbound connection cache against Postfix's smtp-sink: messages to one destination share
//! a session, a session the server closed while idle costs the next message nothing, and no
//! destination gets more sessions at once than its limit.
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
use support::peers::sink;
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
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(counting.open.load(Ordering::SeqCst), 0, "the idle session is still open");
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
