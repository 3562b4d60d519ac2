//! Keeping the store's files bounded, and saying how big they are: SQLite's WAL is checkpointed
//! and truncated, and the pages freed by delivered mail go back to the file system (incremental
//! vacuum); the sizes of the database, its WAL and the spool go to the dashboard. Postgres
//! looks after itself (autovacuum); only its size is reported.

use std::path::{Path, PathBuf};

use crate::database::Database;
use crate::error::Result;
use crate::store::Store;

/// How large the store is on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageSizes {
    /// The database: SQLite's file, or the Postgres database.
    pub database: u64,
    /// SQLite's write-ahead log (`<file>-wal`); `None` with Postgres.
    pub wal: Option<u64>,
    /// Of `database`, the pages SQLite holds free for reuse, which the next upkeep returns.
    pub free: u64,
    /// Message bodies stored apart (`crate::spool`): how many, and their bytes.
    pub spooled: u64,
    pub spooled_bytes: u64,
}

/// What one upkeep pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Bytes given back to the file system by the incremental vacuum.
    pub vacuumed: u64,
    /// The WAL was checkpointed whole and truncated (no reader was holding it).
    pub wal_truncated: bool,
}

fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

impl Store {
    pub async fn storage_sizes(&self) -> Result<StorageSizes> {
        let mut sizes = StorageSizes::default();
        match &self.inner.database {
            Database::Sqlite { path } => {
                let (pages, free, page) = self.sqlite_pages().await?;
                sizes.database = pages * page;
                sizes.free = free * page;
                sizes.wal = Some(std::fs::metadata(wal_path(path)).map(|m| m.len()).unwrap_or(0));
            }
            Database::Postgres { .. } => {
                let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(self.pool())
                    .await?;
                sizes.database = size.max(0) as u64;
            }
        }
        // COALESCE(SUM(...)) is NUMERIC on Postgres: cast so both backends give a BIGINT.
        let (chunked, bytes): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(DISTINCT body_ref), CAST(COALESCE(SUM(LENGTH(data)), 0) AS BIGINT) \
             FROM queue_body_chunks",
        )
        .fetch_one(self.pool())
        .await?;
        sizes.spooled = chunked.max(0) as u64;
        sizes.spooled_bytes = bytes.max(0) as u64;
        if let Some(files) = &self.inner.bodies.files
            && let Ok(mut entries) = tokio::fs::read_dir(files.dir()).await
        {
            while let Ok(Some(entry)) = entries.next_entry().await {
                if let Ok(meta) = entry.metadata().await {
                    sizes.spooled += 1;
                    sizes.spooled_bytes += meta.len();
                }
            }
        }
        Ok(sizes)
    }

    /// Pages in the file, pages free, and the page size.
    async fn sqlite_pages(&self) -> Result<(u64, u64, u64)> {
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(self.pool()).await?;
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count").fetch_one(self.pool()).await?;
        let page: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(self.pool()).await?;
        Ok((pages.max(0) as u64, free.max(0) as u64, page.max(0) as u64))
    }

    /// One upkeep pass, for a schedule: with SQLite, the free pages go back to the file system
    /// and the WAL is checkpointed and truncated, so that neither grows for as long as the
    /// appliance runs (delivered mail frees pages; SQLite's own checkpoints never shrink the
    /// WAL). Nothing to do with Postgres.
    pub async fn compact(&self) -> Result<Compacted> {
        if self.is_postgres() {
            return Ok(Compacted::default());
        }
        let (_, free_before, page) = self.sqlite_pages().await?;
        sqlx::query("PRAGMA incremental_vacuum").execute(self.pool()).await?;
        let (_, free_after, _) = self.sqlite_pages().await?;
        // (busy, WAL frames, frames checkpointed): busy when a reader held the WAL.
        let (busy, _, _): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(self.pool()).await?;
        Ok(Compacted {
            vacuumed: free_before.saturating_sub(free_after) * page,
            wal_truncated: busy == 0,
        })
    }
}

/// Turns incremental vacuum on for a database made before it was the default: the setting
/// takes effect only through a full `VACUUM`, once. New files get it from the connection's
/// pragmas (`sqlite::connect`) before their first table.
pub(crate) async fn enable_incremental_vacuum(pool: &sqlx::AnyPool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(&mut *conn).await?;
    if mode == 2 {
        return Ok(());
    }
    tracing::info!("turning on incremental vacuum: one VACUUM of the database");
    sqlx::query("PRAGMA auto_vacuum = INCREMENTAL").execute(&mut *conn).await?;
    sqlx::query("VACUUM").execute(&mut *conn).await?;
    Ok(())
}
