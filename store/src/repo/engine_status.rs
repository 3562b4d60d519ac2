//! Each engine writes down the revision it runs and the last one it refused; the console reads
//! it to tell an administrator whether a change is live, without a line to the engine itself.

use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

use crate::error::Result;
use crate::store::{Store, now};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineStatus {
    pub node: String,
    /// The configuration revision the engine runs.
    pub revision: i64,
    pub applied_at: i64,
    /// When the engine last said it runs (renewed every half minute).
    pub seen_at: i64,
    /// A newer revision the engine refused, and why.
    pub refused: Option<i64>,
    pub problems: String,
}

/// An engine silent for this long has stopped; it no longer holds a change back.
pub const ENGINE_GONE_AFTER: i64 = 120;

/// Whether a change has reached the engines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Every engine runs the revision or a later one.
    Live,
    /// An engine refused it; it keeps the last good configuration.
    Refused { node: String, problems: String },
    /// Not yet (or no engine runs).
    Pending,
}

impl Store {
    pub async fn record_engine_status(
        &self,
        node: &str,
        revision: i64,
        refused: Option<(i64, &str)>,
    ) -> Result<()> {
        let (refused, problems) = match refused {
            Some((r, p)) => (Some(r), p),
            None => (None, ""),
        };
        // Postgres and SQLite both take this upsert. applied_at moves only with the revision.
        let at = now();
        sqlx::query(
            "INSERT INTO engine_status (node, revision, applied_at, seen_at, refused, problems) \
             VALUES ($1, $2, $3, $3, $4, $5) ON CONFLICT (node) DO UPDATE SET \
             applied_at = CASE WHEN engine_status.revision = $2 THEN engine_status.applied_at \
             ELSE $3 END, revision = $2, seen_at = $3, refused = $4, problems = $5",
        )
        .bind(node)
        .bind(revision)
        .bind(at)
        .bind(refused)
        .bind(problems)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn engine_status(&self) -> Result<Vec<EngineStatus>> {
        let rows = sqlx::query(
            "SELECT node, revision, applied_at, seen_at, refused, problems FROM engine_status \
             ORDER BY node",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EngineStatus {
                    node: row.try_get("node")?,
                    revision: row.try_get("revision")?,
                    applied_at: row.try_get("applied_at")?,
                    seen_at: row.try_get("seen_at")?,
                    refused: row.try_get("refused")?,
                    problems: row.try_get("problems")?,
                })
            })
            .collect()
    }

    /// Waits up to `within` for every engine to run `revision`, then says where it stands.
    pub async fn wait_until_live(&self, revision: i64, within: Duration) -> Result<Liveness> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let alive = now() - ENGINE_GONE_AFTER;
            let engines: Vec<EngineStatus> =
                self.engine_status().await?.into_iter().filter(|e| e.seen_at >= alive).collect();
            if let Some(e) = engines.iter().find(|e| e.refused.is_some_and(|r| r >= revision)) {
                return Ok(Liveness::Refused {
                    node: e.node.clone(),
                    problems: e.problems.clone(),
                });
            }
            if !engines.is_empty() && engines.iter().all(|e| e.revision >= revision) {
                return Ok(Liveness::Live);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Liveness::Pending);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
