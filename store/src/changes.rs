//! The change feeds: every process learns of every committed configuration change, and of every
//! administrator action on the queue.
//!
//! In one process a commit updates a `watch` channel directly. Commits from other processes are
//! found by a watcher task: on Postgres it `LISTEN`s (with a slow poll as a safety net), on SQLite
//! it polls one number (the config revision, the newest queue event). Nobody polls whole tables.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::database::Database;
use crate::store::Store;
use crate::{postgres, sqlite};

/// What a watcher follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// The configuration revision.
    Config,
    /// The newest queue event.
    Queue,
}

impl Feed {
    fn channel(self) -> &'static str {
        match self {
            Feed::Config => postgres::CHANNEL,
            Feed::Queue => postgres::QUEUE_CHANNEL,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Feed::Config => "configuration changes",
            Feed::Queue => "queue actions",
        }
    }
}

impl Store {
    /// A receiver that sees each new revision; `borrow()` is the newest known.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.inner.revision.subscribe()
    }

    /// Watches for configuration commits made by other processes until `shutdown` is cancelled.
    pub fn spawn_watcher(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        self.spawn_feed(Feed::Config, shutdown)
    }

    /// Keeps [`Store::queue_subscribe`] up to date with queue events written by other processes
    /// until `shutdown` is cancelled. The engine then reads them with
    /// [`Store::queue_events_after`].
    pub fn spawn_queue_watcher(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        self.spawn_feed(Feed::Queue, shutdown)
    }

    fn spawn_feed(&self, feed: Feed, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            match store.inner.database.clone() {
                Database::Sqlite { .. } => store.poll(feed, sqlite::POLL_INTERVAL, shutdown).await,
                Database::Postgres { url } => store.listen(feed, &url, shutdown).await,
            }
        })
    }

    async fn poll(&self, feed: Feed, interval: Duration, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => self.refresh(feed).await,
            }
        }
    }

    async fn listen(&self, feed: Feed, url: &str, shutdown: CancellationToken) {
        loop {
            let listener = async {
                let mut listener = PgListener::connect(url).await?;
                listener.listen(feed.channel()).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                l = listener => match l {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for {}; polling meanwhile", feed.what());
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        self.refresh(feed).await;
                        continue;
                    }
                }
            };
            // A commit may have landed between our last read and LISTEN taking effect.
            self.refresh(feed).await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(postgres::POLL_INTERVAL) => self.refresh(feed).await,
                    n = listener.recv() => match n {
                        Ok(_) => self.refresh(feed).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the LISTEN connection for {}; reconnecting", feed.what());
                            break;
                        }
                    }
                }
            }
        }
    }

    async fn refresh(&self, feed: Feed) {
        let (newest, advance): (_, fn(&crate::store::Inner, i64)) = match feed {
            Feed::Config => (self.revision().await, crate::store::Inner::advance),
            Feed::Queue => {
                (self.queue_last_event().await, crate::store::Inner::advance_queue_event)
            }
        };
        match newest {
            Ok(value) => advance(&self.inner, value),
            Err(e) => tracing::warn!(error = %e, "cannot read the newest of the {}", feed.what()),
        }
    }
}
