//! Administrators' actions on queued messages (retry, hold, release, delete, bounce): limited to
//! the recipients the actor may touch, recorded in the audit log, and left as queue events for
//! the engine, all in one transaction.
//!
//! An actor whose domains cover every recipient of a message acts on the message as a whole,
//! as before. Otherwise (a domain-admin, and a message that also goes to another domain) the
//! action applies to its own recipients only: their own hold flag, their own bounce, their rows
//! removed by a delete; the event names them so that the engine leaves the others alone.

use std::collections::BTreeSet;

use serde_json::json;
use sqlx::Row;

use super::queue::QueueTx;
use super::queue_rows::{self as rows, bind_filter};
use crate::error::{Result, StoreError};
use crate::model::{
    BOUNCED_BY_ADMIN, QueueAction, QueueActor, QueueFilter, QueueId, RecipientStatus, Selection,
};
use crate::store::Store;

/// One recipient of a message being acted on.
struct Target {
    index: u32,
    address: String,
    domain: String,
}

impl Store {
    /// Applies `action`, as `by`, to the selected messages in one transaction, leaving an audit
    /// record and a queue event for each so that a running engine learns of it. Returns the IDs
    /// acted on. Naming an ID that is not queued, or that has no recipient `by` may touch,
    /// refuses the whole action (as not found: its existence is not the actor's business).
    pub async fn queue_act(
        &self,
        by: &QueueActor,
        action: QueueAction,
        selection: &Selection,
    ) -> Result<Vec<QueueId>> {
        let mut qtx = self.queue_tx().await?;
        let result: Result<Vec<QueueId>> = async {
            let ids = selected(&mut qtx, by, selection).await?;
            let at = self.clock().now();
            // Queue actions are not configuration: they claim no revision (which would make
            // every engine rebuild its snapshot), and are filed under the one in force.
            let revision: i64 =
                sqlx::query_scalar("SELECT revision FROM config_revision WHERE id = 1")
                    .fetch_one(&mut *qtx.tx)
                    .await?;
            for id in &ids {
                let text = id.to_string();
                let all = targets(&mut qtx, &text).await?;
                let (mine, others): (Vec<&Target>, Vec<&Target>) =
                    all.iter().partition(|t| by.covers(&t.domain));
                let indexes = if others.is_empty() {
                    whole(&mut qtx, action, &text, at).await?;
                    None
                } else {
                    let indexes: Vec<u32> = mine.iter().map(|t| t.index).collect();
                    some(&mut qtx, action, &text, &indexes, at).await?;
                    Some(indexes)
                };
                let event: i64 = sqlx::query_scalar(
                    "INSERT INTO queue_events (at, message_id, action, recipients) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(at)
                .bind(&text)
                .bind(action.as_str())
                .bind(indexes.as_deref().map(join_indexes))
                .fetch_one(&mut *qtx.tx)
                .await?;
                qtx.last_event = Some(event);
                let after = json!({
                    "whole_message": indexes.is_none(),
                    "recipients": mine.iter().map(|t| t.address.as_str()).collect::<Vec<_>>(),
                });
                sqlx::query(
                    "INSERT INTO audit_log (revision, at, actor, action, object, before_json, \
                     after_json) VALUES ($1, $2, $3, $4, $5, NULL, $6)",
                )
                .bind(revision)
                .bind(at)
                .bind(&by.actor)
                .bind(format!("queue.{}", action.as_str()))
                .bind(&text)
                .bind(after.to_string())
                .execute(&mut *qtx.tx)
                .await?;
            }
            Ok(ids)
        }
        .await;
        let ids = self.queue_finish(qtx, result).await?;
        if action == QueueAction::Delete {
            self.spool_tidy().await;
        }
        Ok(ids)
    }

    /// `postqueue -f`: every message with a deferred recipient `by` may touch is tried again now.
    pub async fn queue_flush(&self, by: &QueueActor) -> Result<Vec<QueueId>> {
        let deferred =
            QueueFilter { status: Some(RecipientStatus::Deferred), ..QueueFilter::default() };
        self.queue_act(by, QueueAction::Retry, &Selection::Matching(deferred)).await
    }
}

/// Every recipient of the message `id`, in envelope order.
async fn targets(qtx: &mut QueueTx, id: &str) -> Result<Vec<Target>> {
    let rows = sqlx::query(
        "SELECT idx, address, domain FROM queue_recipients WHERE message_id = $1 ORDER BY idx",
    )
    .bind(id)
    .fetch_all(&mut *qtx.tx)
    .await?;
    rows.iter()
        .map(|row| {
            let index: i64 = row.try_get("idx")?;
            Ok(Target {
                index: u32::try_from(index).map_err(|_| StoreError::Corrupt {
                    table: "queue_recipients",
                    message: format!("{id}: recipient index {index} is out of range"),
                })?,
                address: row.try_get("address")?,
                domain: row.try_get("domain")?,
            })
        })
        .collect()
}

/// The action on the whole message.
async fn whole(qtx: &mut QueueTx, action: QueueAction, id: &str, at: i64) -> Result<()> {
    let conn = &mut *qtx.tx;
    match action {
        QueueAction::Retry => {
            sqlx::query(
                "UPDATE queue_recipients SET next_attempt_at = $2, updated_at = $2 \
                 WHERE message_id = $1 AND status = 'deferred'",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        QueueAction::Hold => {
            sqlx::query("UPDATE queue_messages SET held = 1, updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(&mut *conn)
                .await?;
        }
        QueueAction::Release => {
            sqlx::query("UPDATE queue_messages SET held = 0, updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            // Releasing the message releases every recipient, whoever held it.
            sqlx::query(
                "UPDATE queue_recipients SET held = 0, updated_at = $2 \
                 WHERE message_id = $1 AND held = 1",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        QueueAction::Delete => {
            sqlx::query("DELETE FROM queue_messages WHERE id = $1").bind(id).execute(conn).await?;
        }
        QueueAction::Bounce => {
            sqlx::query(
                "UPDATE queue_recipients SET status = 'failed', last_error = $3, held = 0, \
                 updated_at = $2 WHERE message_id = $1 AND status IN ('pending', 'deferred')",
            )
            .bind(id)
            .bind(at)
            .bind(BOUNCED_BY_ADMIN)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// The action on the recipients `indexes` of the message `id` only.
async fn some(
    qtx: &mut QueueTx,
    action: QueueAction,
    id: &str,
    indexes: &[u32],
    at: i64,
) -> Result<()> {
    let conn = &mut *qtx.tx;
    if action == QueueAction::Release {
        // A message held whole holds everyone's recipients: turn that into a hold of each, so
        // that releasing one's own leaves the others held.
        sqlx::query(
            "UPDATE queue_recipients SET held = 1, updated_at = $2 WHERE message_id = $1 \
             AND status IN ('pending', 'deferred') \
             AND EXISTS (SELECT 1 FROM queue_messages WHERE id = $1 AND held = 1)",
        )
        .bind(id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE queue_messages SET held = 0, updated_at = $2 WHERE id = $1 AND held = 1",
        )
        .bind(id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    for index in indexes {
        let idx = i64::from(*index);
        let query = match action {
            QueueAction::Retry => sqlx::query(
                "UPDATE queue_recipients SET next_attempt_at = $3, updated_at = $3 \
                 WHERE message_id = $1 AND idx = $2 AND status = 'deferred'",
            )
            .bind(id)
            .bind(idx)
            .bind(at),
            QueueAction::Hold => sqlx::query(
                "UPDATE queue_recipients SET held = 1, updated_at = $3 \
                 WHERE message_id = $1 AND idx = $2 AND status IN ('pending', 'deferred')",
            )
            .bind(id)
            .bind(idx)
            .bind(at),
            QueueAction::Release => sqlx::query(
                "UPDATE queue_recipients SET held = 0, updated_at = $3 \
                 WHERE message_id = $1 AND idx = $2",
            )
            .bind(id)
            .bind(idx)
            .bind(at),
            QueueAction::Delete => {
                sqlx::query("DELETE FROM queue_recipients WHERE message_id = $1 AND idx = $2")
                    .bind(id)
                    .bind(idx)
            }
            QueueAction::Bounce => sqlx::query(
                "UPDATE queue_recipients SET status = 'failed', last_error = $4, held = 0, \
                 updated_at = $3 WHERE message_id = $1 AND idx = $2 \
                 AND status IN ('pending', 'deferred')",
            )
            .bind(id)
            .bind(idx)
            .bind(at)
            .bind(BOUNCED_BY_ADMIN),
        };
        query.execute(&mut *conn).await?;
    }
    if action == QueueAction::Delete {
        // Nothing left to deliver, and no bounce owed: the message is done. (A bounce still
        // owed leaves it to the engine, which removes it once the DSN is queued.)
        sqlx::query(
            "DELETE FROM queue_messages WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM \
             queue_recipients r WHERE r.message_id = $1 AND (r.status IN ('pending', 'deferred') \
             OR (r.status = 'failed' AND r.last_error = $2)))",
        )
        .bind(id)
        .bind(BOUNCED_BY_ADMIN)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// The IDs a selection names, each checked to exist with a recipient `by` may touch, in order
/// and without repeats.
async fn selected(
    qtx: &mut QueueTx,
    by: &QueueActor,
    selection: &Selection,
) -> Result<Vec<QueueId>> {
    match selection {
        Selection::Ids(ids) => {
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            let scope = QueueFilter { domains: by.domains.clone(), ..QueueFilter::default() };
            for &id in ids {
                if !seen.insert(id) {
                    continue;
                }
                let found = bind_filter(sqlx::query(rows::VISIBLE), &scope, None)
                    .bind(id.to_string())
                    .fetch_optional(&mut *qtx.tx)
                    .await?;
                if found.is_none() {
                    return Err(StoreError::NotFound {
                        what: "queued message",
                        name: id.to_string(),
                    });
                }
                out.push(id);
            }
            Ok(out)
        }
        Selection::Matching(filter) => {
            let mut filter = filter.clone();
            filter.domains = narrowest(filter.domains.take(), by.domains.as_deref());
            let rows = bind_filter(sqlx::query(rows::MATCHING_IDS), &filter, None)
                .fetch_all(&mut *qtx.tx)
                .await?;
            rows.iter()
                .map(|row| {
                    let id: String = row.try_get(0)?;
                    id.parse().map_err(|e: crate::model::BadQueueId| StoreError::Corrupt {
                        table: "queue_messages",
                        message: e.to_string(),
                    })
                })
                .collect()
        }
    }
}

/// The domains both a filter and the actor allow.
fn narrowest(
    filter: Option<Vec<crate::model::DomainName>>,
    actor: Option<&[crate::model::DomainName]>,
) -> Option<Vec<crate::model::DomainName>> {
    match (filter, actor) {
        (filter, None) => filter,
        (None, Some(actor)) => Some(actor.to_vec()),
        (Some(filter), Some(actor)) => {
            Some(filter.into_iter().filter(|d| actor.contains(d)).collect())
        }
    }
}

fn join_indexes(indexes: &[u32]) -> String {
    indexes.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
}

/// The recipients column of a queue event: indexes separated by spaces.
pub(crate) fn parse_indexes(text: &str) -> std::result::Result<Vec<u32>, String> {
    text.split_whitespace()
        .map(|i| i.parse().map_err(|_| format!("recipients: {i:?} is not a recipient index")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_recipients_round_trip() {
        assert_eq!(parse_indexes(&join_indexes(&[0, 2, 17])), Ok(vec![0, 2, 17]));
        assert_eq!(parse_indexes(""), Ok(vec![]));
        assert!(parse_indexes("1 x").is_err());
    }
}
