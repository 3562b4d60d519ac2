//! Several engines on one store: who is a member (a row per node, renewed by its heartbeat), and
//! who works which queued message (the node named in `queue_messages.node`, for as long as that
//! node's lease runs). A node whose lease lapses (it died) or that gives it up (it drained) has
//! its messages claimed by the others, a batch at a time, with `FOR UPDATE SKIP LOCKED` on
//! Postgres so that claimers never wait on each other. On SQLite one process owns everything:
//! the same statements run, serialised by the write lock.
//!
//! The lease is per node, not per message: one row renewed per heartbeat covers the node's whole
//! queue, so that a queue of 100,000 messages costs the same to hold as one of ten.

use serde::Serialize;
use sqlx::Row;

use super::queue_rows as rows;
use crate::error::{Result, StoreError};
use crate::model::{QueuedMessage, WorkSet};
use crate::store::Store;

/// What a node is doing, as the console and `postern node list` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Renewing its lease.
    Alive,
    /// Asked to drain: refusing new SMTP sessions, finishing its attempts, then giving its queue
    /// to the others.
    Draining,
    /// Has given its queue up; still running (the console, say) or stopped.
    Drained,
    /// Its lease lapsed: it stopped without draining, or cannot reach the store. Its messages
    /// go to the others.
    Dead,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Alive => "alive",
            NodeState::Draining => "draining",
            NodeState::Drained => "drained",
            NodeState::Dead => "dead",
        }
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub node: String,
    pub state: NodeState,
    /// Runs the SMTP listeners and delivers.
    pub smtp: bool,
    /// Serves the console and the API.
    pub console: bool,
    pub started_at: i64,
    /// Its last heartbeat.
    pub seen_at: i64,
    /// Until when it holds its messages; 0 once drained.
    pub lease_until: i64,
    /// The silence after which it counts as dead (its own `[cluster] dead_after`), in seconds.
    pub dead_after: i64,
    pub version: String,
    /// Queued messages it holds now.
    pub messages: i64,
}

/// What a node is told when it renews its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Renewed. `drain`: an administrator asked it to drain.
    Held { drain: bool },
    /// Not renewed: it had lapsed, and others may have claimed some of its messages. The node
    /// must forget the queue it holds in memory and register again.
    Lapsed,
    /// It drained: its last-seen time is renewed, it holds no lease.
    Drained,
    /// Its row is gone (`postern node remove` while it ran): it registers again.
    Missing,
}

/// How a node registers.
#[derive(Debug, Clone)]
pub struct Membership {
    pub node: String,
    pub smtp: bool,
    pub console: bool,
    /// Seconds of silence after which the others take its messages.
    pub dead_after: i64,
    pub version: String,
}

const NODE_COLUMNS: &str = "SELECT n.node, n.state, n.smtp, n.console, n.started_at, n.seen_at, \
     n.lease_until, n.dead_after, n.version, \
     (SELECT COUNT(*) FROM queue_messages m WHERE m.node = n.node) AS messages \
     FROM cluster_nodes n";

