//! Rate limits (add, change, remove: each a [`crate::store::Change`], so the engines count
//! against the new thresholds at once) and the counters the engines publish for the console.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::{Result, StoreError};
use crate::model::{NewRateLimit, RateLimit};
use crate::store::{Store, now};

const COLUMNS: &str = "id, rate_key, measure, threshold, window_secs, description, created_at";

fn limit(row: &AnyRow) -> Result<RateLimit> {
    let key: String = row.try_get("rate_key")?;
    let measure: String = row.try_get("measure")?;
    Ok(RateLimit {
        id: row.try_get("id")?,
        key: key.parse()?,
        measure: measure.parse()?,
        threshold: row.try_get("threshold")?,
        window_secs: row.try_get("window_secs")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Every limit, by id.
pub(crate) async fn load(conn: &mut AnyConnection) -> Result<Vec<RateLimit>> {
    let sql = format!("SELECT {COLUMNS} FROM rate_limits ORDER BY id");
    sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(conn).await?.iter().map(limit).collect()
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound { what: "rate limit", name: id.to_string() }
}

/// One counter as an engine published it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateCounter {
    pub node: String,
    pub limit_id: i64,
    /// What is counted: an address, a network, a user, a domain.
    pub subject: String,
    pub count: i64,
    pub threshold: i64,
    /// When the window ends and the count starts again (Unix seconds).
    pub resets_at: i64,
    /// When the engine published it.
    pub updated_at: i64,
}

/// Counters older than this are from an engine that stopped publishing; they are not shown.
pub const COUNTERS_STALE_AFTER: i64 = 120;

impl Store {
    pub async fn list_rate_limits(&self) -> Result<Vec<RateLimit>> {
        let mut conn = self.pool().acquire().await?;
        load(&mut conn).await
    }

    pub async fn add_rate_limit(&self, actor: &str, new: NewRateLimit) -> Result<RateLimit> {
        new.check()?;
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM rate_limits")
                .fetch_one(change.conn())
                .await?;
            let created_at = now();
            sqlx::query(
                "INSERT INTO rate_limits (id, rate_key, measure, threshold, window_secs, \
                 description, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(new.key.as_str())
            .bind(new.measure.as_str())
            .bind(new.threshold)
            .bind(new.window_secs)
            .bind(&new.description)
            .bind(created_at)
            .execute(change.conn())
            .await?;
            let limit = RateLimit {
                id,
                key: new.key,
                measure: new.measure,
                threshold: new.threshold,
                window_secs: new.window_secs,
                description: new.description.clone(),
                created_at,
            };
            change
                .audit("rate_limit.add", &id.to_string(), None::<&RateLimit>, Some(&limit))
                .await?;
            Ok(limit)
        }
        .await;
        change.finish(result).await
    }

    /// Replaces limit `id`'s values; the engines' counts under it go on.
    pub async fn update_rate_limit(
        &self,
        actor: &str,
        id: i64,
        new: NewRateLimit,
    ) -> Result<RateLimit> {
        new.check()?;
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let before = load(change.conn())
                .await?
                .into_iter()
                .find(|l| l.id == id)
                .ok_or_else(|| not_found(id))?;
            sqlx::query(
                "UPDATE rate_limits SET rate_key = $1, measure = $2, threshold = $3, \
                 window_secs = $4, description = $5 WHERE id = $6",
            )
            .bind(new.key.as_str())
            .bind(new.measure.as_str())
            .bind(new.threshold)
            .bind(new.window_secs)
            .bind(&new.description)
            .bind(id)
            .execute(change.conn())
            .await?;
            let after = RateLimit {
                key: new.key,
                measure: new.measure,
                threshold: new.threshold,
                window_secs: new.window_secs,
                description: new.description.clone(),
                ..before.clone()
            };
            change.audit("rate_limit.update", &id.to_string(), Some(&before), Some(&after)).await?;
            Ok(after)
        }
        .await;
        change.finish(result).await
    }

    pub async fn remove_rate_limit(&self, actor: &str, id: i64) -> Result<RateLimit> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let before = load(change.conn())
                .await?
                .into_iter()
                .find(|l| l.id == id)
                .ok_or_else(|| not_found(id))?;
            sqlx::query("DELETE FROM rate_limits WHERE id = $1")
                .bind(id)
                .execute(change.conn())
                .await?;
            change
                .audit("rate_limit.remove", &id.to_string(), Some(&before), None::<&RateLimit>)
                .await?;
            Ok(before)
        }
        .await;
        change.finish(result).await
    }

    /// Replaces `node`'s published counters with `counters` (engine bookkeeping, not
    /// configuration: no revision, no audit), and deletes every node's stale ones: those of
    /// an engine that stopped publishing (older than [`COUNTERS_STALE_AFTER`]) and those whose
    /// window has ended, so that the table holds what the console shows and no more.
    pub async fn publish_rate_counters(&self, node: &str, counters: &[RateCounter]) -> Result<()> {
        let at = now();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "DELETE FROM rate_counters WHERE node = $1 OR updated_at < $2 OR resets_at < $3",
        )
        .bind(node)
        .bind(at - COUNTERS_STALE_AFTER)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        for c in counters {
            sqlx::query(
                "INSERT INTO rate_counters (node, limit_id, subject, count, threshold, \
                 resets_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(node)
            .bind(c.limit_id)
            .bind(&c.subject)
            .bind(c.count)
            .bind(c.threshold)
            .bind(c.resets_at)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every engine's recent counters, nearest their thresholds first, at most `max`.
    pub async fn rate_counters(&self, max: usize) -> Result<Vec<RateCounter>> {
        let mut conn = self.pool().acquire().await?;
        let since = now() - COUNTERS_STALE_AFTER;
        let rows = sqlx::query(
            "SELECT node, limit_id, subject, count, threshold, resets_at, updated_at \
             FROM rate_counters WHERE updated_at >= $1 AND resets_at >= $2",
        )
        .bind(since)
        .bind(now())
        .fetch_all(&mut *conn)
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(RateCounter {
                    node: r.try_get("node")?,
                    limit_id: r.try_get("limit_id")?,
                    subject: r.try_get("subject")?,
                    count: r.try_get("count")?,
                    threshold: r.try_get("threshold")?,
                    resets_at: r.try_get("resets_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Nearest the threshold first: count/threshold, compared without floating point.
        out.sort_by(|a, b| {
            (b.count as i128 * a.threshold as i128)
                .cmp(&(a.count as i128 * b.threshold as i128))
                .then(b.count.cmp(&a.count))
        });
        out.truncate(max);
        Ok(out)
    }
}
