//! The queue's event feed across processes: an engine learns of an action taken by the CLI or
//! the console elsewhere. On Postgres it `LISTEN`s on `postern_queue` (with a slow poll as a
//! safety net); on SQLite it polls the newest `queue_events` id, one indexed read.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::database::Database;
use crate::store::Store;
use crate::{postgres, sqlite};

impl Store {
    /// Keeps [`Store::queue_subscribe`] up to date with events written by other processes until
    /// `shutdown` is cancelled. The engine then reads them with [`Store::queue_events_after`].
    pub fn spawn_queue_watcher(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            match store.inner.database.clone() {
                Database::Sqlite { .. } => store.poll_queue(sqlite::POLL_INTERVAL, shutdown).await,
                Database::Postgres { url } => store.listen_queue(&url, shutdown).await,
            }
        })
    }

    async fn poll_queue(&self, interval: Duration, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => self.refresh_queue_event().await,
            }
        }
    }

    async fn listen_queue(&self, url: &str, shutdown: CancellationToken) {
        loop {
            let listener = async {
                let mut listener = PgListener::connect(url).await?;
                listener.listen("postern_queue").await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                l = listener => match l {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for queue actions; polling meanwhile");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        self.refresh_queue_event().await;
                        continue;
                    }
                }
            };
            // An action may have landed between our last read and LISTEN taking effect.
            self.refresh_queue_event().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(postgres::POLL_INTERVAL) => self.refresh_queue_event().await,
                    n = listener.recv() => match n {
                        Ok(_) => self.refresh_queue_event().await,
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the queue LISTEN connection; reconnecting");
                            break;
                        }
                    }
                }
            }
        }
    }

    async fn refresh_queue_event(&self) {
        match self.queue_last_event().await {
            Ok(event) => self.inner.advance_queue_event(event),
            Err(e) => tracing::warn!(error = %e, "cannot read the newest queue event"),
        }
    }
}
