//! Reading the audit trail, newest first.

use sqlx::Row;

use crate::error::Result;
use crate::model::AuditEntry;
use crate::store::Store;

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
        rows.iter()
            .map(|row| {
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
            })
            .collect()
    }
}
