//! The SQLite backend: the embedded default, one file in the data directory.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

use crate::error::StoreError;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// How often another process's commit is looked for: a one-row read, cheap enough to do often.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Brings the schema up to date holding an exclusive lock on `<database>.lock`. sqlx's
/// migration lock is a no-op on SQLite, so two processes starting on a fresh store (a `serve`
/// and a CLI command run right then) would both create the tables, and one would fail with
/// "table already exists". Postgres needs nothing of ours: sqlx takes an advisory lock there.
pub(crate) async fn migrate(pool: &AnyPool, path: &Path) -> Result<(), StoreError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = std::path::PathBuf::from(name);
    let fail = |e: std::io::Error| StoreError::Connect {
        url: format!("sqlite:{}", path.display()),
        message: format!("cannot lock {} to migrate the schema: {e}", lock_path.display()),
    };
    crate::files::private_file(&lock_path).map_err(fail)?;
    let file = std::fs::File::options().write(true).open(&lock_path).map_err(fail)?;
    // Blocking: the other process holds it only for as long as its migrations take.
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| fail(std::io::Error::other(e)))?
        .map_err(fail)?;
    let result = MIGRATOR.run(pool).await;
    drop(file);
    Ok(result?)
}

pub(crate) async fn connect(path: &Path) -> Result<AnyPool, StoreError> {
    let url = SqliteConnectOptions::new().filename(path).create_if_missing(true).to_url_lossy();
    AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(30))
        // No ping before each use: a connection to a file in this process cannot have gone
        // away, and the ping was a trip to the connection's thread on every read.
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL lets readers run beside the writer; synchronous=FULL makes a commit
                // durable (ARCHITECTURE.md: durability); busy_timeout makes concurrent writers
                // wait, not fail. auto_vacuum first: it takes effect on a new, empty file only
                // (`upkeep` converts an older one), and lets the upkeep give freed pages back.
                conn.execute(
                    "PRAGMA auto_vacuum = INCREMENTAL; \
                     PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                )
                .await?;
                Ok(())
            })
        })
        // A write that fails with SQLITE_FULL (disk full) or SQLITE_IOERR is rolled back by
        // SQLite itself; the ROLLBACK that follows then fails ("no transaction is active") and
        // sqlx still counts the connection as inside a transaction, so every later BEGIN on it
        // fails ("non-zero transaction depth") and the queue keeps answering 451 after the
        // space has come back. Such a connection is closed, not reused (tests/durability.rs).
        .after_release(|conn, _meta| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
        .connect(url.as_str())
        .await
        .map_err(|e| StoreError::Connect {
            url: format!("sqlite:{}", path.display()),
            message: e.to_string(),
        })
}
