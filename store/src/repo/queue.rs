//! The durable mail queue: group inserts, the engine's start-up load and its batched delivery
//! bookkeeping, the console's paginated list, and the tail of administrator actions' events
//! (the actions themselves are in `queue_act`). None of it touches the configuration revision.

use sqlx::{Any, Row, Transaction};

use super::queue_rows::{self as rows, bind_filter, recipient_domain};
use crate::error::{Result, StoreError};
use crate::model::{
    DamagedEntry, NewMessage, Page, QueueEvent, QueueFilter, QueueId, QueuePage, QueuedMessage,
    WorkSet,
};
use crate::spool::{QueuedBody, SpooledBody};
use crate::store::Store;

/// A queue write in progress. Like [`crate::store::Change`], it is always ended explicitly.
pub(super) struct QueueTx {
    pub(super) tx: Transaction<'static, Any>,
    pub(super) last_event: Option<i64>,
}

impl NewMessage {
    /// What the store refuses in a new message; the group-commit writer checks each message
    /// with this first, so that one bad message cannot fail the others of its batch.
    pub fn check(&self) -> Result<()> {
        if self.recipients.is_empty() {
            return Err(StoreError::invalid(
                "recipients",
                "a message needs at least one recipient",
            ));
        }
        if self.recipients.len() > u32::MAX as usize {
            return Err(StoreError::invalid("recipients", "too many"));
        }
        if i64::try_from(self.body.len()).is_err() {
            return Err(StoreError::invalid("body", "too large"));
        }
        Ok(())
    }
}

impl Store {
    pub(super) async fn queue_tx(&self) -> Result<QueueTx> {
        let tx = if self.is_postgres() {
            self.pool().begin().await?
        } else {
            // Take the write lock at once: a read-then-write transaction would have to upgrade,
            // and SQLite refuses an upgrade (SQLITE_BUSY) when another commit came in between.
            self.pool().begin_with("BEGIN IMMEDIATE").await?
        };
        Ok(QueueTx { tx, last_event: None })
    }

    /// Commits on `Ok` (announcing any events), rolls back at once on an error.
    pub(super) async fn queue_finish<T>(&self, mut qtx: QueueTx, result: Result<T>) -> Result<T> {
        match result {
            Ok(value) => {
                if qtx.last_event.is_some() && self.is_postgres() {
                    // Sent on commit only. No payload, as for `postern_config`: the engine reads
                    // `queue_events` after the last id it saw.
                    if let Err(e) = sqlx::query("NOTIFY postern_queue").execute(&mut *qtx.tx).await
                    {
                        if let Err(rollback) = qtx.tx.rollback().await {
                            tracing::warn!(error = %rollback, "rollback of a queue write failed");
                        }
                        return Err(e.into());
                    }
                }
                qtx.tx.commit().await?;
                if let Some(event) = qtx.last_event {
                    self.inner.advance_queue_event(event);
                }
                Ok(value)
            }
            Err(e) => {
                if let Err(rollback) = qtx.tx.rollback().await {
                    tracing::warn!(error = %rollback, "rollback of a queue write failed");
                }
                Err(e)
            }
        }
    }

    fn next_queue_id(&self) -> QueueId {
        let mut last = self.inner.last_queue_id.lock().unwrap_or_else(|p| p.into_inner());
        let id = QueueId::next_after(*last);
        *last = Some(id);
        id
    }

    /// Queues every message of `batch` in one transaction (one fsync), envelope, body and
    /// recipients together, for delivery by `node`. Returns their IDs in order; on an error
    /// none of them is queued. Bodies stay inline (see [`Store::queue_insert_spooled`]).
    pub async fn queue_insert(&self, node: &str, batch: &[NewMessage]) -> Result<Vec<QueueId>> {
        self.queue_insert_spooled(node, batch, &[]).await
    }

    /// [`Store::queue_insert`] for messages whose bodies may already be stored apart:
    /// `body_refs[i]`, when given and `Some`, is what [`Store::spool_body`] returned for
    /// `batch[i]`, and its `body` is then not written again. The caller has made those bodies
    /// durable ([`Store::spool_sync`]) first; on an error it removes them
    /// ([`Store::spool_discard`]).
    pub async fn queue_insert_spooled(
        &self,
        node: &str,
        batch: &[NewMessage],
        body_refs: &[Option<String>],
    ) -> Result<Vec<QueueId>> {
        let places: Vec<Option<SpooledBody>> = body_refs
            .iter()
            .map(|r| {
                r.as_ref().map(|body_ref| SpooledBody {
                    body_ref: body_ref.clone(),
                    len: 0,
                    prefix: false,
                })
            })
            .collect();
        self.queue_insert_streamed(node, batch, &places).await
    }

