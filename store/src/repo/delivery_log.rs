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
    /// `received`, `delivered`, `deferred` or `failed` for queued mail; `rejected`,
    /// `tempfailed` or `discarded` for what an SMTP session refused or dropped.
    pub status: String,
    /// The remote reply, or our own reason; for a refusal, the reply the client got.
    pub reply: String,
    /// Where in the SMTP session a refusal happened (`connect`, `helo`, `mail`, `rcpt`, `data`,
    /// `auth`); "" for queued mail.
    pub stage: String,
    /// The refused client's address; "" for queued mail.
    pub client: String,
    /// What decided a refusal: the access rule, rate limit, blocklist, check, policy service or
    /// milter; "" for queued mail.
    pub reason: String,
}

/// What an SMTP session did with what it did not queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RefusalStatus {
    /// Refused for good: a 5xx reply.
    Rejected,
    /// Refused for now: a 4xx reply; the client may try again.
    Tempfailed,
    /// Accepted with a 250 and dropped (DISCARD).
    Discarded,
}

impl RefusalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalStatus::Rejected => "rejected",
            RefusalStatus::Tempfailed => "tempfailed",
            RefusalStatus::Discarded => "discarded",
        }
    }

    /// The status of a refusal with this SMTP reply code.
    pub fn of_code(code: u16) -> RefusalStatus {
        match code {
            400..=499 => RefusalStatus::Tempfailed,
            500..=599 => RefusalStatus::Rejected,
            _ => RefusalStatus::Discarded,
        }
    }
}

/// One refusal (or dropped message) of an SMTP session, for the delivery log. A refusal at the
/// end of DATA is one per recipient, as the "received" lines of a queued message are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefusal {
    /// Epoch seconds.
    pub at: i64,
    pub status: RefusalStatus,
    pub stage: String,
    pub client: String,
    /// The envelope sender when known ("" for `<>` or before MAIL).
    pub sender: String,
    /// The recipient when known; its domain is what a domain-admin's view matches.
    pub recipient: String,
    pub reply: String,
    pub reason: String,
}

/// The longest text kept of a refusal's fields: they come off the wire (a sender, a milter's
/// reply), and the log must stay small under a flood.
const FIELD_MAX: usize = 512;

fn bounded(text: &str) -> &str {
    if text.len() <= FIELD_MAX {
        return text;
    }
    let mut end = FIELD_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
    /// Refused for good by an SMTP session (5xx).
    pub rejected: u64,
    /// Refused for now by an SMTP session (4xx).
    pub tempfailed: u64,
    /// Accepted and dropped by a DISCARD.
    pub discarded: u64,
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
            "SELECT id, at, message_id, sender, recipient, domain, status, reply, stage, client, \
             reason FROM delivery_log \
             WHERE id < $1 \
             AND ($2 IS NULL OR CASE WHEN $2 LIKE '% ' || domain || ' %' \
                  THEN LENGTH(REPLACE($2, ' ' || domain || ' ', '')) < LENGTH($2) ELSE FALSE END) \
             AND ($3 IS NULL OR status = $3) \
             AND ($4 IS NULL OR LOWER(sender) LIKE $4 ESCAPE '\\' OR LOWER(recipient) LIKE $4 ESCAPE '\\' \
                  OR LOWER(message_id) LIKE $4 ESCAPE '\\' OR LOWER(client) LIKE $4 ESCAPE '\\' \
                  OR LOWER(reason) LIKE $4 ESCAPE '\\') \
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
            "SELECT id, at, message_id, sender, recipient, domain, status, reply, stage, client, \
             reason FROM delivery_log \
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
                "rejected" => h.rejected += n,
                "tempfailed" => h.tempfailed += n,
                "discarded" => h.discarded += n,
                _ => h.failed += n,
            }
        }
        Ok(hours)
    }

    /// Records a batch of SMTP sessions' refusals, in one statement per
    /// [`super::queue::ROWS_PER_INSERT`] rows. The engine calls this from one writer task that
    /// batches what the sessions send it (`postern_server::policy::RefusalLog`), never from a
    /// session.
    pub async fn record_refusals(&self, refusals: &[NewRefusal]) -> Result<()> {
        for chunk in refusals.chunks(super::queue::ROWS_PER_INSERT) {
            let sql = super::queue::multi_row(
                "INSERT INTO delivery_log (at, message_id, sender, recipient, domain, status, \
                 reply, stage, client, reason) VALUES ",
                "(?, '', ?, ?, ?, ?, ?, ?, ?, ?)",
                chunk.len(),
                self.is_postgres(),
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for r in chunk {
                let domain = super::queue_rows::recipient_domain(&r.recipient);
                query = query
                    .bind(r.at)
                    .bind(bounded(&r.sender).to_string())
                    .bind(bounded(&r.recipient).to_string())
                    .bind(bounded(&domain).to_string())
                    .bind(r.status.as_str())
                    .bind(bounded(&r.reply).to_string())
                    .bind(bounded(&r.stage).to_string())
                    .bind(bounded(&r.client).to_string())
                    .bind(bounded(&r.reason).to_string());
            }
            query.execute(self.pool()).await?;
        }
        Ok(())
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
        stage: row.try_get("stage")?,
        client: row.try_get("client")?,
        reason: row.try_get("reason")?,
    })
}
