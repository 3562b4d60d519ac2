//! The engines' counters over time: each engine adds what its Prometheus counters grew by
//! since its last sample to its row for the minute (`metric_samples`), and the dashboard's chart
//! sums the rows of every node per hour. So the chart and `/metrics` count the same events,
//! and several engines over one Postgres add up.

use sqlx::Row;

use crate::error::Result;
use crate::metrics::CounterTotals;
use crate::repo::delivery_log::HourCounts;
use crate::store::Store;

/// The width of one sample row, in seconds.
pub const SAMPLE_SECONDS: i64 = 60;

impl Store {
    /// Adds `delta` (what `node` counted since its previous sample) to its row for the minute
    /// of `at` (epoch seconds). Nothing is written for an idle minute.
    pub async fn record_metric_sample(
        &self,
        node: &str,
        at: i64,
        delta: &CounterTotals,
    ) -> Result<()> {
        if delta.is_zero() {
            return Ok(());
        }
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO metric_samples (node, at, received, delivered, deferred, bounced, \
             rejected, tempfailed, discarded) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (node, at) DO UPDATE SET \
             received = metric_samples.received + excluded.received, \
             delivered = metric_samples.delivered + excluded.delivered, \
             deferred = metric_samples.deferred + excluded.deferred, \
             bounced = metric_samples.bounced + excluded.bounced, \
             rejected = metric_samples.rejected + excluded.rejected, \
             tempfailed = metric_samples.tempfailed + excluded.tempfailed, \
             discarded = metric_samples.discarded + excluded.discarded",
        )
        .bind(node)
        .bind(at.div_euclid(SAMPLE_SECONDS) * SAMPLE_SECONDS)
        .bind(n(delta.received))
        .bind(n(delta.delivered))
        .bind(n(delta.deferred))
        .bind(n(delta.bounced))
        .bind(n(delta.rejected))
        .bind(n(delta.tempfailed))
        .bind(n(delta.discarded))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The counters of every node summed per hour since `since` (epoch seconds), oldest hour
    /// first; hours with nothing are left out. `failed` is the bounced count.
    pub async fn metric_counts(&self, since: i64) -> Result<Vec<HourCounts>> {
        let rows = sqlx::query(
            "SELECT (at / 3600) * 3600 AS hour, \
             CAST(SUM(received) AS BIGINT) AS received, CAST(SUM(delivered) AS BIGINT) AS delivered, \
             CAST(SUM(deferred) AS BIGINT) AS deferred, CAST(SUM(bounced) AS BIGINT) AS bounced, \
             CAST(SUM(rejected) AS BIGINT) AS rejected, \
             CAST(SUM(tempfailed) AS BIGINT) AS tempfailed, \
             CAST(SUM(discarded) AS BIGINT) AS discarded \
             FROM metric_samples WHERE at >= $1 GROUP BY (at / 3600) * 3600 ORDER BY 1",
        )
        .bind(since.div_euclid(SAMPLE_SECONDS) * SAMPLE_SECONDS)
        .fetch_all(self.pool())
        .await?;
        let mut hours = Vec::with_capacity(rows.len());
        for row in &rows {
            let n =
                |column: &str| -> Result<u64> { Ok(row.try_get::<i64, _>(column)?.max(0) as u64) };
            hours.push(HourCounts {
                hour: row.try_get("hour")?,
                received: n("received")?,
                delivered: n("delivered")?,
                deferred: n("deferred")?,
                failed: n("bounced")?,
                rejected: n("rejected")?,
                tempfailed: n("tempfailed")?,
                discarded: n("discarded")?,
            });
        }
        Ok(hours)
    }

    /// Removes the samples older than `before` (epoch seconds); returns how many.
    pub(crate) async fn trim_metric_samples(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM metric_samples WHERE at < $1")
            .bind(before)
            .execute(self.pool())
            .await?
            .rows_affected())
    }
}
