//! The SQLite backend: the embedded default, one file in the data directory.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Executor};

use crate::error::StoreError;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// How often another process's commit is looked for: a one-row read, cheap enough to do often.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(200);

pub(crate) async fn connect(path: &Path) -> Result<AnyPool, StoreError> {
    let url = SqliteConnectOptions::new().filename(path).create_if_missing(true).to_url_lossy();
    AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL lets readers run beside the writer; synchronous=FULL makes a commit
                // durable (ARCHITECTURE.md: durability); busy_timeout makes concurrent writers
                // wait, not fail.
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                )
                .await?;
                Ok(())
            })
        })
        .connect(url.as_str())
        .await
        .map_err(|e| StoreError::Connect {
            url: format!("sqlite:{}", path.display()),
            message: e.to_string(),
        })
}