    /// [`Store::queue_insert`] for messages whose bodies may be stored apart, each as its
    /// [`SpooledBody`] says: either the whole message is in the body store, or (a body streamed
    /// there by the SMTP session) only what the client sent is, and `NewMessage::body` holds the
    /// header fields Postern put in front, kept inline and read first.
    pub async fn queue_insert_streamed(
        &self,
        node: &str,
        batch: &[NewMessage],
        places: &[Option<SpooledBody>],
    ) -> Result<Vec<QueueId>> {
        for m in batch {
            m.check()?;
        }
        let ids: Vec<QueueId> = batch.iter().map(|_| self.next_queue_id()).collect();
        let mut qtx = self.queue_tx().await?;
        let at = self.clock().now();
        let result =
            insert_batch(&mut qtx.tx, node, &ids, batch, places, at, self.is_postgres()).await;
        self.queue_finish(qtx, result).await?;
        Ok(ids)
    }

    /// What `node`'s engine has to work on at start-up: every message it accepted that is not
    /// held, without bodies. That is the messages with recipients still to try, and any whose
    /// recipients have all failed (bounced by an administrator) and still owe the sender a DSN.
    /// Rows the model cannot read come back in `damaged`, not as an error.
    pub async fn queue_load_work(&self, node: &str) -> Result<WorkSet> {
        let mut tx = self.pool().begin().await?;
        if self.is_postgres() {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let messages = sqlx::query(rows::WORK_MESSAGES).bind(node).fetch_all(&mut *tx).await;
        let recipients = sqlx::query(rows::WORK_RECIPIENTS).bind(node).fetch_all(&mut *tx).await;
        let bodiless: Result<Vec<String>> = sqlx::query_scalar(rows::WORK_WITHOUT_BODY)
            .bind(node)
            .fetch_all(&mut *tx)
            .await
            .map_err(Into::into);
        tx.rollback().await?;
        let (mut messages, mut damaged) = rows::assemble(&messages?, &recipients?);
        let bodiless = bodiless?;
        // An orphaned entry could never be delivered: set it aside, as a damaged one is, rather
        // than defer it again and again until it expires.
        messages.retain(|m| {
            let id = m.id.to_string();
            let problem = if bodiless.contains(&id) {
                "its body is missing"
            } else if m.recipients.is_empty() {
                "it has no recipients"
            } else {
                return true;
            };
            damaged.push(DamagedEntry { id, problem: problem.into() });
            false
        });
        Ok(WorkSet { messages, damaged })
    }

    /// A queued message's body, whole, or `None` if it is no longer queued.
    pub async fn queue_body(&self, id: QueueId) -> Result<Option<Vec<u8>>> {
        let Some(mut reader) = self.queue_body_reader(id).await? else { return Ok(None) };
        // The first chunk is kept as it is: an inline body is one, and is not copied again.
        let mut body: Option<Vec<u8>> = None;
        while let Some(chunk) = reader.next_chunk().await? {
            match &mut body {
                None => body = Some(chunk),
                Some(body) => body.extend_from_slice(&chunk),
            }
        }
        Ok(Some(body.unwrap_or_default()))
    }

    /// At most the first `max` bytes of a queued message's body (for its header block), or
    /// `None` if it is no longer queued; a spooled body is not read past them.
    pub async fn queue_body_head(&self, id: QueueId, max: usize) -> Result<Option<Vec<u8>>> {
        let Some(mut reader) = self.queue_body_reader(id).await? else { return Ok(None) };
        let mut head = Vec::new();
        while head.len() < max {
            let Some(chunk) = reader.next_chunk().await? else { break };
            head.extend_from_slice(&chunk[..chunk.len().min(max - head.len())]);
        }
        Ok(Some(head))
    }

    /// A queued message's body for delivery: whole when it is kept inline, else its first
    /// [`crate::spool::INLINE_MAX`] bytes (for the header block) and its size, the rest to be
    /// read as a stream ([`Store::queue_body_reader`]). `None` if it is no longer queued.
    pub async fn queue_body_open(&self, id: QueueId) -> Result<Option<QueuedBody>> {
        let row: Option<(Option<String>, i64)> =
            sqlx::query_as("SELECT body_ref, size FROM queue_messages WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(self.pool())
                .await?;
        let Some((body_ref, size)) = row else { return Ok(None) };
        if body_ref.is_none() {
            return Ok(self.queue_body(id).await?.map(QueuedBody::Whole));
        }
        let head = self.queue_body_head(id, crate::spool::INLINE_MAX).await?;
        Ok(head.map(|head| QueuedBody::Spooled { head, size: u64::try_from(size).unwrap_or(0) }))
    }

    /// A queued message's body as a stream of chunks (an inline body is one chunk), or `None`
    /// if it is no longer queued.
    pub async fn queue_body_reader(
        &self,
        id: QueueId,
    ) -> Result<Option<Box<dyn crate::spool::BodyReader>>> {
        let row = sqlx::query(
            "SELECT m.body_ref, b.body FROM queue_messages m \
             LEFT JOIN queue_bodies b ON b.message_id = m.id WHERE m.id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let body_ref: Option<String> = row.try_get(0)?;
        match body_ref {
            Some(body_ref) => {
                let rest = self.body_reader(&body_ref).await?;
                // A streamed body: the fields Postern added, kept inline, come first.
                let prefix: Option<Vec<u8>> = row.try_get(1)?;
                Ok(Some(match prefix {
                    Some(prefix) => Box::new(Chain { first: Some(prefix), rest }),
                    None => rest,
                }))
            }
            None => {
                let body: Option<Vec<u8>> = row.try_get(1)?;
                Ok(body.map(|b| Box::new(Inline(Some(b))) as Box<dyn crate::spool::BodyReader>))
            }
        }
    }

    /// Records that the sender of `id` was warned, at `at`, of the delay of these recipients,
    /// or with `None` that the warning is owed again (its DSN could not be queued). Committed
    /// before the warning is queued: a crash in between loses a warning rather than sending
    /// two.
    pub async fn queue_note_delay_warning(
        &self,
        id: QueueId,
        recipients: &[u32],
        at: Option<i64>,
    ) -> Result<()> {
        let mut qtx = self.queue_tx().await?;
        let result: Result<()> = async {
            for index in recipients {
                sqlx::query(
                    "UPDATE queue_recipients SET delay_warned_at = $3 \
                     WHERE message_id = $1 AND idx = $2",
                )
                .bind(id.to_string())
                .bind(i64::from(*index))
                .bind(at)
                .execute(&mut *qtx.tx)
                .await?;
            }
            Ok(())
        }
        .await;
        self.queue_finish(qtx, result).await
    }

    /// One page of the messages matching `filter`, in ID (arrival) order, with the total count.
    pub async fn queue_list(&self, filter: &QueueFilter, page: Page) -> Result<QueuePage> {
        let limit = i64::from(page.limit.max(1));
        let mut tx = self.pool().begin().await?;
        if self.is_postgres() {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let read: Result<_> = async {
            let messages = bind_filter(sqlx::query(rows::LIST_PAGE), filter, page.after)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            let recipients =
                bind_filter(sqlx::query(rows::LIST_PAGE_RECIPIENTS), filter, page.after)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
            let total: i64 = bind_filter(sqlx::query(rows::COUNT), filter, None)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            Ok((messages, recipients, total))
        }
        .await;
        tx.rollback().await?;
        let (messages, recipients, total) = read?;
        let full = messages.len() as i64 == limit;
        let next = if full {
            messages.last().and_then(|row| rows::raw_id(row, "id").parse().ok())
        } else {
            None
        };
        let (messages, damaged) = rows::assemble(&messages, &recipients);
        Ok(QueuePage { messages, damaged, total: total.max(0) as u64, next })
    }

    /// One message with its recipients, or `None` if it is not queued.
    pub async fn queue_show(&self, id: QueueId) -> Result<Option<QueuedMessage>> {
        let mut tx = self.pool().begin().await?;
        let read: Result<_> = async {
            let message = sqlx::query(rows::SHOW_MESSAGE)
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
            let recipients =
                sqlx::query(rows::SHOW_RECIPIENTS).bind(id.to_string()).fetch_all(&mut *tx).await?;
            Ok((message, recipients))
        }
        .await;
        tx.rollback().await?;
        let (Some(message), recipients) = read? else {
            return Ok(None);
        };
        let (mut messages, damaged) = rows::assemble(&[message], &recipients);
        if let Some(d) = damaged.first() {
            return Err(corrupt(d));
        }
        Ok(messages.pop())
    }

    /// Queue events after `after` (an event id), oldest first, at most `limit`. An event row the
    /// model cannot read is skipped with a warning: it must not stop the engine's tail.
    pub async fn queue_events_after(&self, after: i64, limit: u32) -> Result<Vec<QueueEvent>> {
        let rows = sqlx::query(
            "SELECT id, at, message_id, action, recipients FROM queue_events WHERE id > $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let parsed = (|| -> std::result::Result<QueueEvent, String> {
                let message: String = row.try_get("message_id").map_err(|e| e.to_string())?;
                let action: String = row.try_get("action").map_err(|e| e.to_string())?;
                let recipients: Option<String> =
                    row.try_get("recipients").map_err(|e| e.to_string())?;
                Ok(QueueEvent {
                    id,
                    at: row.try_get("at").map_err(|e| e.to_string())?,
                    message: message
                        .parse()
                        .map_err(|e: crate::model::BadQueueId| e.to_string())?,
                    action: action.parse()?,
                    recipients: recipients
                        .map(|r| super::queue_act::parse_indexes(&r))
                        .transpose()?,
                })
            })();
            match parsed {
                Ok(event) => events.push(event),
                Err(problem) => {
                    tracing::warn!(event = id, %problem, "skipping a damaged queue event")
                }
            }
        }
        Ok(events)
    }

    /// The newest queue event's id (0 when there is none): where an engine starts its tail.
    pub async fn queue_last_event(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM queue_events")
            .fetch_one(self.pool())
            .await?)
    }

    /// Sees the id of each queue event this process writes, at once.
    pub fn queue_subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.inner.queue_event.subscribe()
    }
}

