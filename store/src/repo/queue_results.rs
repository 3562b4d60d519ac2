//! Recording delivery outcomes: the attempt's record, which also removes the messages left with
//! nothing to try, and the prompt record of what a next hop accepted.
//!
//! Both write a whole batch with a handful of set-based statements (log lines, then recipients,
//! then finished messages) instead of two or three per recipient: each statement is a round
//! trip (to Postgres, or to SQLite's worker thread), and per-recipient statements were most of
//! what the store cost a delivered message.

use std::collections::{BTreeSet, HashMap};

use sqlx::{Any, Row, Transaction};

use super::queue::{ROWS_PER_INSERT, multi_row, placeholders};
use crate::error::Result;
use crate::model::{BOUNCED_BY_ADMIN, DeliveryResult, Outcome, QueueId, RecipientStatus};
use crate::store::Store;

/// Which record a batch is for: they differ in which recipients they may change.
#[derive(Clone, Copy)]
enum Record {
    /// The attempt's own record: every outcome, except a delivery the prompt record has
    /// already written (not counted, nor logged, twice).
    Attempt,
    /// The prompt record of `250`s: deliveries of recipients still waiting, nothing else.
    Prompt,
}

impl Record {
    /// The condition on `r` (the recipient's row as it stands) and `v` (the outcome).
    fn condition(self) -> &'static str {
        match self {
            Record::Attempt => "NOT (v.status = 'delivered' AND r.status = 'delivered')",
            Record::Prompt => "r.status IN ('pending', 'deferred')",
        }
    }
}

/// One outcome as the statements bind it.
struct Line<'a> {
    id: String,
    index: i64,
    status: &'static str,
    at: i64,
    next_at: i64,
    reply: &'a str,
}

impl<'a> Line<'a> {
    fn of(r: &'a DeliveryResult) -> Line<'a> {
        let (status, reply, next_at) = match &r.outcome {
            Outcome::Delivered { reply } => (RecipientStatus::Delivered, reply, r.at),
            Outcome::Failed { reply } => (RecipientStatus::Failed, reply, r.at),
            Outcome::Deferred { reply, next_attempt_at } => {
                (RecipientStatus::Deferred, reply, *next_attempt_at)
            }
        };
        Line {
            id: r.id.to_string(),
            index: i64::from(r.recipient),
            status: status.as_str(),
            at: r.at,
            next_at,
            reply,
        }
    }
}

impl Store {
    /// Records a batch of per-recipient outcomes in one transaction, and removes (with their
    /// bodies) the messages of the batch that have nothing left to try. Returns those removed.
    /// A recipient may come more than once (attempts that piled up while the store was
    /// failing): its outcomes are written in the order given.
    pub async fn queue_record_results(&self, results: &[DeliveryResult]) -> Result<Vec<QueueId>> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let postgres = self.is_postgres();
        let mut qtx = self.queue_tx().await?;
        let result: Result<Vec<QueueId>> = async {
            write(&mut qtx.tx, results, Record::Attempt, postgres).await?;
            let touched: BTreeSet<QueueId> = results.iter().map(|r| r.id).collect();
            remove_finished(&mut qtx.tx, &touched, postgres).await
        }
        .await;
        let removed = self.queue_finish(qtx, result).await?;
        if !removed.is_empty() {
            self.spool_tidy().await;
        }
        Ok(removed)
    }

    /// Records at once that these recipients were delivered (a next hop said `250`), without
    /// removing their messages: that is left to [`Store::queue_record_results`], which the
    /// scheduler calls once the whole attempt and its DSNs are done, and which does not record
    /// them again. Between a remote `250` and this commit, a node that dies leaves the
    /// recipient to be sent again by the node that claims its queue: this keeps that window to
    /// one commit. Only `Delivered` outcomes are taken; others are ignored.
    pub async fn queue_record_delivered(&self, results: &[DeliveryResult]) -> Result<()> {
        let delivered: Vec<DeliveryResult> = results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Delivered { .. }))
            .cloned()
            .collect();
        if delivered.is_empty() {
            return Ok(());
        }
        let postgres = self.is_postgres();
        let mut qtx = self.queue_tx().await?;
        let result = write(&mut qtx.tx, &delivered, Record::Prompt, postgres).await;
        self.queue_finish(qtx, result).await
    }
}

