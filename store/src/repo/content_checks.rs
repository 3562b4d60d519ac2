//! Header and body checks: add, list, remove, move. Every change is a
//! [`crate::store::Change`], so the engines pick up the new order at once; patterns are compiled
//! when the configuration is loaded, once per snapshot.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::{Result, StoreError};
use crate::model::{CheckAction, CheckPart, CheckPattern, ContentCheck, NewContentCheck};
use crate::store::{Store, now};

const COLUMNS: &str = "id, position, part, pattern, action, description, created_at";

fn bad(field: &'static str, e: StoreError) -> StoreError {
    StoreError::invalid(field, format!("stored content check does not parse: {e}"))
}

fn check(row: &AnyRow) -> Result<ContentCheck> {
    let part: String = row.try_get("part")?;
    let pattern: String = row.try_get("pattern")?;
    let action: String = row.try_get("action")?;
    Ok(ContentCheck {
        id: row.try_get("id")?,
        position: row.try_get("position")?,
        part: part.parse::<CheckPart>().map_err(|e| bad("part", e))?,
        pattern: CheckPattern::parse(&pattern).map_err(|e| bad("pattern", e))?,
        action: action.parse::<CheckAction>().map_err(|e| bad("action", e))?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Every rule, in order.
pub(crate) async fn load(conn: &mut AnyConnection) -> Result<Vec<ContentCheck>> {
    let sql = format!("SELECT {COLUMNS} FROM content_checks ORDER BY position, id");
    sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(conn).await?.iter().map(check).collect()
}

/// Renumbers `ids` as positions 1, 2, 3…
async fn renumber(conn: &mut AnyConnection, ids: &[i64]) -> Result<()> {
    for (i, id) in ids.iter().enumerate() {
        sqlx::query("UPDATE content_checks SET position = $1 WHERE id = $2")
            .bind(i as i64 + 1)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound { what: "content check", name: id.to_string() }
}

/// Clamps a wanted position (1-based) to 1..=len+1.
fn slot(position: Option<i64>, len: usize) -> usize {
    match position {
        Some(p) if p >= 1 => (p as usize - 1).min(len),
        _ => len,
    }
}

impl Store {
    /// Adds a rule at `position` (1 is tried first; `None` puts it last).
    pub async fn add_content_check(
        &self,
        actor: &str,
        new: NewContentCheck,
        position: Option<i64>,
    ) -> Result<ContentCheck> {
        new.check()?;
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let rules = load(change.conn()).await?;
            let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM content_checks")
                .fetch_one(change.conn())
                .await?;
            let created_at = now();
            sqlx::query(
                "INSERT INTO content_checks (id, position, part, pattern, action, description, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(0_i64)
            .bind(new.part.as_str())
            .bind(new.pattern.to_string())
            .bind(new.action.to_string())
            .bind(&new.description)
            .bind(created_at)
            .execute(change.conn())
            .await?;
            let mut ids: Vec<i64> = rules.iter().map(|r| r.id).collect();
            let at = slot(position, ids.len());
            ids.insert(at, id);
            renumber(change.conn(), &ids).await?;
            let rule = ContentCheck {
                id,
                position: at as i64 + 1,
                part: new.part,
                pattern: new.pattern.clone(),
                action: new.action.clone(),
                description: new.description.clone(),
                created_at,
            };
            change
                .audit("content_check.add", &id.to_string(), None::<&ContentCheck>, Some(&rule))
                .await?;
            Ok(rule)
        }
        .await;
        change.finish(result).await
    }

    /// Every rule, in the order they are tried.
    pub async fn list_content_checks(&self) -> Result<Vec<ContentCheck>> {
        let mut conn = self.pool().acquire().await?;
        load(&mut conn).await
    }

    pub async fn remove_content_check(&self, actor: &str, id: i64) -> Result<ContentCheck> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let rules = load(change.conn()).await?;
            let rule = rules.iter().find(|r| r.id == id).cloned().ok_or_else(|| not_found(id))?;
            sqlx::query("DELETE FROM content_checks WHERE id = $1")
                .bind(id)
                .execute(change.conn())
                .await?;
            let ids: Vec<i64> = rules.iter().map(|r| r.id).filter(|&r| r != id).collect();
            renumber(change.conn(), &ids).await?;
            change
                .audit("content_check.remove", &id.to_string(), Some(&rule), None::<&ContentCheck>)
                .await?;
            Ok(rule)
        }
        .await;
        change.finish(result).await
    }

    /// Moves a rule to `position` (1 is tried first; past the end is last).
    pub async fn move_content_check(
        &self,
        actor: &str,
        id: i64,
        position: i64,
    ) -> Result<ContentCheck> {
        if position < 1 {
            return Err(StoreError::invalid("position", "positions start at 1"));
        }
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let rules = load(change.conn()).await?;
            let before = rules.iter().find(|r| r.id == id).cloned().ok_or_else(|| not_found(id))?;
            let mut ids: Vec<i64> = rules.iter().map(|r| r.id).filter(|&r| r != id).collect();
            let at = slot(Some(position), ids.len());
            ids.insert(at, id);
            renumber(change.conn(), &ids).await?;
            let after = ContentCheck { position: at as i64 + 1, ..before.clone() };
            change
                .audit("content_check.move", &id.to_string(), Some(&before), Some(&after))
                .await?;
            Ok(after)
        }
        .await;
        change.finish(result).await
    }
}
