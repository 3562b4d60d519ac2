//! The change feed: every process learns of every committed configuration change.
//!
//! In one process a commit updates a `watch` channel directly. Commits from other processes are
//! found by a watcher task: on Postgres it `LISTEN`s (with a slow poll as a safety net), on SQLite
//! it polls the one-row revision counter. Nobody polls the whole configuration.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::database::Database;
use crate::store::Store;
use crate::{postgres, sqlite};

impl Store {
    /// A receiver that sees each new revision; `borrow()` is the newest known.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.inner.revision.subscribe()
    }

    /// Watches for commits made by other processes until `shutdown` is cancelled.
    pub fn spawn_watcher(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            match store.inner.database.clone() {
                Database::Sqlite { .. } => store.poll(sqlite::POLL_INTERVAL, shutdown).await,
                Database::Postgres { url } => store.listen(&url, shutdown).await,
            }
        })
    }

    async fn poll(&self, interval: Duration, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => self.refresh_revision().await,
            }
        }
    }

    async fn listen(&self, url: &str, shutdown: CancellationToken) {
        loop {
            let listener = async {
                let mut listener = PgListener::connect(url).await?;
                listener.listen(postgres::CHANNEL).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                l = listener => match l {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for configuration changes; polling meanwhile");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        self.refresh_revision().await;
                        continue;
                    }
                }
            };
            // A commit may have landed between our last read and LISTEN taking effect.
            self.refresh_revision().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(postgres::POLL_INTERVAL) => self.refresh_revision().await,
                    n = listener.recv() => match n {
                        Ok(_) => self.refresh_revision().await,
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                            break;
                        }
                    }
                }
            }
        }
    }

    async fn refresh_revision(&self) {
        match self.revision().await {
            Ok(revision) => self.inner.advance(revision),
            Err(e) => tracing::warn!(error = %e, "cannot read the configuration revision"),
        }
    }
}