fn corrupt(d: &DamagedEntry) -> StoreError {
    StoreError::Corrupt { table: "queue_messages", message: format!("{}: {}", d.id, d.problem) }
}

/// Rows per multi-row `INSERT`: far under SQLite's 32,766 and Postgres's 65,535 bound
/// parameters, and small enough that a batch of large bodies is not one huge statement.
pub(crate) const ROWS_PER_INSERT: usize = 200;

/// `head` followed by `rows` copies of `row`. On Postgres each `?` in them is numbered `$1`,
/// `$2`, … in turn; on SQLite it stays a plain `?`, bound in order. SQLite looks a named
/// parameter (`$N`) up by name, in a list, both when it parses the statement and when sqlx
/// binds each argument (`sqlite3_bind_parameter_name`): quadratic in the parameters of a
/// statement, and these have up to 3,000 (about 4.5 % of `serve`'s time at 2 KB). A plain `?`
/// has no name and costs nothing to find.
pub(crate) fn multi_row(head: &str, row: &str, rows: usize, postgres: bool) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (row.len() + 16));
    sql.push_str(head);
    let mut n = 0;
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        if !postgres {
            sql.push_str(row);
            continue;
        }
        for c in row.chars() {
            if c == '?' {
                n += 1;
                sql.push('$');
                sql.push_str(&n.to_string());
            } else {
                sql.push(c);
            }
        }
    }
    sql
}

