//! Reading the audit trail, newest first.

use sqlx::Row;

use super::matching;
use crate::error::Result;
use crate::model::AuditEntry;
use crate::store::Store;

/// Which audit entries a page shows; every field optional, all combined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Part of who made the change, any case (`alice`, `cli:`, `api:`).
    pub actor: Option<String>,
    /// The kind of thing changed: the action's first word (`domain`, `queue`, `token`…).
    pub kind: Option<String>,
    /// Text anywhere in the object or its before and after, any case.
    pub search: Option<String>,
}

impl Store {
    /// Up to `limit` entries older than `before_id` (all when `None`), newest first.
    pub async fn list_audit(&self, limit: u32, before_id: Option<i64>) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, revision, at, actor, action, object, before_json, after_json FROM audit_log \
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(entry).collect()
    }

    /// Like [`Store::list_audit`], with only the entries that match `filter`.
    pub async fn search_audit(
        &self,
        filter: &AuditFilter,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEntry>> {
        let kind = filter.kind.as_ref().map(|k| format!("{}.%", matching::literal(k.trim())));
        let rows = sqlx::query(
            "SELECT id, revision, at, actor, action, object, before_json, after_json FROM audit_log \
             WHERE id < $1 \
             AND ($3 IS NULL OR LOWER(actor) LIKE $3 ESCAPE '\\') \
             AND ($4 IS NULL OR LOWER(action) LIKE $4 ESCAPE '\\') \
             AND ($5 IS NULL OR LOWER(object) LIKE $5 ESCAPE '\\' \
                  OR LOWER(COALESCE(before_json, '')) LIKE $5 ESCAPE '\\' \
                  OR LOWER(COALESCE(after_json, '')) LIKE $5 ESCAPE '\\') \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .bind(matching::like(&filter.actor))
        .bind(kind)
        .bind(matching::like(&filter.search))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(entry).collect()
    }

    /// The kinds of change the trail holds (`domain`, `queue`…), for a filter's choices.
    pub async fn audit_kinds(&self) -> Result<Vec<String>> {
        let actions: Vec<String> = sqlx::query_scalar("SELECT DISTINCT action FROM audit_log")
            .fetch_all(self.pool())
            .await?;
        let mut kinds: Vec<String> =
            actions.iter().map(|a| a.split('.').next().unwrap_or(a).to_string()).collect();
        kinds.sort();
        kinds.dedup();
        Ok(kinds)
    }
}

fn entry(row: &sqlx::any::AnyRow) -> Result<AuditEntry> {
    let json = |col: &str| -> Result<Option<serde_json::Value>> {
        let text: Option<String> = row.try_get(col)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    };
    Ok(AuditEntry {
        id: row.try_get("id")?,
        revision: row.try_get("revision")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        object: row.try_get("object")?,
        before: json("before_json")?,
        after: json("after_json")?,
    })
}