/// Writes `results`: their delivery-log lines and their recipients' new state.
async fn write(
    tx: &mut Transaction<'static, Any>,
    results: &[DeliveryResult],
    record: Record,
    postgres: bool,
) -> Result<()> {
    if postgres {
        lock(tx, results).await?;
    }
    for round in rounds(results) {
        let lines: Vec<Line<'_>> = round.into_iter().map(Line::of).collect();
        for chunk in lines.chunks(ROWS_PER_INSERT) {
            // The log first, while the rows still say what they were: which of them the update
            // below changes is decided by the same condition on the same rows, and nothing else
            // can change them in between (SQLite's write lock, Postgres's row locks).
            let log = format!(
                "INSERT INTO delivery_log (at, message_id, sender, recipient, domain, status, \
                 reply) SELECT v.at, m.id, m.sender, r.address, r.domain, v.status, v.reply \
                 FROM v JOIN queue_recipients r ON r.message_id = v.message_id AND r.idx = v.idx \
                 JOIN queue_messages m ON m.id = v.message_id WHERE {} \
                 ORDER BY v.message_id, v.idx",
                record.condition()
            );
            execute(tx, &log, chunk, postgres).await?;
            let update = format!(
                "UPDATE queue_recipients AS r SET status = v.status, attempts = r.attempts + 1, \
                 last_attempt_at = v.at, next_attempt_at = v.next_at, last_error = v.reply, \
                 updated_at = v.at FROM v \
                 WHERE r.message_id = v.message_id AND r.idx = v.idx AND {}",
                record.condition()
            );
            execute(tx, &update, chunk, postgres).await?;
        }
    }
    Ok(())
}

/// Runs `statement` with `v` bound to `lines` (a common table expression of their values).
async fn execute(
    tx: &mut Transaction<'static, Any>,
    statement: &str,
    lines: &[Line<'_>],
    postgres: bool,
) -> Result<()> {
    let values = multi_row(
        "WITH v (message_id, idx, status, at, next_at, reply) AS (VALUES ",
        "(?, ?, ?, ?, ?, ?)",
        lines.len(),
        postgres,
    );
    let sql = format!("{values}) {statement}");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
    for line in lines {
        query = query
            .bind(line.id.as_str())
            .bind(line.index)
            .bind(line.status)
            .bind(line.at)
            .bind(line.next_at)
            .bind(line.reply);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Takes the row locks of every recipient in `results` on Postgres, in one order (message,
/// then recipient), before anything is written. The prompt record of `250`s and the attempt's
/// record run in two transactions at once and change the same recipients; taken in two orders,
/// Postgres would find them deadlocked and abort one, and an aborted attempt record leaves its
/// messages queued with nothing left to try. The order holds across chunks too: they are
/// consecutive runs of one sorted list.
async fn lock(tx: &mut Transaction<'static, Any>, results: &[DeliveryResult]) -> Result<()> {
    let keys: BTreeSet<(QueueId, u32)> = results.iter().map(|r| (r.id, r.recipient)).collect();
    let keys: Vec<(QueueId, u32)> = keys.into_iter().collect();
    for chunk in keys.chunks(ROWS_PER_INSERT) {
        let sql = multi_row(
            "SELECT 1 FROM queue_recipients WHERE (message_id, idx) IN (VALUES ",
            "(?, ?)",
            chunk.len(),
            true,
        ) + ") ORDER BY message_id, idx FOR UPDATE";
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for (id, index) in chunk {
            query = query.bind(id.to_string()).bind(i64::from(*index));
        }
        query.fetch_all(&mut **tx).await?;
    }
    Ok(())
}

/// `results` split into rounds in which each recipient comes once, a recipient's outcomes in the
/// order given: a statement that met a recipient twice would change it once, or log it twice.
fn rounds(results: &[DeliveryResult]) -> Vec<Vec<&DeliveryResult>> {
    let mut seen: HashMap<(QueueId, u32), usize> = HashMap::with_capacity(results.len());
    let mut rounds: Vec<Vec<&DeliveryResult>> = Vec::new();
    for r in results {
        let n = *seen.entry((r.id, r.recipient)).and_modify(|n| *n += 1).or_insert(0);
        if rounds.len() <= n {
            rounds.push(Vec::new());
        }
        rounds[n].push(r);
    }
    rounds
}

/// Removes the messages of `ids` that are done: nothing left to try, and no administrator's
/// bounce still owing its DSN (a domain-admin's, of some recipients, is reported apart).
async fn remove_finished(
    tx: &mut Transaction<'static, Any>,
    ids: &BTreeSet<QueueId>,
    postgres: bool,
) -> Result<Vec<QueueId>> {
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let mut removed = Vec::new();
    for chunk in ids.chunks(ROWS_PER_INSERT) {
        // The bounce's reply is bound after the IDs: on Postgres, placeholders are numbered.
        let bounce = if postgres { format!("${}", chunk.len() + 1) } else { "?".to_owned() };
        let sql = format!(
            "DELETE FROM queue_messages WHERE id IN ({}) AND NOT EXISTS (SELECT 1 FROM \
             queue_recipients r WHERE r.message_id = queue_messages.id AND (r.status IN \
             ('pending', 'deferred') OR (r.status = 'failed' AND r.last_error = {bounce}))) \
             RETURNING id",
            placeholders(chunk.len(), postgres),
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        query = query.bind(BOUNCED_BY_ADMIN);
        for row in query.fetch_all(&mut **tx).await? {
            let id: String = row.try_get(0)?;
            if let Ok(id) = id.parse() {
                removed.push(id);
            }
        }
    }
    removed.sort();
    Ok(removed)
}
