//! Milters: add, list, remove, move, enable or disable. Every change is a
//! [`crate::store::Change`], so new sessions call the new list at once.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::{Result, StoreError};
use crate::model::{Milter, MilterTimeouts, NewMilter};
use crate::store::{Store, now};

const COLUMNS: &str = "id, position, name, address, default_action, connect_timeout_ms, \
                       command_timeout_ms, eom_timeout_ms, listeners, enabled, created_at";

fn bad(field: &'static str, e: StoreError) -> StoreError {
    StoreError::Corrupt { table: "milters", message: format!("{field}: {e}") }
}

fn milter(row: &AnyRow) -> Result<Milter> {
    let ms = |name: &str| -> Result<u64> { Ok(row.try_get::<i64, _>(name)?.max(1) as u64) };
    Ok(Milter {
        id: row.try_get("id")?,
        position: row.try_get("position")?,
        name: row.try_get("name")?,
        address: row.try_get::<String, _>("address")?.parse().map_err(|e| bad("address", e))?,
        default_action: row
            .try_get::<String, _>("default_action")?
            .parse()
            .map_err(|e| bad("default_action", e))?,
        timeouts: MilterTimeouts {
            connect_ms: ms("connect_timeout_ms")?,
            command_ms: ms("command_timeout_ms")?,
            eom_ms: ms("eom_timeout_ms")?,
        },
        listeners: row
            .try_get::<String, _>("listeners")?
            .parse()
            .map_err(|e| bad("listeners", e))?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

/// Every milter, in the order they are called.
pub(crate) async fn load(conn: &mut AnyConnection) -> Result<Vec<Milter>> {
    let sql = format!("SELECT {COLUMNS} FROM milters ORDER BY position, id");
    sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(conn).await?.iter().map(milter).collect()
}

async fn renumber(conn: &mut AnyConnection, ids: &[i64]) -> Result<()> {
    for (i, id) in ids.iter().enumerate() {
        sqlx::query("UPDATE milters SET position = $1 WHERE id = $2")
            .bind(i as i64 + 1)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound { what: "milter", name: id.to_string() }
}

fn slot(position: Option<i64>, len: usize) -> usize {
    match position {
        Some(p) if p >= 1 => (p as usize - 1).min(len),
        _ => len,
    }
}

impl Store {
    /// Adds a milter at `position` (1 is called first; `None` puts it last).
    pub async fn add_milter(
        &self,
        actor: &str,
        new: NewMilter,
        position: Option<i64>,
    ) -> Result<Milter> {
        new.check()?;
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let milters = load(change.conn()).await?;
            if milters.iter().any(|m| m.name == new.name) {
                return Err(StoreError::Duplicate { what: "milter", name: new.name.clone() });
            }
            let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM milters")
                .fetch_one(change.conn())
                .await?;
            let created_at = now();
            sqlx::query(
                "INSERT INTO milters (id, position, name, address, default_action, \
                 connect_timeout_ms, command_timeout_ms, eom_timeout_ms, listeners, enabled, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(id)
            .bind(0_i64)
            .bind(&new.name)
            .bind(new.address.to_string())
            .bind(new.default_action.as_str())
            .bind(new.timeouts.connect_ms as i64)
            .bind(new.timeouts.command_ms as i64)
            .bind(new.timeouts.eom_ms as i64)
            .bind(new.listeners.to_string())
            .bind(i64::from(new.enabled))
            .bind(created_at)
            .execute(change.conn())
            .await?;
            let mut ids: Vec<i64> = milters.iter().map(|m| m.id).collect();
            let at = slot(position, ids.len());
            ids.insert(at, id);
            renumber(change.conn(), &ids).await?;
            let milter = Milter {
                id,
                position: at as i64 + 1,
                name: new.name.clone(),
                address: new.address.clone(),
                default_action: new.default_action,
                timeouts: new.timeouts,
                listeners: new.listeners,
                enabled: new.enabled,
                created_at,
            };
            change.audit("milter.add", &new.name, None::<&Milter>, Some(&milter)).await?;
            Ok(milter)
        }
        .await;
        change.finish(result).await
    }

    /// Every milter, in the order they are called.
    pub async fn list_milters(&self) -> Result<Vec<Milter>> {
        let mut conn = self.pool().acquire().await?;
        load(&mut conn).await
    }

    pub async fn get_milter(&self, id: i64) -> Result<Milter> {
        self.list_milters().await?.into_iter().find(|m| m.id == id).ok_or_else(|| not_found(id))
    }

    pub async fn remove_milter(&self, actor: &str, id: i64) -> Result<Milter> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let milters = load(change.conn()).await?;
            let milter =
                milters.iter().find(|m| m.id == id).cloned().ok_or_else(|| not_found(id))?;
            sqlx::query("DELETE FROM milters WHERE id = $1")
                .bind(id)
                .execute(change.conn())
                .await?;
            let ids: Vec<i64> = milters.iter().map(|m| m.id).filter(|&m| m != id).collect();
            renumber(change.conn(), &ids).await?;
            change.audit("milter.remove", &milter.name, Some(&milter), None::<&Milter>).await?;
            Ok(milter)
        }
        .await;
        change.finish(result).await
    }

    /// Moves a milter to `position` (1 is called first; past the end is last).
    pub async fn move_milter(&self, actor: &str, id: i64, position: i64) -> Result<Milter> {
        if position < 1 {
            return Err(StoreError::invalid("position", "positions start at 1"));
        }
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let milters = load(change.conn()).await?;
            let before =
                milters.iter().find(|m| m.id == id).cloned().ok_or_else(|| not_found(id))?;
            let mut ids: Vec<i64> = milters.iter().map(|m| m.id).filter(|&m| m != id).collect();
            let at = slot(Some(position), ids.len());
            ids.insert(at, id);
            renumber(change.conn(), &ids).await?;
            let after = Milter { position: at as i64 + 1, ..before.clone() };
            change.audit("milter.move", &before.name, Some(&before), Some(&after)).await?;
            Ok(after)
        }
        .await;
        change.finish(result).await
    }

    /// Turns a milter on or off without forgetting its place.
    pub async fn set_milter_enabled(&self, actor: &str, id: i64, enabled: bool) -> Result<Milter> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let milters = load(change.conn()).await?;
            let before =
                milters.iter().find(|m| m.id == id).cloned().ok_or_else(|| not_found(id))?;
            sqlx::query("UPDATE milters SET enabled = $1 WHERE id = $2")
                .bind(i64::from(enabled))
                .bind(id)
                .execute(change.conn())
                .await?;
            let after = Milter { enabled, ..before.clone() };
            let action = if enabled { "milter.enable" } else { "milter.disable" };
            change.audit(action, &before.name, Some(&before), Some(&after)).await?;
            Ok(after)
        }
        .await;
        change.finish(result).await
    }
}