/// `n` parameters separated by commas, for an `IN (…)`: numbered on Postgres, plain on SQLite
/// (see [`multi_row`]).
pub(crate) fn placeholders(n: usize, postgres: bool) -> String {
    multi_row("", "?", n, postgres)
}

/// Writes a batch's messages, bodies, recipients and "received" log lines: one multi-row
/// `INSERT` per table for up to [`ROWS_PER_INSERT`] rows, rather than a statement per row. On
/// Postgres every statement is a round trip, so per-row inserts cost one per recipient; on
/// SQLite it saves the per-statement work. (`COPY` would be faster still on Postgres, but the
/// store talks through `sqlx::Any`, which has no `COPY`.) The statements are not kept prepared:
/// their text changes with the batch size.
async fn insert_batch(
    tx: &mut Transaction<'static, Any>,
    node: &str,
    ids: &[QueueId],
    batch: &[NewMessage],
    places: &[Option<SpooledBody>],
    at: i64,
    postgres: bool,
) -> Result<()> {
    let messages: Vec<(String, &NewMessage, Option<&SpooledBody>)> = ids
        .iter()
        .map(ToString::to_string)
        .zip(batch)
        .enumerate()
        .map(|(i, (id, m))| (id, m, places.get(i).and_then(|r| r.as_ref())))
        .collect();
    for chunk in messages.chunks(ROWS_PER_INSERT) {
        let sql = multi_row(
            "INSERT INTO queue_messages (id, node, sender, envid, ret, smtputf8, eight_bit, size, \
             received_at, client, auth_user, held, auth_results, updated_at, body_ref) VALUES ",
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            chunk.len(),
            postgres,
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for (id, m, place) in chunk {
            let size = match place {
                Some(p) if p.prefix => m.body.len() as u64 + p.len,
                _ => m.body.len() as u64,
            };
            query = query
                .bind(id.as_str())
                .bind(node)
                .bind(m.sender.as_str())
                .bind(m.envid.as_deref())
                .bind(m.ret.map(|r| r.as_str()))
                .bind(i64::from(m.smtputf8))
                .bind(i64::from(m.eight_bit))
                .bind(i64::try_from(size).unwrap_or(i64::MAX))
                .bind(m.received_at)
                .bind(m.client.as_str())
                .bind(m.auth_user.as_deref())
                .bind(i64::from(m.held))
                .bind(m.auth_results.as_deref())
                .bind(at)
                .bind(place.map(|p| p.body_ref.as_str()));
        }
        query.execute(&mut **tx).await?;

        // The bodies kept inline, and the prefixes of streamed ones: a body spooled whole is
        // named by body_ref instead.
        let inline: Vec<&(String, &NewMessage, Option<&SpooledBody>)> =
            chunk.iter().filter(|(_, _, place)| place.is_none_or(|p| p.prefix)).collect();
        if !inline.is_empty() {
            let sql = multi_row(
                "INSERT INTO queue_bodies (message_id, body) VALUES ",
                "(?, ?)",
                inline.len(),
                postgres,
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for (id, m, _) in inline {
                query = query.bind(id.as_str()).bind(m.body.as_slice());
            }
            query.execute(&mut **tx).await?;
        }
    }

    let recipients: Vec<(&str, &NewMessage, usize)> = messages
        .iter()
        .flat_map(|(id, m, _)| (0..m.recipients.len()).map(move |i| (id.as_str(), *m, i)))
        .collect();
    for chunk in recipients.chunks(ROWS_PER_INSERT) {
        let sql = multi_row(
            "INSERT INTO queue_recipients (message_id, idx, address, domain, orcpt, notify, \
             status, attempts, next_attempt_at, updated_at) VALUES ",
            "(?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
            chunk.len(),
            postgres,
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for (id, m, i) in chunk {
            let r = &m.recipients[*i];
            query = query
                .bind(*id)
                .bind(*i as i64)
                .bind(r.address.as_str())
                .bind(recipient_domain(&r.address))
                .bind(r.orcpt.as_deref())
                .bind(i64::from(r.notify.0))
                .bind(at)
                .bind(at);
        }
        query.execute(&mut **tx).await?;

        let sql = multi_row(
            "INSERT INTO delivery_log (at, message_id, sender, recipient, domain, status, reply) \
             VALUES ",
            "(?, ?, ?, ?, ?, 'received', ?)",
            chunk.len(),
            postgres,
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for (id, m, i) in chunk {
            let r = &m.recipients[*i];
            query = query
                .bind(at)
                .bind(*id)
                .bind(m.sender.as_str())
                .bind(r.address.as_str())
                .bind(recipient_domain(&r.address))
                // What the session decided (an access rule's HOLD, REDIRECT or BCC) and what the
                // inbound checks found, so that the log says why mail was held or tagged.
                .bind(received_note(m));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// An inline body, read as one chunk.
struct Inline(Option<Vec<u8>>);

/// A streamed body: its inline prefix, then its spooled part.
struct Chain {
    first: Option<Vec<u8>>,
    rest: Box<dyn crate::spool::BodyReader>,
}

impl crate::spool::BodyReader for Chain {
    fn next_chunk(&mut self) -> crate::spool::BoxFuture<'_, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            if let Some(first) = self.first.take().filter(|b| !b.is_empty()) {
                return Ok(Some(first));
            }
            self.rest.next_chunk().await
        })
    }
}

impl crate::spool::BodyReader for Inline {
    fn next_chunk(&mut self) -> crate::spool::BoxFuture<'_, Result<Option<Vec<u8>>>> {
        let chunk = self.0.take().filter(|b| !b.is_empty());
        Box::pin(async move { Ok(chunk) })
    }
}

/// The `reply` of a message's "received" log lines: what the inbound checks found, what the
/// session's access rules did (held, redirected, copied), and whether the message was queued on
/// hold.
fn received_note(m: &NewMessage) -> String {
    let mut parts: Vec<&str> =
        [m.auth_results.as_deref(), m.note.as_deref()].into_iter().flatten().collect();
    // A rule's note says itself that it held the message; the inbound policy's hold does not.
    if m.held && !m.note.as_deref().is_some_and(|n| n.contains("held by")) {
        parts.push("held");
    }
    parts.join("; ")
}
