//! The delivery log: what happened to each message and recipient, for the console's log page
//! and its dashboard counts. The queue writes it (see `repo::queue`); this reads and trims it.

use serde::Serialize;
use sqlx::Row;

use super::matching;
use crate::error::Result;
use crate::model::DomainName;
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    pub id: i64,
    pub at: i64,
    pub message_id: String,
    pub sender: String,
    pub recipient: String,
    pub domain: String,
    /// `received`, `delivered`, `deferred` or `failed`.
    pub status: String,
    /// The remote reply, or our own reason.
    pub reply: String,
}

/// Which entries a log page shows. `domains` restricts a domain-admin to its own.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub domains: Option<Vec<DomainName>>,
    pub status: Option<String>,
    /// A substring of the sender, the recipient or the message ID.
    pub search: Option<String>,
}

/// Messages per status in one hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HourCounts {
    /// Epoch seconds of the start of the hour.
    pub hour: i64,
    pub received: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub failed: u64,
}

impl Store {
    /// Up to `limit` entries older than `before` (an entry ID), newest first.
    pub async fn delivery_log(
        &self,
        filter: &LogFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LogEntry>> {
        let rows = sqlx::query(
            "SELECT id, at, message_id, sender, recipient, domain, status, reply FROM delivery_log \
             WHERE id < $1 \
             AND ($2 IS NULL OR CASE WHEN $2 LIKE '% ' || domain || ' %' \
                  THEN LENGTH(REPLACE($2, ' ' || domain || ' ', '')) < LENGTH($2) ELSE FALSE END) \
             AND ($3 IS NULL OR status = $3) \
             AND ($4 IS NULL OR LOWER(sender) LIKE $4 ESCAPE '\\' OR LOWER(recipient) LIKE $4 ESCAPE '\\' \
                  OR LOWER(message_id) LIKE $4 ESCAPE '\\') \
             ORDER BY id DESC LIMIT $5",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(matching::domain_param(&filter.domains))
        .bind(filter.status.as_deref())
        .bind(matching::like(&filter.search))
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(entry).collect()
    }

    /// Everything logged about one message (its arrival and every delivery attempt to each
    /// recipient), oldest first, limited to the recipients in `domains` (a domain-admin's). It
    /// outlives the message's stay in the queue, until the log is trimmed.
    pub async fn message_history(
        &self,
        message_id: &str,
        domains: &Option<Vec<DomainName>>,
    ) -> Result<Vec<LogEntry>> {
        let rows = sqlx::query(
            "SELECT id, at, message_id, sender, recipient, domain, status, reply FROM delivery_log \
             WHERE message_id = $1 \
             AND ($2 IS NULL OR CASE WHEN $2 LIKE '% ' || domain || ' %' \
                  THEN LENGTH(REPLACE($2, ' ' || domain || ' ', '')) < LENGTH($2) ELSE FALSE END) \
             ORDER BY id LIMIT 1000",
        )
        .bind(message_id)
        .bind(matching::domain_param(domains))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(entry).collect()
    }

    /// Counts per hour and status since `since` (epoch seconds), oldest hour first; hours with
    /// nothing are left out.
    pub async fn delivery_counts(
        &self,
        since: i64,
        domains: &Option<Vec<DomainName>>,
    ) -> Result<Vec<HourCounts>> {
        let rows = sqlx::query(
            "SELECT (at / 3600) * 3600 AS hour, status, COUNT(*) AS n FROM delivery_log \
             WHERE at >= $1 AND ($2 IS NULL OR CASE WHEN $2 LIKE '% ' || domain || ' %' \
                  THEN LENGTH(REPLACE($2, ' ' || domain || ' ', '')) < LENGTH($2) ELSE FALSE END) \
             GROUP BY (at / 3600) * 3600, status ORDER BY 1",
        )
        .bind(since)
        .bind(matching::domain_param(domains))
        .fetch_all(self.pool())
        .await?;
        let mut hours: Vec<HourCounts> = Vec::new();
        for row in &rows {
            let hour: i64 = row.try_get("hour")?;
            let status: String = row.try_get("status")?;
            let n = row.try_get::<i64, _>("n")?.max(0) as u64;
            if hours.last().is_none_or(|h| h.hour != hour) {
                hours.push(HourCounts { hour, ..HourCounts::default() });
            }
            let h = hours.last_mut().expect("pushed above");
            match status.as_str() {
                "received" => h.received += n,
                "delivered" => h.delivered += n,
                "deferred" => h.deferred += n,
                _ => h.failed += n,
            }
        }
        Ok(hours)
    }

    /// Removes entries older than `before` (epoch seconds); returns how many.
    pub async fn trim_delivery_log(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM delivery_log WHERE at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

fn entry(row: &sqlx::any::AnyRow) -> Result<LogEntry> {
    Ok(LogEntry {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        message_id: row.try_get("message_id")?,
        sender: row.try_get("sender")?,
        recipient: row.try_get("recipient")?,
        domain: row.try_get("domain")?,
        status: row.try_get("status")?,
        reply: row.try_get("reply")?,
    })
}