impl Store {
    /// Joins (or rejoins) the cluster as alive with a fresh lease. A node restarted after a drain
    /// takes mail again. Messages of nodes that never registered (an older version, a changed
    /// node name) are claimed later by [`Store::queue_claim`] like any lapsed node's.
    pub async fn node_register(&self, m: &Membership) -> Result<()> {
        let now = self.clock().now();
        sqlx::query(
            "INSERT INTO cluster_nodes (node, state, smtp, console, started_at, seen_at, \
             lease_until, dead_after, version) VALUES ($1, 'alive', $2, $3, $4, $4, $5, $6, $7) \
             ON CONFLICT (node) DO UPDATE SET state = 'alive', smtp = $2, console = $3, \
             started_at = $4, seen_at = $4, lease_until = $5, dead_after = $6, version = $7",
        )
        .bind(&m.node)
        .bind(i64::from(m.smtp))
        .bind(i64::from(m.console))
        .bind(now)
        .bind(now + m.dead_after)
        .bind(m.dead_after)
        .bind(&m.version)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Renews `node`'s lease for `dead_after` seconds, unless it lapsed or the node drained.
    pub async fn node_heartbeat(&self, node: &str, dead_after: i64) -> Result<Heartbeat> {
        let mut qtx = self.queue_tx().await?;
        let result =
            heartbeat(&mut qtx.tx, self.is_postgres(), node, self.clock().now(), dead_after).await;
        self.queue_finish(qtx, result).await
    }

    /// Every node, with its state as of now.
    pub async fn node_list(&self) -> Result<Vec<NodeInfo>> {
        let sql = format!("{NODE_COLUMNS} ORDER BY n.node");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        let now = self.clock().now();
        rows.iter().map(|row| node_info(row, now)).collect()
    }

    pub async fn node_get(&self, name: &str) -> Result<Option<NodeInfo>> {
        let sql = format!("{NODE_COLUMNS} WHERE n.node = $1");
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(self.pool()).await?;
        let now = self.clock().now();
        row.as_ref().map(|row| node_info(row, now)).transpose()
    }

    /// Asks `name` to drain, as `actor` (recorded in the audit log as `node.drain`): it stops
    /// taking SMTP sessions, finishes its attempts and gives its queue to the others. The node
    /// sees the request at its next heartbeat.
    pub async fn node_request_drain(&self, name: &str, actor: &str) -> Result<NodeInfo> {
        let not_found = || StoreError::NotFound { what: "node", name: name.to_string() };
        let node = self.node_get(name).await?.ok_or_else(not_found)?;
        match node.state {
            NodeState::Alive => {}
            NodeState::Draining | NodeState::Drained => return Ok(node),
            NodeState::Dead => {
                return Err(StoreError::Conflict(format!(
                    "node {name} is dead: the other nodes take its messages without a drain"
                )));
            }
        }
        let mut tx = self.pool().begin().await?;
        let asked = sqlx::query(
            "UPDATE cluster_nodes SET state = 'draining' WHERE node = $1 AND state = 'alive'",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if asked.rows_affected() > 0 {
            let after = serde_json::json!({ "state": "draining", "messages": node.messages });
            audit_row(&mut tx, self.clock().now(), actor, "node.drain", name, None, Some(&after))
                .await?;
        }
        tx.commit().await?;
        self.node_get(name).await?.ok_or_else(not_found)
    }

    /// Records that `node` drained: its lease ends now, so that the others claim whatever it
    /// still holds at once.
    pub async fn node_drained(&self, node: &str) -> Result<()> {
        sqlx::query(
            "UPDATE cluster_nodes SET state = 'drained', lease_until = 0, seen_at = $2 \
             WHERE node = $1",
        )
        .bind(node)
        .bind(self.clock().now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets a node that is dead or drained and holds no messages, as `actor` (recorded in the
    /// audit log as `node.remove`).
    pub async fn node_remove(&self, name: &str, actor: &str) -> Result<()> {
        let node = self
            .node_get(name)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "node", name: name.to_string() })?;
        if matches!(node.state, NodeState::Alive | NodeState::Draining) {
            return Err(StoreError::Conflict(format!(
                "node {name} is {}: drain it (or stop it) first",
                node.state
            )));
        }
        if node.messages > 0 {
            return Err(StoreError::Conflict(format!(
                "node {name} still holds {} queued message(s); a live node with SMTP takes them \
                 within a heartbeat",
                node.messages
            )));
        }
        let now = self.clock().now();
        let mut tx = self.pool().begin().await?;
        let removed = sqlx::query("DELETE FROM cluster_nodes WHERE node = $1 AND lease_until < $2")
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() > 0 {
            let before = serde_json::json!({ "state": node.state, "seen_at": node.seen_at });
            audit_row(&mut tx, now, actor, "node.remove", name, Some(&before), None).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims for `me` up to `batch` messages of nodes whose lease has lapsed (dead or drained)
    /// or that hold no membership at all, and returns them as the start-up load would (held
    /// messages move too, but are not returned: a release brings them back). Claimers skip rows
    /// another claimer has locked, so several survivors share a dead node's queue.
    pub async fn queue_claim(&self, me: &str, batch: u32) -> Result<WorkSet> {
        let mut qtx = self.queue_tx().await?;
        let now = self.clock().now();
        let pg = self.is_postgres();
        let claimed = claim(&mut qtx.tx, pg, me, now, i64::from(batch.max(1))).await;
        let claimed = self.queue_finish(qtx, claimed).await?;
        if claimed.is_empty() {
            return Ok(WorkSet { messages: Vec::new(), damaged: Vec::new() });
        }
        let (first, last) = (&claimed[0], &claimed[claimed.len() - 1]);
        let messages = sqlx::query(rows::CLAIMED_MESSAGES)
            .bind(me)
            .bind(first)
            .bind(last)
            .fetch_all(self.pool())
            .await?;
        let recipients = sqlx::query(rows::CLAIMED_RECIPIENTS)
            .bind(me)
            .bind(first)
            .bind(last)
            .fetch_all(self.pool())
            .await?;
        let (messages, damaged) = rows::assemble(&messages, &recipients);
        let messages: Vec<QueuedMessage> = messages
            .into_iter()
            .filter(|m| claimed.binary_search(&m.id.to_string()).is_ok())
            .collect();
        Ok(WorkSet { messages, damaged })
    }
}

/// An audit record of an administrator's action on a node. Like a queue action it is not
/// configuration: it claims no revision and is filed under the one in force.
async fn audit_row(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    at: i64,
    actor: &str,
    action: &str,
    node: &str,
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (revision, at, actor, action, object, before_json, after_json) \
         SELECT revision, $1, $2, $3, $4, $5, $6 FROM config_revision WHERE id = 1",
    )
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(node)
    .bind(before.map(|v| v.to_string()))
    .bind(after.map(|v| v.to_string()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn heartbeat(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    pg: bool,
    node: &str,
    now: i64,
    dead_after: i64,
) -> Result<Heartbeat> {
    // Locked, so that a claimer that read the lease as lapsed has finished (it holds the row FOR
    // SHARE) before the owner decides whether it still holds its messages.
    let sql = if pg {
        "SELECT state, lease_until FROM cluster_nodes WHERE node = $1 FOR UPDATE"
    } else {
        "SELECT state, lease_until FROM cluster_nodes WHERE node = $1"
    };
    let Some(row) = sqlx::query(sql).bind(node).fetch_optional(&mut **tx).await? else {
        return Ok(Heartbeat::Missing);
    };
    let state: String = row.try_get("state")?;
    let lease_until: i64 = row.try_get("lease_until")?;
    if state == "drained" {
        sqlx::query("UPDATE cluster_nodes SET seen_at = $2 WHERE node = $1")
            .bind(node)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        return Ok(Heartbeat::Drained);
    }
    if lease_until < now {
        return Ok(Heartbeat::Lapsed);
    }
    sqlx::query("UPDATE cluster_nodes SET seen_at = $2, lease_until = $3 WHERE node = $1")
        .bind(node)
        .bind(now)
        .bind(now + dead_after)
        .execute(&mut **tx)
        .await?;
    Ok(Heartbeat::Held { drain: state == "draining" })
}

/// The ids claimed, in order.
async fn claim(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    pg: bool,
    me: &str,
    now: i64,
    batch: i64,
) -> Result<Vec<String>> {
    // FOR SHARE: claimers of the same lapsed node go side by side, while its owner's heartbeat
    // (FOR UPDATE) waits for them, and then finds its lease lapsed.
    let lapsed = if pg {
        "SELECT node FROM cluster_nodes WHERE node <> $1 AND lease_until < $2 ORDER BY node \
         FOR SHARE"
    } else {
        "SELECT node FROM cluster_nodes WHERE node <> $1 AND lease_until < $2 ORDER BY node"
    };
    let mut owners: Vec<String> =
        sqlx::query_scalar(lapsed).bind(me).bind(now).fetch_all(&mut **tx).await?;
    // Messages of nodes without a row: an engine of an older version, a renamed node, or one
    // removed before its queue moved. The index on (node, held) keeps this a short walk.
    let unknown: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT m.node FROM queue_messages m WHERE m.node <> $1 \
         AND NOT EXISTS (SELECT 1 FROM cluster_nodes n WHERE n.node = m.node)",
    )
    .bind(me)
    .fetch_all(&mut **tx)
    .await?;
    owners.extend(unknown);
    let take = if pg {
        "UPDATE queue_messages SET node = $1 WHERE id IN (SELECT id FROM queue_messages \
         WHERE node = $2 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id"
    } else {
        "UPDATE queue_messages SET node = $1 WHERE id IN (SELECT id FROM queue_messages \
         WHERE node = $2 ORDER BY id LIMIT $3) RETURNING id"
    };
    let mut claimed = Vec::new();
    for owner in owners {
        let left = batch - claimed.len() as i64;
        if left <= 0 {
            break;
        }
        let ids: Vec<String> =
            sqlx::query_scalar(take).bind(me).bind(&owner).bind(left).fetch_all(&mut **tx).await?;
        if !ids.is_empty() {
            tracing::info!(from = %owner, to = %me, messages = ids.len(), "queued messages claimed");
        }
        claimed.extend(ids);
    }
    claimed.sort();
    Ok(claimed)
}

fn node_info(row: &sqlx::any::AnyRow, now: i64) -> Result<NodeInfo> {
    let stored: String = row.try_get("state")?;
    let lease_until: i64 = row.try_get("lease_until")?;
    let state = match stored.as_str() {
        "drained" => NodeState::Drained,
        _ if lease_until < now => NodeState::Dead,
        "draining" => NodeState::Draining,
        "alive" => NodeState::Alive,
        other => {
            return Err(StoreError::Corrupt {
                table: "cluster_nodes",
                message: format!("unknown state {other:?}"),
            });
        }
    };
    Ok(NodeInfo {
        node: row.try_get("node")?,
        state,
        smtp: row.try_get::<i64, _>("smtp")? != 0,
        console: row.try_get::<i64, _>("console")? != 0,
        started_at: row.try_get("started_at")?,
        seen_at: row.try_get("seen_at")?,
        lease_until,
        dead_after: row.try_get("dead_after")?,
        version: row.try_get("version")?,
        messages: row.try_get("messages")?,
    })
}
