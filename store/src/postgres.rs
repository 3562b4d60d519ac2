//! The Postgres backend: one database shared by several machines. Commits are announced with
//! `NOTIFY postern_config`, which other processes `LISTEN` for.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection};

use crate::database::redact_url;
use crate::error::StoreError;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The notification channel. It carries no payload: listeners re-read the revision, so a stray
/// notification from another schema in the same database costs one cheap read and nothing else.
pub(crate) const CHANNEL: &str = "postern_config";
/// Queue actions (hold, retry…) are announced here: `NOTIFY postern_queue`.
pub(crate) const QUEUE_CHANNEL: &str = "postern_queue";

/// A safety net under LISTEN: if a notification is lost while the listener reconnects, the next
/// poll still finds the change.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(5);

pub(crate) async fn connect(url: &str) -> Result<AnyPool, StoreError> {
    let fail = |message: String| StoreError::Connect { url: redact_url(url), message };
    // One plain attempt first: the pool would retry a refused connection until its acquire
    // timeout and then report only that it timed out, hiding the cause.
    match tokio::time::timeout(Duration::from_secs(10), AnyConnection::connect(url)).await {
        Err(_) => return Err(fail("no answer within 10 seconds".into())),
        Ok(Err(e)) => return Err(fail(e.to_string())),
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
        }
    }
    AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| fail(e.to_string()))
}
